"""Monitor throughput: fixes/s through AirspaceMonitor in batches, 500 drones, 500 zones.

Each drone flies a seeded smooth walk over the Pujiang-Wujing area at 1 Hz (10-20 m/s, 30-130 m
AGL, so some cross ceilings and restricted zones); half of them fly under an approved clearance of
their own track (so conformance, corridor and clearance checks run too), with a few deviating.
Timing covers process_columns on ready columns (what the ingest pipeline calls) plus tick(),
as wall time and as CPU time of this process (the fairer figure on a shared machine).
Run: `python -m bench.airspace_monitor [--drones 500 --batch 10000 --batches 20]`; last line JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone

import numpy as np

from airspace.monitor import AirspaceMonitor
from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon
from airspace.separation import ApprovedClearance
from bench.airspace_route import LAT0, LAT1, LON0, LON1, T0


def tracks(n_drones: int, n_steps: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lon, lat, alt_agl) arrays of shape (n_steps, n_drones): 1 Hz smooth walks inside the area."""
    rng = np.random.default_rng(seed)
    mlon = m_per_deg_lon((LAT0 + LAT1) / 2)
    lon = np.empty((n_steps, n_drones))
    lat = np.empty((n_steps, n_drones))
    lon[0] = rng.uniform(LON0, LON1, n_drones)
    lat[0] = rng.uniform(LAT0, LAT1, n_drones)
    heading = rng.uniform(0, 2 * math.pi, n_drones)
    speed = rng.uniform(10, 20, n_drones)
    for k in range(1, n_steps):
        heading += rng.normal(0, 0.05, n_drones)
        nx = lon[k - 1] + speed * np.cos(heading) / mlon
        ny = lat[k - 1] + speed * np.sin(heading) / M_PER_DEG_LAT
        out = (nx < LON0) | (nx > LON1) | (ny < LAT0) | (ny > LAT1)
        heading[out] += math.pi
        lon[k] = np.where(out, lon[k - 1], nx)
        lat[k] = np.where(out, lat[k - 1], ny)
    base = rng.uniform(30, 130, n_drones)
    alt = base + 10 * np.sin(np.arange(n_steps)[:, None] / 60.0 + rng.uniform(0, 6, n_drones))
    return lon, lat, alt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drones", type=int, default=500)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--zones", choices=("synthetic", "demo"), default="synthetic")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.zones == "synthetic":
        from bench.airspace_zones import make_zones
        zones = make_zones(500, args.seed)
    else:
        from airspace.zones import ZoneSet
        from skylane.settings import DEFAULT_ZONE_FILE
        zones = ZoneSet.from_geojson(json.loads(DEFAULT_ZONE_FILE.read_text()))
    steps = args.batch * args.batches // args.drones + 1
    lon, lat, alt = tracks(args.drones, steps, args.seed)
    ids = [f"B{k:04d}" for k in range(args.drones)]
    mon = AirspaceMonitor(zones)
    mon.prepare()  # build the zone indexes before timing
    ground = float(zones.vertical.to_amsl(0.0, "AGL"))
    for d in range(0, args.drones, 2):  # every other drone under a clearance of its own track (20 s waypoints)
        k = np.arange(0, steps, 20)
        wp_alt = alt[k, d] + ground + (40.0 if d % 20 == 0 else 0.0)  # 1 in 10 of them deviates vertically
        mon.set_clearance(ApprovedClearance(f"C{d}", ids[d], tuple(lon[k, d]), tuple(lat[k, d]), tuple(wp_alt),
                                            tuple(T0 + k.astype(float))))
    flat_uav = [ids[d] for _ in range(steps) for d in range(args.drones)]
    flat_t = [datetime.fromtimestamp(T0 + s, timezone.utc) for s in range(steps) for _ in range(args.drones)]
    flon, flat_, falt = lon.reshape(-1), lat.reshape(-1), alt.reshape(-1)
    refs, status = ["AGL"] * flon.size, [None] * flon.size
    total, events, elapsed, cpu = 0, 0, 0.0, 0.0
    for b in range(args.batches):
        sl = slice(b * args.batch, (b + 1) * args.batch)
        t0, c0 = time.perf_counter(), time.process_time()
        ev = mon.process_columns(flat_uav[sl], flat_t[sl], flon[sl], flat_[sl], falt[sl], refs[sl], status[sl])
        ev += mon.tick(flat_t[sl][-1])
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        total += len(flat_uav[sl])
        events += len(ev)
        print(f"  batch {b + 1}/{args.batches}: {len(ev)} events", file=sys.stderr)
    print(json.dumps({"monitor_fixes_per_s": round(total / elapsed), "monitor_fixes_per_cpu_s": round(total / cpu),
                      "fixes": total, "batch": args.batch, "drones": args.drones, "zones": len(zones),
                      "events": events}))


if __name__ == "__main__":
    main()
