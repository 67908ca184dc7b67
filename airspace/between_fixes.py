"""Restricted zones between two fixes of a UAV: the exact entry or exit point of a no-fly violation's start
or end on the segment from the fix before, and crossings of a PROHIBITED zone in force whose both fixes
lie outside it (segment checked in 3D, altitude and time interpolated along it).
"""
from __future__ import annotations

import numpy as np
import shapely

from protocol.times import rfc3339

from .events import from_epoch
from .fixes import FixBatch, entry
from .latch import in_sorted
from .segments import zone_segment_pieces
from .zones import ZoneSet


def interp(p0, p1, s: float) -> dict:
    """The point at parameter s of the segment p0 -> p1 (lon, lat, alt_amsl, t rows)."""
    lon, lat, alt, t = (float(a + (c - a) * s) for a, c in zip(p0, p1))
    return {"lon": lon, "lat": lat, "alt_amsl": alt, "ts": rfc3339(from_epoch(t)), "t": t}


def nofly_edges(zs: ZoneSet, b: FixBatch, todo: list[tuple[str, int]], W: int) -> dict:
    """(kind, key) -> ("entry" | "exit", point) for the no-fly starts and ends `todo` (key row * W + zone):
    where the segment from the fix before enters (a start) or last leaves (an end) the zone."""
    if not todo:
        return {}
    rows = np.array([k // W for _, k in todo])
    cols = np.array([k % W for _, k in todo])
    prev = b.prev_points(rows)
    has = ~np.isnan(prev[:, 0])
    out = {}
    if not has.any():
        return out
    p0 = prev[has]
    r, c = rows[has], cols[has]
    p1 = np.column_stack([b.lon[r], b.lat[r], b.alt[r], b.t[r]])
    pieces = zone_segment_pieces(zs, c, p0, p1)
    for n, (kind, k) in enumerate(t for t, h in zip(todo, has) if h):
        if not pieces[n]:
            continue
        entering = kind == "no_fly_violation"
        s = pieces[n][0][0] if entering else pieces[n][-1][1]
        out[(kind, k)] = ("entry" if entering else "exit", interp(p0[n], p1[n], s))
    return out


def crossings(zs: ZoneSet, b: FixBatch, member: np.ndarray, prev_member: np.ndarray, suspended: np.ndarray,
              W: int) -> list[tuple]:
    """zone_enter, no_fly_violation, zone_exit and no_fly_violation_end (sort key, event) of every PROHIBITED
    zone in force (not `suspended`) crossed between two fixes whose both ends are outside it (neither in
    `member` nor in `prev_member`, the membership keys of each row and of the row before)."""
    zi = np.flatnonzero(zs.prohibited & ~suspended)
    if not zi.size:
        return []
    prev = b.prev_points(np.arange(b.t.size))
    rows = np.flatnonzero(~np.isnan(prev[:, 0]) & ((prev[:, 0] != b.lon) | (prev[:, 1] != b.lat)))
    if not rows.size:
        return []
    p_lon, p_lat, p_alt = prev[rows, 0], prev[rows, 1], prev[rows, 2]
    x0, x1 = np.minimum(p_lon, b.lon[rows]), np.maximum(p_lon, b.lon[rows])
    y0, y1 = np.minimum(p_lat, b.lat[rows]), np.maximum(p_lat, b.lat[rows])
    a0, a1 = np.minimum(p_alt, b.alt[rows]), np.maximum(p_alt, b.alt[rows])
    # bounding boxes: rows sorted by west edge; a zone meets the rows whose west edge lies in
    # [its west edge - the longest segment, its east edge], then the exact box and band test
    order = np.argsort(x0, kind="stable")
    xs = x0[order]
    span = float((x1 - x0).max())
    rs, zs_ = [], []
    for j in zi.tolist():
        bx0, by0, bx1, by1 = zs.bounds[j]
        lo, hi = np.searchsorted(xs, [bx0 - span, bx1], side="left")[0], np.searchsorted(xs, bx1, side="right")
        if hi <= lo:
            continue
        cand = order[lo:hi]
        ok = ((x1[cand] >= bx0) & (y0[cand] <= by1) & (y1[cand] >= by0)
              & (a1[cand] >= zs.lower_amsl[j]) & (a0[cand] <= zs.upper_amsl[j]))
        if ok.any():
            rs.append(cand[ok])
            zs_.append(np.full(int(ok.sum()), j))
    if not rs:
        return []
    r, j = rows[np.concatenate(rs)], np.concatenate(zs_)
    sel = ~in_sorted(r * W + j, member) & ~in_sorted(r * W + j, prev_member)
    r, j = r[sel], j[sel]
    if not r.size:
        return []
    p0 = prev[r]
    p1 = np.column_stack([b.lon[r], b.lat[r], b.alt[r], b.t[r]])
    if zs.scheduled.any():  # in force at some time of the segment (exact, schedules as intervals)
        ok = zs.in_force(p0[:, 3], zones=j) | zs.in_force(p1[:, 3], zones=j)
        for zj in np.intersect1d(j[~ok], np.flatnonzero(zs.scheduled)).tolist():
            m = np.flatnonzero(~ok & (j == zj))
            ivs = np.array(zs.scheduled_intervals(zj, float(p0[m, 3].min()), float(p1[m, 3].max())))
            if ivs.size:
                k = np.searchsorted(ivs[:, 1], p0[m, 3], side="right")
                k = np.minimum(k, len(ivs) - 1)
                ok[m] = (ivs[k, 0] < p1[m, 3]) & (ivs[k, 1] > p0[m, 3])
        r, j, p0, p1 = r[ok], j[ok], p0[ok], p1[ok]
        if not r.size:
            return []
    lines = shapely.linestrings(np.stack([p0[:, :2], p1[:, :2]], axis=1))
    touch = shapely.intersects(zs.geometries[j], lines)
    if not touch.any():
        return []
    r, j, p0, p1 = r[touch], j[touch], p0[touch], p1[touch]
    out = []
    for n, pieces in enumerate(zone_segment_pieces(zs, j, p0, p1)):
        i, zj = int(r[n]), int(j[n])
        zone = zs.zones[zj]
        for s0, s1 in pieces:
            e0, e1 = interp(p0[n], p1[n], s0), interp(p0[n], p1[n], s1)
            if zs.scheduled[zj] and not _in_force_between(zs, zj, e0["t"], e1["t"]):
                continue
            base = {"between_fixes": True, "entry": e0, "exit": e1, "zone_name": zone.name,
                    "zone_kind": zone.kind, "band": [zone.lower_m, zone.upper_m], "zone_alt_ref": zone.alt_ref,
                    "from_fix": rfc3339(from_epoch(p0[n, 3])), "to_fix": rfc3339(b.ts[i])}
            t_in, t_out = from_epoch(e0["t"]), from_epoch(e1["t"])
            for kind, ts, pt in (("zone_enter", t_in, e0), ("no_fly_violation", t_in, e0),
                                 ("zone_exit", t_out, e1), ("no_fly_violation_end", t_out, e1)):
                detail = {**base, "lon": pt["lon"], "lat": pt["lat"], "alt_amsl": pt["alt_amsl"]}
                out.append(entry(kind, b.uav[i], zone.id, ts, detail, zj, i))
    return out


def _in_force_between(zs: ZoneSet, j: int, t0: float, t1: float) -> bool:
    """Zone j's schedule holds at some time of [t0, t1) (t0 == t1: at t0)."""
    if t1 > t0:
        return bool(zs.scheduled_intervals(j, t0, t1))
    return bool(zs.in_force(np.array([t0]), zones=np.array([j]))[0])
