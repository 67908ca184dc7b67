"""`skylane bench ingest --dialect NAME`: the same drain as the contract's msgs_per_s (phase 1 of bench/ingest.py),
in the same run, of the same number of messages in a vendor's dialect, so the two figures sit side by side:
`dialect_msgs_per_s`, `native_msgs_per_s` and `dialect_vs_native` (target >= 0.7).

- dji: DJI's documented aircraft OSD (tests/data/dji_cloud/aircraft_osd_m30_via_dock.json, ~1.9 KB compact) with the
  position and time of the same synthetic tracks, on thing/product/{sn}/osd, one fix each, from registered aircraft;
- chirpstack / tts: the network servers' documented uplinks (tests/data/lorawan, 0.8 and 1.5 KB) with a decoded field
  and rising frame counters, from registered sensors (metric_map renames it; no link-quality rows): one reading each;
- mavlink: not an MQTT dialect: the bridge publishes the contract's own messages, so end to end it runs at the native
  rate unless the bridge is slower; measured here is the bridge's cost per MAVLink frame in process (pymavlink's
  parser and the translation to a native fix, one core): bridge_frames_per_s, and dialect_vs_native =
  min(bridge, native) / native.
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import psycopg

from protocol.times import rfc3339
from skylane.settings import REPO_ROOT, Settings

DATA = REPO_ROOT / "tests" / "data"
ROWS_PER_MESSAGE = {"dji": 1, "chirpstack": 1, "tts": 1}


def _template(path: str) -> dict:
    return json.loads((DATA / path).read_bytes())


def dialect_messages(name: str, n: int, devices: int, t0: datetime) -> tuple[list[dict], list[tuple[bytes, bytes]]]:
    """(registry rows, n messages as (topic, payload)) of `devices` registered devices speaking `name`."""
    from bench.ingest import Tracks
    run = uuid.uuid4().hex[:6].upper()
    out: list[tuple[bytes, bytes]] = []
    if name == "dji":
        sns = [f"BENCH{run}{u:05d}" for u in range(devices)]
        rows = [{"device_id": f"DJI{u:05d}", "kind": "uav", "properties": {"dji_sn": sn}} for u, sn in enumerate(sns)]
        tracks, osd = Tracks(devices, 4), _template("dji_cloud/aircraft_osd_m30_via_dock.json")
        for i in range(n):
            u, k = i % devices, i // devices
            fix = tracks.fix(u, k, t0 + timedelta(milliseconds=100 * k))
            osd["data"].update(latitude=fix["lat"], longitude=fix["lon"], height=fix["alt_m"] + 14.0, mode_code=5)
            osd["timestamp"] = int((t0 + timedelta(milliseconds=100 * k)).timestamp() * 1000)
            out.append((f"thing/product/{sns[u]}/osd".encode(), orjson.dumps(osd)))
        return rows, out
    euis = [f"{run.lower()}{u:010x}" for u in range(devices)]
    rows = [{"device_id": f"LW{u:05d}", "kind": "sensor", "properties": {
        "dev_eui": eui, "tts_device_id": f"bench/lw{u:05d}", "metric_map": {"pm25": ["pm2_5", "ug/m3"]}}}
        for u, eui in enumerate(euis)]
    if name == "chirpstack":
        up = _template("lorawan/chirpstack_v4_docs_event_up.json")
        for i in range(n):
            u, k = i % devices, i // devices
            up["deviceInfo"]["devEui"] = euis[u]
            up.update(fCnt=k + 1, time=rfc3339(t0 + timedelta(milliseconds=100 * k), 6), object={"pm25": 10.0 + k % 7})
            out.append((f"application/bench/device/{euis[u]}/event/up".encode(), orjson.dumps(up)))
        return rows, out
    up = _template("lorawan/tts_v3_docs_uplink.json")
    for i in range(n):
        u, k = i % devices, i // devices
        up["end_device_ids"].update(device_id=f"lw{u:05d}", dev_eui=euis[u].upper())
        up["received_at"] = rfc3339(t0 + timedelta(milliseconds=100 * k), 6)
        up["uplink_message"].update(f_cnt=k + 1, decoded_payload={"pm25": 10.0 + k % 7})
        out.append((f"v3/bench@tenant/devices/lw{u:05d}/up".encode(), orjson.dumps(up)))
    return rows, out


def mavlink_frames_per_s(n: int, vehicles: int) -> float:
    """pymavlink parsing and the bridge's translation of n GLOBAL_POSITION_INT frames, per second (one core)."""
    from pymavlink.dialects.v20 import common

    from devices.flight import Fix
    from devices.vendor_payloads import MavlinkVehicle
    from ingest.bridges.mavlink import MavlinkTranslator
    now = time.time()
    fleet = [MavlinkVehicle(s + 1, now - 60) for s in range(min(vehicles, 255))]
    frames = [fleet[i % len(fleet)].position(Fix(121.5 + i * 1e-7, 31.05, 60.0, 8.0, 90.0, 0.0, "Airborne", 80.0),
                                             now) for i in range(n)]
    names = {f"udp:1/{s + 1}": f"MAV{s + 1}" for s in range(len(fleet))}
    translator = MavlinkTranslator("bench/v1", "udp:1", names.get, max_hz=0)
    parser = common.MAVLink(None)
    parser.robust_parsing = True
    t0 = time.perf_counter()
    published = 0
    for frame in frames:
        for msg in parser.parse_buffer(frame) or ():
            published += len(translator.handle(msg, now))
    secs = time.perf_counter() - t0
    if published != n:
        raise RuntimeError(f"the bridge translated {published} of {n} frames")
    return n / secs


