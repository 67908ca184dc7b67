"""Strategic deconfliction reasons of a timed route against the approved clearances: separation conflicts
(closer than the 4D minima to another UAV's approved flight) and corridor capacity."""
from __future__ import annotations

import math

import numpy as np

from protocol.times import rfc3339

from .coords import M_PER_DEG_LAT, to_local
from .events import from_epoch
from .reasons import round3, route_points, where
from .route import Route
from .separation import ApprovedIndex, SeparationMinima, closest_approach
from .zones import ZoneSet


def separation_reasons(zs: ZoneSet, r: Route, index: ApprovedIndex, minima: SeparationMinima,
                       uav_id: str | None) -> list[dict]:
    """separation_conflict: the first place the route comes within the minima of each approved clearance
    (other UAVs' only), found exactly per segment pair (airspace.separation.closest_approach)."""
    if r.t is None or not len(index):
        return []
    env = (r.lon.min(), r.lat.min(), r.lon.max(), r.lat.max(), r.alt.min(), r.alt.max(), r.t[0], r.t[-1])
    cand = index.candidates(env, minima, uav_id)
    if not cand.size:
        return []
    segs = np.concatenate([np.arange(index.seg_first[k], index.seg_first[k + 1]) for k in cand.tolist()])
    se = index.seg_env[segs]
    dlat = minima.horizontal_m / M_PER_DEG_LAT
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
    starts = np.column_stack([r.lon[:-1], r.lat[:-1], r.alt[:-1]])
    ends = np.column_stack([r.lon[1:], r.lat[1:], r.alt[1:]])
    mlo, mhi = np.minimum(starts, ends), np.maximum(starts, ends)
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
        here = route_points(zs, r, np.array([k]), np.array([s]))[0]
        here_t = here.pop("epoch")
        conflict = {"clearance_id": other.clearance_id, "uav_id": other.uav_id,
                    "their_segment": int(kb[p] - index.seg_first[owner]),
                    "horizontal_m": round3(math.sqrt(max(fp, 0.0))),
                    "vertical_m": round3(abs(here["alt_amsl"] - theirs_alt)),
                    "time_s": round3(abs(here_t - their_t)), "their_t": rfc3339(from_epoch(their_t)),
                    "minima": {"horizontal_m": minima.horizontal_m, "vertical_m": minima.vertical_m,
                               "time_s": minima.time_s}}
        reasons.append({
            "code": "separation_conflict", "zone_id": None, "zone_name": None, "segment": k, "waypoint": None,
            "entry": here, "exit": dict(here), "altitude": {"route_m": [here["alt_m"]] * 2, "route_alt_ref": r.alt_ref},
            "conflict": conflict,
            "message": f"segment {k} comes within {conflict['horizontal_m']:g} m horizontally and "
                       f"{conflict['vertical_m']:g} m vertically of clearance {other.clearance_id} "
                       f"(UAV {other.uav_id}) {conflict['time_s']:g} s apart at {where(here)}"})
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


def capacity_reasons(zs: ZoneSet, legs: list[dict], index: ApprovedIndex, capacity: int | None) -> list[dict]:
    """corridor_capacity: a corridor leg during which the corridor already holds its limit of approved
    flights (the zone's `capacity` property, else `capacity`; None: no limit)."""
    out = []
    for leg in legs:
        zone = zs.get(leg["zone_id"])
        cap = zone.properties.get("capacity", capacity)
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

