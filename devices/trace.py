"""Synthetic recordings from the simulator's own fleet and flight plans (benchmarks, tests).

The messages are byte-for-byte what `skylane simulate` publishes (devices.payloads), at
simulated times instead of wall-clock ones, written straight to a record file: an hour of 500
drones takes a minute to make instead of an hour to record.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from devices import payloads
from devices.fleet import make_fleet
from devices.flight import plan_for
from devices.sensors import read_sensor
from protocol import topics
from protocol.times import rfc3339

from replay.recordfile import RecordWriter, encode_record

log = logging.getLogger(__name__)

DEFAULT_START = 1_767_254_400.0  # 2026-01-01T08:00:00Z: fixed (reproducible) and in the past (ingest refuses the future)
RECEIVE_DELAY_S = 0.02  # recorded receive time = event time + this (a plausible network hop)


def make_trace(path: str | Path, zones_geojson: dict, *, drones: int = 500, sensors: int = 0, seconds: float = 3600,
               hz: float = 1.0, seed: int = 1, root: str = topics.DEFAULT_ROOT, start: float = DEFAULT_START,
               progress: Callable[[int, int], None] | None = None) -> int:
    """Write a recording of `drones` simulated drones (and sensors) for `seconds`; returns its message count.

    Deterministic for equal arguments (the fleet comes from the seed, times from `start`).
    """
    fleet, sensor_specs = make_fleet(zones_geojson, drones, sensors, seed=seed)
    plans = [plan_for(d) for d in fleet]
    tel_topics = [topics.telemetry(root, d.uav_id) for d in fleet]
    ticks = int(round(seconds * hz))
    next_reading = [start + (i * 0.6180339887498949 % 1.0) * s.interval_s for i, s in enumerate(sensor_specs)]
    reading_topics = [topics.reading(root, s.sensor_id) for s in sensor_specs]
    n = 0
    with RecordWriter(path, root, [f"{root}/#"], compresslevel=1, created=rfc3339(start),
                      extra={"source": "devices.trace", "drones": drones, "sensors": sensors, "seed": seed}) as w:
        for k in range(ticks):
            t_ev = start + k / hz
            chunk: list[bytes] = []
            for plan, topic in zip(plans, tel_topics):
                body = payloads.encode(payloads.telemetry(plan.fix(k / hz), k, t_ev))
                chunk.append(encode_record(round(t_ev + RECEIVE_DELAY_S, 6), topic, 1, False, body))
            for i, spec in enumerate(sensor_specs):
                while next_reading[i] < t_ev + 1 / hz:
                    due = next_reading[i]
                    pack = payloads.senml_pack(spec.sensor_id, due, read_sensor(spec, due - start))
                    chunk.append(encode_record(round(due + RECEIVE_DELAY_S, 6), reading_topics[i], 1, False,
                                               payloads.encode(pack)))
                    next_reading[i] += spec.interval_s
            w.write_lines(b"".join(chunk), len(chunk))
            n += len(chunk)
            if progress is not None and not k % 60:
                progress(k, ticks)
    return n


def cached_trace(cache_dir: str | Path, zones_file: str | Path, **kw) -> Path:
    """make_trace into `cache_dir`, once per distinct set of arguments and zone file content
    (older traces of the same arguments, made from another zone file, are removed)."""
    zones_file = Path(zones_file)
    key = "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in sorted(kw.items())
                   if k != "progress")
    digest = hashlib.sha1(zones_file.read_bytes()).hexdigest()[:10]
    folder = Path(cache_dir)
    path = folder / f"trace-{key}-{digest}.slrec.gz"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f"trace-{key}-*.slrec.gz"):
            stale.unlink()
        tmp = path.with_name(path.name + ".tmp.slrec.gz")
        t0 = time.perf_counter()
        n = make_trace(tmp, json.loads(zones_file.read_text()), **kw)
        tmp.rename(path)
        log.info("generated %s: %d messages in %.1f s", path, n, time.perf_counter() - t0)
    return path
