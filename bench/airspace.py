"""Airspace speed on one core against 500 synthetic zones (bench/airspace_zones.py).

Usage: skylane bench airspace [--positions N] [--repeat R] [--singles M] [--cpu C] [--quick]

Measures (issue 3, item 6):
  classify_positions_per_s  batch classification, ZoneSet.contains_pairs(lon, lat, alt, t): which
                            zones contain each position in 3D at its time (sparse pairs), median of R
  single_check_p99_us       one position against all zones, ZoneSet.zones_at(...), p99 over M calls
  route_clearance_p99_ms    a 200-waypoint route against 500 zones and 1,000 approved clearances,
                            bench/airspace_route.py's route_clearance_times_ms, p99 over 200 routes
Every figure is checked for exactness on a sample against a naive shapely reference first.

Peers (issue 16), on the first positions of the same batch, each checked exact against the same reference
(--peers; bench/peers/): `postgis`, the zones in a PostGIS table with a GiST index on the project-local
PostgreSQL (PostGIS installed and the server started when missing), one query per 10,000 points via unnest
with the band and schedule in SQL, its backend pinned to our core; `strtree`, shapely's
STRtree.query(points, predicate="intersects") with numpy band masks, in this process. classify_vs_postgis and
classify_vs_strtree are ours / theirs by wall time; the _cpu ratios by CPU time (for PostGIS its backend's
too), which other work on a shared machine disturbs less.
Prints progress on stderr, the targets with pass/fail, and last one JSON line with the figures.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import sys
import time

import numpy as np
import shapely

from bench.airspace_zones import make_positions, make_zones

TARGETS = {"classify_positions_per_s": (2_000_000, ">="), "single_check_p99_us": (20.0, "<="),
           "route_clearance_p99_ms": (5.0, "<="), "classify_vs_postgis": (100, ">="),
           "classify_vs_strtree": (50, ">=")}
PEERS = ("postgis", "strtree")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pin_one_core(cpu: int | None) -> int | None:
    """Run on one core (the issue's condition); the core used, or None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    core = cpu if cpu is not None and cpu in allowed else allowed[-1]
    os.sched_setaffinity(0, {core})
    return core


def naive_pairs(zs, lon, lat, alt, t) -> set[tuple[int, int]]:
    """The reference: every zone, exact shapely test, band and schedule, no index."""
    active = zs.active_mask(t)
    out = set()
    for j, zone in enumerate(zs):
        hit = (shapely.intersects_xy(zone.geometry, lon, lat) & (alt >= zs.lower_amsl[j])
               & (alt <= zs.upper_amsl[j]) & active[:, j])
        out.update((int(k), j) for k in np.flatnonzero(hit))
    return out


def same_pairs(pairs_fn, lon, lat, alt, t, ref: set[tuple[int, int]]) -> bool:
    """A classifier's (point, zone) pairs are exactly the reference's."""
    p, z = pairs_fn(lon, lat, alt, t)
    return set(zip(p.tolist(), z.tolist())) == ref


def measure_classify(zs, positions, repeat: int) -> dict:
    lon, lat, alt, t = positions
    n = lon.size
    zs.contains_pairs(lon, lat, alt, t)  # warm-up: table pages, time table, allocator
    times, cpu, pairs = [], [], 0
    for r in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        p, _ = zs.contains_pairs(lon, lat, alt, t)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        pairs = p.size
        log(f"  classify run {r + 1}/{repeat}: {n / times[-1]:,.0f} positions/s "
            f"({n / cpu[-1]:,.0f} per CPU second)")
    # wall time is the figure; CPU time shows what a busy machine hides (one thread: the same on a quiet one)
    return {"classify_positions_per_s": round(n / statistics.median(times)),
            "classify_best_positions_per_s": round(n / min(times)),
            "classify_positions_per_cpu_s": round(n / statistics.median(cpu)),
            "pairs_per_position": round(pairs / n, 2)}


def measure_single(zs, m: int) -> dict:
    lon, lat, alt, t = make_positions(m, seed=2)
    lon, lat, alt, t = lon.tolist(), lat.tolist(), alt.tolist(), t.tolist()
    one = zs.zones_at
    for k in range(min(m, 2000)):  # warm-up
        one(lon[k], lat[k], alt[k], t[k])
    ns = np.empty(m)
    clock = time.perf_counter_ns
    for k in range(m):
        a = clock()
        one(lon[k], lat[k], alt[k], t[k])
        ns[k] = clock() - a
    return {"single_check_p99_us": round(float(np.percentile(ns, 99)) / 1000, 2),
            "single_check_p50_us": round(float(np.percentile(ns, 50)) / 1000, 2)}


def exactness_sample(zs, n: int):
    """(positions, reference pairs): the sample every classifier is checked on."""
    lon, lat, alt, t = make_positions(n, seed=3)
    return (lon, lat, alt, t), naive_pairs(zs, lon, lat, alt, t)


def check_exact(zs, sample) -> bool:
    (lon, lat, alt, t), ref = sample
    singles = all(sorted(zs.zones_at(lon[k], lat[k], alt[k], t[k])) == sorted(j for (i, j) in ref if i == k)
                  for k in range(min(lon.size, 500)))
    return same_pairs(zs.contains_pairs, lon, lat, alt, t, ref) and singles


def make_peer(name: str, zs, core: int | None = None):
    """The peer classifier; STRtree runs in this process (so on our core), PostGIS's backend is pinned to it."""
    if name == "strtree":
        from bench.peers.strtree import StrtreeClassifier
        return StrtreeClassifier(zs)
    from bench.peers.postgis import PostgisClassifier, ensure_postgis
    from skylane.settings import Settings
    peer = PostgisClassifier(ensure_postgis(Settings.from_env(), log=log), zs)
    if "bench_zones_geom_idx" not in peer.plan():
        log("  warning: the plan does not use the GiST index:\n" + peer.plan())
    if core is not None:
        try:  # the same one core as ours: the backend and this process share it, as we share it with no one
            os.sched_setaffinity(peer.backend_pid, {core})
            log(f"  PostGIS backend {peer.backend_pid} pinned to core {core}")
        except OSError as exc:
            log(f"  PostGIS backend not pinned ({exc}): it may use another core")
    return peer


def measure_peer(name: str, zs, positions, n: int, repeat: int, sample, ours: float, ours_cpu: float,
                 core: int | None = None) -> dict:
    """A peer's positions/s on the first n positions of our batch (median of `repeat`), exactness, and the
    ratios ours / theirs, by wall time and by CPU time (which other work on the machine inflates less)."""
    t0 = time.perf_counter()
    peer = make_peer(name, zs, core)
    log(f"  {name}: set up in {time.perf_counter() - t0:.1f} s")
    try:
        exact = same_pairs(peer.pairs, *sample[0], sample[1])
        log(f"  {name} exact: {exact}")
        lon, lat, alt, t = (a[:n] for a in positions)
        peer.pairs(lon[:1000], lat[:1000], alt[:1000], t[:1000])  # warm-up
        times, cpu = [], []
        server_cpu = getattr(peer, "server_cpu_seconds", lambda: 0.0)  # PostGIS: its backend's CPU too
        for r in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time() + server_cpu()
            peer.pairs(lon, lat, alt, t)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() + server_cpu() - c0)
            log(f"  {name} run {r + 1}/{repeat}: {lon.size / times[-1]:,.0f} positions/s "
                f"({lon.size / cpu[-1]:,.0f} per CPU second)")
    finally:
        if hasattr(peer, "close"):
            peer.close()
    rate, per_cpu = lon.size / statistics.median(times), lon.size / statistics.median(cpu)
    return {f"{name}_positions_per_s": round(rate), f"classify_vs_{name}": round(ours / rate, 1),
            f"{name}_positions_per_cpu_s": round(per_cpu), f"classify_vs_{name}_cpu": round(ours_cpu / per_cpu, 1),
            f"{name}_exact": exact, f"{name}_positions": int(lon.size)}


