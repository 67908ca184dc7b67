"""Where a route's segments lie inside the zones: (segment, zone, s0, s1) pieces, s the parameter along
the segment, sorted by segment, zone and s0.

Outline pieces come from the exact meeting points of each segment with the zones' boundary edges (an
STRtree of the edges, then the segment/edge intersections in numpy; GEOS only where a segment runs along
an edge); they depend on the ground track alone. They are then clipped to each zone's altitude band
(altitude interpolated along the segment) and to its schedule (time interpolated).
"""
from __future__ import annotations

import weakref

import numpy as np
import shapely

from .route import Route
from .segments import merge_intervals, part_intervals
from .zones import ZoneSet


class RouteIndex:
    """Per-ZoneSet lookup structures for routes: every boundary edge of every zone in an STRtree, and the
    operating areas (built once, kept while the ZoneSet lives)."""

    def __init__(self, zs: ZoneSet) -> None:
        self.n_zones = len(zs)
        self.area = zs.kinds == "area"
        rings, owner = [], []
        for j, g in enumerate(zs.geometries):
            for poly in shapely.get_parts(g):
                for ring in (poly.exterior, *poly.interiors):
                    rings.append(ring)
                    owner.append(j)
        xy, ri = shapely.get_coordinates(np.array(rings, dtype=object), return_index=True)
        same = ri[1:] == ri[:-1]
        self.edge_zone = np.array(owner, np.int64)[ri[:-1][same]] if rings else np.zeros(0, np.int64)
        self.edge_xy = np.stack([xy[:-1][same], xy[1:][same]], axis=1) if rings else np.zeros((0, 2, 2))
        self.ex0, self.ey0 = self.edge_xy[:, 0, 0].copy(), self.edge_xy[:, 0, 1].copy()
        self.ex1, self.ey1 = self.edge_xy[:, 1, 0].copy(), self.edge_xy[:, 1, 1].copy()
        self.edge_tree = shapely.STRtree(shapely.linestrings(self.edge_xy) if rings else [])


_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def route_index(zs: ZoneSet) -> RouteIndex:
    """The zone set's RouteIndex (built on first use)."""
    idx = _INDEXES.get(zs)
    if idx is None:
        idx = _INDEXES[zs] = RouteIndex(zs)
    return idx


