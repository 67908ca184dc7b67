"""Where straight segments lie inside zones: parameter intervals along a segment (0 at its start, 1 at
its end), cut by a zone's outline and clipped to its altitude band.

Shared by the monitor (the stretch between two fixes) and route clearance (the legs of a route).
Intervals are closed: a segment touching an outline at one point gets a zero-length interval.
"""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString

from .zones import ZoneSet


def line_pieces(geom, x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    """Closed parameter intervals [s0, s1] (0 <= s <= 1) of segment (x0,y0)-(x1,y1) in geom,
    boundary included (a single touching point is a zero-length interval)."""
    if (x0, y0) == (x1, y1):
        return [(0.0, 1.0)] if shapely.intersects_xy(geom, x0, y0) else []
    inter = shapely.intersection(geom, LineString([(x0, y0), (x1, y1)]))
    return merge_intervals(part_intervals(shapely.get_parts(inter), x0, y0, x1, y1))


def part_intervals(parts, x0, y0, x1, y1) -> list[tuple[float, float]]:
    """The parameter interval of segment (x0,y0)-(x1,y1) each (non-empty) intersection part spans."""
    dx, dy = x1 - x0, y1 - y0
    len2 = dx * dx + dy * dy
    out = []
    for part in parts:
        if part.is_empty:
            continue
        xy = shapely.get_coordinates(part)
        s = np.clip(((xy[:, 0] - x0) * dx + (xy[:, 1] - y0) * dy) / len2, 0.0, 1.0)
        out.append((float(s.min()), float(s.max())))
    return out


def merge_intervals(iv: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted, overlapping or touching intervals merged."""
    iv = sorted(iv)
    out: list[tuple[float, float]] = []
    for a, b in iv:
        if out and a <= out[-1][1] + 1e-12:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def band_interval(a0: float, a1: float, lo: float, hi: float, s0: float, s1: float) -> tuple[float, float] | None:
    """The part of [s0, s1] where the altitude a0 + (a1 - a0) s lies within [lo, hi]."""
    da = a1 - a0
    if da == 0:
        return (s0, s1) if lo <= a0 <= hi else None
    u, v = (lo - a0) / da, (hi - a0) / da
    u, v = min(u, v), max(u, v)
    a, b = max(s0, u), min(s1, v)
    return (a, b) if a <= b else None


def zone_segment_pieces(zs: ZoneSet, cols: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> list[list[tuple]]:
    """For each (zone cols[n], segment p0[n] -> p1[n]) with rows (lon, lat, alt_amsl, ...): the parameter
    intervals inside the zone in 3D (outline by GEOS, vectorized over all pairs; then the band)."""
    lines = shapely.linestrings(np.stack([p0[:, :2], p1[:, :2]], axis=1))
    same = (p0[:, 0] == p1[:, 0]) & (p0[:, 1] == p1[:, 1])
    inter = shapely.intersection(zs.geometries[cols], lines)
    parts, owner = shapely.get_parts(inter, return_index=True)
    xy, pidx = shapely.get_coordinates(parts, return_index=True)
    k = owner[pidx]
    d = p1[k, :2] - p0[k, :2]
    len2 = np.where(same[k], 1.0, (d ** 2).sum(1))
    sv = np.clip(((xy - p0[k, :2]) * d).sum(1) / len2, 0.0, 1.0)
    horiz: list[list[tuple[float, float]]] = [[] for _ in range(cols.size)]
    for part in range(len(parts)):
        m = pidx == part
        if m.any():
            horiz[owner[part]].append((float(sv[m].min()), float(sv[m].max())))
    out = []
    for n in range(cols.size):
        j = cols[n]
        ivs = [(0.0, 1.0)] if same[n] and shapely.intersects_xy(zs.zones[j].geometry, *p0[n, :2]) else horiz[n]
        kept = []
        for a, c in merge_intervals(ivs):
            iv = band_interval(p0[n, 2], p1[n, 2], zs.lower_amsl[j], zs.upper_amsl[j], a, c)
            if iv is not None:
                kept.append(iv)
        out.append(kept)
    return out
