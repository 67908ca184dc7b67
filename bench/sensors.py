"""Sensor watch throughput: readings/s through SensorWatch.step (rules, silence, on event time).

A district of N simulated sensors (the demo fleet's kinds and signals, gust and smog episodes included)
reports every interval; readings are parsed from real SenML packs once, outside the timing, then fed in
batches the way the ingest pipeline would. Some sensors fall silent half-way and come back, so the
silence path runs too. Run: `skylane bench sensors [--sensors 10000 --batch 10000 --seconds 600]`;
the last line is one JSON object (readings_per_s, events, by kind).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import datetime, timezone

from devices import payloads
from devices.fleet import make_fleet
from devices.registry import fleet_records
from devices.sensors import read_sensor
from ingest.sensor_watch import SensorWatch, load_rules, sensor_infos
from ingest.sensors import parse_reading
from skylane.settings import DEFAULT_ZONE_FILE

START = datetime(2026, 5, 1, 6, 0, tzinfo=timezone.utc).timestamp()


def readings(sensors, seconds: float) -> list:
    """Every sensor's readings over `seconds`, in event-time order; every 7th sensor is silent in the middle."""
    out = []
    for n, spec in enumerate(sensors):
        k = 0
        while k * spec.interval_s < seconds:
            t = k * spec.interval_s
            k += 1
            if n % 7 == 3 and seconds * 0.4 < t < seconds * 0.6:
                continue
            pack = payloads.encode(payloads.senml_pack(spec.sensor_id, START + t, read_sensor(spec, t, START + t)))
            at = datetime.fromtimestamp(START + t + 0.3, tz=timezone.utc)
            out.extend(parse_reading(spec.sensor_id, pack, at, 1 << 20))
    out.sort(key=lambda r: r.ts)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="skylane bench sensors", description=__doc__.splitlines()[0])
    p.add_argument("--sensors", type=int, default=10000)
    p.add_argument("--batch", type=int, default=10000)
    p.add_argument("--seconds", type=float, default=600.0, help="simulated time")
    p.add_argument("--rate-scale", type=float, default=10.0, help="divide the reporting intervals by this")
    args = p.parse_args(argv)
    zones = json.loads(DEFAULT_ZONE_FILE.read_text())
    _, sensors = make_fleet(zones, 0, args.sensors, seed=1, rate_scale=args.rate_scale)
    print(f"generating {args.seconds:g} s of readings from {len(sensors)} sensors ...", file=sys.stderr)
    rows = readings(sensors, args.seconds)
    watch = SensorWatch(sensor_infos(fleet_records([], sensors)), load_rules())
    kinds: Counter[str] = Counter()
    t0 = time.perf_counter()
    for i in range(0, len(rows), args.batch):
        for e in watch.step(rows[i:i + args.batch]):
            kinds[e.kind] += 1
        if (i // args.batch) % 20 == 0:
            print(f"  {i + args.batch:,} of {len(rows):,} readings", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"readings": len(rows), "sensors": len(sensors), "batch": args.batch,
                      "readings_per_s": round(len(rows) / elapsed), "events": sum(kinds.values()),
                      "by_kind": dict(sorted(kinds.items()))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
