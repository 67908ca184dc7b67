"""`skylane ingest|api|simulate|demo`: the running parts of the system."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from protocol.mqttclient import MqttTarget

from ..settings import Settings
from . import stop_on_signals

log = logging.getLogger("skylane")
DEMO_DEVICE = "T1"  # a registered drone whose MQTT account the demo prints (the README's mosquitto_pub example)


# Three threads share the GIL in a worker (paho's network thread, the batch preparer, the writer): handing it
# over every 1 ms instead of Python's 5 ms keeps the socket drained and the writer fed. Measured with
# `skylane bench ingest`: ~29,000 -> ~37,000 single-fix msg/s, ~70,000 -> ~88,000 pack records/s.
GIL_SWITCH_S = 0.001


def cmd_ingest(args, settings: Settings) -> int:
    if args.workers > 1 and args.worker is None:
        return _supervise_workers(args, settings)
    from prometheus_client import start_http_server

    from ingest.limits import RateLimiter
    from ingest.sharding import Assignment

    from ..wiring import make_ingester, prepare_database
    sys.setswitchinterval(GIL_SWITCH_S)
    worker = args.worker or 0
    if not 0 <= worker < args.workers:
        log.error("--worker must be 0..%d for --workers %d", args.workers - 1, args.workers)
        return 2
    assignment = Assignment(worker, args.workers, shared=args.share_group)
    prepare_database(settings)  # idempotent, one starter at a time (advisory lock)
    metrics_port = settings.ingest_metrics_port + worker if settings.ingest_metrics_port else 0
    if metrics_port:
        start_http_server(metrics_port, addr=settings.ingest_metrics_host)
        log.info("ingest metrics on http://%s:%d/metrics", settings.ingest_metrics_host, metrics_port)
    base_id = args.client_id or settings.ingest_client_id
    stop = stop_on_signals()
    limiter = RateLimiter(args.device_rate if args.device_rate is not None else settings.device_rate,
                          args.device_burst if args.device_burst is not None else settings.device_burst)
    ingester = make_ingester(settings, worker_client_id(base_id, worker), assignment=assignment, rate_limiter=limiter)
    if worker == 0:
        threading.Thread(target=_retire_when_subscribed, args=(settings, ingester, base_id, args.workers, stop),
                         name="retire", daemon=True).start()
    ingester.run(stop)
    return 0


RETIRE_GRACE_S = 10.0  # for the other workers of a deployment to subscribe their shards


def _retire_when_subscribed(settings: Settings, ingester, base_id: str, workers: int, stop) -> None:
    """Worker 0 drains the sessions of workers beyond `workers` once the new owners of their shards are
    subscribed (itself: SUBACK; the others: a grace period), so that no message finds no subscriber."""
    if not ingester.connected.wait(120) or (workers > 1 and stop.wait(RETIRE_GRACE_S)):
        return
    try:
        _retire(settings, base_id, workers, stop)
    except Exception:  # never stops ingest; the sessions wait for the next start
        log.exception("retiring the sessions of removed workers failed")


def _retire(settings: Settings, base_id: str, workers: int, stop) -> None:
    """Sessions of workers beyond `workers` (left by a bigger deployment) are drained and ended."""
    from ingest.consumer import Ingester, retire_sessions
    from ingest.limits import RateLimiter

    from ..wiring import make_ingester

    def make(client_id: str) -> Ingester:
        return make_ingester(settings, client_id, rate_limiter=RateLimiter(rate=0), retire=True)
    n = retire_sessions(make, settings.service_url("ingest"), base_id, workers, stop)
    if n:
        log.info("retired the sessions of %d workers beyond --workers %d", n, workers)


def worker_client_id(base: str, worker: int) -> str:
    """Fixed per worker index (persistent sessions); worker 0 keeps the single ingester's id."""
    return base if worker == 0 else f"{base}-w{worker}"


