"""A synthetic, dense airspace for the benchmarks: 500 zones over the Pujiang-Wujing area.

The shipped zone file has 14 zones, far too few to show how classification scales, so the
airspace benchmarks (and property tests) use this generator instead: a seeded mix of
corridors (buffered polylines, true metres) and circles, with varied altitude bands and
references, some schedules and UA classes, about 11 zones over each point of the area.
Everything is deterministic for a given seed.
"""
from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import LineString, Point, mapping

from airspace.zones import ZoneSet
from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon

# The Pujiang-Wujing demonstration area (see airspace/data/pujiang_wujing.geojson).
LON0, LON1 = 121.436, 121.548
LAT0, LAT1 = 31.012, 31.100
MID_LAT = (LAT0 + LAT1) / 2
M_PER_DEG_LON = m_per_deg_lon(MID_LAT)
T0 = 1_795_708_800.0  # 2026-11-27T00:00:00+08:00 (a Friday), the start of the position times
WEEK_S = 7 * 86_400.0
CIRCLE_KINDS = ("restricted", "authorization", "area", "vertiport", "restricted", "authorization")
RESTRICTION = {"restricted": "PROHIBITED", "authorization": "REQ_AUTHORISATION",
               "area": "NO_RESTRICTION", "vertiport": "CONDITIONAL", "corridor": "CONDITIONAL"}
UA_CLASSES = ("micro", "light", "small", "medium", "large")
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def _to_deg(geom):
    """A geometry drawn in metres around the area's south-west corner, as lon/lat."""
    scale = np.array([M_PER_DEG_LON, M_PER_DEG_LAT])
    return shapely.transform(geom, lambda xy: xy / scale + np.array([LON0, LAT0]))


def _schedule(rng: np.random.Generator) -> dict:
    """A weekly window (sometimes across midnight), sometimes bounded by a date range."""
    start_h = int(rng.integers(0, 24))
    length_h = int(rng.integers(2, 14))
    end_h = (start_h + length_h) % 24
    days = sorted(rng.choice(7, size=int(rng.integers(1, 8)), replace=False).tolist())
    period: dict = {"windows": [{"days": [DAYS[d] for d in days], "start": f"{start_h:02d}:00",
                                 "end": f"{end_h:02d}:30"}]}
    if rng.random() < 0.3:
        period["start"] = "2026-11-28T00:00:00+08:00"
        period["end"] = "2026-12-02T12:00:00+08:00"
    return {"tz": "Asia/Shanghai", "periods": [period]}


def make_zone_features(n: int = 500, seed: int = 0) -> list[dict]:
    """The features of make_zones (internal GeoJSON), for tests that want the raw file."""
    rng = np.random.default_rng(seed)
    w = (LON1 - LON0) * M_PER_DEG_LON
    h = (LAT1 - LAT0) * M_PER_DEG_LAT
    feats = []
    for i in range(n):
        cx, cy = rng.uniform(-0.05 * w, 1.05 * w), rng.uniform(-0.05 * h, 1.05 * h)
        if rng.random() < 0.55:
            kind, zid = "corridor", f"SC{i:04d}"
            legs = int(rng.integers(1, 5))
            heading = rng.uniform(0, 2 * math.pi)
            pts = [(cx, cy)]
            for _ in range(legs):
                heading += rng.normal(0, 0.6)
                step = rng.uniform(850, 2700)
                pts.append((pts[-1][0] + step * math.cos(heading), pts[-1][1] + step * math.sin(heading)))
            half = rng.uniform(160, 520)
            geom = LineString(pts).buffer(half, quad_segs=8)
            extra = {"width_m": round(2 * half, 1)}
        else:
            kind = CIRCLE_KINDS[int(rng.integers(0, len(CIRCLE_KINDS)))]
            zid = f"S{kind[0].upper()}{i:04d}"
            radius = rng.uniform(440, 1640)
            geom = Point(cx, cy).buffer(radius, quad_segs=16)
            extra = {"radius_m": round(radius, 1)}
        ref = ("AGL", "AMSL", "AGL", "WGS84")[int(rng.integers(0, 4))]
        lower = float(rng.choice([0, 0, 0, 30, 60, 90]))
        upper = lower + float(rng.choice([30, 60, 90, 120, 150, 300]))
        props = {"id": zid, "name": f"synthetic {kind} {i}", "kind": kind, "lower_m": lower,
                 "upper_m": upper, "alt_ref": ref, "restriction": RESTRICTION[kind], **extra}
        if rng.random() < 0.2:
            props["schedule"] = _schedule(rng)
        if rng.random() < 0.15:
            k = int(rng.integers(1, 4))
            props["ua_classes"] = sorted(rng.choice(UA_CLASSES, size=k, replace=False).tolist())
        feats.append({"type": "Feature", "id": zid, "properties": props,
                      "geometry": mapping(_to_deg(geom))})
    return feats


def make_zones(n: int = 500, seed: int = 0) -> ZoneSet:
    """A seeded ZoneSet of n zones over the Pujiang-Wujing area (~11 over each point for n=500)."""
    return ZoneSet.from_geojson({"type": "FeatureCollection", "name": f"synthetic-{n}-{seed}",
                                 "features": make_zone_features(n, seed)})


def make_positions(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lon, lat, alt_amsl, t) float arrays: n positions over the area within one week from T0."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(LON0, LON1, n)
    lat = rng.uniform(LAT0, LAT1, n)
    alt = rng.uniform(0.0, 250.0, n)
    t = T0 + rng.uniform(0.0, WEEK_S, n)
    return lon, lat, alt, t
