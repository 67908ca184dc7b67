"""Route conformance of the UAVs flying under an approved clearance: route_deviation (outside the 4D
volume of the cleared route) and corridor_exit / corridor_return (left a cleared corridor away from
where the route says and from its planned exits).

Vectorized over every cleared UAV of a batch; returns the events and each UAV's state after the batch
(deviated or not, the corridors it is out of) for the monitor to store.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .coords import to_local
from .fixes import FixBatch, UavState, entry
from .latch import in_sorted
from .separation import ApprovedClearance
from .zones import ZoneSet

Group = tuple[int, int, ApprovedClearance, UavState | None]  # first row, end row, clearance, stored state


@dataclass
class Conformance:
    events: list[tuple] = field(default_factory=list)           # (sort key, event)
    deviated: dict[str, bool] = field(default_factory=dict)      # uav -> in route_deviation after the batch
    corridor_out: dict[str, set[int]] = field(default_factory=dict)  # uav -> corridors it is out of


def conformance(zs: ZoneSet, b: FixBatch, member: np.ndarray, W: int, clearances: dict[str, ApprovedClearance],
                origin: tuple[float, float], recover_fraction: float) -> Conformance:
    """route_deviation and corridor_exit for the UAVs flying under a clearance.

    Leaving a cleared corridor is a corridor_exit unless the flight is where its route says
    (within its 4D tolerances) or at one of the route's planned corridor exits. `member` are the
    batch's zone membership keys (row * W + zone); `origin` the (lon, lat) of the metric frame."""
    out = Conformance()
    if not clearances:
        return out
    groups: list[Group] = [(i0, i1, c, st) for i0, i1, st in b.groups()
                           if (c := clearances.get(b.uav[i0])) is not None]
    if not groups:
        return out
    scores = _deviations(b, groups, origin, recover_fraction, out)
    for i0, i1, c, st in groups:
        score = scores[i0:i1]
        legs: dict[int, list[dict]] = {}
        for leg in c.corridors:
            j = zs.position(leg["zone_id"])
            if j is not None:
                legs.setdefault(j, []).append(leg)
        if not legs:
            continue
        lo, hi = np.searchsorted(member, [i0 * W, i1 * W])
        js = np.array(sorted(legs), np.int64)
        grid = in_sorted((np.arange(i0, i1)[:, None] * W + js[None, :]).ravel(),
                         member[lo:hi]).reshape(i1 - i0, js.size)
        outside = set(st.corridor_out) if st else set()
        prev_in = {j for j in legs if st is not None and in_sorted(np.array([j]), st.sets["member"])[0]}
        for i in range(i0, i1):
            now_in = {int(j) for j in js[grid[i - i0]]}
            if now_in == prev_in and not (now_in & outside):
                continue
            for j in sorted(prev_in - now_in):
                if (score[i - i0] <= 1.0 or _planned_exit(b, i, legs[j], c) or not b.airborne[i]
                        or not c.start - c.tolerances.time_s <= b.t[i] <= c.end + c.tolerances.time_s):
                    continue
                outside.add(j)
                out.events.append(_corridor_event(zs, b, "corridor_exit", i, j, c))
            for j in sorted(now_in & outside):
                outside.discard(j)
                out.events.append(_corridor_event(zs, b, "corridor_return", i, j, c))
            prev_in = now_in
        out.corridor_out[b.uav[i0]] = outside
    return out


def _planned_exit(b: FixBatch, i: int, legs: list[dict], c: ApprovedClearance) -> bool:
    tol = c.tolerances
    for leg in legs:
        ex = leg["exit"]
        x, y = to_local(b.lon[i], b.lat[i], ex["lon"], ex["lat"])
        if float(np.hypot(x, y)) <= tol.lateral_m and abs(b.alt[i] - ex["alt_amsl"]) <= tol.vertical_m:
            return True
    return False


def _corridor_event(zs: ZoneSet, b: FixBatch, kind: str, i: int, j: int, c: ApprovedClearance) -> tuple:
    zone = zs.zones[j]
    detail = {**b.fix_detail(i), "zone_name": zone.name, "zone_kind": zone.kind, "clearance_id": c.clearance_id}
    return entry(kind, b.uav[i], zone.id, b.ts[i], detail, j, i)


