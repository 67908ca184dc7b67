"""Live separation: the full pair check of 5,000 airborne tracks per 1 Hz tick, against a plain STRtree baseline.

Tracks fly seeded smooth walks over the Minhang box (bench.airspace_route's LON0..LAT1): drones at 8-20 m/s,
30-120 m AGL, climbing and descending a little; a share of them manned (helicopters and light aircraft,
40-70 m/s, 150-450 m AMSL). Each tick, same tracks, same minima (airspace.traffic_policy defaults), 30 s
look-ahead:

- ours: airspace.tactical.separation_check (swept boxes in a uniform grid, exact straight-line solution);
- baseline: shapely STRtree over the points, `query(points, predicate="dwithin", distance=minimum)` for the
  current losses (drones against drones, manned against drones), and the same extrapolation the obvious way:
  `query(..., distance=minimum + (own speed + fastest drone) * look-ahead)` for everything that could meet
  within the look-ahead, each candidate solved by the same exact test (airspace.tactical.encounters).

Both must find the same pairs (losses and predicted conflicts) every tick, or the run fails. Also timed, not
part of the ratio: the whole traffic engine (fusion of 5,000 telemetry rows into tracks, then the check, the
events and the states) per tick. Times are wall and CPU of this process (the fairer one on a shared machine).
On one core (pinned, as `skylane bench airspace` does).
Run: `skylane bench separation [--tracks 5000 --manned 50 --ticks 60 --seed 0 --cpu C]`; last line JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone

import numpy as np
import shapely

from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon, to_local
from airspace.tactical import Kinematics, encounters, pair_minima, separation_check
from airspace.traffic import TrafficEngine
from airspace.traffic_policy import TrafficPolicy
from airspace.zones import ZoneSet
from bench.airspace import pin_one_core
from bench.airspace_route import LAT0, LAT1, LON0, LON1, T0

GROUND_AMSL = 4.0


def flights(n: int, n_manned: int, ticks: int, seed: int) -> dict[str, np.ndarray]:
    """(ticks, n) columns: lon, lat, alt (m AMSL), speed, track (deg), vspeed; and `manned` (n,)."""
    rng = np.random.default_rng(seed)
    lat0 = (LAT0 + LAT1) / 2
    mlon = m_per_deg_lon(lat0)
    manned = np.zeros(n, bool)
    manned[rng.choice(n, n_manned, replace=False)] = True
    speed = np.where(manned, rng.uniform(40, 70, n), rng.uniform(8, 20, n))
    heading = rng.uniform(0, 2 * math.pi, n)
    base = np.where(manned, rng.uniform(150, 450, n), rng.uniform(30, 120, n) + GROUND_AMSL)
    cols = {k: np.empty((ticks, n)) for k in ("lon", "lat", "alt", "speed", "track", "vspeed")}
    lon, lat = rng.uniform(LON0, LON1, n), rng.uniform(LAT0, LAT1, n)
    phase = rng.uniform(0, 2 * math.pi, n)
    for k in range(ticks):
        alt = base + 8.0 * np.sin(k / 20.0 + phase)
        cols["lon"][k], cols["lat"][k], cols["alt"][k] = lon, lat, alt
        cols["speed"][k], cols["track"][k] = speed, np.degrees(heading) % 360.0
        cols["vspeed"][k] = 8.0 / 20.0 * np.cos(k / 20.0 + phase)
        heading = heading + rng.normal(0, 0.04, n)
        nlon = lon + speed * np.sin(heading) / mlon
        nlat = lat + speed * np.cos(heading) / M_PER_DEG_LAT
        out = (nlon < LON0) | (nlon > LON1) | (nlat < LAT0) | (nlat > LAT1)
        heading = np.where(out, heading + math.pi, heading)
        lon, lat = np.where(out, lon, nlon), np.where(out, lat, nlat)
    cols["manned"] = manned
    return cols


def kinematics(c: dict, k: int) -> Kinematics:
    lat0 = (LAT0 + LAT1) / 2
    x, y = to_local(c["lon"][k], c["lat"][k], (LON0 + LON1) / 2, lat0)
    h = np.radians(c["track"][k])
    return Kinematics(x, y, c["alt"][k], c["speed"][k] * np.sin(h), c["speed"][k] * np.cos(h), c["vspeed"][k],
                      c["manned"])


def strtree_check(k: Kinematics, look_ahead_s: float, policy: TrafficPolicy) -> tuple[set, set]:
    """The plain way: an STRtree of the points, dwithin queries for the current losses and, reaching as far as
    two aircraft can close in the look-ahead, for the predicted ones (each candidate solved exactly)."""
    dd, dm = policy.drone_drone, policy.drone_manned
    pts = shapely.points(k.x, k.y)
    tree = shapely.STRtree(pts)
    drone, manned = np.flatnonzero(~k.manned), np.flatnonzero(k.manned)
    speed = np.hypot(k.vx, k.vy)
    fastest = float(speed[drone].max()) if drone.size else 0.0

    def pairs(queries: np.ndarray, distance) -> tuple[np.ndarray, np.ndarray]:
        q, other = tree.query(pts[queries], predicate="dwithin", distance=distance)
        a, b = queries[q], other
        keep = ~k.manned[b] & (k.manned[a] | (a < b))
        a, b = a[keep], b[keep]
        return np.minimum(a, b), np.maximum(a, b)

    def solve(i, j):
        H, V = pair_minima(k.manned[i], k.manned[j], dd, dm)
        return encounters(k, i, j, H, V, look_ahead_s)

    now = [pairs(drone, dd.horizontal_m), pairs(manned, dm.horizontal_m)]
    i, j = np.concatenate([p[0] for p in now]), np.concatenate([p[1] for p in now])
    cur = solve(i, j)
    losses = set(zip(i[cur.inside].tolist(), j[cur.inside].tolist()))
    ahead = [pairs(drone, dd.horizontal_m + (speed[drone] + fastest) * look_ahead_s),
             pairs(manned, dm.horizontal_m + (speed[manned] + fastest) * look_ahead_s)]
    i, j = np.concatenate([p[0] for p in ahead]), np.concatenate([p[1] for p in ahead])
    enc = solve(i, j)
    return losses, set(zip(i[enc.predicted].tolist(), j[enc.predicted].tolist()))


class _Row:
    """A telemetry row as the engine reads it (ingest.telemetry.TelemetryRow's field names)."""
    __slots__ = ("uav_id", "ts", "received_at", "lon", "lat", "alt_m", "alt_ref", "speed_mps", "track_deg",
                 "vspeed_mps", "status")

    def __init__(self, *values) -> None:
        for name, v in zip(_Row.__slots__, values):
            setattr(self, name, v)


class _Obs(_Row):
    """An observation as the engine reads it (ingest.rows.ObservationRow's field names)."""
    __slots__ = ("source", "track_id", "identity")


def engine_rows(c: dict, k: int, ids: list[str]) -> tuple[list[_Row], list[_Obs]]:
    """Tick k as telemetry rows (drones) and ADS-B-like observations (manned), all at the same second."""
    ts = datetime.fromtimestamp(T0 + k, timezone.utc)
    drones, manned = [], []
    cols = [c[f][k].tolist() for f in ("lon", "lat", "alt", "speed", "track", "vspeed")]
    for d, (lon, lat, alt, sp, tr, vs) in enumerate(zip(*cols)):
        if c["manned"][d]:
            obs = _Obs(None, ts, ts, lon, lat, alt, "AMSL", sp, tr, vs, None)
            obs.source, obs.track_id, obs.identity = "adsb", ids[d], {"category": "rotorcraft"}
            manned.append(obs)
        else:
            drones.append(_Row(ids[d], ts, ts, lon, lat, alt, "AMSL", sp, tr, vs, "Airborne"))
    return drones, manned


def p99(values: list[float]) -> float:
    return round(float(np.percentile(values, 99)) * 1000, 2)


def median(values: list[float]) -> float:
    return round(float(np.median(values)) * 1000, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=5000)
    ap.add_argument("--manned", type=int, default=50)
    ap.add_argument("--ticks", type=int, default=60)
    ap.add_argument("--cpu", type=int, default=None, help="the core to run on (default: the last allowed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-engine", action="store_true", help="skip timing the whole traffic engine")
    args = ap.parse_args(argv)
    core = pin_one_core(args.cpu)
    policy = TrafficPolicy()
    la = policy.look_ahead_s
    c = flights(args.tracks, args.manned, args.ticks, args.seed)
    ours_w, ours_c, base_w, base_c = [], [], [], []
    losses = conflicts = 0
    for k in range(args.ticks):
        kin = kinematics(c, k)
        t0, c0 = time.perf_counter(), time.process_time()
        enc = separation_check(kin, la, policy.drone_drone, policy.drone_manned)
        ours_w.append(time.perf_counter() - t0)
        ours_c.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        b_loss, b_pred = strtree_check(kin, la, policy)
        base_w.append(time.perf_counter() - t0)
        base_c.append(time.process_time() - c0)
        o_loss = set(zip(enc.i[enc.inside].tolist(), enc.j[enc.inside].tolist()))
        o_pred = set(zip(enc.i[enc.predicted].tolist(), enc.j[enc.predicted].tolist()))
        if o_loss != b_loss or o_pred != b_pred:
            print(f"tick {k}: the checks disagree: losses {len(o_loss ^ b_loss)}, conflicts {len(o_pred ^ b_pred)}"
                  " pairs differ", file=sys.stderr)
            return 1
        losses += len(o_loss)
        conflicts += len(o_pred)
        print(f"  tick {k + 1}/{args.ticks}: {len(o_loss)} losses, {len(o_pred)} conflicts, ours "
              f"{ours_w[-1] * 1000:.1f} ms, STRtree {base_w[-1] * 1000:.1f} ms", file=sys.stderr)
    result = {"tick_p99_ms": p99(ours_w), "strtree_tick_p99_ms": p99(base_w),
              "separation_vs_strtree": round(p99(base_w) / p99(ours_w), 2),
              "tick_cpu_p99_ms": p99(ours_c), "strtree_tick_cpu_p99_ms": p99(base_c),
              "separation_vs_strtree_cpu": round(p99(base_c) / p99(ours_c), 2),
              "tick_median_ms": median(ours_w), "strtree_tick_median_ms": median(base_w),
              "same_pairs": True, "core": core, "tracks": args.tracks, "manned": args.manned, "ticks": args.ticks,
              "look_ahead_s": la, "losses": losses, "conflicts": conflicts}
    if not args.no_engine:
        result.update(engine_figures(c, args.ticks, policy))
    print(json.dumps(result))
    return 0


def engine_figures(c: dict, ticks: int, policy: TrafficPolicy) -> dict:
    """The whole engine per 1 Hz tick: fusion of the tick's rows, the instant's check, events and states."""
    zones = ZoneSet([])
    engine = TrafficEngine(zones, policy)
    ids = [f"{k:06x}" if c["manned"][k] else f"B{k:05d}" for k in range(c["manned"].size)]
    wall, cpu, events = [], [], 0
    for k in range(ticks):
        drones, manned = engine_rows(c, k, ids)
        t0, c0 = time.perf_counter(), time.process_time()
        res = engine.step(drones, manned)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        events += len(res.events)
    return {"engine_tick_p99_ms": p99(wall[2:] or wall), "engine_tick_cpu_p99_ms": p99(cpu[2:] or cpu),
            "engine_events": events, "engine_tracks": engine.tracks()}


if __name__ == "__main__":
    raise SystemExit(main())