def measure_route(zs, quick: bool) -> dict:
    """MONITOR's route figure from bench/airspace_route.py: route_clearance_times_ms(zones, n_runs)
    (or route_clearance_p99_ms(zones)); null while that module is not there."""
    try:
        mod = importlib.import_module("bench.airspace_route")
    except ImportError as exc:
        log(f"  no route benchmark: {exc}")
        return {"route_clearance_p99_ms": None}
    runs = 40 if quick else 200
    if hasattr(mod, "route_clearance_times_ms"):
        times, approved = mod.route_clearance_times_ms(zs, runs)
        return {"route_clearance_p99_ms": round(float(np.percentile(times, 99)), 3),
                "route_clearance_p50_ms": round(float(np.percentile(times, 50)), 3),
                "route_runs": runs, "routes_approved": approved}
    if hasattr(mod, "route_clearance_p99_ms"):
        return {"route_clearance_p99_ms": round(float(mod.route_clearance_p99_ms(zs, runs)), 3)}
    return {"route_clearance_p99_ms": None}


def verdict(name: str, value) -> str:
    target, op = TARGETS[name]
    if value is None:
        return f"{name}: not measured (target {op} {target})"
    ok = value >= target if op == ">=" else value <= target
    return f"{name}: {value:,} (target {op} {target:,}) {'PASS' if ok else 'FAIL'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="skylane bench airspace", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--positions", type=int, default=2_000_000, help="positions per batch run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--singles", type=int, default=50_000, help="single-position checks timed")
    ap.add_argument("--zones", type=int, default=500)
    ap.add_argument("--cpu", type=int, help="core to pin to (default: the last allowed one)")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers to compare with, or none")
    ap.add_argument("--postgis-positions", type=int, default=100_000, help="positions PostGIS classifies per run")
    ap.add_argument("--strtree-positions", type=int, default=200_000, help="positions STRtree classifies per run")
    ap.add_argument("--peer-repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = ap.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p and p != "none"]
    if set(peers) - set(PEERS):
        ap.error(f"unknown peers {sorted(set(peers) - set(PEERS))}; known: {', '.join(PEERS)}")
    if args.quick:  # smaller sizes, unless given
        for name, value in (("positions", 200_000), ("repeat", 2), ("singles", 5_000), ("postgis_positions", 20_000),
                            ("strtree_positions", 20_000), ("peer_repeat", 1)):
            if getattr(args, name) == ap.get_default(name):
                setattr(args, name, value)
    core = pin_one_core(args.cpu)
    log(f"pinned to core {core}; building {args.zones} zones and their index")
    t0 = time.perf_counter()
    zs = make_zones(args.zones, seed=0)
    _ = zs.index
    build_s = time.perf_counter() - t0
    lon, lat, alt, _t = make_positions(20_000, seed=4)
    over = np.bincount(zs.index.pairs(lon, lat)[0], minlength=lon.size).mean()
    log(f"  {len(zs)} zones, index {zs.index.nx}x{zs.index.ny} cells in {build_s:.2f} s; "
        f"{over:.1f} zones over each point on average")
    log("checking exactness against the naive shapely reference")
    sample = exactness_sample(zs, 5_000 if args.quick else 20_000)
    exact = check_exact(zs, sample)
    log(f"  exact: {exact}")
    log(f"batch classification, {args.positions:,} positions x {args.repeat}")
    positions = make_positions(args.positions, seed=1)
    figures = measure_classify(zs, positions, args.repeat)
    for name in peers:
        n = min(args.positions, getattr(args, f"{name}_positions"))
        log(f"peer {name}: the first {n:,} of these positions x {args.peer_repeat}")
        figures.update(measure_peer(name, zs, positions, n, args.peer_repeat, sample,
                                    figures["classify_positions_per_s"], figures["classify_positions_per_cpu_s"], core))
    del positions
    log(f"single-position checks x {args.singles:,}")
    figures.update(measure_single(zs, args.singles))
    del_garbage = gc.collect()  # the classification phase's arrays: not the route check's cost
    log(f"route clearance (bench/airspace_route.py; {del_garbage} objects collected first)")
    figures.update(measure_route(zs, args.quick))
    for name in TARGETS:
        if name in figures or not name.startswith("classify_vs_"):
            print(verdict(name, figures.get(name)))
    peers_exact = all(figures[f"{name}_exact"] for name in peers)
    out = {"bench": "airspace", "zones": len(zs), "zones_over_point": round(float(over), 2),
           "core": core, "exact": exact, "index_build_s": round(build_s, 2), "positions": args.positions,
           **figures}
    first = ("classify_positions_per_s", "single_check_p99_us", "route_clearance_p99_ms", "postgis_positions_per_s",
             "strtree_positions_per_s", "classify_vs_postgis", "classify_vs_strtree")
    ordered = {k: out.pop(k) for k in first if k in out}
    print(json.dumps({**ordered, **out}))
    return 0 if exact and peers_exact else 1


if __name__ == "__main__":
    sys.exit(main())