def _deviations(b: FixBatch, groups: list[Group], origin: tuple[float, float], recover_fraction: float,
                out: Conformance) -> np.ndarray:
    """route_deviation transitions of every UAV flying under a clearance, vectorized over all of
    them; returns each row's conformance score (max of lateral / vertical / time offset over its
    tolerance, at the best-fitting route segment of its time; inf outside the clearance window)."""
    lon0, lat0 = origin
    n = b.t.size
    rows = np.concatenate([np.arange(i0, i1) for i0, i1, *_ in groups])
    code = np.concatenate([np.full(i1 - i0, q) for q, (i0, i1, *_) in enumerate(groups)])
    routes = [_route_arrays(c, lon0, lat0) for _, _, c, _ in groups]
    seg_code = np.concatenate([np.full(r[0].size - 1, q) for q, r in enumerate(routes)])
    X, Y, Z, T = (np.concatenate([r[k][:-1] for r in routes]) for k in range(4))
    X1, Y1, Z1, T1 = (np.concatenate([r[k][1:] for r in routes]) for k in range(4))
    tol = np.array([(c.tolerances.lateral_m, c.tolerances.vertical_m, c.tolerances.time_s)
                    for _, _, c, _ in groups])
    base = min(float(T.min()), float(b.t.min())) - float(tol[:, 2].max()) - 1.0
    span = max(float(T1.max()), float(b.t.max())) + float(tol[:, 2].max()) + 1.0 - base
    # a segment is a candidate while its time span grown by the time tolerance holds the fix
    key0 = seg_code * span + (T - tol[seg_code, 2] - base)
    key1 = seg_code * span + (T1 + tol[seg_code, 2] - base)
    key = code * span + (b.t[rows] - base)
    lo = np.searchsorted(key1, key, side="left")
    hi = np.searchsorted(key0, key, side="right")
    cnt = np.maximum(hi - lo, 0)
    pr = np.repeat(np.arange(rows.size), cnt)                      # pair -> index into rows
    ps = np.repeat(lo - np.cumsum(np.concatenate([[0], cnt[:-1]])), cnt) + np.arange(cnt.sum())
    ok = seg_code[ps] == code[pr]
    pr, ps = pr[ok], ps[ok]
    r = rows[pr]
    px, py = to_local(b.lon[r], b.lat[r], lon0, lat0)
    dx, dy, dz = X1[ps] - X[ps], Y1[ps] - Y[ps], Z1[ps] - Z[ps]
    len2 = dx * dx + dy * dy
    horiz = len2 > 1.0
    u_h = ((px - X[ps]) * dx + (py - Y[ps]) * dy) / np.where(horiz, len2, 1.0)
    u_v = (b.alt[r] - Z[ps]) / np.where(dz != 0, dz, 1.0)
    u = np.clip(np.where(horiz, u_h, np.where(dz != 0, u_v, 0.0)), 0.0, 1.0)
    lat_d = np.hypot(px - (X[ps] + u * dx), py - (Y[ps] + u * dy))
    vert_d = np.abs(b.alt[r] - (Z[ps] + u * dz))
    time_d = np.abs(b.t[r] - (T[ps] + u * (T1[ps] - T[ps])))
    tq = tol[code[pr]]
    sc = np.maximum.reduce([lat_d / tq[:, 0], vert_d / tq[:, 1], time_d / tq[:, 2]])
    order = np.lexsort((sc, pr))
    firsts = order[np.flatnonzero(np.r_[True, pr[order][1:] != pr[order][:-1]])] if pr.size else order
    best = np.full(rows.size, -1)
    best[pr[firsts]] = firsts
    score_r = np.full(rows.size, np.inf)
    score_r[best >= 0] = sc[best[best >= 0]]
    t_r = b.t[rows]
    c_start = np.array([c.start for _, _, c, _ in groups])[code]
    c_end = np.array([c.end for _, _, c, _ in groups])[code]
    window = (t_r >= c_start - tol[code, 2]) & (t_r <= c_end + tol[code, 2]) & b.airborne[rows]
    raw, hold = window & (score_r > 1.0), window & (score_r > recover_fraction)
    # latch per UAV: on at a raw row, on over the following held rows, carried from the last batch
    pos = np.arange(rows.size)
    g_start = np.maximum.accumulate(np.where(np.r_[True, code[1:] != code[:-1]], pos, 0))
    run_start = np.maximum.accumulate(np.where(~hold, pos, -1))
    last_raw = np.maximum.accumulate(np.where(raw, pos, -1))
    was = np.array([bool(st.deviated) if st else False for *_, st in groups])
    state = ((last_raw > run_start) & (last_raw >= g_start)) | (was[code] & (run_start < g_start))
    prev_state = np.r_[False, state[:-1]]
    first_of = g_start == pos
    prev_state[first_of] = was[code[first_of]]
    for k in np.flatnonzero(state != prev_state).tolist():
        i, now, c = int(rows[k]), bool(state[k]), groups[code[k]][2]
        t_ = c.tolerances
        detail = {**b.fix_detail(i), "clearance_id": c.clearance_id}
        if best[k] >= 0:
            p = best[k]
            vals = (float(lat_d[p]), float(vert_d[p]), float(time_d[p]))
            detail.update(lateral_m=vals[0], vertical_m=vals[1], time_s=vals[2],
                          tolerances={"lateral_m": t_.lateral_m, "vertical_m": t_.vertical_m, "time_s": t_.time_s},
                          exceeded=[name for name, v, lim in zip(("lateral", "vertical", "time"), vals,
                                                                (t_.lateral_m, t_.vertical_m, t_.time_s))
                                    if v > lim])
        out.events.append(entry("route_deviation" if now else "route_deviation_end", b.uav[i], None, b.ts[i],
                                detail, -1, i))
    ends = np.r_[np.flatnonzero(code[1:] != code[:-1]), rows.size - 1]
    for q, e in enumerate(ends.tolist()):
        out.deviated[b.uav[groups[q][0]]] = bool(state[e])
    scores = np.full(n, np.inf)
    scores[rows] = score_r
    return scores


def _route_arrays(c: ApprovedClearance, lon0: float, lat0: float) -> tuple[np.ndarray, ...]:
    """A clearance's waypoints as (x, y, alt_amsl, t) arrays in the monitor's metric frame."""
    x, y = to_local(np.asarray(c.lon), np.asarray(c.lat), lon0, lat0)
    return x, y, np.asarray(c.alt_amsl, float), np.asarray(c.t, float)
