"""Ingest pipeline throughput without network or database: parse, validate, classify, decide.

Usage: skylane bench pipeline [--messages N] [--uavs U] [--batch B]
Prints progress and, last, one JSON line with the figures.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson

from airspace.zones import ZoneSet
from ingest.pipeline import Pipeline, RawMessage
from protocol import topics
from skylane.settings import DEFAULT_ZONE_FILE


def make_messages(n: int, uavs: int, seed: int = 1) -> list[RawMessage]:
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
    lon = rng.uniform(121.44, 121.55, n)
    lat = rng.uniform(31.01, 31.10, n)
    alt = rng.uniform(0, 200, n)
    out = []
    for i in range(n):
        uav = f"D{i % uavs:04d}"
        ts = t0 + timedelta(milliseconds=10 * i)
        payload = orjson.dumps({"ts": ts.isoformat().replace("+00:00", "Z"), "lat": float(lat[i]),
                                "lon": float(lon[i]), "alt_m": float(alt[i]), "seq": i // uavs})
        out.append(RawMessage(topics.telemetry(topics.DEFAULT_ROOT, uav), payload, ts + timedelta(seconds=1)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="skylane bench pipeline", description=__doc__)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--uavs", type=int, default=200)
    ap.add_argument("--batch", type=int, default=2000)
    args = ap.parse_args(argv)
    zones = ZoneSet.from_geojson(json.loads(DEFAULT_ZONE_FILE.read_text()))
    msgs = make_messages(args.messages, args.uavs)
    pipe = Pipeline(zones)
    events = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, len(msgs), args.batch):
        events += len(pipe.process(msgs[i:i + args.batch]).events)
        if (i // args.batch) % 20 == 0:
            print(f"\r{i + args.batch}/{len(msgs)} messages", end="", file=sys.stderr, flush=True)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    print(file=sys.stderr)
    print(json.dumps({"bench": "pipeline", "messages": len(msgs), "zones": len(zones), "batch": args.batch,
                      "events": events, "seconds": round(elapsed, 3), "cpu_seconds": round(cpu, 3),
                      "msgs_per_s": round(len(msgs) / elapsed)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