def _supervise_workers(args, settings: Settings) -> int:
    """N worker processes, each its share of the shards; one that dies is restarted (its session waits)."""
    from ..wiring import prepare_database
    prepare_database(settings)
    stop = stop_on_signals()
    me = [sys.executable, "-m", "skylane", "--log-level", logging.getLevelName(logging.getLogger().level),
          *(["--log-format", args.log_format] if getattr(args, "log_format", None) else []),
          "ingest", "--workers", str(args.workers)]
    extra = []
    for flag, value in (("--client-id", args.client_id), ("--device-rate", args.device_rate),
                        ("--device-burst", args.device_burst)):
        if value is not None:
            extra += [flag, str(value)]
    if args.share_group:
        extra.append("--share-group")

    def start(i: int) -> subprocess.Popen:
        return subprocess.Popen([*me, "--worker", str(i), *extra])
    children = {i: start(i) for i in range(args.workers)}
    log.info("started %d ingest workers (pids %s)", args.workers, ", ".join(str(p.pid) for p in children.values()))
    try:
        while not stop.is_set():
            for i, proc in list(children.items()):
                if proc.poll() is not None and not stop.is_set():
                    log.error("ingest worker %d exited with code %s; restarting it", i, proc.returncode)
                    stop.wait(1)
                    children[i] = start(i)
            stop.wait(0.5)
    finally:
        stop_children(children.values(), 30)
    return 0


