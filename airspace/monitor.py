"""Stateful per-UAV airspace monitor: position fixes in, transition events out.

Pure: time arrives on each fix (its event time), never from a clock; link loss is decided from
gaps in a UAV's own fixes, or when `tick(watermark)` says event time has moved on.

Each batch is classified against every zone in one vectorized call (sparse (fix, zone) pairs),
and each tracked condition is a sorted array of keys `row * W + column` (airspace.latch), so
transitions are set differences between a row and the previous row of the same UAV; Python only
loops over the (rare) events and over UAVs holding a clearance. Conditions (start / end events):

- membership (zone_enter / zone_exit), debounced: entering is exact, leaving needs the position
  outside the volume by `exit_margin_m` horizontally or `exit_margin_vert_m` vertically, so a
  drone riding a boundary does not flood (hysteresis; same result however the stream is batched);
- no_fly_violation(_end): inside a PROHIBITED zone in force (not suspended), including a
  crossing between two fixes (airspace.between_fixes);
- altitude_violation(_end): above the top of a corridor/area band, above the true-height ceiling
  (VerticalModel.ceiling_agl_m, column `zone_id=None`), or below the floor of a corridor the
  flight is cleared for (outside a vertiport); ends only `exit_margin_vert_m` back inside;
- uncleared_flight(_end): airborne inside a zone that needs clearance (REQ_AUTHORISATION,
  CONDITIONAL, corridors) without an approved clearance covering it then, or while suspended;
- corridor_exit / corridor_return and route_deviation(_end): conformance to the approved clearance
  (airspace.conformance);
- link_lost / link_restored: an airborne UAV silent for `link_timeout_s` of event time;
- zone_suspended / zone_activated: a zone's state changed while the UAV was inside.

A UAV silent for `link_timeout_s + forget_after_s` of event time is forgotten (after its link_lost,
if airborne): its next fix starts afresh, exactly as a UAV never seen, so memory follows the UAVs
heard from recently, not every id ever seen. Both tick() and the gap before a UAV's next fix decide
it, so the events do not depend on where batches are cut.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import shapely

from .between_fixes import crossings, nofly_edges
from .conformance import Conformance, conformance
from .coords import to_local
from .events import AirspaceEvent, epoch_of, from_epoch, utc
from .fixes import RANK, Fix, FixBatch, UavState, build_batch, entry, lost_detail, make_event
from .latch import KeyLatch, in_sorted, sorted_unique
from .separation import ApprovedClearance
from .zones import ZoneSet

@dataclass(frozen=True)
class MonitorPolicy:
    """Tunables of the monitor (all in metres / seconds of event time)."""

    exit_margin_m: float = 10.0
    exit_margin_vert_m: float = 5.0
    link_timeout_s: float = 10.0
    airborne_agl_m: float = 1.0      # without a status, higher than this above ground is airborne
    require_clearance: bool = True   # raise uncleared_flight
    recover_fraction: float = 0.8
    forget_after_s: float = 3600.0   # silence after the link timeout before a UAV's state is dropped


class AirspaceMonitor:
    """Tracks every UAV against the zones (and its clearance) and emits transition events."""

    def __init__(self, zones: ZoneSet, policy: MonitorPolicy = MonitorPolicy()) -> None:
        self.policy = policy
        self._state: dict[str, UavState] = {}
        self._due = math.inf  # no state changes at tick() before this event time (see tick)
        self._clearances: dict[str, ApprovedClearance] = {}
        self._zone_state: dict[str, dict] = {}
        self._set_zones(zones)

    # ------------------------------------------------------------------------------- zone set
    def _set_zones(self, zones: ZoneSet) -> None:
        self.zones = zones
        n = len(zones)
        self.W = n + 1  # column n: "no zone" (the true-height ceiling)
        self._vertiport = zones.kinds == "vertiport"
        self._suspended = zones.suspended(self._zone_state)
        bounds = zones.bounds
        self._lat0 = float(bounds[:, [1, 3]].mean()) if n else 31.0
        self._lon0 = float(bounds[:, [0, 2]].mean()) if n else 121.0
        self._metric = np.array([shapely.transform(z.geometry, self._to_metric) for z in zones], dtype=object)
        shapely.prepare(self._metric)
        self._zone_names = [(z.id, {"zone_name": z.name, "zone_kind": z.kind}) for z in zones]
        self._ceiling_set: tuple | None = None  # (ZoneSet of the corridor/area zones, their columns)

    def _to_metric(self, xy: np.ndarray) -> np.ndarray:
        x, y = to_local(xy[:, 0], xy[:, 1], self._lon0, self._lat0)
        return np.column_stack([x, y])

    def prepare(self) -> None:
        """Build the zone indexes now rather than on the first batch (start-up, benchmarks)."""
        one = np.array([self._lon0]), np.array([self._lat0])
        self.zones.contains_pairs(*one, np.zeros(1), np.zeros(1))
        self._hpairs(*one, np.zeros(1))

    def replace_zones(self, zones: ZoneSet) -> None:
        """A new zone set (control/zones): per-UAV state is kept by zone id; vanished zones drop out."""
        old_ids = [z.id for z in self.zones]
        old_w = self.W
        self._set_zones(zones)
        remap = np.full(old_w, -1, dtype=np.int64)
        for j, zid in enumerate(old_ids):
            k = zones.position(zid)
            remap[j] = -1 if k is None else k
        remap[old_w - 1] = self.W - 1
        for st in self._state.values():
            for fam, cols in st.sets.items():
                new = remap[cols]
                st.sets[fam] = np.sort(new[new >= 0])
            st.corridor_out = {int(remap[j]) for j in st.corridor_out if remap[j] >= 0}

    # ------------------------------------------------------------------------ zone states
    def set_zone_state(self, zone_id: str, state: dict, at: datetime) -> list[AirspaceEvent]:
        """Apply {"state": "active"|"suspended", "reason", "by", ...} to a zone at event time `at`.

        UAVs whose latest position is inside the zone get zone_suspended / zone_activated (only
        when the state really changes); their conditions follow at their next fix.
        """
        before = self._zone_state.get(zone_id, {}).get("state", "active")
        self._zone_state[zone_id] = dict(state)
        j = self.zones.position(zone_id)
        if j is None:
            return []
        self._suspended = self.zones.suspended(self._zone_state)
        now = state.get("state", "active")
        if now == before:
            return []
        kind = "zone_suspended" if now == "suspended" else "zone_activated"
        zone = self.zones.zones[j]
        detail = {k: v for k, v in state.items() if k != "state"}
        detail.update(zone_name=zone.name, zone_kind=zone.kind, state=now)
        inside = sorted(u for u, st in self._state.items() if in_sorted(np.array([j]), st.sets["member"])[0])
        return [AirspaceEvent(kind, u, zone_id, utc(at), {**detail, "flights": inside}) for u in inside]

    # ------------------------------------------------------------------------ clearances
    def set_clearance(self, clearance: ApprovedClearance | None, uav_id: str | None = None) -> None:
        """The approved clearance a UAV flies under (None, or a clearance of another UAV id: none)."""
        uav = clearance.uav_id if clearance is not None else uav_id
        if clearance is None:
            self._clearances.pop(uav, None)
        else:
            self._clearances[uav] = clearance
        st = self._state.get(uav)
        if st is not None and clearance is None:
            st.corridor_out.clear()

    def clearance_of(self, uav_id: str) -> ApprovedClearance | None:
        return self._clearances.get(uav_id)

    # ------------------------------------------------------------------------------ input
    def process(self, fixes: Sequence[Fix]) -> list[AirspaceEvent]:
        """Apply a batch of fixes; return its events sorted by (ts, uav_id, kind rank, zone).

        Within the batch fixes are put in event-time order per UAV (a stable sort, so the
        batch is the reordering window); a fix older than the last one already applied for
        its UAV is late and ignored, since applying it would rewind that UAV's state.
        """
        return self.process_columns([f.uav_id for f in fixes], [f.ts for f in fixes],
                                    [f.lon for f in fixes], [f.lat for f in fixes],
                                    [f.alt_m for f in fixes], [f.alt_ref for f in fixes],
                                    [f.status for f in fixes])

    def process_columns(self, uav: Sequence[str], ts: Sequence[datetime], lon, lat, alt_m,
                        alt_ref: Sequence[str], status: Sequence[str | None]) -> list[AirspaceEvent]:
        """process() for already-validated columns (what the ingest pipeline has)."""
        n0 = len(uav)
        if not n0:
            return []
        t = np.fromiter((x.timestamp() for x in ts), float, n0)
        names, code = np.unique(np.asarray(uav, dtype=object), return_inverse=True)
        order = np.lexsort((t, code))  # by UAV id, then event time (stable: arrival order on ties)
        known = [self._state.get(u) for u in names.tolist()]
        last_t = np.array([s.t if s is not None else -np.inf for s in known])
        order = order[t[order] >= last_t[code[order]]]  # late fixes would rewind their UAV
        if not order.size:
            return []
        events: list[tuple] = []
        for part in self._lives(order, code[order], t):
            if part is not order:  # a later life: the states the earlier one left
                known = [self._state.get(u) for u in names.tolist()]
            b = build_batch(self.zones.vertical, self.policy.airborne_agl_m, part, code[part], known,
                            uav, ts, t, lon, lat, alt_m, alt_ref, status)
            events += self._forget_silent(b)
            events += self._run(b)
        events.sort(key=lambda e: e[0])
        return [e[1] for e in events]

    def _lives(self, order: np.ndarray, codes: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
        """The batch's rows (`order`: by UAV, then time) cut where a UAV was silent long enough to be
        forgotten: its rows after such a gap are applied after all the rows before it (UAVs are
        independent, so this is the order event time gives them)."""
        gap = np.zeros(order.size, bool)
        gap[1:] = (codes[1:] == codes[:-1]) & (np.diff(t[order]) > self.policy.link_timeout_s
                                               + self.policy.forget_after_s)
        if not gap.any():
            return [order]
        n_gaps = np.cumsum(gap)
        first = np.r_[True, codes[1:] != codes[:-1]]
        life = n_gaps - n_gaps[np.maximum.accumulate(np.where(first, np.arange(order.size), 0))]
        return [order[life == k] for k in range(int(life.max()) + 1)]

    def _forget_silent(self, b: FixBatch) -> list[tuple]:
        """UAVs back after more than link timeout + forget_after_s start afresh (as tick() would have
        left them): their link_lost if still due, no link_restored, no state carried over."""
        timeout = self.policy.link_timeout_s
        out = []
        for k, (i, st) in enumerate(zip(b.starts.tolist(), b.stored)):
            if st is None or not b.t[i] - st.t > timeout + self.policy.forget_after_s:
                continue
            if st.airborne and not st.lost:
                out.append(entry("link_lost", b.uav[i], None, from_epoch(st.t + timeout),
                                 lost_detail(st.t, timeout, st.lon, st.lat, st.alt_amsl), -1, i))
            b.stored[k] = None
        return out

    # ---------------------------------------------------------------------------- engine
    def _hpairs(self, lon, lat, t) -> tuple[np.ndarray, np.ndarray]:
        """Horizontal (fix, zone) pairs of the corridor/area zones in force at t (their own index)."""
        zs = self.zones
        if self._ceiling_set is None:
            idx = np.flatnonzero(zs.ceiling)
            self._ceiling_set = (ZoneSet([zs.zones[j] for j in idx], zs.vertical), idx)
        sub, idx = self._ceiling_set
        if not len(sub):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        p, z = sub.index.pairs(lon, lat, None, t)
        return p, idx[z]

    def _run(self, b: FixBatch) -> list[tuple]:
        """The batch's events as (sort key, event); stores each UAV's state after its last row."""
        W, n_z, pol = self.W, len(self.zones), self.policy
        zs = self.zones
        latch = KeyLatch(W, b.first, b.last, [(i, st.sets) for i, st in zip(b.starts.tolist(), b.stored)
                                              if st is not None])
        rows, cols = zs.contains_pairs(b.lon, b.lat, b.alt, b.t)
        raw_member = rows.astype(np.int64) * W + cols

        def member_hold(keys):
            r, c = keys // W, keys % W
            ok = (c < n_z)
            cc = np.minimum(c, n_z - 1)
            ok &= (b.alt[r] >= zs.lower_amsl[cc] - pol.exit_margin_vert_m)
            ok &= (b.alt[r] <= zs.upper_amsl[cc] + pol.exit_margin_vert_m)
            idx = np.flatnonzero(ok)
            ok[idx] = zs.in_force(b.t[r[idx]], zones=c[idx])
            idx = idx[ok[idx]]
            if idx.size:
                x, y = to_local(b.lon[r[idx]], b.lat[r[idx]], self._lon0, self._lat0)
                ok[idx] = shapely.dwithin(self._metric[c[idx]], shapely.points(x, y), pol.exit_margin_m)
            return ok

        member = latch.latch(raw_member, "member", member_hold)
        m_rows, m_cols = member // W, member % W

        # ceilings (corridor/area tops, the true-height rule) and cleared-corridor floors
        hr, hc = self._hpairs(b.lon, b.lat, b.t)
        hr = hr.astype(np.int64)
        keep = zs.ceiling[hc]
        hr, hc = hr[keep], hc[keep]
        top = zs.upper_amsl[hc]
        ceiling = zs.vertical.ceiling_amsl()
        vm = pol.exit_margin_vert_m
        # the true-height rule binds where no corridor/area band sets the ceiling
        free = np.ones(b.t.size, bool)
        free[hr] = False
        rows_all = np.flatnonzero(free).astype(np.int64)
        over_raw = np.concatenate([hr[b.alt[hr] > top] * W + hc[b.alt[hr] > top],
                                   rows_all[b.alt[rows_all] > ceiling] * W + n_z])
        over_hold = np.concatenate([hr[b.alt[hr] > top - vm] * W + hc[b.alt[hr] > top - vm],
                                    rows_all[b.alt[rows_all] > ceiling - vm] * W + n_z])
        cleared = self._cleared_keys(b)
        below_raw, below_hold = self._floors(b, hr, hc, member, cleared[1])
        alt_keys = latch.latch_explicit(np.concatenate([over_raw, below_raw]),
                                       np.concatenate([over_hold, below_hold]), "alt")

        mc = np.minimum(m_cols, n_z - 1)
        nofly = member[zs.prohibited[mc] & ~self._suspended[mc] & (m_cols < n_z)]
        uncleared = self._uncleared(b, member, m_rows, m_cols, cleared) if pol.require_clearance else member[:0]

        transitions = []
        for family, fam_keys, start, end in (("member", member, "zone_enter", "zone_exit"),
                                             ("nofly", nofly, "no_fly_violation", "no_fly_violation_end"),
                                             ("alt", alt_keys, "altitude_violation", "altitude_violation_end"),
                                             ("uncleared", uncleared, "uncleared_flight", "uncleared_flight_end")):
            on, off = latch.transitions(fam_keys, family)
            transitions += [(family, start, on), (family, end, off)]
        edges = nofly_edges(zs, b, [(kind, k) for fam, kind, ks in transitions if fam == "nofly"
                                    for k in ks.tolist()], W)
        names = self._zone_names
        out: list[tuple] = []
        for family, kind, ks in transitions:
            if family == "member":  # the common case, inlined
                rank = RANK[kind]
                for k in ks.tolist():
                    i, j = divmod(k, W)
                    detail = b.fix_detail(i)
                    detail.update(names[j][1])
                    out.append(((b.ts[i], b.uav[i], i, rank, j), make_event(kind, b.uav[i], names[j][0], b.ts[i],
                                                                            detail)))
                continue
            for k in ks.tolist():
                out.append(self._zone_event(b, kind, k // W, k % W, family, edges.get((kind, k))))
        out += crossings(zs, b, member, latch.previous("member"), self._suspended, W)
        out += self._links(b)
        conf = conformance(zs, b, member, W, self._clearances, (self._lon0, self._lat0), pol.recover_fraction)
        out += conf.events
        self._store(b, {"member": member, "nofly": nofly, "alt": alt_keys, "uncleared": uncleared}, conf)
        return out

    def _floors(self, b: FixBatch, hr, hc, member, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Below the floor of a corridor the UAV is cleared for (not at a vertiport), airborne."""
        W, n_z, vm = self.W, len(self.zones), self.policy.exit_margin_vert_m
        empty = np.zeros(0, np.int64)
        if not self._clearances:
            return empty, empty
        allowed = []
        for i in b.starts:
            c = self._clearances.get(b.uav[i])
            if c is None:
                continue
            legs = [self.zones.position(leg["zone_id"]) for leg in c.corridors]
            allowed += [(i, j) for j in legs if j is not None]
        if not allowed:
            return empty, empty
        # rows of a UAV share its first row's clearance: map every row to its first row
        first_of = b.first_of()
        ok_keys = sorted_unique(np.array([i * W + j for i, j in allowed], np.int64))
        sel = in_sorted(first_of[hr] * W + hc, ok_keys) & self.zones.corridor[hc] & b.airborne[hr] & window[hr]
        at_port = np.zeros(b.t.size, bool)
        mc = member % W
        port = mc < n_z
        port[port] = self._vertiport[mc[port]]
        at_port[member[port] // W] = True
        sel &= ~at_port[hr]
        r, c = hr[sel], hc[sel]
        low = self.zones.lower_amsl[c]
        raw = r[b.alt[r] < low] * W + c[b.alt[r] < low]
        hold = r[b.alt[r] < low + vm] * W + c[b.alt[r] < low + vm]
        return raw, hold

    def _cleared_keys(self, b: FixBatch) -> tuple[np.ndarray, np.ndarray]:
        """(zone keys each UAV's clearance allows, by its first row; rows inside their clearance window)."""
        W = self.W
        keys, window = [], np.zeros(b.t.size, bool)
        if not self._clearances:
            return np.zeros(0, np.int64), window
        for i, e, _ in b.groups():
            c = self._clearances.get(b.uav[i])
            if c is None:
                continue
            tol = c.tolerances.time_s
            window[i:e] = (b.t[i:e] >= c.start - tol) & (b.t[i:e] <= c.end + tol)
            for zid in c.zones:
                j = self.zones.position(zid)
                if j is not None:
                    keys.append(i * W + j)
        return sorted_unique(np.array(keys, np.int64)), window

    def _uncleared(self, b: FixBatch, member, m_rows, m_cols, cleared: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        n_z, W = len(self.zones), self.W
        c = np.minimum(m_cols, n_z - 1)
        need = (m_cols < n_z) & self.zones.needs_clearance[c] & b.airborne[m_rows]
        cand = member[need]
        if not cand.size:
            return cand
        r, cc = cand // W, cand % W
        allowed, window = cleared
        ok = in_sorted(b.first_of()[r] * W + cc, allowed) & window[r] & ~self._suspended[cc]
        return cand[~ok]

    # --------------------------------------------------------------------------- details
    def _zone_event(self, b: FixBatch, kind: str, i: int, j: int, family: str, edge=None) -> tuple:
        detail = b.fix_detail(i)
        zs = self.zones
        zone = zs.zones[j] if j < len(zs) else None
        if zone is not None:
            detail.update(zone_name=zone.name, zone_kind=zone.kind)
        if family == "alt":
            if zone is None:
                detail.update(rule="true_height_ceiling", upper_m=zs.vertical.ceiling_agl_m, zone_alt_ref="AGL",
                              upper_amsl=float(zs.vertical.ceiling_amsl()))
            else:  # which limit: judged at the fix that started it (for an end, the one before)
                alt = b.alt[i] if not kind.endswith("_end") else b.prev_points(np.array([i]))[0, 2]
                below = alt < zs.lower_amsl[j] + self.policy.exit_margin_vert_m and \
                    not alt > zs.upper_amsl[j] - self.policy.exit_margin_vert_m
                detail.update(rule="below_floor" if below else "above_ceiling")
        if family in ("alt", "nofly") and zone is not None:
            detail.update(band=[zone.lower_m, zone.upper_m], upper_m=zone.upper_m, lower_m=zone.lower_m,
                          zone_alt_ref=zone.alt_ref, upper_amsl=float(zs.upper_amsl[j]),
                          lower_amsl=float(zs.lower_amsl[j]))
        if edge is not None:
            detail[edge[0]] = edge[1]
        if family == "uncleared":
            clr = self._clearances.get(b.uav[i])
            detail["clearance_id"] = clr.clearance_id if clr else None
            detail["suspended"] = bool(self._suspended[j]) if zone is not None else False
        return entry(kind, b.uav[i], zone.id if zone else None, b.ts[i], detail, j, i)

    # -------------------------------------------------------------------------- link loss
    def _links(self, b: FixBatch) -> list[tuple]:
        timeout = self.policy.link_timeout_s
        prev_t = np.roll(b.t, 1)
        prev_air = np.roll(b.airborne, 1)
        lost = np.zeros(b.t.size, bool)
        for i, st in zip(b.starts.tolist(), b.stored):
            if st is None:
                prev_t[i], prev_air[i] = b.t[i], False
            else:
                prev_t[i], prev_air[i], lost[i] = st.t, st.airborne, st.lost
        gap = b.t - prev_t
        rows = np.flatnonzero(lost | (prev_air & (gap > timeout)))
        prev = b.prev_points(rows)
        out = []
        for n, i in enumerate(rows.tolist()):
            if not lost[i]:
                out.append(entry("link_lost", b.uav[i], None, from_epoch(prev_t[i] + timeout),
                                 lost_detail(prev_t[i], timeout, *prev[n, :3]), -1, i))
            out.append(entry("link_restored", b.uav[i], None, b.ts[i],
                             {**b.fix_detail(i), "silent_s": float(gap[i])}, -1, i))
        return out

    def tick(self, watermark: datetime | float) -> list[AirspaceEvent]:
        """Event time has reached `watermark` (e.g. the newest fix of any UAV): declare links lost,
        and forget the UAVs silent for link_timeout_s + forget_after_s.

        The event is stamped last fix + link_timeout_s, whenever it is noticed, so it is the
        same event (and id) that a later fix of the UAV would have produced from the gap.
        """
        wm = watermark if isinstance(watermark, (int, float)) else epoch_of(watermark)
        if wm <= self._due:  # nobody's link can be lost nor state forgotten yet: no scan (ticks come per batch)
            return []
        timeout = self.policy.link_timeout_s
        silent = timeout + self.policy.forget_after_s
        events, gone, due = [], [], math.inf
        for uav in sorted(self._state):
            st = self._state[uav]
            if st.airborne and not st.lost and wm - st.t > timeout:
                st.lost = True
                events.append(AirspaceEvent("link_lost", uav, None, from_epoch(st.t + timeout),
                                            lost_detail(st.t, timeout, st.lon, st.lat, st.alt_amsl)))
            if wm - st.t > silent:
                gone.append(uav)
            else:
                due = min(due, st.t + (timeout if st.airborne and not st.lost else silent))
        for uav in gone:
            self.forget(uav)
        self._due = due
        return sorted(events, key=lambda e: (e.ts, e.uav_id))

    # ------------------------------------------------------------------------------ state
    def _store(self, b: FixBatch, fams: dict[str, np.ndarray], conf: Conformance) -> None:
        W = self.W
        lasts = np.flatnonzero(b.last)
        bounds = {fam: np.searchsorted(keys, lasts * W) for fam, keys in fams.items()}
        ends = {fam: np.searchsorted(keys, (lasts + 1) * W) for fam, keys in fams.items()}
        for k, (i, old) in enumerate(zip(lasts.tolist(), b.stored)):
            uav = b.uav[i]
            sets = {fam: fams[fam][bounds[fam][k]:ends[fam][k]] % W for fam in fams}
            st = UavState(float(b.t[i]), b.ts[i], float(b.lon[i]), float(b.lat[i]), float(b.alt[i]),
                          bool(b.airborne[i]), sets)
            st.deviated = conf.deviated.get(uav, old.deviated if old else False)
            st.corridor_out = conf.corridor_out.get(uav, old.corridor_out if old else set())
            self._state[uav] = st
            self._due = min(self._due, st.t + self.policy.link_timeout_s)

    def tracked(self) -> int:
        """How many UAVs the monitor holds state for."""
        return len(self._state)

    # ----------------------------------------------------------------------------- views
    def zones_of(self, uav_id: str) -> list[str]:
        """Ids of the zones whose 3D volume holds the UAV (debounced membership)."""
        state = self._state.get(uav_id)
        return [] if state is None else [self.zones.zones[j].id for j in state.sets["member"].tolist()]

    def alerts_of(self, uav_id: str) -> list[str]:
        """Alert kinds open now for the UAV (in EVENT_KINDS order)."""
        st = self._state.get(uav_id)
        if st is None:
            return []
        active = [("no_fly_violation", st.sets["nofly"].size), ("altitude_violation", st.sets["alt"].size),
                  ("corridor_exit", bool(st.corridor_out)), ("route_deviation", st.deviated),
                  ("uncleared_flight", st.sets["uncleared"].size), ("link_lost", st.lost)]
        return [kind for kind, on in active if on]

    def last_ts(self, uav_id: str) -> datetime | None:
        """Event time of the UAV's latest applied fix (later fixes only move it forward)."""
        state = self._state.get(uav_id)
        return None if state is None else state.ts

    def forget(self, uav_id: str) -> None:
        """Drop the UAV's state; its next fix starts afresh."""
        self._state.pop(uav_id, None)
