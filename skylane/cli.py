"""`skylane`: the one composition root. Reads the settings, wires the parts, runs a command."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from .settings import Settings

log = logging.getLogger("skylane")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


# ---------------------------------------------------------------------------------------------- services

def cmd_services(args, settings: Settings) -> int:
    from . import localservices as ls
    try:
        if args.action == "up":
            statuses = ls.up(settings)
        elif args.action == "down":
            ls.down(settings)
            statuses = ls.status(settings)
        else:
            statuses = ls.status(settings)
    except ls.ServiceError as exc:
        print(f"skylane services {args.action}: {exc}", file=sys.stderr)
        return 1
    for st in statuses:
        print(st.line())
    if args.action == "up":
        from .wiring import prepare_database
        print(f"storage: {prepare_database(settings)}")
    return 0


# ------------------------------------------------------------------------------------------------ ingest

def cmd_ingest(args, settings: Settings) -> int:
    from prometheus_client import start_http_server

    from ingest.consumer import Ingester

    from .wiring import make_pipeline, prepare_database
    kind = prepare_database(settings)
    log.info("storage: %s", kind)
    if settings.ingest_metrics_port:
        start_http_server(settings.ingest_metrics_port, addr="127.0.0.1")
        log.info("ingest metrics on http://127.0.0.1:%d/metrics", settings.ingest_metrics_port)
    host, port = settings.mqtt_host_port
    ingester = Ingester(mqtt_host=host, mqtt_port=port, database_url=settings.database_url,
                        pipeline=make_pipeline(settings), client_id=args.client_id or settings.ingest_client_id,
                        batch_size=settings.batch_size, batch_ms=settings.batch_ms)
    ingester.run(_stop_on_signals())
    return 0


# --------------------------------------------------------------------------------------------------- api

def cmd_api(args, settings: Settings) -> int:
    import uvicorn

    from api.app import ApiConfig, create_app

    from .wiring import prepare_database
    log.info("storage: %s", prepare_database(settings))
    host, port = settings.mqtt_host_port
    app = create_app(ApiConfig(settings.database_url, host, port, settings.mqtt_root))
    log.info("dashboard and API on http://%s:%d/", settings.api_host, settings.api_port)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
    return 0


# ---------------------------------------------------------------------------------------------- simulate

def cmd_simulate(args, settings: Settings) -> int:
    from devices.fleet import make_fleet
    from devices.simulator import Simulator

    from .wiring import read_zone_file
    drones, sensors = make_fleet(read_zone_file(settings), args.drones, args.sensors, args.seed,
                                 rate_scale=args.rate_scale)
    log.info("simulating %d drones and %d sensors at %s Hz", len(drones), len(sensors), args.hz)
    sim = Simulator(settings.mqtt_url, settings.mqtt_root, drones, sensors, hz=args.hz)
    sim.run(_stop_on_signals(), duration_s=args.duration)
    return 0


# ----------------------------------------------------------------------------------------- record/replay

def cmd_record(args, settings: Settings) -> int:
    from replay.recorder import record
    filters = args.topic or None
    n = record(settings.mqtt_url, args.file, settings.mqtt_root, filters=filters, stop=_stop_on_signals(),
               duration_s=args.duration)
    log.info("recorded %d messages to %s", n, args.file)
    return 0


def cmd_replay(args, settings: Settings) -> int:
    from replay.player import replay
    stop = _stop_on_signals()
    total = 0
    while True:
        n = replay(args.file, settings.mqtt_url, rate=args.rate, root_from=args.from_root, root_to=args.to_root,
                   stop=stop)
        total += n
        if not args.loop or stop.is_set():
            break
    log.info("replayed %d messages from %s", total, args.file)
    return 0


# -------------------------------------------------------------------------------------------------- demo

def cmd_demo(args, settings: Settings) -> int:
    """Local services, then ingest, API and the simulated fleet as child processes, until Ctrl-C."""
    from . import localservices as ls
    from .wiring import prepare_database
    try:
        for st in ls.up(settings):
            print(st.line(), flush=True)
    except ls.ServiceError as exc:
        print(f"skylane demo: {exc}", file=sys.stderr)
        return 1
    print(f"storage: {prepare_database(settings)}", flush=True)
    me = [sys.executable, "-m", "skylane"]
    # own sessions: Ctrl-C reaches only this process, which then stops each child once, in order
    children = {name: subprocess.Popen([*me, *argv], start_new_session=True) for name, argv in (
        ("ingest", ["ingest"]), ("api", ["api"]),
        ("simulate", ["simulate", "--drones", str(args.drones), "--sensors", str(args.sensors)]))}
    stop = _stop_on_signals()
    url = f"http://{settings.api_host}:{settings.api_port}/"
    if _wait_http(url + "v1/health", 60, stop):
        host, port = settings.mqtt_host_port
        print(f"\n  Skylane is up. Dashboard: {url}\n  API docs: {url}docs   Metrics: {url}metrics\n"
              f"  Try a no-fly violation:\n    mosquitto_pub -h {host} -p {port} -t {settings.mqtt_root}/uav/T1/telemetry "
              "-m '{\"lat\": 31.044, \"lon\": 121.4885, \"alt_m\": 50}'\n"
              f"    curl -s '{url}v1/events?kind=no_fly_violation&uav_id=T1'\n  Ctrl-C stops everything.\n", flush=True)
    try:
        while not stop.is_set():
            for name, proc in children.items():
                if proc.poll() is not None:
                    log.error("%s exited with code %s; stopping the demo", name, proc.returncode)
                    stop.set()
            stop.wait(0.5)
    finally:
        for proc in children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in children.items():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        print("demo stopped (local services keep running: `skylane services down` stops them)", flush=True)
    return 0


def _wait_http(url: str, timeout: float, stop: threading.Event) -> bool:
    import urllib.error
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    return False


# ---------------------------------------------------------------------------------------------- argparse

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skylane", description=__doc__)
    p.add_argument("--log-level", default=os.environ.get("SKYLANE_LOG_LEVEL", "INFO"))
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("services", help="start, stop or show the project-local Mosquitto and PostgreSQL")
    s.add_argument("action", choices=["up", "down", "status"])
    s.set_defaults(func=cmd_services)

    s = sub.add_parser("ingest", help="run the MQTT ingester")
    s.add_argument("--client-id", help="MQTT client id (persistent session); default SKYLANE_INGEST_CLIENT_ID")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("api", help="run the API and dashboard")
    s.set_defaults(func=cmd_api)

    s = sub.add_parser("simulate", help="fly simulated drones and run simulated urban sensors")
    s.add_argument("--drones", type=int, default=12)
    s.add_argument("--sensors", type=int, default=30)
    s.add_argument("--hz", type=float, default=1.0, help="telemetry rate per drone")
    s.add_argument("--seed", type=int, default=17)
    s.add_argument("--rate-scale", type=float, default=1.0, help="divide sensor reporting intervals by this")
    s.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("record", help="record raw MQTT traffic to a file")
    s.add_argument("file")
    s.add_argument("--topic", action="append", help="topic filter (repeatable; default ROOT/#)")
    s.add_argument("--duration", type=float, help="seconds to record (default: until Ctrl-C)")
    s.set_defaults(func=cmd_record)

    s = sub.add_parser("replay", help="publish a recording back into the broker")
    s.add_argument("file")
    s.add_argument("--rate", type=float, default=1.0, help="speed factor; 0 = as fast as possible")
    s.add_argument("--from-root", help="root to take from the recording (default: the one in its header)")
    s.add_argument("--to-root", help="publish under this root instead (keeps replays off live topics)")
    s.add_argument("--loop", action="store_true")
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("demo", help="services up, then ingest, API and simulator until Ctrl-C")
    s.add_argument("--drones", type=int, default=12)
    s.add_argument("--sensors", type=int, default=30)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"skylane: bad setting: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(args, settings)
    except KeyboardInterrupt:  # a second Ctrl-C: stop now
        return 130