def dialect_phase(services: Settings, args, state_dir: Path, t_past: datetime, native: float, native_cpu: dict,
                  workers_cls, publish_backlog, timed_drain, say) -> dict:
    """The dialect's drain beside the native figure (same broker, database, batch settings and worker count)."""
    name = args.dialect
    if name == "mavlink":
        rate = mavlink_frames_per_s(args.messages, args.uavs)
        say(f"  -> the MAVLink bridge translates {rate:,.0f} frames/s in process; end to end it publishes the "
            f"contract's messages, drained at the native {native:,} msg/s")
        return {"dialect": name, "bridge_frames_per_s": round(rate), "native_msgs_per_s": native,
                "dialect_msgs_per_s": round(min(rate, native)), "dialect_vs_native": round(min(rate, native) / native, 2)}
    from storage import catalog
    rows, messages = dialect_messages(name, args.messages, args.uavs, t_past)
    with psycopg.connect(services.database_url) as conn:
        catalog.register_devices(conn, rows)
    workers = workers_cls(services, args.workers, state_dir / f"ingest-{name}.log", args.batch_size, args.batch_ms)
    workers.env["SKYLANE_DIALECTS"] = name
    try:
        workers.start()  # the persistent session now also holds the dialect's subscriptions
        workers.stop()
        publish_backlog(services, messages, f"{name} messages")
        secs, cpu = timed_drain(services, workers, args.messages * ROWS_PER_MESSAGE[name], f"{name} messages")
    finally:
        workers.stop()
    rate = round(args.messages / secs)
    per_msg = {k: round(v * ROWS_PER_MESSAGE[name], 1) for k, v in cpu["cpu_us_per_unit"].items()}
    say(f"  -> {name}: {rate:,} msg/s (all {args.messages} stored exactly once, {ROWS_PER_MESSAGE[name]} rows each); "
        f"native {native:,} msg/s: {name} / native {rate / native:.2f}")
    return {"dialect": name, "dialect_msgs_per_s": rate, "native_msgs_per_s": native,
            "dialect_vs_native": round(rate / native, 2), "dialect_rows_per_message": ROWS_PER_MESSAGE[name],
            "dialect_cpu_us_per_message": per_msg,
            "dialect_vs_native_cpu": round(native_cpu["cpu_us_total"] / sum(per_msg.values()), 2)}
