"""Stateful per-UAV airspace monitor: position fixes in, transition events out.

Pure: time arrives on each fix (its event time), never from a clock; link loss is decided from
gaps in a UAV's own fixes, or when `tick(watermark)` says event time has moved on.

Each batch is classified against every zone in one vectorized call (sparse (fix, zone) pairs),
and each tracked condition is a sorted array of keys `row * W + column`, so transitions are set
differences between a row and the previous row of the same UAV; Python only loops over the
(rare) events and over UAVs holding a clearance. Conditions (start / end events):

- membership (zone_enter / zone_exit), debounced: entering is exact, leaving needs the position
  outside the volume by `exit_margin_m` horizontally or `exit_margin_vert_m` vertically, so a
  drone riding a boundary does not flood (hysteresis; same result however the stream is batched);
- no_fly_violation(_end): inside a PROHIBITED zone in force (not suspended), including a
  crossing between two fixes (segment checked in 3D, altitude and time interpolated);
- altitude_violation(_end): above the top of a corridor/area band, above the true-height ceiling
  (VerticalModel.ceiling_agl_m, column `zone_id=None`), or below the floor of a corridor the
  flight is cleared for (outside a vertiport); ends only `exit_margin_vert_m` back inside;
- uncleared_flight(_end): airborne inside a zone that needs clearance (REQ_AUTHORISATION,
  CONDITIONAL, corridors) without an approved clearance covering it then, or while suspended;
- corridor_exit / corridor_return: left a corridor it is cleared for away from a planned exit;
- route_deviation(_end): outside the 4D volume of its cleared route (lateral, vertical, time
  tolerances); ends within `recover_fraction` of them;
- link_lost / link_restored: an airborne UAV silent for `link_timeout_s` of event time;
- zone_suspended / zone_activated: a zone's state changed while the UAV was inside.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import shapely

from .coords import position_problem
from .events import AirspaceEvent, epoch_of, from_epoch, rfc3339, utc
from .separation import ApprovedClearance, to_local
from .clearance import band_interval, merge_intervals
from .vertical import ALT_REFS, normalize_ref
from .zones import CEILING_KINDS, ZoneSet

NEEDS_CLEARANCE = ("REQ_AUTHORISATION", "CONDITIONAL")
# within one fix: ends before starts, then the order of EVENT_KINDS pairs
RANK = {k: r for r, k in enumerate((
    "link_lost", "link_restored", "zone_exit", "no_fly_violation_end", "altitude_violation_end",
    "uncleared_flight_end", "corridor_return", "route_deviation_end", "zone_enter",
    "no_fly_violation", "altitude_violation", "uncleared_flight", "corridor_exit",
    "route_deviation", "zone_suspended", "zone_activated"))}


@dataclass(frozen=True)
class Fix:
    """One UAV position report. `ts` is its event time (normalised to UTC; naive refused)."""

    uav_id: str
    ts: datetime
    lon: float
    lat: float
    alt_m: float
    alt_ref: str = "AGL"
    status: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.uav_id, str) or not self.uav_id:
            raise ValueError(f"uav_id must be a non-empty string, got {self.uav_id!r}")
        if problem := position_problem(self.lon, self.lat, self.alt_m):
            raise ValueError(f"fix of {self.uav_id!r}: {problem}")
        object.__setattr__(self, "ts", utc(self.ts))
        object.__setattr__(self, "alt_ref", normalize_ref(self.alt_ref))


@dataclass(frozen=True)
class MonitorPolicy:
    """Tunables of the monitor (all in metres / seconds of event time)."""

    exit_margin_m: float = 10.0
    exit_margin_vert_m: float = 5.0
    link_timeout_s: float = 10.0
    airborne_agl_m: float = 1.0      # without a status, higher than this above ground is airborne
    require_clearance: bool = True   # raise uncleared_flight
    recover_fraction: float = 0.8


_FAMILIES = ("member", "nofly", "alt", "uncleared")


@dataclass
class _UavState:
    t: float
    ts: datetime
    lon: float
    lat: float
    alt_amsl: float
    airborne: bool
    sets: dict[str, np.ndarray]  # family -> sorted columns (zone index, or n_zones for no zone)
    deviated: bool = False
    lost: bool = False
    corridor_out: set[int] = field(default_factory=set)


@dataclass
class _Batch:
    uav: list[str]
    ts: list[datetime]
    t: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    alt: np.ndarray       # AMSL
    alt_m: np.ndarray     # as reported
    ref: list[str]
    status: list[str | None]
    airborne: np.ndarray
    first: np.ndarray     # first row of its UAV in the batch
    last: np.ndarray
    lists: tuple | None = None
    state_keys: dict = field(default_factory=dict)  # family -> stored state as keys (per batch)
    prev_keys: dict = field(default_factory=dict)   # family -> previous-row keys of the final sets
    cleared: tuple | None = None                     # _cleared_keys, once per batch
    prev: np.ndarray | None = None                   # _prev_points of every row, once per batch


def _in_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a[i] in b, for b sorted."""
    if b.size == 0 or a.size == 0:
        return np.zeros(a.size, dtype=bool)
    idx = np.minimum(np.searchsorted(b, a), b.size - 1)
    return b[idx] == a


