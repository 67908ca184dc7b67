"""`skylane bridge mavlink --listen udp:HOST:PORT`: non-MQTT sources onto the broker under the project's contract
(ingest stays the one writer). The bridge logic lives in ingest/bridges/."""
from __future__ import annotations

import logging

from ..settings import Settings
from . import stop_on_signals

log = logging.getLogger("skylane")


def cmd_bridge_mavlink(args, settings: Settings) -> int:
    import psycopg

    from ingest.bridges.mavlink import MavlinkBridge, parse_listen
    from ingest.dialects import RegistryView
    from storage import catalog

    try:
        link = parse_listen(args.listen, args.link)
    except ValueError as exc:
        log.error("%s", exc)
        return 2

    def registry() -> RegistryView:
        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            return RegistryView.from_registry(catalog.registry(conn, "uav"))
    if args.metrics_port:
        from prometheus_client import start_http_server
        start_http_server(args.metrics_port, addr=settings.ingest_metrics_host)
        log.info("bridge metrics on http://%s:%d/metrics", settings.ingest_metrics_host, args.metrics_port)
    bridge = MavlinkBridge(link, settings.service_url("bridge"), settings.mqtt_root, registry, max_hz=args.max_hz,
                           refresh_s=args.refresh)
    log.info("MAVLink bridge on %s (registry key mavlink = '%s/<system id>') -> %s/uav/<id>/telemetry", args.listen,
             link.name, settings.mqtt_root)
    bridge.run(stop_on_signals())
    return 0


def register(sub) -> None:
    s = sub.add_parser("bridge", help="bridge a non-MQTT source onto the broker (mavlink)")
    kinds = s.add_subparsers(dest="bridge", required=True)
    m = kinds.add_parser("mavlink", help="MAVLink vehicles (PX4, ArduPilot) onto the broker as native telemetry",
                         description="Reads MAVLink 1/2 from a UDP port, a TCP peer or a serial port; each vehicle "
                                     "(link and system id) the registry maps (property mavlink, e.g. "
                                     "'udp:14550/1') publishes fixes and presence under the contract.")
    m.add_argument("--listen", required=True, metavar="SPEC",
                   help="udp:HOST:PORT (listen), tcp:HOST:PORT (connect, e.g. SITL 5760), tcpin:HOST:PORT (listen) "
                        "or serial:DEVICE[:BAUD]")
    m.add_argument("--link", help="the link's name in the registry's mavlink property (default: udp:PORT, "
                                  "tcp:PORT or serial:DEVICE-NAME)")
    m.add_argument("--max-hz", type=float, default=10.0, help="fixes per second per vehicle at most (0: all)")
    m.add_argument("--refresh", type=float, default=30.0, help="seconds between re-reading the registry")
    m.add_argument("--metrics-port", type=int, default=0, help="Prometheus metrics on this port (0: none)")
    m.set_defaults(func=cmd_bridge_mavlink)