def _edge_crossings(ix: RouteIndex, r: Route, lines) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(key = segment * W + zone, s) of every point where a segment meets a zone's boundary, W,
    and the keys where a segment may run along a boundary edge (left to GEOS).

    Bounding boxes from the edge tree, then the segment/edge intersection in numpy with a small
    tolerance: a near miss only adds a harmless extra cut (pieces are decided by their midpoints),
    while a true meeting point is never lost to rounding."""
    es, ee = ix.edge_tree.query(lines)
    es = es.astype(np.int64)
    ex0, ey0, ex1, ey1 = ix.ex0[ee], ix.ey0[ee], ix.ex1[ee], ix.ey1[ee]
    px, py = r.lon[es], r.lat[es]
    dx, dy = r.lon[es + 1] - px, r.lat[es + 1] - py
    ex, ey = ex1 - ex0, ey1 - ey0
    wx, wy = ex0 - px, ey0 - py
    den = dx * ey - dy * ex
    dd, ee2 = dx * dx + dy * dy, ex * ex + ey * ey
    eps, tol = 1e-9, 1e-10  # parameter slack; distance slack in degrees (~10 micrometres)
    point = dd == 0          # a vertical segment: one point
    par = ~point & (np.abs(den) <= 1e-8 * np.sqrt(dd * ee2))  # (nearly) parallel: left to GEOS if they touch
    safe = np.where(par | point, 1.0, den)
    s_x = (wx * ey - wy * ex) / safe   # along the segment
    u_x = (wx * dy - wy * dx) / safe   # along the edge
    hit = ~par & ~point & (s_x >= -eps) & (s_x <= 1 + eps) & (u_x >= -eps) & (u_x <= 1 + eps)
    line = point[:0]
    lo = hi = s_x[:0]
    if par.any():  # parallel and on one line: they meet where their projections overlap
        ddn = np.where(point, 1.0, dd)
        s_a, s_b = (wx * dx + wy * dy) / ddn, ((ex1 - px) * dx + (ey1 - py) * dy) / ddn
        lo, hi = np.minimum(s_a, s_b), np.maximum(s_a, s_b)
        dist = np.minimum(np.abs(wx * dy - wy * dx), np.abs((ex1 - px) * dy - (ey1 - py) * dx))
        line = par & (dist <= tol * np.sqrt(dd)) & (hi >= -eps) & (lo <= 1 + eps)
        lo, hi = lo[line], hi[line]
    on = point[:0]
    if point.any():  # a vertical segment's point on the edge
        u_p = np.clip(-(wx * ex + wy * ey) / np.where(ee2 > 0, ee2, 1.0), 0.0, 1.0)
        gx, gy = px - (ex0 + ex * u_p), py - (ey0 + ey * u_p)
        on = point & (gx * gx + gy * gy <= tol * tol)
    W = ix.n_zones + 1
    key = es * W + ix.edge_zone[ee]
    key_line = key[line] if line.size else key[:0]
    key_on = key[on] if on.size else key[:0]
    keys = np.concatenate([key[hit], key_line, key_line, key_on])
    svals = np.concatenate([s_x[hit], lo, hi, np.zeros(key_on.size)])
    return keys, np.clip(svals, 0.0, 1.0), W, np.unique(key_line)


def horizontal_pieces(zs: ZoneSet, ix: RouteIndex, r: Route, ua_class: str | None, outline: tuple | None = None):
    """(segment, zone, s0, s1) arrays, sorted: where each segment lies inside each zone outline, for the
    zones whose band, ceiling or area matters at the segment's altitudes.

    The outline pieces depend on the route's ground track alone, so the suggestion search, which only
    changes altitudes or times, computes them once and passes them in as `outline`.
    """
    seg, zone, s0, s1 = outline_pieces(zs, ix, r, ua_class) if outline is None else outline
    lo_a = np.minimum(r.alt[seg], r.alt[seg + 1])
    hi_a = np.maximum(r.alt[seg], r.alt[seg + 1])
    keep = ((lo_a <= zs.upper_amsl[zone]) & (hi_a >= zs.lower_amsl[zone])) | ix.area[zone] | zs.ceiling[zone]
    return seg[keep], zone[keep], s0[keep], s1[keep]


def outline_pieces(zs: ZoneSet, ix: RouteIndex, r: Route, ua_class: str | None):
    """(segment, zone, s0, s1) arrays, sorted: where each segment lies inside each zone outline (any band).

    A segment that meets no boundary edge of a zone is wholly inside it or wholly outside, as its
    first point is. A segment meeting boundaries is cut at the exact crossing parameters and each
    piece between two cuts is inside or outside as its midpoint is; a cut point itself lies on the
    boundary (inside), so a touch is a zero-length piece. Point tests run on the zone grid index.
    """
    coords = np.stack([np.column_stack([r.lon[:-1], r.lat[:-1]]), np.column_stack([r.lon[1:], r.lat[1:]])], axis=1)
    lines = shapely.linestrings(coords)
    key, sv, W, along = _edge_crossings(ix, r, lines)
    ukeys = np.unique(key)
    # cut points per key: the crossings and both ends, sorted and deduplicated
    allk = np.concatenate([key, ukeys, ukeys])
    alls = np.concatenate([sv, np.zeros(ukeys.size), np.ones(ukeys.size)])
    iscut = np.concatenate([np.ones(key.size, bool), np.zeros(2 * ukeys.size, bool)])
    order = np.lexsort((~iscut, alls, allk))
    allk, alls, iscut = allk[order], alls[order], iscut[order]
    first = np.ones(allk.size, bool)
    first[1:] = (allk[1:] != allk[:-1]) | (alls[1:] - alls[:-1] > 1e-12)  # one cut per point (rounding)
    cut_here = np.logical_or.reduceat(iscut, np.flatnonzero(first)) if allk.size else iscut
    allk, alls = allk[first], alls[first]
    iv = np.flatnonzero(allk[1:] == allk[:-1])          # sub-interval iv: alls[iv] .. alls[iv + 1]
    mk = allk[iv]
    mid_s = (alls[iv] + alls[iv + 1]) / 2.0
    ms = mk // W
    mid_lon = r.lon[ms] + (r.lon[ms + 1] - r.lon[ms]) * mid_s
    mid_lat = r.lat[ms] + (r.lat[ms + 1] - r.lat[ms]) * mid_s
    hp, hz = zs.index.pairs(r.lon[:-1], r.lat[:-1])
    start_in = hp.astype(np.int64) * W + hz              # = segment * W + zone
    full = start_in[~np.isin(start_in, ukeys)]
    inside = shapely.intersects_xy(zs.geometries[mk % W], mid_lon, mid_lat)  # prepared outlines
    # merge consecutive inside sub-intervals of the same key
    ii = iv[inside]
    run_start = np.ones(ii.size, bool)
    run_start[1:] = ~((allk[ii[1:]] == allk[ii[:-1]]) & (ii[1:] == ii[:-1] + 1))
    starts = np.flatnonzero(run_start)
    ends = (np.append(starts[1:], ii.size) - 1)[:starts.size]
    k_in, a_in, b_in = allk[ii[starts]], alls[ii[starts]], alls[ii[ends] + 1]
    # cut points with no inside piece on either side: touching points
    in_iv = np.zeros(allk.size, bool)
    in_iv[ii] = True                                     # interval starting at this point is inside
    left_in = np.zeros(allk.size, bool)
    left_in[ii + 1] = True
    touch = np.flatnonzero(cut_here & ~in_iv & ~left_in)
    if touch.size:  # a lone cut may be a near miss within the tolerance: GEOS decides (robustly)
        tk = allk[touch]
        touch = touch[shapely.intersects(zs.geometries[tk % W], lines[tk // W])]
    keys = np.concatenate([full, k_in, allk[touch]])
    s0 = np.concatenate([np.zeros(full.size), a_in, alls[touch]])
    s1 = np.concatenate([np.ones(full.size), b_in, alls[touch]])
    if along.size:  # along an edge a midpoint sits on the boundary itself: GEOS cuts those exactly
        other = ~np.isin(keys, along)
        gk, g0, g1 = _geos_pieces(zs, r, lines, along, W)
        keys, s0, s1 = np.r_[keys[other], gk], np.r_[s0[other], g0], np.r_[s1[other], g1]
    seg, zone = keys // W, keys % W
    keep = np.ones(seg.size, bool)
    if ua_class is not None:
        keep &= np.array([zs.zones[j].applies_to(ua_class) for j in zone.tolist()], bool)
    seg, zone, s0, s1 = seg[keep], zone[keep], s0[keep], s1[keep]
    order = np.lexsort((s0, zone, seg))
    seg, zone, s0, s1 = seg[order], zone[order], s0[order], s1[order]
    # a touching point at the end of a piece of the same zone belongs to that piece
    dup = np.zeros(seg.size, bool)
    dup[1:] = (seg[1:] == seg[:-1]) & (zone[1:] == zone[:-1]) & (s0[1:] <= s1[:-1] + 1e-12) & (
        s1[1:] <= s1[:-1] + 1e-12)
    return seg[~dup], zone[~dup], s0[~dup], s1[~dup]


def _geos_pieces(zs: ZoneSet, r: Route, lines, keys: np.ndarray, W: int):
    """(key, s0, s1) of the given (segment, zone) keys from GEOS's intersection."""
    seg, zone = keys // W, keys % W
    parts, owner = shapely.get_parts(shapely.intersection(zs.geometries[zone], lines[seg]), return_index=True)
    out: list[tuple[int, float, float]] = []
    for part, o in zip(parts.tolist(), owner.tolist()):
        k = int(seg[o])
        for a, b in part_intervals([part], r.lon[k], r.lat[k], r.lon[k + 1], r.lat[k + 1]):
            out.append((int(keys[o]), a, b))
    out = [(k, a, b) for k, group in _group(out) for a, b in merge_intervals(group)]
    arr = np.array(out, dtype=float).reshape(-1, 3)
    return arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2]


