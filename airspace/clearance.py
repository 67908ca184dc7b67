"""4D route clearance: is a planned flight allowed, and if not, exactly why and what would be.

    check_route(zones: ZoneSet, waypoints: Sequence[Waypoint], alt_ref: str = "AGL", *,
                departure: datetime | float | None = None, speed_mps: float | None = None,
                uav_id: str | None = None, ua_class: str | None = None,
                approved: ApprovedIndex | Sequence[ApprovedClearance] | None = None,
                minima: SeparationMinima = SeparationMinima(), capacity: int | None = None,
                zone_states: Mapping[str, Mapping] | None = None,
                suggest: bool = True) -> ClearanceResult

Times: every Waypoint has `t` (epoch seconds or aware datetime, strictly increasing), or none
has and `departure` + `speed_mps` give them (3D distance / speed), or neither: an untimed 3D
check (schedules taken as always in force, no deconfliction).

Each segment is intersected exactly with every zone outline it meets (bounding-box prefilter on
an STRtree, altitude-envelope prefilter, then only segments that cross a boundary are cut with
GEOS), the pieces are clipped to the zone's band with the altitude interpolated along the
segment, and to the zone's schedule with the interpolated time. Reason codes:
  restricted_zone   a PROHIBITED zone in force is entered (entry/exit point and time, altitudes)
  zone_suspended    a zone needing clearance (corridor, ...) is suspended (state, sensor reading)
  above_ceiling     above a corridor/area top, or the true-height ceiling (zone_id None)
  outside_area      part of the route lies outside every operating area
  separation_conflict  closer than the 4D minima to another approved clearance (exact, per
                    segment pair; see airspace.separation)
  corridor_capacity the corridor already holds `capacity` approved flights at some time of the leg
Each reason: code, message, zone_id, zone_name, segment, waypoint, entry, exit (lon, lat,
alt_m in the request's reference, alt_amsl, t RFC 3339 or None), altitude ({"route_m", "zone_m",
"zone_alt_ref"}), plus `conflict` / `state` / `capacity` where relevant.
Suggestions (denials only, each resubmittable as is and then approved): {"kind": "altitude",
"alt_m", "alt_ref", "band": [lo, hi], "waypoints": [...]} (a constant altitude inside a clear
band) and {"kind": "departure", "departure": RFC 3339, "delay_s", "waypoints": [...]} (the
earliest later departure found that clears, 1 s resolution).
A malformed request (fewer than 2 waypoints, bad coordinates or times, unknown alt_ref) is a
ValueError, not a denial.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import shapely
from shapely.geometry import LineString

from .coords import position_problem
from .events import epoch_of, from_epoch, rfc3339
from .separation import (ApprovedClearance, ApprovedIndex, SeparationMinima, Tolerances, closest_approach,
                         to_local)
from .vertical import normalize_ref
from .zones import CEILING_KINDS, ZoneSet

NEEDS_CLEARANCE = ("REQ_AUTHORISATION", "CONDITIONAL")
TIME_CODES = ("separation_conflict", "corridor_capacity")  # cleared by departing later


@dataclass(frozen=True)
class Waypoint:
    lon: float
    lat: float
    alt_m: float
    t: float | datetime | None = None  # epoch seconds or aware datetime


@dataclass(frozen=True)
class ClearanceResult:
    decision: str  # "approved" | "denied"
    reasons: list[dict] = field(default_factory=list, hash=False)
    suggestions: list[dict] = field(default_factory=list, hash=False)
    route: list[dict] = field(default_factory=list, hash=False)      # waypoints with alt_amsl and t
    corridors: list[dict] = field(default_factory=list, hash=False)  # legs inside corridors
    zones: list[str] = field(default_factory=list, hash=False)       # zones needing clearance crossed

    @property
    def approved(self) -> bool:
        return self.decision == "approved"

    def to_dict(self) -> dict:
        return {"decision": self.decision, "approved": self.approved, "reasons": self.reasons,
                "suggestions": self.suggestions, "route": self.route, "corridors": self.corridors,
                "zones": self.zones}

    def clearance(self, clearance_id: str, uav_id: str, tolerances: Tolerances = Tolerances()) -> ApprovedClearance:
        """The approved clearance to store and publish (timed routes only)."""
        if not self.approved or any(p["t"] is None for p in self.route):
            raise ValueError("only an approved, timed route becomes a clearance")
        legs = tuple({"zone_id": c["zone_id"], "entry": _raw(c["entry"]), "exit": _raw(c["exit"])}
                     for c in self.corridors)
        return ApprovedClearance(clearance_id, uav_id, tuple(p["lon"] for p in self.route),
                                 tuple(p["lat"] for p in self.route), tuple(p["alt_amsl"] for p in self.route),
                                 tuple(p["epoch"] for p in self.route), legs, tuple(self.zones), tolerances)


def _raw(p: dict) -> dict:
    return {"lon": p["lon"], "lat": p["lat"], "alt_amsl": p["alt_amsl"], "t": p["epoch"]}


# ------------------------------------------------------------------------------ geometry
def line_pieces(geom, x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    """Closed parameter intervals [s0, s1] (0 <= s <= 1) of segment (x0,y0)-(x1,y1) in geom,
    boundary included (a single touching point is a zero-length interval)."""
    if (x0, y0) == (x1, y1):
        return [(0.0, 1.0)] if shapely.intersects_xy(geom, x0, y0) else []
    inter = shapely.intersection(geom, LineString([(x0, y0), (x1, y1)]))
    return merge_intervals(_params(shapely.get_parts(inter), x0, y0, x1, y1))


def _params(parts, x0, y0, x1, y1) -> list[tuple[float, float]]:
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


class _Index:
    """Per-ZoneSet lookup structures for routes (built once, kept while the ZoneSet lives)."""

    def __init__(self, zs: ZoneSet) -> None:
        self.geoms = np.array([z.geometry for z in zs], dtype=object)
        restr = np.array([z.restriction for z in zs], dtype=object)
        self.prohibited = restr == "PROHIBITED"
        self.needs_clear = np.isin(restr, NEEDS_CLEARANCE) | (zs.kinds == "corridor")
        self.ceiling = np.isin(zs.kinds, CEILING_KINDS)
        self.area = zs.kinds == "area"
        self.corridor = zs.kinds == "corridor"
        self.scheduled = np.array([z.schedule is not None for z in zs], bool)
        rings, owner = [], []
        for j, g in enumerate(self.geoms):
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
        self.zs = zs

    def holding(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point, zone) pairs: the zone outlines containing each point, boundary included."""
        return self.zs.index.pairs(lon, lat)


_INDEXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _index(zs: ZoneSet) -> _Index:
    idx = _INDEXES.get(zs)
    if idx is None:
        idx = _INDEXES[zs] = _Index(zs)
    return idx


@dataclass
class _Route:
    lon: np.ndarray
    lat: np.ndarray
    alt: np.ndarray       # AMSL
    t: np.ndarray | None  # epoch seconds
    alt_ref: str
    schedules: dict = field(default_factory=dict)  # zone -> its in-force intervals over the route's times

    def in_force_intervals(self, zs: ZoneSet, j: int) -> list[tuple[float, float]]:
        ivs = self.schedules.get(j)
        if ivs is None:
            ivs = self.schedules[j] = zs.zones[j].schedule.intervals(float(self.t[0]), float(self.t[-1]))
        return ivs

    @property
    def n_seg(self) -> int:
        return self.lon.size - 1


def _round(x: float) -> float:
    return float(round(x, 3))


def _epoch(value, what: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{what}: naive datetime (give a time zone)")
        return epoch_of(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValueError(f"{what}: must be an aware datetime or epoch seconds, got {value!r}")


def _plan(zs: ZoneSet, waypoints: Sequence[Waypoint], alt_ref: str, departure, speed_mps) -> _Route:
    if len(waypoints) < 2:
        raise ValueError(f"a route needs at least 2 waypoints, got {len(waypoints)}")
    vals = [v for w in waypoints for v in (w.lon, w.lat, w.alt_m)]
    try:
        raw = np.array(vals, dtype=float).reshape(-1, 3)
        ok = (np.isfinite(raw).all() and (np.abs(raw[:, 0]) <= 180).all() and (np.abs(raw[:, 1]) <= 90).all()
              and bool not in set(map(type, vals)))
    except (TypeError, ValueError):
        ok = False
    if not ok:  # find the first bad one, for the message
        for k, wp in enumerate(waypoints):
            if problem := position_problem(wp.lon, wp.lat, wp.alt_m):
                raise ValueError(f"waypoint {k}: {problem}")
    alt_ref = normalize_ref(alt_ref)
    lon, lat = raw[:, 0].copy(), raw[:, 1].copy()
    alt = np.asarray(zs.vertical.to_amsl(raw[:, 2], alt_ref), float)
    given = [w.t is not None for w in waypoints]
    t = None
    if all(given):
        times = [w.t for w in waypoints]
        if {float, int} >= set(map(type, times)):  # epoch seconds: one vectorized check
            t = np.array(times, dtype=float)
            if not np.isfinite(t).all():
                raise ValueError(f"waypoint {int(np.flatnonzero(~np.isfinite(t))[0])}: t must be finite")
        else:
            t = np.array([_epoch(x, f"waypoint {k}: t") for k, x in enumerate(times)])
        if not (np.diff(t) > 0).all():
            k = int(np.flatnonzero(np.diff(t) <= 0)[0]) + 1
            raise ValueError(f"waypoint {k}: t must be after the previous waypoint's")
    elif any(given):
        raise ValueError("give t for every waypoint or for none")
    elif departure is not None or speed_mps is not None:
        if departure is None or speed_mps is None:
            raise ValueError("departure and speed_mps go together")
        if isinstance(speed_mps, bool) or not isinstance(speed_mps, (int, float)) or not 0 < speed_mps < 500:
            raise ValueError(f"speed_mps must be in (0, 500), got {speed_mps!r}")
        x, y = to_local(lon, lat, lon[0], lat[0])
        d = np.sqrt(np.diff(x) ** 2 + np.diff(y) ** 2 + np.diff(alt) ** 2)
        if not (d > 0).all():
            raise ValueError(f"waypoint {int(np.flatnonzero(d <= 0)[0]) + 1} repeats the previous one")
        t = _epoch(departure, "departure") + np.concatenate([[0.0], np.cumsum(d / speed_mps)])
        if not (np.diff(t) > 0).all():  # micrometres apart: no time passes between them
            raise ValueError(f"waypoint {int(np.flatnonzero(np.diff(t) <= 0)[0]) + 1} repeats the previous one")
    if t is not None and not (np.isfinite(t).all() and t[0] >= _MIN_EPOCH and t[-1] <= _MAX_EPOCH):
        raise ValueError("waypoint times fall outside the years 1-9999 (too slow a speed, or too far ahead)")
    return _Route(lon, lat, alt, t, alt_ref)


def _crossings(ix: _Index, r: _Route, lines) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
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
    W = len(ix.geoms) + 1
    key = es * W + ix.edge_zone[ee]
    key_line = key[line] if line.size else key[:0]
    key_on = key[on] if on.size else key[:0]
    keys = np.concatenate([key[hit], key_line, key_line, key_on])
    svals = np.concatenate([s_x[hit], lo, hi, np.zeros(key_on.size)])
    return keys, np.clip(svals, 0.0, 1.0), W, np.unique(key_line)


_MIN_EPOCH, _MAX_EPOCH = -62_135_596_800.0, 253_402_300_799.0  # 0001-01-01 .. 9999-12-31T23:59:59 UTC


def _horizontal_pieces(zs: ZoneSet, ix: _Index, r: _Route, ua_class: str | None, outline: tuple | None = None):
    """(segment, zone, s0, s1) arrays, sorted: where each segment lies inside each zone outline, for the
    zones whose band, ceiling or area matters at the segment's altitudes.

    The outline pieces depend on the route's ground track alone, so the suggestion search, which only
    changes altitudes or times, computes them once and passes them in as `outline`.
    """
    seg, zone, s0, s1 = _outline_pieces(zs, ix, r, ua_class) if outline is None else outline
    lo_a = np.minimum(r.alt[seg], r.alt[seg + 1])
    hi_a = np.maximum(r.alt[seg], r.alt[seg + 1])
    keep = ((lo_a <= zs.upper_amsl[zone]) & (hi_a >= zs.lower_amsl[zone])) | ix.area[zone] | ix.ceiling[zone]
    return seg[keep], zone[keep], s0[keep], s1[keep]


def _outline_pieces(zs: ZoneSet, ix: _Index, r: _Route, ua_class: str | None):
    """(segment, zone, s0, s1) arrays, sorted: where each segment lies inside each zone outline (any band).

    A segment that meets no boundary edge of a zone is wholly inside it or wholly outside, as its
    first point is. A segment meeting boundaries is cut at the exact crossing parameters and each
    piece between two cuts is inside or outside as its midpoint is; a cut point itself lies on the
    boundary (inside), so a touch is a zero-length piece. Point tests run on the zone grid index.
    """
    coords = np.stack([np.column_stack([r.lon[:-1], r.lat[:-1]]), np.column_stack([r.lon[1:], r.lat[1:]])], axis=1)
    lines = shapely.linestrings(coords)
    key, sv, W, along = _crossings(ix, r, lines)
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
    hp, hz = ix.holding(r.lon[:-1], r.lat[:-1])
    start_in = hp.astype(np.int64) * W + hz              # = segment * W + zone
    full = start_in[~np.isin(start_in, ukeys)]
    inside = shapely.intersects_xy(ix.geoms[mk % W], mid_lon, mid_lat)  # prepared outlines
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
        touch = touch[shapely.intersects(ix.geoms[tk % W], lines[tk // W])]
    keys = np.concatenate([full, k_in, allk[touch]])
    s0 = np.concatenate([np.zeros(full.size), a_in, alls[touch]])
    s1 = np.concatenate([np.ones(full.size), b_in, alls[touch]])
    if along.size:  # along an edge a midpoint sits on the boundary itself: GEOS cuts those exactly
        other = ~np.isin(keys, along)
        gk, g0, g1 = _geos_pieces(ix, r, lines, along, W)
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


def _geos_pieces(ix: _Index, r: _Route, lines, keys: np.ndarray, W: int):
    """(key, s0, s1) of the given (segment, zone) keys from GEOS's intersection."""
    seg, zone = keys // W, keys % W
    parts, owner = shapely.get_parts(shapely.intersection(ix.geoms[zone], lines[seg]), return_index=True)
    out: list[tuple[int, float, float]] = []
    for part, o in zip(parts.tolist(), owner.tolist()):
        k = int(seg[o])
        for a, b in _params([part], r.lon[k], r.lat[k], r.lon[k + 1], r.lat[k + 1]):
            out.append((int(keys[o]), a, b))
    out = [(k, a, b) for k, group in _group(out) for a, b in merge_intervals(group)]
    arr = np.array(out, dtype=float).reshape(-1, 3)
    return arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2]


def _group(items: list[tuple[int, float, float]]):
    by: dict[int, list[tuple[float, float]]] = {}
    for k, a, b in items:
        by.setdefault(k, []).append((a, b))
    return by.items()


def _band_pieces(zs: ZoneSet, r: _Route, seg, zone, s0, s1):
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


def _in_force(zs: ZoneSet, r: _Route, seg, zone, s0, s1):
    """Clip 3D pieces to the zone schedules at the interpolated times (untimed: always in force)."""
    sched_zone = _index(zs).scheduled[zone]
    if r.t is None or not sched_zone.any():
        return seg, zone, s0, s1
    t0, t1 = r.t[seg], r.t[seg + 1]
    ta, tb = t0 + (t1 - t0) * s0, t0 + (t1 - t0) * s1
    keep = [np.flatnonzero(~sched_zone)]
    point = np.flatnonzero(sched_zone & (ta == tb))  # zero-length pieces: in force at that instant
    for j in np.unique(zone[point]).tolist():
        idx = point[zone[point] == j]
        keep.append(idx[np.asarray(zs.zones[j].schedule.active(ta[idx]), bool)])
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


# ------------------------------------------------------------------------------- reasons
@dataclass
class _Draft:
    """A reason before its points are computed: code, zone index (-1: none), first/last segment."""

    code: str
    zone: int
    k0: int
    s0: float
    k1: int
    s1: float
    extra: dict = field(default_factory=dict)


def _runs(code: str, seg, zone, s0, s1, extra=None) -> list[_Draft]:
    """Drafts for pieces, one per continuous run of the same zone over consecutive segments."""
    if not len(seg):
        return []
    seg, zone, s0, s1 = (np.asarray(a) for a in (seg, zone, s0, s1))
    order = np.lexsort((s0, seg, zone))
    k, j, a, b = seg[order], zone[order], s0[order], s1[order]
    start = np.ones(k.size, bool)
    start[1:] = ~((j[1:] == j[:-1]) & (k[1:] == k[:-1] + 1) & (b[:-1] >= 1.0 - 1e-12) & (a[1:] <= 1e-12))
    first = np.flatnonzero(start)
    last = np.append(first[1:], k.size) - 1
    drafts = [_Draft(code, int(j[f]), int(k[f]), float(a[f]), int(k[e]), float(b[e]), dict(extra or {}))
              for f, e in zip(first.tolist(), last.tolist())]
    drafts.sort(key=lambda d: (d.k0, d.s0, d.zone))
    return drafts


def _gap_drafts(code: str, r: _Route, covered_seg, covered_s0, covered_s1, only: int,
                want=None, merge: bool = True) -> list[_Draft]:
    """Drafts for the parts of segments not covered by the given pieces (`want(k)` filters)."""
    n = r.n_seg
    full = np.zeros(n, bool)
    f = (covered_s0 <= 0.0) & (covered_s1 >= 1.0)
    full[covered_seg[f]] = True
    by: dict[int, list[tuple[float, float]]] = {}
    for k, a, b in zip(covered_seg.tolist(), covered_s0.tolist(), covered_s1.tolist()):
        by.setdefault(k, []).append((a, b))
    segs, s0, s1 = [], [], []
    for k in np.flatnonzero(~full).tolist():
        if want is not None and not want(k):
            continue
        cur = 0.0
        for a, b in merge_intervals(by.get(k, [])):
            if a > cur:
                segs.append(k), s0.append(cur), s1.append(a)
            cur = max(cur, b)
        if cur < 1.0:
            segs.append(k), s0.append(cur), s1.append(1.0)
    if not merge:
        return [_Draft(code, only, k, a, k, b) for k, a, b in zip(segs, s0, s1)]
    return _runs(code, np.array(segs, np.int64), np.full(len(segs), only, np.int64), np.array(s0), np.array(s1))


def _above(r: _Route, seg, zone, s0, s1, level):
    """Sub-pieces strictly above `level` (per piece), as closed intervals."""
    a0, a1 = r.alt[seg], r.alt[seg + 1]
    da = a1 - a0
    safe = np.where(da == 0, 1.0, da)
    u = (level - a0) / safe
    lo = np.where(da > 0, np.maximum(s0, u), s0)
    hi = np.where(da < 0, np.minimum(s1, u), s1)
    ok = np.where(da == 0, a0 > level, (lo < hi) | ((lo == hi) & (a0 + da * lo > level)))
    return seg[ok], zone[ok], lo[ok], hi[ok]


def _points(zs: ZoneSet, r: _Route, k: np.ndarray, s: np.ndarray) -> list[dict]:
    """Points at parameter s of segments k, vectorized (times RFC 3339, ms, UTC)."""
    lon = r.lon[k] + (r.lon[k + 1] - r.lon[k]) * s
    lat = r.lat[k] + (r.lat[k + 1] - r.lat[k]) * s
    alt = r.alt[k] + (r.alt[k + 1] - r.alt[k]) * s
    alt_m = np.round(np.asarray(zs.vertical.from_amsl(alt, r.alt_ref), float), 3)
    if r.t is None:
        t = [None] * k.size
        ep = [None] * k.size
    else:
        tt = r.t[k] + (r.t[k + 1] - r.t[k]) * s
        ep = tt.tolist()
        t = [x + "Z" for x in np.datetime_as_string(np.round(tt * 1000).astype("datetime64[ms]"), unit="ms")]
    return [{"lon": a, "lat": b, "alt_m": c, "alt_amsl": d, "t": e, "epoch": f}
            for a, b, c, d, e, f in zip(lon.tolist(), lat.tolist(), alt_m.tolist(), alt.tolist(), t, ep)]


MESSAGES = {
    "restricted_zone": "segment {k} enters restricted zone {zid} ({zname}) within its band {band} from {entry} "
                       "to {exit}",
    "zone_suspended": "segment {k} uses {zid} ({zname}), suspended{why} from {entry} to {exit}",
    "above_ceiling": "segment {k} is above the {top} ceiling of {zid} ({zname}) from {entry} to {exit}",
    "true_height": "segment {k} is above the {top} true-height ceiling from {entry} to {exit}",
    "outside_area": "segment {k} leaves the operating area from {entry} to {exit}",
}


def _materialize(zs: ZoneSet, r: _Route, drafts: list[_Draft]) -> list[dict]:
    if not drafts:
        return []
    pts = _points(zs, r, np.array([d.k0 for d in drafts] + [d.k1 for d in drafts], np.int64),
                  np.array([d.s0 for d in drafts] + [d.s1 for d in drafts], float))
    n = len(drafts)
    out = []
    for i, d in enumerate(drafts):
        zone = zs.zones[d.zone] if d.zone >= 0 else None
        entry, exit_ = pts[i], pts[n + i]
        for p in (entry, exit_):
            p.pop("epoch")
        rs = {"code": d.code, "message": "", "zone_id": zone.id if zone else None,
              "zone_name": zone.name if zone else None, "segment": d.k0, "waypoint": None,
              "entry": entry, "exit": exit_,
              "altitude": {"route_m": sorted((entry["alt_m"], exit_["alt_m"])), "route_alt_ref": r.alt_ref}}
        if d.k1 != d.k0:
            rs["segments"] = [d.k0, d.k1]
        if zone is not None:
            rs["altitude"].update(zone_m=[zone.lower_m, zone.upper_m], zone_alt_ref=zone.alt_ref)
        rs.update(d.extra)
        key = "true_height" if d.extra.get("rule") == "true_height_ceiling" else d.code
        k = f"{d.k0}" if d.k1 == d.k0 else f"{d.k0}-{d.k1}"
        rs["message"] = MESSAGES[key].format(
            k=k, zid=rs["zone_id"], zname=rs["zone_name"], entry=_where(entry), exit=_where(exit_),
            band=f"{zone.lower_m:g}-{zone.upper_m:g} m {zone.alt_ref}" if zone else "",
            top=(f"{zone.upper_m:g} m {zone.alt_ref}" if zone else f"{d.extra.get('upper_m', 0):g} m AGL"),
            why=d.extra.get("why", ""))
        rs.pop("why", None)
        out.append(rs)
    return out


def _where(p: dict) -> str:
    at = f" at {p['t']}" if p.get("t") else ""
    return f"({p['lon']:.6f}, {p['lat']:.6f}, {p['alt_m']:g} m){at}"


def _state_detail(state: Mapping) -> dict:
    detail = {x: state.get(x) for x in ("reason", "by", "at", "sensor_id", "metric", "value", "reading_ts")
              if state.get(x) is not None}
    why = f": {detail['reason']}" if detail.get("reason") else ""
    if detail.get("sensor_id"):
        why += (f" ({detail['sensor_id']} {detail.get('metric')}={detail.get('value')} "
                f"at {detail.get('reading_ts')})")
    return {"state": detail, "why": why}


def _zone_drafts(zs, ix, r, p3, hp, zone_states) -> tuple[list[_Draft], tuple]:
    """Drafts of every zone reason, and the pieces the flight is cleared through."""
    seg, zone, s0, s1 = p3
    states = zone_states or {}
    suspended = np.zeros(len(zs), bool)
    for zid, st in states.items():
        j = zs.position(zid)
        if j is not None and (st or {}).get("state") == "suspended":
            suspended[j] = True
    drafts: list[_Draft] = []
    m = ix.prohibited[zone] & ~suspended[zone]
    drafts += _runs("restricted_zone", seg[m], zone[m], s0[m], s1[m])
    m = ix.needs_clear[zone] & ~ix.prohibited[zone] & suspended[zone]
    for j in np.unique(zone[m]).tolist():
        mj = m & (zone == j)
        drafts += _runs("zone_suspended", seg[mj], zone[mj], s0[mj], s1[mj],
                        _state_detail(states[zs.zones[j].id]))
    m = ix.needs_clear[zone] & ~ix.prohibited[zone] & ~suspended[zone]
    cleared = (seg[m], zone[m], s0[m], s1[m])
    hs, hz, h0, h1 = hp
    c = ix.ceiling[hz]
    above = _in_force(zs, r, *_above(r, hs[c], hz[c], h0[c], h1[c], zs.upper_amsl[hz[c]]))
    drafts += _runs("above_ceiling", *above)
    rule = getattr(zs.vertical, "ceiling_agl_m", None)
    if rule is not None:
        level = float(zs.vertical.to_amsl(rule, "AGL"))
        high = set(np.flatnonzero(np.maximum(r.alt[:-1], r.alt[1:]) > level).tolist())
        if high:  # the true-height rule binds where no corridor/area band sets the ceiling (as the monitor)
            cs, _, c0, c1 = _in_force(zs, r, hs[c], hz[c], h0[c], h1[c])  # the bands in force then
            gaps = _gap_drafts("above_ceiling", r, cs, c0, c1, -1, want=high.__contains__, merge=False)
            gs = np.array([g.k0 for g in gaps], np.int64)
            sub = _above(r, gs, np.full(gs.size, -1), np.array([g.s0 for g in gaps]),
                         np.array([g.s1 for g in gaps]), level)
            drafts += _runs("above_ceiling", *sub, extra={"rule": "true_height_ceiling", "upper_m": rule})
    areas = np.flatnonzero(ix.area)
    if areas.size:
        a = ix.area[hz]
        drafts += _gap_drafts("outside_area", r, hs[a], h0[a], h1[a], int(areas[0]) if areas.size == 1 else -1)
    return drafts, cleared


def _legs(zs: ZoneSet, r: _Route, cleared: tuple, ix: _Index) -> list[dict]:
    """Corridor legs: 3D pieces of corridors merged across consecutive segments."""
    seg, zone, s0, s1 = cleared
    m = ix.corridor[zone]
    drafts = _runs("leg", seg[m], zone[m], s0[m], s1[m])
    if not drafts:
        return []
    drafts.sort(key=lambda d: (d.k0, d.s0, d.zone))
    pts = _points(zs, r, np.array([d.k0 for d in drafts] + [d.k1 for d in drafts], np.int64),
                  np.array([d.s0 for d in drafts] + [d.s1 for d in drafts], float))
    n = len(drafts)
    return [{"zone_id": zs.zones[d.zone].id, "zone_name": zs.zones[d.zone].name, "segments": [d.k0, d.k1],
             "entry": pts[i], "exit": pts[n + i]} for i, d in enumerate(drafts)]


def _separation(zs, r: _Route, index: ApprovedIndex, minima: SeparationMinima, uav_id) -> list[dict]:
    if r.t is None or not len(index):
        return []
    env = (r.lon.min(), r.lat.min(), r.lon.max(), r.lat.max(), r.alt.min(), r.alt.max(), r.t[0], r.t[-1])
    cand = index.candidates(env, minima, uav_id)
    if not cand.size:
        return []
    segs = np.concatenate([np.arange(index.seg_first[k], index.seg_first[k + 1]) for k in cand.tolist()])
    se = index.seg_env[segs]
    dlat = minima.horizontal_m / 110_940.0
    dlon = dlat * 1.2  # ~1/cos(31 deg) with room to spare
    keep = ((se[:, 0] <= env[2] + dlon) & (se[:, 3] >= env[0] - dlon) & (se[:, 1] <= env[3] + dlat)
            & (se[:, 4] >= env[1] - dlat) & (se[:, 2] <= env[5] + minima.vertical_m)
            & (se[:, 5] >= env[4] - minima.vertical_m) & (se[:, 6] <= env[7] + minima.time_s)
            & (se[:, 7] >= env[6] - minima.time_s))
    theirs = segs[keep]
    se = index.seg_env
    if not theirs.size:
        return []
    # our segment envelopes vs theirs: each of theirs against the run of our segments near it in time
    mlo = np.minimum(np.column_stack([r.lon[:-1], r.lat[:-1], r.alt[:-1]]), np.column_stack([r.lon[1:], r.lat[1:], r.alt[1:]]))
    mhi = np.maximum(np.column_stack([r.lon[:-1], r.lat[:-1], r.alt[:-1]]), np.column_stack([r.lon[1:], r.lat[1:], r.alt[1:]]))
    grow = np.array([dlon, dlat, minima.vertical_m])
    te = se[theirs]
    lo = np.searchsorted(r.t[1:] + minima.time_s, te[:, 6], side="left")
    hi = np.searchsorted(r.t[:-1] - minima.time_s, te[:, 7], side="right")
    rlo, rhi = _range_boxes(mlo, mhi, lo, hi)  # the bounding box of our segments lo..hi-1
    near = (hi > lo) & (rlo - grow <= te[:, 3:6]).all(1) & (rhi + grow >= te[:, 0:3]).all(1)
    theirs, te, lo, hi = theirs[near], te[near], lo[near], hi[near]
    cnt = hi - lo
    kb = np.repeat(np.arange(theirs.size), cnt)
    ka = np.repeat(lo - np.cumsum(np.r_[0, cnt[:-1]]), cnt) + np.arange(int(cnt.sum()))
    t_ = te[kb]
    ok = ((mlo[ka] - grow <= t_[:, 3:6]).all(1) & (mhi[ka] + grow >= t_[:, 0:3]).all(1)
          & (r.t[ka] - minima.time_s <= t_[:, 7]) & (r.t[ka + 1] + minima.time_s >= t_[:, 6]))
    order = np.lexsort((theirs[kb[ok]], ka[ok]))
    ka, kb = ka[ok][order], kb[ok][order]
    if not ka.size:
        return []
    kb = theirs[kb]
    S = index.seg
    lon0, lat0 = r.lon[0], r.lat[0]
    ax, ay = to_local(r.lon[ka], r.lat[ka], lon0, lat0)
    bx, by = to_local(r.lon[ka + 1], r.lat[ka + 1], lon0, lat0)
    cx, cy = to_local(S[kb, 1], S[kb, 2], lon0, lat0)
    ex, ey = to_local(S[kb, 5], S[kb, 6], lon0, lat0)
    # never closer than the two tracks themselves (time aside): an exact lower bound, cheap
    near = _segment_dist2(ax, ay, bx, by, cx, cy, ex, ey) <= minima.horizontal_m ** 2
    ka, kb, ax, ay, bx, by, cx, cy, ex, ey = (v[near] for v in (ka, kb, ax, ay, bx, by, cx, cy, ex, ey))
    da, db = r.t[ka + 1] - r.t[ka], S[kb, 8] - S[kb, 4]
    va = np.column_stack([(bx - ax) / da, (by - ay) / da])
    vb = np.column_stack([(ex - cx) / db, (ey - cy) / db])
    wa, wb = (r.alt[ka + 1] - r.alt[ka]) / da, (S[kb, 7] - S[kb, 3]) / db
    owners = index.seg_owner[kb]
    first: dict[int, tuple[int, float, float, float]] = {}  # owner -> its first conflicting pair
    for c0 in range(0, ka.size, 256):  # in our segment order; an owner already in conflict is done
        idx = np.arange(c0, min(c0 + 256, ka.size))
        if first:
            idx = idx[~np.isin(owners[idx], list(first))]
        if not idx.size:
            continue
        f, u, w = closest_approach(np.column_stack([ax[idx], ay[idx]]), va[idx], r.alt[ka[idx]], wa[idx],
                                   r.t[ka[idx]], da[idx], np.column_stack([cx[idx], cy[idx]]), vb[idx],
                                   S[kb[idx], 3], wb[idx], S[kb[idx], 4], db[idx], minima)
        for n in np.flatnonzero(f <= minima.horizontal_m ** 2).tolist():
            first.setdefault(int(owners[idx[n]]), (int(idx[n]), float(f[n]), float(u[n]), float(w[n])))
    reasons = []
    for owner, (p, fp, up, wp) in sorted(first.items(), key=lambda kv: (ka[kv[1][0]], kv[0])):
        other = index.clearances[owner]
        k = int(ka[p])
        s = float(up / da[p])
        their_t = float(S[kb[p], 4] + wp)
        theirs_alt = float(S[kb[p], 3] + wb[p] * wp)
        here = _points(zs, r, np.array([k]), np.array([s]))[0]
        here_t = here.pop("epoch")
        conflict = {"clearance_id": other.clearance_id, "uav_id": other.uav_id,
                    "their_segment": int(kb[p] - index.seg_first[owner]),
                    "horizontal_m": _round(math.sqrt(max(fp, 0.0))),
                    "vertical_m": _round(abs(here["alt_amsl"] - theirs_alt)),
                    "time_s": _round(abs(here_t - their_t)), "their_t": rfc3339(from_epoch(their_t)),
                    "minima": {"horizontal_m": minima.horizontal_m, "vertical_m": minima.vertical_m,
                               "time_s": minima.time_s}}
        reasons.append({
            "code": "separation_conflict", "zone_id": None, "zone_name": None, "segment": k, "waypoint": None,
            "entry": here, "exit": dict(here), "altitude": {"route_m": [here["alt_m"]] * 2, "route_alt_ref": r.alt_ref},
            "conflict": conflict,
            "message": f"segment {k} comes within {conflict['horizontal_m']:g} m horizontally and "
                       f"{conflict['vertical_m']:g} m vertically of clearance {other.clearance_id} "
                       f"(UAV {other.uav_id}) {conflict['time_s']:g} s apart at {_where(here)}"})
    return reasons


def _range_boxes(mlo: np.ndarray, mhi: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Min of mlo and max of mhi over rows lo..hi-1 for each query (a sparse table: O(1) a query)."""
    lows, highs = [mlo], [mhi]
    while (1 << len(lows)) <= len(mlo):
        h = 1 << (len(lows) - 1)
        lows.append(np.minimum(lows[-1][:-h], lows[-1][h:]))
        highs.append(np.maximum(highs[-1][:-h], highs[-1][h:]))
    n = np.maximum(hi - lo, 1)
    k = np.floor(np.log2(n)).astype(int)
    out_lo = np.full((lo.size, mlo.shape[1]), np.inf)
    out_hi = np.full((lo.size, mlo.shape[1]), -np.inf)
    valid = hi > lo
    for level in np.unique(k[valid]).tolist():
        m = valid & (k == level)
        a, b = lo[m], hi[m] - (1 << level)
        out_lo[m] = np.minimum(lows[level][a], lows[level][b])
        out_hi[m] = np.maximum(highs[level][a], highs[level][b])
    return out_lo, out_hi


def _segment_dist2(ax, ay, bx, by, cx, cy, ex, ey) -> np.ndarray:
    """Squared distance between segments a-b and c-e (planar, vectorized): 0 when they cross."""
    def point_seg(px, py, x0, y0, x1, y1):
        dx, dy = x1 - x0, y1 - y0
        L = dx * dx + dy * dy
        t = np.clip(((px - x0) * dx + (py - y0) * dy) / np.where(L > 0, L, 1.0), 0.0, 1.0)
        qx, qy = x0 + t * dx - px, y0 + t * dy - py
        return qx * qx + qy * qy

    d = np.minimum.reduce([point_seg(ax, ay, cx, cy, ex, ey), point_seg(bx, by, cx, cy, ex, ey),
                           point_seg(cx, cy, ax, ay, bx, by), point_seg(ex, ey, ax, ay, bx, by)])

    def side(x0, y0, x1, y1, px, py):
        return (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)

    cross = (side(ax, ay, bx, by, cx, cy) * side(ax, ay, bx, by, ex, ey) < 0) & (
        side(cx, cy, ex, ey, ax, ay) * side(cx, cy, ex, ey, bx, by) < 0)
    return np.where(cross, 0.0, d)


def _capacity(zs: ZoneSet, legs: list[dict], index: ApprovedIndex, capacity: int | None) -> list[dict]:
    out = []
    for leg in legs:
        zone = zs.get(leg["zone_id"])
        cap = zone.properties.get("capacity", capacity) if zone is not None else capacity
        if cap is None or leg["entry"]["epoch"] is None:
            continue
        n = index.occupancy(leg["zone_id"], leg["entry"]["epoch"], leg["exit"]["epoch"])
        if n + 1 > cap:
            entry = {k: v for k, v in leg["entry"].items() if k != "epoch"}
            exit_ = {k: v for k, v in leg["exit"].items() if k != "epoch"}
            out.append({"code": "corridor_capacity", "zone_id": zone.id, "zone_name": zone.name, "segment": None,
                        "waypoint": None, "entry": entry, "exit": exit_, "altitude": None,
                        "capacity": {"limit": cap, "approved": n},
                        "message": f"corridor {zone.id} ({zone.name}) already holds {n} approved flights "
                                   f"(limit {cap}) between {entry['t']} and {exit_['t']}"})
    return out


# ---------------------------------------------------------------------------------- entry
def check_route(zones: ZoneSet, waypoints: Sequence[Waypoint], alt_ref: str = "AGL", *, departure=None,
                speed_mps: float | None = None, uav_id: str | None = None, ua_class: str | None = None,
                approved: ApprovedIndex | Sequence[ApprovedClearance] | None = None,
                minima: SeparationMinima = SeparationMinima(), capacity: int | None = None,
                zone_states: Mapping[str, Mapping] | None = None, suggest: bool = True) -> ClearanceResult:
    """Approve the 4D route, or deny it with every reason (see the module docstring)."""
    r = _plan(zones, waypoints, alt_ref, departure, speed_mps)
    index = approved if isinstance(approved, ApprovedIndex) else ApprovedIndex(approved or ())
    result = _check(zones, r, uav_id, ua_class, index, minima, capacity, zone_states)
    if result.approved or not suggest:
        return result
    args = dict(uav_id=uav_id, ua_class=ua_class, index=index, minima=minima, capacity=capacity,
                zone_states=zone_states, outline=_outline_pieces(zones, _index(zones), r, ua_class))
    suggestions = _suggest_altitude(zones, r, result, args)
    if r.t is not None and all(x["code"] in TIME_CODES or _time_bound(zones, x) for x in result.reasons):
        suggestions += _suggest_departure(zones, r, args)
    return replace(result, suggestions=suggestions)


def _check(zs, r: _Route, uav_id, ua_class, index, minima, capacity, zone_states,
           outline: tuple | None = None) -> ClearanceResult:
    ix = _index(zs)
    hp = _horizontal_pieces(zs, ix, r, ua_class, outline=outline)
    p3 = _in_force(zs, r, *_band_pieces(zs, r, *hp))
    drafts, cleared = _zone_drafts(zs, ix, r, p3, hp, zone_states)
    reasons = _materialize(zs, r, drafts)
    legs = _legs(zs, r, cleared, ix)
    reasons += _separation(zs, r, index, minima, uav_id)
    reasons += _capacity(zs, legs, index, capacity)
    n = r.lon.size
    route = _points(zs, r, np.minimum(np.arange(n), n - 2), np.where(np.arange(n) == n - 1, 1.0, 0.0))
    zones_crossed = sorted({zs.zones[j].id for j in np.unique(cleared[1]).tolist()})
    return ClearanceResult("denied" if reasons else "approved", reasons, [], route, legs, zones_crossed)


def _time_bound(zs: ZoneSet, reason: dict) -> bool:
    """A zone reason that a later departure may clear: the zone has a schedule."""
    zone = zs.get(reason["zone_id"]) if reason.get("zone_id") else None
    return zone is not None and reason["code"] in ("restricted_zone", "above_ceiling") and \
        zone.schedule is not None


def _resubmit(zs: ZoneSet, r: _Route) -> list[dict]:
    out = []
    for k in range(r.lon.size):
        wp = {"lon": float(r.lon[k]), "lat": float(r.lat[k]),
              "alt_m": _round(zs.vertical.from_amsl(float(r.alt[k]), r.alt_ref))}
        if r.t is not None:
            wp["t"] = rfc3339(from_epoch(r.t[k]))
        out.append(wp)
    return out


def _suggest_altitude(zs: ZoneSet, r: _Route, result: ClearanceResult, args: dict) -> list[dict]:
    """A constant altitude inside a band clear of every limit the route's outline meets."""
    zones_met = np.unique(args["outline"][1])
    ground = float(zs.vertical.to_amsl(0.0, "AGL"))
    rule = getattr(zs.vertical, "ceiling_agl_m", None)
    top = float(zs.vertical.to_amsl(rule, "AGL")) if rule is not None else ground + 500.0
    limits = {ground + 10.0, top}
    for j in zones_met.tolist():
        for v in (zs.lower_amsl[j], zs.upper_amsl[j]):
            if np.isfinite(v) and ground + 10.0 < v < top:
                limits.add(float(v))
    edges = sorted(limits)
    mean = float(r.alt.mean())
    gaps = sorted(((a + b) / 2.0, a, b) for a, b in zip(edges[:-1], edges[1:]) if b - a > 2.0)
    for h, a, b in sorted(gaps, key=lambda g: abs(g[0] - mean))[:8]:
        h_ref = _round(zs.vertical.from_amsl(h, r.alt_ref))
        h = float(zs.vertical.to_amsl(h_ref, r.alt_ref))
        trial = replace(r, alt=np.full_like(r.alt, h))
        res = _check(zs, trial, args["uav_id"], args["ua_class"], args["index"], args["minima"],
                     args["capacity"], args["zone_states"], args["outline"])
        if res.approved:
            band = [_round(zs.vertical.from_amsl(a, r.alt_ref)), _round(zs.vertical.from_amsl(b, r.alt_ref))]
            return [{"kind": "altitude", "alt_m": h_ref, "alt_ref": r.alt_ref, "band": band,
                     "message": f"fly at {h_ref:g} m {r.alt_ref} (clear band {band[0]:g}-{band[1]:g} m)",
                     "waypoints": _resubmit(zs, trial)}]
    return []


def _suggest_departure(zs: ZoneSet, r: _Route, args: dict, horizon_s: float = 86_400.0) -> list[dict]:
    """The earliest later departure (1 s resolution) found that clears every reason."""
    def check(delay: float) -> ClearanceResult:
        return _check(zs, replace(r, t=r.t + delay, schedules={}), args["uav_id"], args["ua_class"], args["index"],
                      args["minima"], args["capacity"], args["zone_states"], args["outline"])

    lo, hi = 0.0, None
    delay = 0.0
    for _ in range(40):
        res = check(delay)
        if res.approved:
            hi = delay
            break
        if any(x["code"] not in TIME_CODES and not _time_bound(zs, x) for x in res.reasons):
            return []
        lo = delay
        delay = max(delay + 1.0, max(_needed_delay(zs, r, x, args) + delay for x in res.reasons))
        if delay > horizon_s:
            return []
    if hi is None:
        return []
    while hi - lo > 1.0:  # an earlier departure between the last refused and the first approved
        mid = math.floor((lo + hi) / 2.0)
        if mid <= lo:
            break
        if check(mid).approved:
            hi = float(mid)
        else:
            lo = float(mid)
    trial = replace(r, t=r.t + hi, schedules={})
    dep = rfc3339(from_epoch(trial.t[0]))
    return [{"kind": "departure", "departure": dep, "delay_s": hi,
             "message": f"depart at {dep} ({hi:g} s later)", "waypoints": _resubmit(zs, trial)}]


def _needed_delay(zs: ZoneSet, r: _Route, reason: dict, args: dict) -> float:
    """A delay after which this reason no longer holds at its place (sufficient, not minimal)."""
    code = reason["code"]
    entry_t = epoch_of(datetime.fromisoformat(reason["entry"]["t"].replace("Z", "+00:00"))) if (
        reason.get("entry") and reason["entry"].get("t")) else float(r.t[0])
    if code == "separation_conflict":
        other = next(c for c in args["index"].clearances if c.clearance_id == reason["conflict"]["clearance_id"])
        k = reason["segment"]
        return other.end + args["minima"].time_s - float(r.t[k]) + 1.0
    if code == "corridor_capacity":
        legs = args["index"].legs.get(reason["zone_id"], [])
        ends = [b for a, b, _ in legs if b >= entry_t]
        return (min(ends) - entry_t + 1.0) if ends else 1.0
    zone = zs.get(reason["zone_id"])
    sched = zone.schedule
    if sched is not None:
        iv = sched.intervals(entry_t, entry_t + 8 * 86_400.0)
        if iv:
            return iv[0][1] - entry_t + 1.0
    return 1.0