def cmd_api(args, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    from ..wiring import api_config, prepare_database
    prepare_database(settings)
    app = create_app(api_config(settings))
    log.info("dashboard and API on http://%s:%d/", settings.api_host, settings.api_port)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
    return 0


def cmd_simulate(args, settings: Settings) -> int:
    from devices.simulator import Simulator
    drones, sensors, speaker = _fleet(settings, args)
    surveillance = None
    if args.surveillance:
        if args.sharded or args.dialect:
            log.error("--surveillance flies beside the native fleet: not with --sharded or --dialect")
            return 2
        from devices.surveillance_sim import AvrServer, SurveillanceSim
        avr = AvrServer(port=args.adsb_port) if args.adsb_port else None
        surveillance = SurveillanceSim(settings.mqtt_root, [d.uav_id for d in drones], avr=avr)
        if avr is not None:
            log.info("helicopter's ADS-B frames (AVR) on tcp://127.0.0.1:%d", avr.port)
    if args.register:
        _register_fleet(settings, drones, sensors, args.hz, speaker, surveillance)
    log.info("simulating %d drones and %d sensors at %s Hz%s%s", len(drones), len(sensors), args.hz,
             f", speaking {args.dialect}" if args.dialect else "",
             ", with surveillance traffic" if surveillance else "")
    sim = Simulator(settings.service_url("simulator"), settings.mqtt_root, drones, sensors, hz=args.hz,
                    device_wills=args.device_wills, sharded=args.sharded, dialect=speaker, surveillance=surveillance)
    try:
        sim.run(stop_on_signals(), duration_s=args.duration)
    finally:
        if surveillance is not None and surveillance.avr is not None:
            surveillance.avr.close()
    return 0


def _fleet(settings: Settings, args):
    """(drones, sensors, the dialect they speak or None) as `skylane simulate` flies them (devices/vendor_sim.py)."""
    from devices.fleet import make_fleet

    from ..wiring import read_zone_file
    drones, sensors = make_fleet(read_zone_file(settings), args.drones, args.sensors, args.seed,
                                 rate_scale=args.rate_scale)
    if not args.dialect:
        return drones, sensors, None
    from devices.vendor_sim import VendorSpeaker, dialect_fleet
    drones, sensors = dialect_fleet(args.dialect, drones, sensors)
    return drones, sensors, VendorSpeaker(args.dialect, drones, sensors, args.mavlink_target)


def _register_fleet(settings: Settings, drones, sensors, hz: float, speaker, surveillance=None) -> None:
    """The simulated devices in the registry, with the vendor properties their dialect maps them by (and, with
    the surveillance companion, the Remote ID serials of the broadcasting drones and the converging pair)."""
    from devices.registry import fleet_records

    from ..wiring import register_devices, register_fleet
    if surveillance is not None:
        records = surveillance.with_rid_serials(fleet_records(drones, sensors, hz=hz))
        n = register_devices(settings, records + surveillance.registry_records())
        log.info("registered %d simulated devices (with Remote ID serials and the converging pair)", n)
        return
    if speaker is None:
        register_fleet(settings, drones, sensors, hz)
        return
    n = register_devices(settings, speaker.records(fleet_records(drones, sensors, hz=hz)))
    log.info("registered %d simulated devices speaking %s", n, speaker.dialect)


# `skylane demo`: one device of each dialect beside the native fleet: (dialect, drones, sensors, seed)
DEMO_DIALECTS = (("dji", 1, 0, 18), ("mavlink", 1, 0, 19), ("chirpstack", 0, 1, 20), ("tts", 0, 1, 21))


def _demo_dialects(settings: Settings, mavlink_port: int) -> list[tuple[str, list[str]]]:
    """Register the demo's dialect devices (before ingest starts: it maps vendor ids with the registry it read at
    start) and return the child processes that run them: the MAVLink bridge and one simulator per dialect."""
    target = f"udp:127.0.0.1:{mavlink_port}"
    children = [("bridge", ["bridge", "mavlink", "--listen", target, "--refresh", "5"])]
    for dialect, n_drones, n_sensors, seed in DEMO_DIALECTS:
        argv = ["--dialect", dialect, "--drones", str(n_drones), "--sensors", str(n_sensors), "--seed", str(seed),
                "--mavlink-target", target]
        args = argparse.Namespace(drones=n_drones, sensors=n_sensors, seed=seed, rate_scale=1.0, dialect=dialect,
                                  mavlink_target=target)
        drones, sensors, speaker = _fleet(settings, args)
        _register_fleet(settings, drones, sensors, 1.0, speaker)
        children.append((f"simulate-{dialect}", ["simulate", *argv]))
    return children


def cmd_demo(args, settings: Settings) -> int:
    """Local services, then ingest, API and the simulated fleet as child processes, until Ctrl-C."""
    from .. import localservices as ls
    from ..wiring import prepare_database
    try:
        for st in ls.up(settings):
            print(st.line(), flush=True)
    except ls.ServiceError as exc:
        print(f"skylane demo: {exc}", file=sys.stderr)
        return 1
    print(f"storage: {prepare_database(settings)}", flush=True)
    from devices.registry import DeviceRecord

    from ..wiring import register_devices
    from .keys import demo_keys, demo_keys_text
    keys = demo_keys(settings)
    register_devices(settings, [DeviceRecord(DEMO_DEVICE, "uav", name="test drone for mosquitto_pub",
                                             owner="Skylane demo fleet")])
    dialects = _demo_dialects(settings, args.mavlink_port)
    me = [sys.executable, "-m", "skylane"]
    # The simulated drones fly without filed clearances, so the demo does not raise uncleared_flight for
    # every one of them (set SKYLANE_REQUIRE_CLEARANCE=1 to see it); violations are raised as always.
    # Ingest speaks every dialect (SKYLANE_DIALECTS=all): one DJI aircraft, one MAVLink vehicle (through the bridge),
    # one ChirpStack and one The Things Stack sensor fly and report beside the native fleet.
    env = {**os.environ, "SKYLANE_REQUIRE_CLEARANCE": os.environ.get("SKYLANE_REQUIRE_CLEARANCE", "0"),
           "SKYLANE_DIALECTS": os.environ.get("SKYLANE_DIALECTS", "all")}
    # own sessions: Ctrl-C reaches only this process, which then stops each child once, in order
    children = {name: subprocess.Popen([*me, *argv], start_new_session=True, env=env) for name, argv in (
        ("ingest", ["ingest"]), ("api", ["api"]),
        ("simulate", ["simulate", "--register", "--device-wills", "--drones", str(args.drones),
                      "--sensors", str(args.sensors), "--surveillance", "--adsb-port", str(args.adsb_port)]),
        # the helicopter's frames read as from a receiver at Minhang (skylane adsb, AVR like dump1090's port 30002)
        ("adsb", ["adsb", "--format", "avr", "--port", str(args.adsb_port), "--receiver-id", "rx-sim-adsb",
                  "--lat", "31.05", "--lon", "121.48"]), *dialects)}
    stop = stop_on_signals()
    url = f"http://{settings.api_host}:{settings.api_port}/"
    healthy = _wait_http(url + "v1/health", 60, stop)
    if not healthy and not stop.is_set():
        print(f"\n  WARNING: {url}v1/health is not answering 200 yet; see the log above.", flush=True)
    if not stop.is_set():
        target = MqttTarget.parse(settings.device_url(DEMO_DEVICE))
        print(f"\n  Skylane is up. Dashboard: {url}\n  API docs: {url}docs   Metrics: {url}metrics\n"
              + demo_keys_text(keys) +
              f"  MQTT test device: user {target.username}, password {target.password} "
              f"(device listener {target.host}:{target.port})\n"
              f"  Try a no-fly violation:\n    mosquitto_pub -h {target.host} -p {target.port} -u {target.username} "
              f"-P '{target.password}' -t {settings.mqtt_root}/uav/{DEMO_DEVICE}/telemetry "
              "-m '{\"lat\": 31.044, \"lon\": 121.4885, \"alt_m\": 50}'\n"
              f"    curl -s -H 'Authorization: Bearer {keys['viewer']}' "
              f"'{url}v1/events?kind=no_fly_violation&uav_id=T1'\n  Ctrl-C stops everything.\n", flush=True)
    try:
        while not stop.is_set():
            for name, proc in children.items():
                if proc.poll() is not None:
                    log.error("%s exited with code %s; stopping the demo", name, proc.returncode)
                    stop.set()
            stop.wait(0.5)
    finally:
        stop_children(children.values(), 15)
        print("demo stopped (local services keep running: `skylane services down` stops them)", flush=True)
    return 0


def stop_children(procs, timeout: float) -> None:
    """SIGTERM every child still running, then wait for each (killing any that outlasts `timeout`)."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


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


def _workers(text: str) -> int:
    from ingest.sharding import SHARDS
    n = int(text)
    if not 1 <= n <= SHARDS:
        raise argparse.ArgumentTypeError(f"--workers must be 1..{SHARDS}")
    return n


def register(sub) -> None:
    s = sub.add_parser("ingest", help="run the MQTT ingester")
    s.add_argument("--client-id", help="MQTT client id (persistent session); default SKYLANE_INGEST_CLIENT_ID")
    s.add_argument("--workers", type=_workers, default=1,
                   help="worker processes, each a fixed share of the device shards (docs/scale-out.md)")
    s.add_argument("--share-group", action="store_true",
                   help="subscribe in MQTT 5 share groups (EMQX; not Mosquitto 2.0, which forgets them on restart)")
    s.add_argument("--worker", type=int, metavar="I",
                   help="run only worker I of --workers N in this process (e.g. one service unit per worker, "
                        "on several machines); without it, --workers N starts and supervises all N here")
    s.add_argument("--device-rate", type=float,
                   help="messages/s per device before dead-lettering (default SKYLANE_DEVICE_RATE or 100; 0: off)")
    s.add_argument("--device-burst", type=float, help="burst per device (default SKYLANE_DEVICE_BURST or 1000)")
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
    s.add_argument("--register", action="store_true", help="enter the simulated devices in the registry first")
    s.add_argument("--sharded", action="store_true",
                   help="publish under {root}/shard/{s}/... so `skylane ingest --workers N` spreads the fleet")
    s.add_argument("--device-wills", action="store_true",
                   help="each device its own MQTT presence session with a last will (offline when killed)")
    s.add_argument("--dialect", choices=("dji", "mavlink", "chirpstack", "tts"),
                   help="the devices speak a vendor's format (docs/devices.md): DJI Cloud API aircraft under a dock, "
                        "MAVLink 2 autopilots over UDP to `skylane bridge mavlink`, ChirpStack or The Things Stack "
                        "LoRaWAN uplinks; ids get the dialect's prefix (DJI-, MAV-, CS-, TTS-)")
    s.add_argument("--mavlink-target", default="udp:127.0.0.1:14550",
                   help="--dialect mavlink: where the bridge listens (its --listen)")
    s.add_argument("--surveillance", action="store_true",
                   help="beside the fleet: Remote ID broadcasts of every fourth drone and of one unregistered drone, "
                        "two registered drones converging head-on every 4 minutes, and (with --adsb-port) a "
                        "helicopter's ADS-B frames")
    s.add_argument("--adsb-port", type=int, default=0,
                   help="--surveillance: serve the helicopter's frames as AVR lines on this TCP port "
                        "(read them with `skylane adsb --format avr --port P`)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("demo", help="services up, then ingest, API and simulator until Ctrl-C")
    s.add_argument("--drones", type=int, default=12)
    s.add_argument("--sensors", type=int, default=30)
    s.add_argument("--mavlink-port", type=int, default=14550, help="UDP port of the demo's MAVLink bridge")
    s.add_argument("--adsb-port", type=int, default=30302,
                   help="TCP port where the simulated helicopter's ADS-B frames are served to `skylane adsb`")
    s.set_defaults(func=cmd_demo)