def _group(items: list[tuple[int, float, float]]):
    by: dict[int, list[tuple[float, float]]] = {}
    for k, a, b in items:
        by.setdefault(k, []).append((a, b))
    return by.items()


def band_pieces(zs: ZoneSet, r: Route, seg, zone, s0, s1):
    """Clip horizontal pieces to each zone's band: (seg, zone, s0, s1) in 3D."""
    a0, a1 = r.alt[seg], r.alt[seg + 1]
    da = a1 - a0
    lo, hi = zs.lower_amsl[zone], zs.upper_amsl[zone]
    flat = da == 0
    safe = np.where(flat, 1.0, da)
    u, v = (lo - a0) / safe, (hi - a0) / safe
    u, v = np.minimum(u, v), np.maximum(u, v)
    inband = (a0 >= lo) & (a0 <= hi)
    u = np.where(flat, np.where(inband, -np.inf, np.inf), u)
    v = np.where(flat, np.where(inband, np.inf, -np.inf), v)
    a, b = np.maximum(s0, u), np.minimum(s1, v)
    ok = a <= b
    return seg[ok], zone[ok], a[ok], b[ok]


def in_force_pieces(zs: ZoneSet, r: Route, seg, zone, s0, s1):
    """Clip 3D pieces to the zone schedules at the interpolated times (untimed: always in force)."""
    sched_zone = zs.scheduled[zone]
    if r.t is None or not sched_zone.any():
        return seg, zone, s0, s1
    t0, t1 = r.t[seg], r.t[seg + 1]
    ta, tb = t0 + (t1 - t0) * s0, t0 + (t1 - t0) * s1
    keep = [np.flatnonzero(~sched_zone)]
    point = np.flatnonzero(sched_zone & (ta == tb))  # zero-length pieces: in force at that instant
    keep.append(point[zs.in_force(ta[point], zones=zone[point])])
    span = np.flatnonzero(sched_zone & (ta < tb))
    parts = [seg[np.concatenate(keep)], zone[np.concatenate(keep)], s0[np.concatenate(keep)],
             s1[np.concatenate(keep)]]
    if span.size:  # every span piece against every in-force interval of its zone, at once
        zones_here = np.unique(zone[span]).tolist()
        ivs = [(j, a, b) for j in zones_here for a, b in r.in_force_intervals(zs, j)]
        if ivs:
            iv = np.array(ivs, float)
            iz = iv[:, 0].astype(np.int64)
            lo_i = np.searchsorted(iz, zone[span], side="left")
            cnt = np.searchsorted(iz, zone[span], side="right") - lo_i
            p = np.repeat(span, cnt)
            q = np.repeat(lo_i - np.cumsum(np.r_[0, cnt[:-1]]), cnt) + np.arange(cnt.sum())
            lo, hi = np.maximum(ta[p], iv[q, 1]), np.minimum(tb[p], iv[q, 2])
            ok = lo < hi
            p, lo, hi = p[ok], lo[ok], hi[ok]
            frac = (s1[p] - s0[p]) / (tb[p] - ta[p])
            parts = [np.r_[parts[0], seg[p]], np.r_[parts[1], zone[p]], np.r_[parts[2], s0[p] + (lo - ta[p]) * frac],
                     np.r_[parts[3], s0[p] + (hi - ta[p]) * frac]]
    order = np.lexsort((parts[2], parts[1], parts[0]))
    return tuple(x[order] for x in parts)

