"""Route clearance benchmark: a 200-waypoint 4D route against 500 zones and 1,000 approved clearances.

`route_clearance_p99_ms(zones)` is what `bench/airspace.py` reports as route_clearance_p99_ms.
The approved clearances are seeded random flights spread over one day across the Pujiang-Wujing
area (20-60 waypoints, 30-110 m AGL, 8-20 m/s); each timed route is a fresh seeded 200-waypoint
walk departing within the same day. The check is the exact one (all reasons, no sampling);
suggestions are left out of the timing (they re-run the check on candidate altitudes/departures).
Run alone: `python -m bench.airspace_route [--runs N]`, last line one JSON object (wall-clock and,
for a shared machine, CPU-time percentiles).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from airspace.clearance import Waypoint, check_route
from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon, to_local
from airspace.separation import ApprovedClearance, ApprovedIndex
from airspace.zones import ZoneSet

LON0, LON1, LAT0, LAT1 = 121.436, 121.548, 31.012, 31.100
T0 = 1_795_737_600.0  # 2026-11-27T00:00:00+08:00
DAY_S = 86_400.0


def _walk(rng: np.random.Generator, n: int, step_m: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random walk of n points inside the area, steps of about step_m metres."""
    lat0 = (LAT0 + LAT1) / 2
    mlon = m_per_deg_lon(lat0)
    x, y = rng.uniform(LON0, LON1), rng.uniform(LAT0, LAT1)
    heading = rng.uniform(0, 2 * math.pi)
    lon, lat = [x], [y]
    for _ in range(n - 1):
        heading += rng.normal(0, 0.25)
        nx = lon[-1] + step_m * math.cos(heading) / mlon
        ny = lat[-1] + step_m * math.sin(heading) / M_PER_DEG_LAT
        if not (LON0 < nx < LON1 and LAT0 < ny < LAT1):
            heading += math.pi
            nx = lon[-1] + step_m * math.cos(heading) / mlon
            ny = lat[-1] + step_m * math.sin(heading) / M_PER_DEG_LAT
        lon.append(nx)
        lat.append(ny)
    return np.array(lon), np.array(lat)


def _times(lon, lat, alt, t0: float, speed: float) -> np.ndarray:
    x, y = to_local(lon, lat, lon[0], lat[0])
    d = np.sqrt(np.diff(x) ** 2 + np.diff(y) ** 2 + np.diff(alt) ** 2)
    return t0 + np.concatenate([[0.0], np.cumsum(np.maximum(d, 0.01) / speed)])


def make_clearances(zones: ZoneSet, n: int = 1000, seed: int = 0) -> list[ApprovedClearance]:
    """n approved flights over one day (the deconfliction load of a busy day)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        m = int(rng.integers(20, 61))
        lon, lat = _walk(rng, m, float(rng.uniform(60, 250)))
        alt = np.full(m, float(zones.vertical.to_amsl(float(rng.uniform(30, 110)), "AGL")))
        t = _times(lon, lat, alt, T0 + rng.uniform(0, DAY_S), float(rng.uniform(8, 20)))
        out.append(ApprovedClearance(f"BC{k:04d}", f"BU{k:04d}", tuple(lon), tuple(lat), tuple(alt), tuple(t)))
    return out


def make_route(rng: np.random.Generator, n: int = 200) -> list[Waypoint]:
    lon, lat = _walk(rng, n, float(rng.uniform(30, 60)))
    alt = np.clip(60 + np.cumsum(rng.normal(0, 2, n)), 20, 115)
    t = _times(lon, lat, alt + 4.0, T0 + rng.uniform(0, DAY_S), float(rng.uniform(10, 20)))
    return [Waypoint(float(a), float(b), float(c), float(d)) for a, b, c, d in zip(lon, lat, alt, t)]


def route_clearance_times_ms(zones: ZoneSet, n_runs: int = 200, seed: int = 0, n_clearances: int = 1000,
                             clock=time.perf_counter, suggest: bool = False) -> tuple[list[float], int]:
    """Times (ms; wall clock unless told) of n_runs checks and how many were approved."""
    index = ApprovedIndex(make_clearances(zones, n_clearances, seed))
    rng = np.random.default_rng(seed + 1)
    routes = [make_route(rng) for _ in range(n_runs)]
    check_route(zones, routes[0], approved=index, suggest=suggest)  # warm the per-zone-set index
    times, approved = [], 0
    for k, route in enumerate(routes):
        t0 = clock()
        res = check_route(zones, route, approved=index, suggest=suggest)
        times.append((clock() - t0) * 1e3)
        approved += res.approved
        if k and k % 50 == 0:
            print(f"  route checks: {k}/{n_runs}", file=sys.stderr)
    return times, approved


def route_clearance_p99_ms(zones: ZoneSet, n_runs: int = 200, seed: int = 0) -> float:
    times, _ = route_clearance_times_ms(zones, n_runs, seed)
    return float(np.percentile(times, 99))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--suggest", action="store_true", help="also search a suggestion for every denial")
    args = ap.parse_args(argv)
    from bench.airspace_zones import make_zones
    zones = make_zones(500, args.seed)
    times, approved = route_clearance_times_ms(zones, args.runs, args.seed, suggest=args.suggest)
    cpu, _ = route_clearance_times_ms(zones, args.runs, args.seed, clock=time.process_time, suggest=args.suggest)
    print(json.dumps({"route_clearance_p99_ms": round(float(np.percentile(times, 99)), 3),
                      "route_clearance_p50_ms": round(float(np.percentile(times, 50)), 3),
                      "route_clearance_p99_cpu_ms": round(float(np.percentile(cpu, 99)), 3),
                      "route_clearance_p50_cpu_ms": round(float(np.percentile(cpu, 50)), 3),
                      "runs": args.runs, "approved": approved, "waypoints": 200, "zones": len(zones),
                      "clearances": 1000, "suggest": args.suggest}))


if __name__ == "__main__":
    main()
