"""End-to-end ingest benchmark: broker -> ingest -> airspace -> database, QoS 1, ack after commit, dedupe.

Usage: skylane bench ingest [--messages N] [--packs P] [--pack-size K] [--rate R] [--seconds S] [--workers W]

Starts what it needs: its own Mosquitto and PostgreSQL (skylane.localservices, free ports, a private
state folder; stopped at the end), `skylane ingest [--workers W]` as child processes and a raw-socket QoS 1
publisher with a bound on unacknowledged messages (bench/_mqttblast.py). Three phases:

1. msgs_per_s: N single-fix telemetry messages are queued in the ingester's persistent session while it is
   stopped, then it is started and the drain is timed (first stored row to the last), like a restart after
   an outage; the row count must come out exact.
2. records_per_s: the same with packs: telemetry arrays of K fixes and SenML packs of K readings.
3. event_latency_p99_ms: publishing at R messages/s for S seconds while the ingester runs; one message in 50
   is a new UAV appearing inside a no-fly zone, and the time from its publication to its airspace event on
   the event topic is measured (same clock: publisher and subscriber are this process).
Peer (issue 16), between phases 1 and 2: the bare consumer a user would write first
(bench/peers/bare_ingest.py: paho-mqtt QoS 1, orjson, binary COPY into the same table, ack after commit; no
validation, geofence, dedupe or events) drains the same single-fix messages (under its own root and UAV
prefix) from the same broker into the same database, timed the same way: bare_msgs_per_s, and
ingest_vs_bare = msgs_per_s / bare_msgs_per_s (--skip-peer leaves it out).
With --dialect NAME (dji, chirpstack, tts, mavlink), phase 1 is followed by the same drain in that input dialect
instead of the other phases (bench/_ingest_dialects.py): dialect_msgs_per_s beside native_msgs_per_s.
Progress goes to stderr; the last line of stdout is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import paho.mqtt.client as mqtt
import psycopg

from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon
from ingest.sharding import sharded_topic
from protocol import topics
from protocol.mqttclient import MqttTarget
from protocol.times import rfc3339
from skylane import localservices
from skylane.settings import DEFAULT_ZONE_FILE, REPO_ROOT, Settings

from ._mqttblast import BlastPublisher
from ._proc import TICK, stat_fields

# outside the ingester's subscriptions (its session does not queue the peer's messages), inside replay/#, which
# every service account may read and write (protocol/brokerauth.py)
BARE_ROOT = "replay/bare/v1"
NO_FLY = (121.4885, 31.044, 50.0)  # centre of R-BR-MP (restricted, 0-150 m AGL, r 350 m) of the shipped zone file
PROBE_EVERY = 50


def probe_spots(radius_m: float = 320.0, spacing_m: float = 55.0, layers_m=(20, 40, 60, 80, 100, 120, 140)) -> list:
    """Where the latency probes enter the no-fly zone: a grid inside R-BR-MP, one aircraft per spot, spots outside
    each other's separation minima (50 m / 15 m), so the probes are many drones in the zone (as a probe must be a
    new drone to raise a new violation) rather than a pile of aircraft at one point."""
    lon0, lat0, _ = NO_FLY
    n = int(radius_m // spacing_m)
    out = []
    for alt in layers_m:
        for gx in range(-n, n + 1):
            for gy in range(-n, n + 1):
                if math.hypot(gx, gy) * spacing_m <= radius_m:
                    out.append((round(lon0 + gx * spacing_m / m_per_deg_lon(lat0), 7),
                                round(lat0 + gy * spacing_m / M_PER_DEG_LAT, 7), float(alt)))
    return out


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def bench_services(state_dir: Path):
    settings = Settings.from_env({
        "SKYLANE_MQTT_URL": f"mqtt://127.0.0.1:{_free_port()}",
        "SKYLANE_MQTT_DEVICE_URL": f"mqtt://127.0.0.1:{_free_port()}",
        "SKYLANE_DATABASE_URL": f"postgresql://skylane:skylane@127.0.0.1:{_free_port()}/skylane_bench",
        "SKYLANE_STATE_DIR": str(state_dir), "SKYLANE_ZONE_FILE": str(DEFAULT_ZONE_FILE),
        "SKYLANE_MQTT_ROOT": "bench/v1", "SKYLANE_INGEST_CLIENT_ID": f"bench-ingest-{uuid.uuid4().hex[:6]}"})
    say(f"starting private Mosquitto ({settings.mqtt_url}) and PostgreSQL (port {settings.database.port}) "
        f"under {state_dir}")
    try:
        localservices.up(settings)
        yield settings
    finally:
        localservices.down(settings)


class Workers:
    """`skylane ingest --workers W` as a child process group."""

    def __init__(self, settings: Settings, workers: int, log_path: Path, batch_size: int, batch_ms: int):
        self.settings, self.workers, self.log_path = settings, workers, log_path
        self.metrics_port = _free_port()  # worker i serves /metrics on metrics_port + i
        self.env = {**os.environ, "SKYLANE_MQTT_URL": settings.mqtt_url, "SKYLANE_DATABASE_URL": settings.database_url,
                    "SKYLANE_STATE_DIR": str(settings.state_dir),
                    "SKYLANE_MQTT_ROOT": settings.mqtt_root, "SKYLANE_INGEST_CLIENT_ID": settings.ingest_client_id,
                    "SKYLANE_INGEST_METRICS_PORT": str(self.metrics_port), "SKYLANE_BATCH_SIZE": str(batch_size),
                    "SKYLANE_BATCH_MS": str(batch_ms), "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen | None = None
        self.argv = [sys.executable, "-m", "skylane", "ingest", "--workers", str(workers), "--device-rate", "0"]

    def start(self) -> None:
        before = self._subscribed()
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=REPO_ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while self._subscribed() < before + self.workers:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingest did not start; see {self.log_path}")
            time.sleep(0.1)

    def _subscribed(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count("subscribed under")
        except OSError:
            return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class BareConsumer(Workers):
    """The peer (bench/peers/bare_ingest.py) as a child process, started, stopped and measured like the ingester."""

    def __init__(self, settings: Settings, log_path: Path, batch_size: int, batch_ms: int,
                 username: str | None = None, password: str | None = None):
        super().__init__(settings, 1, log_path, batch_size, batch_ms)
        self.argv = [sys.executable, "-m", "bench.peers.bare_ingest", "--mqtt-url", settings.service_url("ingest"),
                     "--database-url", settings.database_url, "--topic", topics.telemetry(BARE_ROOT, "+"),
                     "--client-id", f"bench-bare-{uuid.uuid4().hex[:6]}", "--batch-size", str(batch_size),
                     "--batch-ms", str(batch_ms)]
        if username is not None:
            self.argv += ["--username", username, "--password", password or ""]


def bare_phase(settings: Settings, state_dir: Path, args, t_past: datetime, ours: float, ours_cpu: dict) -> dict:
    """The peer on the same messages; ratios ours / theirs by wall time and by CPU per message (ingest + broker
    + database, which other work on a shared machine disturbs less)."""
    bare = BareConsumer(settings, state_dir / "bare.log", args.batch_size, args.batch_ms)
    try:
        bare.start()  # creates its persistent session and subscription
        bare.stop()
        publish_backlog(settings, single_fixes(BARE_ROOT, args.messages, args.uavs, 1, "N", t_past),
                        "single-fix messages for the bare consumer")
        secs, cpu = timed_drain(settings, bare, args.messages, "single fixes (bare consumer)")
    finally:
        bare.stop()
    rate = round(args.messages / secs)
    say(f"  -> bare consumer {rate:,} msg/s (all {args.messages} stored); CPU per message {cpu['cpu_us_per_unit']} us;"
        f" Skylane / bare: {ours / rate:.2f}")
    return {"bare_msgs_per_s": rate, "ingest_vs_bare": round(ours / rate, 2), "bare_single_fix_cpu": cpu,
            "ingest_vs_bare_cpu": round(cpu["cpu_us_total"] / ours_cpu["cpu_us_total"], 2)}


def _topic(root: str, topic: str, workers: int) -> bytes:
    return (sharded_topic(root, topic) if workers > 1 else topic).encode()


class Tracks:
    """Smooth synthetic flights over the demonstration zone (few zone transitions, like real traffic)."""

    def __init__(self, uavs: int, seed: int):
        rng = np.random.default_rng(seed)
        self.lon = rng.uniform(121.44, 121.55, uavs)
        self.lat = rng.uniform(31.01, 31.10, uavs)
        self.alt = rng.uniform(30, 120, uavs)
        heading = rng.uniform(0, 2 * np.pi, uavs)
        self.dlon, self.dlat = 4e-5 * np.cos(heading), 4e-5 * np.sin(heading)

    def fix(self, u: int, k: int, ts: datetime) -> dict:
        return {"ts": rfc3339(ts), "seq": k, "lon": round(float(self.lon[u] + k * self.dlon[u]), 7),
                "lat": round(float(self.lat[u] + k * self.dlat[u]), 7), "alt_m": round(float(self.alt[u]), 1),
                "speed_mps": 4.5, "alt_ref": "AGL"}


def single_fixes(root: str, n: int, uavs: int, workers: int, prefix: str, t0: datetime) -> list[tuple[bytes, bytes]]:
    tracks = Tracks(uavs, 1)
    topics_ = [_topic(root, topics.telemetry(root, f"{prefix}{u:05d}"), workers) for u in range(uavs)]
    out = []
    for i in range(n):
        u, k = i % uavs, i // uavs
        out.append((topics_[u], orjson.dumps(tracks.fix(u, k, t0 + timedelta(milliseconds=100 * k)))))
    return out


def packs(root: str, n: int, size: int, uavs: int, workers: int, t0: datetime) -> tuple[list, int]:
    """n/2 telemetry arrays and n/2 SenML packs of `size` records each; returns (messages, records)."""
    tracks = Tracks(uavs, 2)
    out, records = [], 0
    sensors = max(1, uavs // 2)
    for i in range(n):
        j = i // 2
        if i % 2 == 0:
            u, k0 = j % uavs, (j // uavs) * size
            fixes = [tracks.fix(u, k, t0 + timedelta(milliseconds=100 * k)) for k in range(k0, k0 + size)]
            out.append((_topic(root, topics.telemetry(root, f"P{u:05d}"), workers), orjson.dumps(fixes)))
        else:
            s, base = j % sensors, t0.timestamp() + (j // sensors) * size
            pack = [{"bn": f"urn:dev:skylane:Q{s:05d}:", "bt": base, "n": "pm25", "u": "ug/m3", "v": 10.0, "t": 0}]
            pack += [{"n": "pm25", "v": 10.0 + r % 7, "t": r} for r in range(1, size)]
            out.append((_topic(root, topics.reading(root, f"Q{s:05d}"), workers), orjson.dumps(pack)))
        records += size
    return out, records


def cpu_seconds(settings: Settings, workers: "Workers") -> dict[str, float]:
    """CPU time used so far by the ingest processes, the broker and the database (Linux /proc).

    On a machine shared with other work, wall-clock rates say little; CPU per message does not depend on
    what else runs, so the bench reports it with the capacity it implies for two idle cores."""
    out = {"ingest": 0.0, "mosquitto": 0.0, "postgres": 0.0}
    pgid = workers.proc.pid if workers.proc else None
    mosq_dir, pg_dir = localservices.data_dirs(settings)
    roots = {}
    for name, pid_file in (("mosquitto", mosq_dir / "mosquitto.pid"), ("postgres", pg_dir / "postmaster.pid")):
        try:
            roots[int(pid_file.read_text().split()[0])] = name
        except (OSError, ValueError, IndexError):
            pass
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        f = stat_fields(int(entry))
        if f is None:
            continue
        ppid, pgrp = int(f[1]), int(f[2])
        used = (int(f[11]) + int(f[12])) / TICK
        if pgid is not None and pgrp == pgid:
            out["ingest"] += used
        elif int(entry) in roots:
            out[roots[int(entry)]] += used + (int(f[13]) + int(f[14])) / TICK  # + exited children (backends)
        elif ppid in roots:
            out[roots[ppid]] += used
    return out


def cpu_report(before: dict, after: dict, count: int) -> dict:
    per = {k: round((after[k] - before[k]) / count * 1e6, 1) for k in after}
    total = sum(per.values())
    return {"cpu_us_per_unit": per, "cpu_us_total": round(total, 1),
            "capacity_2_idle_cores": round(2e6 / total) if total > 0 else None}


def delay_buckets(workers: "Workers") -> dict[float, float]:
    """The ingesters' receive-to-published delay histogram (cumulative counts by upper bound), summed."""
    import urllib.request
    out: dict[float, float] = {}
    for i in range(workers.workers):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{workers.metrics_port + i}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("skylane_ingest_delay_seconds_bucket{"):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                out[float(le)] = out.get(float(le), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def bucket_quantile(before: dict, after: dict, q: float) -> float | None:
    """Upper bound of the histogram bucket holding quantile q of what was observed in between."""
    diff = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    if not diff or diff[-1][1] <= 0:
        return None
    for le, n in diff:
        if n >= q * diff[-1][1]:
            return le
    return None


def rows(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT (SELECT count(*) FROM uav_telemetry) + (SELECT count(*) FROM sensor_readings)"
                            ).fetchone()[0]


def publish_backlog(settings: Settings, messages: list, label: str) -> None:
    pub = BlastPublisher(settings.service_url("simulator"), f"bench-pub-{uuid.uuid4().hex[:6]}")
    t0 = time.perf_counter()
    done = threading.Event()

    def progress():
        while not done.wait(2):
            say(f"  queueing {label}: {pub.acked}/{len(messages)} acknowledged by the broker")
    threading.Thread(target=progress, daemon=True).start()
    try:
        pub.publish_many(messages)
        if not pub.drain(120):
            raise RuntimeError("the broker did not acknowledge the backlog")
    finally:
        done.set()
        pub.close()
    say(f"  queued {len(messages)} {label} in {time.perf_counter() - t0:.1f} s "
        f"({len(messages) / (time.perf_counter() - t0):,.0f} msg/s into the broker)")


def timed_drain(settings: Settings, workers: Workers, expect_rows: int, label: str) -> tuple[float, dict]:
    """Start the stopped ingester on its queued session; seconds from its first received message to the
    last row committed (received_at is stamped by the ingester when a message arrives), and the CPU used
    by ingest, broker and database meanwhile."""
    base = rows(settings.database_url)
    t_start = time.time()
    cpu0 = cpu_seconds(settings, workers)
    workers.start()
    cpu0["ingest"] = cpu_seconds(settings, workers)["ingest"]  # start-up (imports, zones) is not ingest work
    last_say = time.monotonic()
    deadline = time.monotonic() + 600
    while True:
        n = rows(settings.database_url) - base
        if n >= expect_rows:
            t_done = time.time()
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label}: only {n} of {expect_rows} rows after 10 minutes")
        if time.monotonic() - last_say > 2:
            say(f"  draining {label}: {n}/{expect_rows} rows")
            last_say = time.monotonic()
        time.sleep(0.02)
    cpu1 = cpu_seconds(settings, workers)
    if n != expect_rows:
        raise RuntimeError(f"{label}: {n} rows stored, {expect_rows} expected (duplicates?)")
    with psycopg.connect(settings.database_url) as conn:
        first = conn.execute("SELECT least((SELECT min(received_at) FROM uav_telemetry WHERE received_at >= %(t)s),"
                             " (SELECT min(received_at) FROM sensor_readings WHERE received_at >= %(t)s))",
                             {"t": datetime.fromtimestamp(t_start, timezone.utc)}).fetchone()[0]
    return max(t_done - first.timestamp(), 1e-3), cpu_report(cpu0, cpu1, expect_rows)