def _event(kind: str, uav: str, zone_id: str | None, ts: datetime, detail: dict) -> AirspaceEvent:
    """An AirspaceEvent from values the monitor already validated (kind from RANK, ts aware UTC)."""
    ev = object.__new__(AirspaceEvent)
    for name, value in (("kind", kind), ("uav_id", uav), ("zone_id", zone_id), ("ts", ts), ("detail", detail)):
        object.__setattr__(ev, name, value)
    return ev


def _lost_detail(last_t: float, timeout: float, lon: float, lat: float, alt_amsl: float) -> dict:
    """The same detail whether the loss is noticed by tick() or by the gap before the next fix."""
    return {"last_fix": rfc3339(from_epoch(last_t)), "timeout_s": timeout, "lon": float(lon), "lat": float(lat),
            "alt_amsl": float(alt_amsl)}


def _as_utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is timezone.utc else utc(ts)


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique for int keys without its hashing path (sort, then drop repeats)."""
    if a.size < 2:
        return a.copy()
    a = np.sort(a, kind="stable")  # timsort: linear on a few sorted runs
    keep = np.empty(a.size, bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


class AirspaceMonitor:
    """Tracks every UAV against the zones (and its clearance) and emits transition events."""

    def __init__(self, zones: ZoneSet, policy: MonitorPolicy = MonitorPolicy()) -> None:
        self.policy = policy
        self._state: dict[str, _UavState] = {}
        self._clearances: dict[str, ApprovedClearance] = {}
        self._zone_state: dict[str, dict] = {}
        self._deviated_next: dict[str, bool] = {}
        self._corridor_out_next: dict[str, set[int]] = {}
        self._set_zones(zones)

    # ------------------------------------------------------------------------------- zone set
    def _set_zones(self, zones: ZoneSet) -> None:
        self.zones = zones
        n = len(zones)
        self.W = n + 1  # column n: "no zone" (the true-height ceiling)
        restr = np.array([z.restriction for z in zones], dtype=object)
        self._prohibited = restr == "PROHIBITED"
        self._needs_clear = np.isin(restr, NEEDS_CLEARANCE) | (zones.kinds == "corridor")
        self._ceiling = np.isin(zones.kinds, CEILING_KINDS)
        self._corridor = zones.kinds == "corridor"
        self._vertiport = zones.kinds == "vertiport"
        self._scheduled = [j for j, z in enumerate(zones) if z.schedule is not None]
        self._sched_set = set(self._scheduled)
        self._suspended = np.array([self._zone_state.get(z.id, {}).get("state") == "suspended"
                                    for z in zones], dtype=bool)
        bounds = np.array([z.geometry.bounds for z in zones], float).reshape(-1, 4)
        self._bounds = bounds
        self._lat0 = float(bounds[:, [1, 3]].mean()) if n else 31.0
        self._lon0 = float(bounds[:, [0, 2]].mean()) if n else 121.0
        self._metric = np.array([shapely.transform(z.geometry, self._to_metric) for z in zones], dtype=object)
        shapely.prepare(self._metric)
        self._geoms = np.array([z.geometry for z in zones], dtype=object)
        self._nofly_idx = np.flatnonzero(self._prohibited)
        self._zone_names = [(z.id, {"zone_name": z.name, "zone_kind": z.kind}) for z in zones]
        self._ceiling_set: tuple | None = None  # (ZoneSet of the corridor/area zones, their columns)

    def _to_metric(self, xy: np.ndarray) -> np.ndarray:
        x, y = to_local(xy[:, 0], xy[:, 1], self._lon0, self._lat0)
        return np.column_stack([x, y])

    def prepare(self) -> None:
        """Build the zone indexes now rather than on the first batch (start-up, benchmarks)."""
        one = np.array([self._lon0]), np.array([self._lat0])
        self._pairs(*one, np.zeros(1), np.zeros(1))
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
        self._suspended[j] = state.get("state") == "suspended"
        now = state.get("state", "active")
        if now == before:
            return []
        kind = "zone_suspended" if now == "suspended" else "zone_activated"
        zone = self.zones.zones[j]
        detail = {k: v for k, v in state.items() if k != "state"}
        detail.update(zone_name=zone.name, zone_kind=zone.kind, state=now)
        inside = sorted(u for u, st in self._state.items() if _in_sorted(np.array([j]), st.sets["member"])[0])
        return [AirspaceEvent(kind, u, zone_id, utc(at), {**detail, "flights": inside}) for u in inside]

    def zone_states(self) -> dict[str, dict]:
        return {k: dict(v) for k, v in self._zone_state.items()}

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
        last_t = np.array([s.t if (s := self._state.get(u)) is not None else -np.inf for u in names.tolist()])
        order = order[t[order] >= last_t[code[order]]]  # late fixes would rewind their UAV
        if not order.size:
            return []
        b = self._batch(order, code[order], uav, ts, t, lon, lat, alt_m, alt_ref, status)
        events: list[tuple] = []
        self._run(b, events)
        events.sort(key=lambda e: e[0])
        return [e[1] for e in events]

    def _batch(self, idx: np.ndarray, codes: np.ndarray, uav, ts, t, lon, lat, alt_m, alt_ref, status) -> _Batch:
        keep = idx.tolist()
        n = idx.size
        u = [uav[i] for i in keep]
        alt_raw = np.asarray(alt_m, float)[idx]
        lon_a, lat_a = np.asarray(lon, float)[idx], np.asarray(lat, float)[idx]
        refs = np.array([alt_ref[i] for i in keep], dtype=object)
        alt = alt_raw.copy()
        for ref in ALT_REFS:
            m = refs == ref
            if m.any():
                alt[m] = self.zones.vertical.to_amsl(alt_raw[m], ref)
        stat = [status[i] for i in keep]
        st_arr = np.array([s or "" for s in stat], dtype=object)
        ground = self.zones.vertical.to_amsl(0.0, "AGL")
        airborne = (st_arr != "Ground") & (np.isin(st_arr, ("Airborne", "Emergency"))
                                           | (alt - ground > self.policy.airborne_agl_m))
        first = np.ones(n, bool)
        first[1:] = codes[1:] != codes[:-1]
        last = np.append(first[1:], True)
        return _Batch(u, [_as_utc(ts[i]) for i in keep], t[idx], lon_a, lat_a, alt, alt_raw, list(refs), stat,
                      airborne, first, last)

    # ---------------------------------------------------------------------------- engine
    def _state_keys(self, b: _Batch, family: str) -> np.ndarray:
        """Stored state of each UAV's first row in the batch, as keys of that row (sorted)."""
        cached = b.state_keys.get(family)
        if cached is not None:
            return cached
        W = self.W
        parts = [i * W + st.sets[family] for i in np.flatnonzero(b.first).tolist()
                 if (st := self._state.get(b.uav[i])) is not None and st.sets[family].size]
        b.state_keys[family] = out = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return out

    def _prev_keys(self, b: _Batch, keys: np.ndarray, family: str) -> np.ndarray:
        """Keys of each row's previous state: the row before (same UAV) or the stored state."""
        W = self.W
        shifted = keys[~b.last[keys // W]] + W
        first = self._state_keys(b, family)
        return np.sort(np.concatenate([shifted, first]), kind="stable") if first.size else shifted

    def _latch(self, b: _Batch, raw: np.ndarray, family: str, hold) -> np.ndarray:
        """Debounce with a lazily computed hold: a key stays on while hold(candidates) says so."""
        W = self.W
        D = _sorted_unique(raw)
        held_all: list[np.ndarray] = []
        cand = np.concatenate([D[~b.last[D // W]] + W, self._state_keys(b, family)])
        while cand.size:
            cand = _sorted_unique(cand)
            cand = cand[~_in_sorted(cand, D)]
            if held_all:
                cand = cand[~_in_sorted(cand, np.sort(np.concatenate(held_all), kind="stable"))]
            if not cand.size:
                break
            held = cand[hold(cand)]
            held_all.append(held)
            cand = held[~b.last[held // W]] + W
        return np.sort(np.concatenate([D, *held_all]), kind="stable") if held_all else D

    def _latch_explicit(self, b: _Batch, raw: np.ndarray, hold: np.ndarray, family: str) -> np.ndarray:
        """Debounce with an explicit hold set (raw within it): vectorized over runs of rows.

        A key is on when it is raw, or held and the same column was on at the UAV's previous row.
        """
        W = self.W
        H = _sorted_unique(np.concatenate([raw, hold]))
        if not H.size:
            return H
        rows, cols = H // W, H % W
        order = np.lexsort((rows, cols))
        r, c = rows[order], cols[order]
        new_run = np.ones(r.size, bool)
        new_run[1:] = (c[1:] != c[:-1]) | (r[1:] != r[:-1] + 1) | b.first[r[1:]]
        seed = _in_sorted(H[order], _sorted_unique(raw))
        seed |= new_run & _in_sorted(H[order], self._prev_keys(b, raw[:0], family)) & b.first[r]
        pos = np.arange(r.size)
        run_start = np.maximum.accumulate(np.where(new_run, pos, 0))
        last_seed = np.maximum.accumulate(np.where(seed, pos, -1))
        on = last_seed >= run_start
        return np.sort(H[order][on], kind="stable")

    def _transitions(self, b: _Batch, keys: np.ndarray, family: str) -> tuple[np.ndarray, np.ndarray]:
        prev = b.prev_keys[family] = self._prev_keys(b, keys, family)
        return keys[~_in_sorted(keys, prev)], prev[~_in_sorted(prev, keys)]

    def _pairs(self, lon, lat, alt, t) -> tuple[np.ndarray, np.ndarray]:
        return self.zones.contains_pairs(lon, lat, alt, t)

    def _hpairs(self, lon, lat, t) -> tuple[np.ndarray, np.ndarray]:
        """Horizontal (fix, zone) pairs of the corridor/area zones in force at t (their own index)."""
        zs = self.zones
        if self._ceiling_set is None:
            idx = np.flatnonzero(self._ceiling)
            self._ceiling_set = (ZoneSet([zs.zones[j] for j in idx], zs.vertical), idx)
        sub, idx = self._ceiling_set
        if not len(sub):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        p, z = sub.index.pairs(lon, lat, None, t)
        return p, idx[z]

    def _active(self, t: np.ndarray, cols: np.ndarray) -> np.ndarray:
        ok = np.ones(t.size, bool)
        if not self._scheduled or not cols.size:
            return ok
        for j in np.intersect1d(cols, self._scheduled).tolist():
            m = cols == j
            ok[m] = self.zones.zones[j].schedule.active(t[m])
        return ok

    def _run(self, b: _Batch, out: list) -> None:
        W, n_z, pol = self.W, len(self.zones), self.policy
        zs = self.zones
        rows, cols = self._pairs(b.lon, b.lat, b.alt, b.t)
        raw_member = rows.astype(np.int64) * W + cols

        def member_hold(keys):
            r, c = keys // W, keys % W
            ok = (c < n_z)
            cc = np.minimum(c, n_z - 1)
            ok &= (b.alt[r] >= zs.lower_amsl[cc] - pol.exit_margin_vert_m)
            ok &= (b.alt[r] <= zs.upper_amsl[cc] + pol.exit_margin_vert_m)
            ok &= self._active(b.t[r], c)
            idx = np.flatnonzero(ok)
            if idx.size:
                x, y = to_local(b.lon[r[idx]], b.lat[r[idx]], self._lon0, self._lat0)
                ok[idx] = shapely.dwithin(self._metric[c[idx]], shapely.points(x, y), pol.exit_margin_m)
            return ok

        member = self._latch(b, raw_member, "member", member_hold)
        m_rows, m_cols = member // W, member % W

        # ceilings (corridor/area tops, the true-height rule) and cleared-corridor floors
        hr, hc = self._hpairs(b.lon, b.lat, b.t)
        hr = hr.astype(np.int64)
        keep = self._ceiling[hc]
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
        below_raw, below_hold = self._floors(b, hr, hc, member)
        alt_keys = self._latch_explicit(b, np.concatenate([over_raw, below_raw]),
                                        np.concatenate([over_hold, below_hold]), "alt")

        mc = np.minimum(m_cols, n_z - 1)
        nofly = member[self._prohibited[mc] & ~self._suspended[mc] & (m_cols < n_z)]
        uncleared = self._uncleared(b, member, m_rows, m_cols) if pol.require_clearance else member[:0]

        transitions = []
        for family, keys, start, end in (("member", member, "zone_enter", "zone_exit"),
                                         ("nofly", nofly, "no_fly_violation", "no_fly_violation_end"),
                                         ("alt", alt_keys, "altitude_violation", "altitude_violation_end"),
                                         ("uncleared", uncleared, "uncleared_flight", "uncleared_flight_end")):
            on, off = self._transitions(b, keys, family)
            transitions += [(family, start, on), (family, end, off)]
        edges = self._nofly_edges(b, transitions)
        names = self._zone_names
        for family, kind, ks in transitions:
            if family == "member":  # the common case, inlined
                rank = RANK[kind]
                for k in ks.tolist():
                    i, j = divmod(k, W)
                    detail = self._fix_detail(b, i)
                    detail.update(names[j][1])
                    out.append(((b.ts[i], b.uav[i], i, rank, j), _event(kind, b.uav[i], names[j][0], b.ts[i], detail)))
                continue
            for k in ks.tolist():
                out.append(self._zone_event(b, kind, k // W, k % W, family, edges.get((kind, k))))
        self._crossings(b, member, out)
        self._links(b, out)
        self._conformance(b, member, out)
        self._store(b, {"member": member, "nofly": nofly, "alt": alt_keys, "uncleared": uncleared})

    def _nofly_edges(self, b: _Batch, transitions) -> dict:
        """Exact entry / exit points of the no-fly starts and ends, from the segment to the fix."""
        todo = [(kind, k) for fam, kind, ks in transitions if fam == "nofly" for k in ks.tolist()]
        if not todo:
            return {}
        W = self.W
        rows = np.array([k // W for _, k in todo])
        cols = np.array([k % W for _, k in todo])
        prev = self._prev_points(b, rows)
        has = ~np.isnan(prev[:, 0])
        out = {}
        if not has.any():
            return out
        p0 = prev[has]
        r, c = rows[has], cols[has]
        p1 = np.column_stack([b.lon[r], b.lat[r], b.alt[r], b.t[r]])
        pieces = self._segment_pieces_many(c, p0, p1)
        for n, (kind, k) in enumerate(t for t, h in zip(todo, has) if h):
            if not pieces[n]:
                continue
            entering = kind == "no_fly_violation"
            s = pieces[n][0][0] if entering else pieces[n][-1][1]
            out[(kind, k)] = ("entry" if entering else "exit", self._interp(p0[n], p1[n], s))
        return out

    def _floors(self, b: _Batch, hr, hc, member) -> tuple[np.ndarray, np.ndarray]:
        """Below the floor of a corridor the UAV is cleared for (not at a vertiport), airborne."""
        W, n_z, vm = self.W, len(self.zones), self.policy.exit_margin_vert_m
        empty = np.zeros(0, np.int64)
        if not self._clearances:
            return empty, empty
        allowed = []
        for i in np.flatnonzero(b.first):
            c = self._clearances.get(b.uav[i])
            if c is None:
                continue
            legs = [self.zones.position(leg["zone_id"]) for leg in c.corridors]
            allowed += [(i, j) for j in legs if j is not None]
        if not allowed:
            return empty, empty
        # rows of a UAV share its first row's clearance: map every row to its first row
        first_of = np.maximum.accumulate(np.where(b.first, np.arange(b.t.size), 0))
        ok_keys = _sorted_unique(np.array([i * W + j for i, j in allowed], np.int64))
        _, window = self._cleared_keys(b)
        sel = _in_sorted(first_of[hr] * W + hc, ok_keys) & self._corridor[hc] & b.airborne[hr] & window[hr]
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

    def _cleared_keys(self, b: _Batch) -> tuple[np.ndarray, np.ndarray]:
        """(allowed zone keys by each UAV's first row, clearance window holds per row)."""
        if b.cleared is not None:
            return b.cleared
        W = self.W
        keys, window = [], np.zeros(b.t.size, bool)
        starts = np.flatnonzero(b.first)
        ends = np.append(starts[1:], b.t.size)
        for i, e in zip(starts, ends):
            c = self._clearances.get(b.uav[i])
            if c is None:
                continue
            tol = c.tolerances.time_s
            window[i:e] = (b.t[i:e] >= c.start - tol) & (b.t[i:e] <= c.end + tol)
            for zid in c.zones:
                j = self.zones.position(zid)
                if j is not None:
                    keys.append(i * W + j)
        b.cleared = (_sorted_unique(np.array(keys, np.int64)), window)
        return b.cleared

    def _uncleared(self, b: _Batch, member, m_rows, m_cols) -> np.ndarray:
        n_z, W = len(self.zones), self.W
        c = np.minimum(m_cols, n_z - 1)
        need = (m_cols < n_z) & self._needs_clear[c] & b.airborne[m_rows]
        cand = member[need]
        if not cand.size:
            return cand
        r, cc = cand // W, cand % W
        allowed, window = self._cleared_keys(b)
        first_of = np.maximum.accumulate(np.where(b.first, np.arange(b.t.size), 0))
        cleared = _in_sorted(first_of[r] * W + cc, allowed) & window[r] & ~self._suspended[cc]
        return cand[~cleared]

    # --------------------------------------------------------------------------- details
    def _fix_detail(self, b: _Batch, i: int) -> dict:
        if b.lists is None:  # python floats once per batch, not once per event
            b.lists = (b.lon.tolist(), b.lat.tolist(), b.alt_m.tolist(), b.alt.tolist())
        lon, lat, alt_m, alt = b.lists
        return {"lon": lon[i], "lat": lat[i], "alt_m": alt_m[i], "alt_ref": b.ref[i], "alt_amsl": alt[i],
                "status": b.status[i]}

    def _zone_event(self, b: _Batch, kind: str, i: int, j: int, family: str, edge=None) -> tuple:
        detail = self._fix_detail(b, i)
        zone = self.zones.zones[j] if j < len(self.zones) else None
        if zone is not None:
            detail.update(zone_name=zone.name, zone_kind=zone.kind)
        if family == "alt":
            if zone is None:
                ceiling = self.zones.vertical.ceiling_agl_m
                detail.update(rule="true_height_ceiling", upper_m=ceiling, zone_alt_ref="AGL",
                              upper_amsl=float(self.zones.vertical.ceiling_amsl()))
            else:  # which limit: judged at the fix that started it (for an end, the one before)
                alt = b.alt[i] if not kind.endswith("_end") else self._prev_points(b, np.array([i]))[0, 2]
                below = alt < self.zones.lower_amsl[j] + self.policy.exit_margin_vert_m and \
                    not alt > self.zones.upper_amsl[j] - self.policy.exit_margin_vert_m
                detail.update(rule="below_floor" if below else "above_ceiling")
        if family in ("alt", "nofly") and zone is not None:
            detail.update(band=[zone.lower_m, zone.upper_m], upper_m=zone.upper_m, lower_m=zone.lower_m,
                          zone_alt_ref=zone.alt_ref, upper_amsl=float(self.zones.upper_amsl[j]),
                          lower_amsl=float(self.zones.lower_amsl[j]))
        if edge is not None:
            detail[edge[0]] = edge[1]
        if family == "uncleared":
            clr = self._clearances.get(b.uav[i])
            detail["clearance_id"] = clr.clearance_id if clr else None
            detail["suspended"] = bool(self._suspended[j]) if zone is not None else False
        return self._ev(kind, b.uav[i], zone.id if zone else None, b.ts[i], detail, j, i)

    def _ev(self, kind, uav, zone_id, ts: datetime, detail, order: int, row: int) -> tuple:
        """(sort key, event): by time, UAV, fix, then ends before starts (a total, batch-free order)."""
        return ((ts, uav, row, RANK[kind], order), _event(kind, uav, zone_id, ts, detail))

    def _prev_points(self, b: _Batch, rows: np.ndarray) -> np.ndarray:
        """(lon, lat, alt_amsl, t) of the fix before each row (NaN when the UAV had none)."""
        if b.prev is None:
            b.prev = self._prev_all(b)
        return b.prev[rows]

    def _prev_all(self, b: _Batch) -> np.ndarray:
        rows = np.arange(b.t.size)
        out = np.full((rows.size, 4), np.nan)
        inner = ~b.first[rows]
        r = rows[inner] - 1
        out[inner] = np.column_stack([b.lon[r], b.lat[r], b.alt[r], b.t[r]])
        for n in np.flatnonzero(~inner).tolist():
            st = self._state.get(b.uav[rows[n]])
            if st is not None:
                out[n] = (st.lon, st.lat, st.alt_amsl, st.t)
        return out

    @staticmethod
    def _interp(p0, p1, s: float) -> dict:
        lon, lat, alt, t = (float(a + (c - a) * s) for a, c in zip(p0, p1))
        return {"lon": lon, "lat": lat, "alt_amsl": alt, "ts": rfc3339(from_epoch(t)), "t": t}

    def _segment_pieces_many(self, cols: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> list[list[tuple]]:
        """For each (zone, segment p0 -> p1): parameter intervals inside the zone in 3D (GEOS, vectorized)."""
        zs = self.zones
        lines = shapely.linestrings(np.stack([p0[:, :2], p1[:, :2]], axis=1))
        same = (p0[:, 0] == p1[:, 0]) & (p0[:, 1] == p1[:, 1])
        inter = shapely.intersection(self._geoms[cols], lines)
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

    # --------------------------------------------------------------------- between fixes
    def _crossings(self, b: _Batch, member: np.ndarray, out: list) -> None:
        """Restricted zones crossed between two fixes whose both ends are outside them."""
        zi = self._nofly_idx[~self._suspended[self._nofly_idx]] if self._nofly_idx.size else self._nofly_idx
        if not zi.size:
            return
        prev = self._prev_points(b, np.arange(b.t.size))
        rows = np.flatnonzero(~np.isnan(prev[:, 0]) & ((prev[:, 0] != b.lon) | (prev[:, 1] != b.lat)))
        if not rows.size:
            return
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
            bx0, by0, bx1, by1 = self._bounds[j]
            lo, hi = np.searchsorted(xs, [bx0 - span, bx1], side="left")[0], np.searchsorted(xs, bx1, side="right")
            if hi <= lo:
                continue
            cand = order[lo:hi]
            ok = ((x1[cand] >= bx0) & (y0[cand] <= by1) & (y1[cand] >= by0)
                  & (a1[cand] >= self.zones.lower_amsl[j]) & (a0[cand] <= self.zones.upper_amsl[j]))
            if ok.any():
                rs.append(cand[ok])
                zs_.append(np.full(int(ok.sum()), j))
        if not rs:
            return
        r, j = rows[np.concatenate(rs)], np.concatenate(zs_)
        W = self.W
        prev_member = b.prev_keys.get("member")
        if prev_member is None:
            prev_member = self._prev_keys(b, member, "member")
        sel = ~_in_sorted(r * W + j, member) & ~_in_sorted(r * W + j, prev_member)
        r, j = r[sel], j[sel]
        if not r.size:
            return
        p0 = prev[r]
        p1 = np.column_stack([b.lon[r], b.lat[r], b.alt[r], b.t[r]])
        if self._scheduled:  # in force at some time of the segment (exact, schedules as intervals)
            ok = self._active(p0[:, 3], j) | self._active(p1[:, 3], j)
            for zj in np.intersect1d(j[~ok], self._scheduled).tolist():
                m = np.flatnonzero(~ok & (j == zj))
                ivs = np.array(self.zones.zones[zj].schedule.intervals(float(p0[m, 3].min()), float(p1[m, 3].max())))
                if ivs.size:
                    k = np.searchsorted(ivs[:, 1], p0[m, 3], side="right")
                    k = np.minimum(k, len(ivs) - 1)
                    ok[m] = (ivs[k, 0] < p1[m, 3]) & (ivs[k, 1] > p0[m, 3])
            r, j, p0, p1 = r[ok], j[ok], p0[ok], p1[ok]
            if not r.size:
                return
        lines = shapely.linestrings(np.stack([p0[:, :2], p1[:, :2]], axis=1))
        touch = shapely.intersects(self._geoms[j], lines)
        if not touch.any():
            return
        r, j, p0, p1 = r[touch], j[touch], p0[touch], p1[touch]
        for n, pieces in enumerate(self._segment_pieces_many(j, p0, p1)):
            i, zj = int(r[n]), int(j[n])
            zone = self.zones.zones[zj]
            for s0, s1 in pieces:
                e0, e1 = self._interp(p0[n], p1[n], s0), self._interp(p0[n], p1[n], s1)
                if zj in self._sched_set and not self._in_force_between(zj, e0["t"], e1["t"]):
                    continue
                base = {"between_fixes": True, "entry": e0, "exit": e1, "zone_name": zone.name,
                        "zone_kind": zone.kind, "band": [zone.lower_m, zone.upper_m], "zone_alt_ref": zone.alt_ref,
                        "from_fix": rfc3339(from_epoch(p0[n, 3])), "to_fix": rfc3339(b.ts[i])}
                t_in, t_out = from_epoch(e0["t"]), from_epoch(e1["t"])
                for kind, ts, pt in (("zone_enter", t_in, e0), ("no_fly_violation", t_in, e0),
                                     ("zone_exit", t_out, e1), ("no_fly_violation_end", t_out, e1)):
                    detail = {**base, "lon": pt["lon"], "lat": pt["lat"], "alt_amsl": pt["alt_amsl"]}
                    out.append(self._ev(kind, b.uav[i], zone.id, ts, detail, zj, i))

    def _in_force_between(self, j: int, t0: float, t1: float) -> bool:
        sched = self.zones.zones[j].schedule
        return bool(sched.intervals(t0, t1)) if t1 > t0 else bool(sched.active(t0))

    # -------------------------------------------------------------------------- link loss
    def _links(self, b: _Batch, out: list) -> None:
        timeout = self.policy.link_timeout_s
        prev_t = np.roll(b.t, 1)
        prev_air = np.roll(b.airborne, 1)
        lost = np.zeros(b.t.size, bool)
        for i in np.flatnonzero(b.first).tolist():
            st = self._state.get(b.uav[i])
            if st is None:
                prev_t[i], prev_air[i] = b.t[i], False
            else:
                prev_t[i], prev_air[i], lost[i] = st.t, st.airborne, st.lost
        gap = b.t - prev_t
        rows = np.flatnonzero(lost | (prev_air & (gap > timeout)))
        prev = self._prev_points(b, rows)
        for n, i in enumerate(rows.tolist()):
            if not lost[i]:
                out.append(self._ev("link_lost", b.uav[i], None, from_epoch(prev_t[i] + timeout),
                                    _lost_detail(prev_t[i], timeout, *prev[n, :3]), -1, i))
            out.append(self._ev("link_restored", b.uav[i], None, b.ts[i],
                                {**self._fix_detail(b, i), "silent_s": float(gap[i])}, -1, i))

    def tick(self, watermark: datetime | float) -> list[AirspaceEvent]:
        """Event time has reached `watermark` (e.g. the newest fix of any UAV): declare links lost.

        The event is stamped last fix + link_timeout_s, whenever it is noticed, so it is the
        same event (and id) that a later fix of the UAV would have produced from the gap.
        """
        wm = watermark if isinstance(watermark, (int, float)) else epoch_of(watermark)
        timeout = self.policy.link_timeout_s
        events = []
        for uav in sorted(self._state):
            st = self._state[uav]
            if st.airborne and not st.lost and wm - st.t > timeout:
                st.lost = True
                events.append(AirspaceEvent("link_lost", uav, None, from_epoch(st.t + timeout),
                                            _lost_detail(st.t, timeout, st.lon, st.lat, st.alt_amsl)))
        return sorted(events, key=lambda e: (e.ts, e.uav_id))

    # ----------------------------------------------------------------------- conformance
    def _conformance(self, b: _Batch, member: np.ndarray, out: list) -> None:
        """route_deviation and corridor_exit for the UAVs flying under a clearance.

        Leaving a cleared corridor is a corridor_exit unless the flight is where its route says
        (within its 4D tolerances) or at one of the route's planned corridor exits."""
        if not self._clearances:
            return
        starts = np.flatnonzero(b.first)
        ends = np.append(starts[1:], b.t.size)
        W = self.W
        groups = [(i0, i1, c) for i0, i1 in zip(starts.tolist(), ends.tolist())
                  if (c := self._clearances.get(b.uav[i0])) is not None]
        if not groups:
            return
        scores = self._deviations(b, groups, out)
        for i0, i1, c in groups:
            st = self._state.get(b.uav[i0])
            score = scores[i0:i1]
            legs: dict[int, list[dict]] = {}
            for leg in c.corridors:
                j = self.zones.position(leg["zone_id"])
                if j is not None:
                    legs.setdefault(j, []).append(leg)
            if not legs:
                continue
            lo, hi = np.searchsorted(member, [i0 * W, i1 * W])
            js = np.array(sorted(legs), np.int64)
            grid = _in_sorted((np.arange(i0, i1)[:, None] * W + js[None, :]).ravel(),
                              member[lo:hi]).reshape(i1 - i0, js.size)
            outside = set(st.corridor_out) if st else set()
            prev_in = {j for j in legs if st is not None and _in_sorted(np.array([j]), st.sets["member"])[0]}
            for i in range(i0, i1):
                now_in = {int(j) for j in js[grid[i - i0]]}
                if now_in == prev_in and not (now_in & outside):
                    continue
                for j in sorted(prev_in - now_in):
                    if (score[i - i0] <= 1.0 or self._planned_exit(b, i, legs[j], c) or not b.airborne[i]
                            or not c.start - c.tolerances.time_s <= b.t[i] <= c.end + c.tolerances.time_s):
                        continue
                    outside.add(j)
                    out.append(self._corridor_event(b, "corridor_exit", i, j, c))
                for j in sorted(now_in & outside):
                    outside.discard(j)
                    out.append(self._corridor_event(b, "corridor_return", i, j, c))
                prev_in = now_in
            self._corridor_out_next[b.uav[i0]] = outside

    def _planned_exit(self, b: _Batch, i: int, legs: list[dict], c: ApprovedClearance) -> bool:
        tol = c.tolerances
        for leg in legs:
            ex = leg["exit"]
            x, y = to_local(b.lon[i], b.lat[i], ex["lon"], ex["lat"])
            if float(np.hypot(x, y)) <= tol.lateral_m and abs(b.alt[i] - ex["alt_amsl"]) <= tol.vertical_m:
                return True
        return False

    def _corridor_event(self, b: _Batch, kind: str, i: int, j: int, c: ApprovedClearance) -> tuple:
        zone = self.zones.zones[j]
        detail = {**self._fix_detail(b, i), "zone_name": zone.name, "zone_kind": zone.kind,
                  "clearance_id": c.clearance_id}
        return self._ev(kind, b.uav[i], zone.id, b.ts[i], detail, j, i)

    def _deviations(self, b: _Batch, groups: list[tuple[int, int, ApprovedClearance]], out: list) -> np.ndarray:
        """route_deviation transitions of every UAV flying under a clearance, vectorized over all of
        them; returns each row's conformance score (max of lateral / vertical / time offset over its
        tolerance, at the best-fitting route segment of its time; inf outside the clearance window)."""
        n = b.t.size
        rows = np.concatenate([np.arange(i0, i1) for i0, i1, _ in groups])
        code = np.concatenate([np.full(i1 - i0, q) for q, (i0, i1, _) in enumerate(groups)])
        routes = [_route_arrays(c, self._lon0, self._lat0) for _, _, c in groups]
        seg_code = np.concatenate([np.full(r[0].size - 1, q) for q, r in enumerate(routes)])
        X, Y, Z, T = (np.concatenate([r[k][:-1] for r in routes]) for k in range(4))
        X1, Y1, Z1, T1 = (np.concatenate([r[k][1:] for r in routes]) for k in range(4))
        tol = np.array([(c.tolerances.lateral_m, c.tolerances.vertical_m, c.tolerances.time_s) for *_, c in groups])
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
        px, py = to_local(b.lon[r], b.lat[r], self._lon0, self._lat0)
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
        c_start = np.array([c.start for *_, c in groups])[code]
        c_end = np.array([c.end for *_, c in groups])[code]
        window = (t_r >= c_start - tol[code, 2]) & (t_r <= c_end + tol[code, 2]) & b.airborne[rows]
        raw, hold = window & (score_r > 1.0), window & (score_r > self.policy.recover_fraction)
        # latch per UAV: on at a raw row, on over the following held rows, carried from the last batch
        pos = np.arange(rows.size)
        g_start = np.maximum.accumulate(np.where(np.r_[True, code[1:] != code[:-1]], pos, 0))
        run_start = np.maximum.accumulate(np.where(~hold, pos, -1))
        last_raw = np.maximum.accumulate(np.where(raw, pos, -1))
        was = np.array([bool(st.deviated) if (st := self._state.get(b.uav[i0])) else False
                        for i0, _, _ in groups])
        state = ((last_raw > run_start) & (last_raw >= g_start)) | (was[code] & (run_start < g_start))
        prev_state = np.r_[False, state[:-1]]
        first_of = g_start == pos
        prev_state[first_of] = was[code[first_of]]
        for k in np.flatnonzero(state != prev_state).tolist():
            i, now, c = int(rows[k]), bool(state[k]), groups[code[k]][2]
            t_ = c.tolerances
            detail = {**self._fix_detail(b, i), "clearance_id": c.clearance_id}
            if best[k] >= 0:
                p = best[k]
                vals = (float(lat_d[p]), float(vert_d[p]), float(time_d[p]))
                detail.update(lateral_m=vals[0], vertical_m=vals[1], time_s=vals[2],
                              tolerances={"lateral_m": t_.lateral_m, "vertical_m": t_.vertical_m, "time_s": t_.time_s},
                              exceeded=[name for name, v, lim in zip(("lateral", "vertical", "time"), vals,
                                                                    (t_.lateral_m, t_.vertical_m, t_.time_s))
                                        if v > lim])
            out.append(self._ev("route_deviation" if now else "route_deviation_end", b.uav[i], None, b.ts[i],
                                detail, -1, i))
        ends = np.r_[np.flatnonzero(code[1:] != code[:-1]), rows.size - 1]
        for q, e in enumerate(ends.tolist()):
            self._deviated_next[b.uav[groups[q][0]]] = bool(state[e])
        scores = np.full(n, np.inf)
        scores[rows] = score_r
        return scores

    # ------------------------------------------------------------------------------ state
    def _store(self, b: _Batch, fams: dict[str, np.ndarray]) -> None:
        W = self.W
        bounds = {fam: np.searchsorted(keys, np.flatnonzero(b.last) * W) for fam, keys in fams.items()}
        ends = {fam: np.searchsorted(keys, (np.flatnonzero(b.last) + 1) * W) for fam, keys in fams.items()}
        for k, i in enumerate(np.flatnonzero(b.last).tolist()):
            uav = b.uav[i]
            old = self._state.get(uav)
            sets = {fam: fams[fam][bounds[fam][k]:ends[fam][k]] % W for fam in fams}
            st = _UavState(float(b.t[i]), b.ts[i], float(b.lon[i]), float(b.lat[i]), float(b.alt[i]),
                           bool(b.airborne[i]), sets)
            st.deviated = self._deviated_next.pop(uav, old.deviated if old else False)
            st.corridor_out = self._corridor_out_next.pop(uav, old.corridor_out if old else set())
            self._state[uav] = st

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
        """Drop the UAV's state (e.g. landed and disconnected); its next fix starts afresh."""
        self._state.pop(uav_id, None)


def _route_arrays(c: ApprovedClearance, lon0: float, lat0: float) -> tuple[np.ndarray, ...]:
    """A clearance's waypoints as (x, y, alt_amsl, t) arrays in the monitor's metric frame."""
    x, y = to_local(np.asarray(c.lon), np.asarray(c.lat), lon0, lat0)
    return x, y, np.asarray(c.alt_amsl, float), np.asarray(c.t, float)