def latency_phase(settings: Settings, rate: float, seconds: float, uavs: int, workers: int) -> dict:
    root, n = settings.mqtt_root, int(rate * seconds)
    tracks = Tracks(uavs, 3)
    run = uuid.uuid4().hex[:4]
    sent_at: dict[str, float] = {}
    seen: dict[str, float] = {}
    lock = threading.Lock()
    target = MqttTarget.parse(settings.service_url("api"))
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-events-{run}", protocol=mqtt.MQTTv5)
    target.configure(sub)
    ready = threading.Event()

    def on_message(c, u, msg):
        t = time.time()
        uav = msg.topic.rsplit("/", 1)[-1]
        if uav.startswith(f"X{run}") and uav not in seen:
            with lock:
                seen.setdefault(uav, t)
    sub.on_message = on_message
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{root}/events/#", qos=0)
    sub.on_subscribe = lambda *a: ready.set()
    sub.connect(target.host, target.port)
    sub.loop_start()
    if not ready.wait(15):
        raise RuntimeError("event subscriber did not connect")
    probe_of: dict[int, str] = {}
    spots = probe_spots()

    def messages():
        t_start = datetime.now(timezone.utc)
        for i in range(n):
            ts = t_start + timedelta(seconds=i / rate)
            if i % PROBE_EVERY == 0:
                uav = f"X{run}{i:07d}"
                probe_of[i] = uav
                lon, lat, alt = spots[(i // PROBE_EVERY) % len(spots)]
                fix = {"ts": rfc3339(ts), "seq": 0, "lon": lon, "lat": lat, "alt_m": alt}
                yield _topic(root, topics.telemetry(root, uav), workers), orjson.dumps(fix)
            else:
                u, k = i % uavs, i // uavs
                yield (_topic(root, topics.telemetry(root, f"L{run}{u:05d}"), workers),
                       orjson.dumps(tracks.fix(u, k, ts)))

    def on_sent(i, t):
        uav = probe_of.pop(i, None)
        if uav is not None:
            sent_at[uav] = t
    pub = BlastPublisher(settings.service_url("simulator"), f"bench-pace-{run}")
    say(f"  publishing {n} messages at {rate:,.0f}/s for {seconds:g} s; one in {PROBE_EVERY} enters a no-fly zone")
    t0 = time.perf_counter()
    pub.publish_paced(messages(), rate, on_sent)
    achieved = n / (time.perf_counter() - t0)
    pub.drain(60)
    pub.close()
    deadline = time.monotonic() + 30
    while len(seen) < len(sent_at) and time.monotonic() < deadline:
        time.sleep(0.1)
    sub.disconnect()
    sub.loop_stop()
    lat = np.array([(seen[u] - sent_at[u]) * 1000 for u in sent_at if u in seen])
    if not len(lat):
        raise RuntimeError("no airspace event came back")
    return {"rate_achieved": round(achieved), "probes": len(sent_at), "events_seen": len(lat),
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
            "max_ms": round(float(lat.max()), 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="skylane bench ingest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000, help="single-fix messages for msgs_per_s")
    ap.add_argument("--packs", type=int, default=8000, help="pack messages for records_per_s (half telemetry)")
    ap.add_argument("--pack-size", type=int, default=50, help="records per pack")
    ap.add_argument("--rate", type=float, default=5000, help="messages/s of the latency phase")
    ap.add_argument("--seconds", type=float, default=15, help="duration of the latency phase")
    ap.add_argument("--uavs", type=int, default=500)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=int(os.environ.get("SKYLANE_BATCH_SIZE", 5000)))
    ap.add_argument("--batch-ms", type=int, default=int(os.environ.get("SKYLANE_BATCH_MS", 20)))
    ap.add_argument("--skip-peer", action="store_true", help="leave out the bare consumer")
    ap.add_argument("--dialect", choices=("dji", "chirpstack", "tts", "mavlink"),
                    help="phase 1, then the same drain of --messages in this input dialect (bench/_ingest_dialects.py): "
                         "dialect_msgs_per_s, native_msgs_per_s, dialect_vs_native; no other phase")
    ap.add_argument("--state-dir", type=Path, help="where the private services keep their data (default: temporary)")
    args = ap.parse_args(argv)

    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="skylane-bench-ingest-"))
    result: dict = {"bench": "ingest", "workers": args.workers, "batch_size": args.batch_size,
                    "batch_ms": args.batch_ms, "cpus": os.cpu_count()}
    with bench_services(state_dir) as services:
        from skylane.wiring import prepare_database
        result["storage"] = prepare_database(services)
        workers = Workers(services, args.workers, state_dir / "ingest.log", args.batch_size, args.batch_ms)
        t_past = datetime.now(timezone.utc) - timedelta(hours=6)
        try:
            say("phase 1: single-fix telemetry, drained from a queued backlog")
            workers.start()  # creates the persistent sessions and their subscriptions
            workers.stop()
            publish_backlog(services, single_fixes(services.mqtt_root, args.messages, args.uavs, args.workers, "M",
                                                   t_past), "single-fix messages")
            secs, cpu = timed_drain(services, workers, args.messages, "single fixes")
            result["msgs_per_s"] = round(args.messages / secs)
            result["messages"] = args.messages
            result["single_fix_cpu"] = cpu
            say(f"  -> {result['msgs_per_s']:,} msg/s (all {args.messages} stored exactly once); CPU per message "
                f"{cpu['cpu_us_per_unit']} us: {cpu['capacity_2_idle_cores']:,} msg/s on two idle cores")

            if args.dialect:  # the dialect's drain beside phase 1's, and nothing else
                from ._ingest_dialects import dialect_phase
                say(f"dialect: the same drain of {args.messages} messages in the {args.dialect} dialect")
                workers.stop()
                result.update(dialect_phase(services, args, state_dir, t_past, result["msgs_per_s"],
                                            result["single_fix_cpu"], Workers, publish_backlog, timed_drain, say))
                print(json.dumps(result), flush=True)
                return 0

            if not args.skip_peer:
                say("peer: the bare consumer (paho-mqtt, orjson, binary COPY, ack after commit), same messages")
                workers.stop()
                result.update(bare_phase(services, state_dir, args, t_past, result["msgs_per_s"],
                                         result["single_fix_cpu"]))

            say(f"phase 2: packs of {args.pack_size} (telemetry arrays and SenML)")
            workers.stop()
            msgs, records = packs(services.mqtt_root, args.packs, args.pack_size, args.uavs, args.workers, t_past)
            publish_backlog(services, msgs, "packs")
            secs, cpu = timed_drain(services, workers, records, "pack records")
            result["records_per_s"] = round(records / secs)
            result["records"] = records
            result["pack_cpu"] = cpu
            say(f"  -> {result['records_per_s']:,} records/s (all {records} stored exactly once); CPU per record "
                f"{cpu['cpu_us_per_unit']} us: {cpu['capacity_2_idle_cores']:,} records/s on two idle cores")

            say(f"phase 3: publish -> airspace event latency at {args.rate:,.0f} msg/s")
            hist0 = delay_buckets(workers)
            lat = latency_phase(services, args.rate, args.seconds, args.uavs, args.workers)
            hist1 = delay_buckets(workers)
            lat["ingest_delay_p50_le_ms"], lat["ingest_delay_p99_le_ms"] = (
                None if (v := bucket_quantile(hist0, hist1, q)) is None or v == float("inf") else round(v * 1000)
                for q in (0.5, 0.99))  # None: unknown, or past the largest bucket
            result["event_latency_p99_ms"] = lat["p99_ms"]
            result["latency"] = lat
            say(f"  -> p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms over {lat['events_seen']} probes "
                f"(achieved {lat['rate_achieved']:,} msg/s); inside ingest (receive -> published, per batch): "
                f"p50 <= {lat['ingest_delay_p50_le_ms']} ms, p99 <= {lat['ingest_delay_p99_le_ms']} ms")
        finally:
            workers.stop()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
