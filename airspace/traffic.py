"""The traffic engine: the air picture (airspace.tracks) and live separation (airspace.tactical) on event time.

Pure: sightings carry their own time; `step(telemetry, observations)` and `tick(watermark)` return events and
track states. Decisions are taken at **instants** T = k * step_s of event time. An instant is decided once the
watermark (the newest sighting time seen, a sighting counting at most `lateness_s` past its receive time so
a clock far ahead cannot rush everyone else) has passed T + lateness_s: sightings up to `lateness_s` out of
order are then all in. At each instant, in this order:

1. sources silent past their timeout are declared lost (`source_lost`, stamped last fix + timeout), tracks
   silent past `forget_after_s` are dropped (their state is withdrawn: None);
2. the sightings stamped up to T are applied in a total order (time, source rank, source, key, position), so
   association does not depend on arrival order; a source back after its timeout gets `source_lost` (if not yet
   declared) and `source_restored`;
3. every track is read at T (its best fresh source, extrapolated), and the conditions are decided on that one
   picture: separation_loss, conflict_predicted, position_discrepancy, unregistered_aircraft (each with its
   end, with hysteresis: `TrafficPolicy.end_margin`).

So the events are a function of the set of sightings: the same however the stream was cut into batches, as
long as sightings arrive at most `lateness_s` out of event-time order (a later one is applied at the next
instant rather than dropped: a drone with a lagging clock is still separated). Event stamps are instants (or,
for source_lost, last fix + timeout), so ids (ingest.pipeline.event_id) are stable across replays.

Events name their subject in `uav_id` (the registered UAV id, else the track id such as "icao:780a3b") and the
counterpart in `zone_id` (the other aircraft's track id for separation and conflicts, the source for
source_lost / source_restored, the demonstration zone's id for unregistered_aircraft), so two conflicts of one
drone at one instant are two events with two ids.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import shapely

from protocol.times import rfc3339

from .coords import to_local
from .events import AirspaceEvent, epoch_of, from_epoch
from .sightings import Lookup, Sightings, from_observations, from_telemetry
from .tactical import Encounters, Kinematics, encounters, nearest_pairs, pair_minima, swept_pairs
from .tracks import GATED, LIVE, Fused, Track, TrackTable
from .traffic_policy import TrafficPolicy
from .zones import ZoneSet

KIND_RANK = {k: r for r, k in enumerate((
    "source_lost", "source_restored", "conflict_predicted_end", "separation_loss_end", "position_discrepancy_end",
    "unregistered_aircraft_end", "unregistered_aircraft", "position_discrepancy", "separation_loss",
    "conflict_predicted"))}
PAIR_KINDS = ("separation_loss", "conflict_predicted")
_UID_SPAN = 1 << 32  # a pair of track uids as one int64 (uids count tracks: far below 2**31)
AREA_EXIT_MARGIN_M = 50.0  # an unregistered drone has left the demonstration zone this far outside it


@dataclass
class TrafficResult:
    events: list[AirspaceEvent] = field(default_factory=list)
    states: dict[str, dict | None] = field(default_factory=dict)  # track id -> state (None: track dropped)


@dataclass
class _Open:
    """An open condition: when it started and about whom."""
    since: float
    a: Track
    b: Track | None = None
    zone_id: str | None = None


class TrafficEngine:
    """Fusion into tracks and live separation over them, on event time (see the module docstring)."""

    def __init__(self, zones: ZoneSet, policy: TrafficPolicy = TrafficPolicy()) -> None:
        self.policy = policy
        bounds = zones.bounds
        origin = ((float(bounds[:, [0, 2]].mean()), float(bounds[:, [1, 3]].mean())) if len(zones)
                  else (121.0, 31.0))
        self.table = TrackTable(policy, origin)
        self._pending = Sightings.empty()
        self._pending_k = np.zeros(0, np.int64)
        self._watermark = -math.inf
        self._closed: int | None = None
        self._open: dict[str, dict] = {k: {} for k in ("separation_loss", "conflict_predicted",
                                                       "position_discrepancy", "unregistered_aircraft")}
        self._alerts: dict[int, Counter] = {}
        self.set_zones(zones)

    def set_zones(self, zones: ZoneSet) -> None:
        """The zone set gives heights (its vertical model) and the demonstration zone: the union of its zones of
        `policy.area_kinds`, else the bounding box of all its zones (none: no unregistered_aircraft)."""
        self.vertical = zones.vertical
        areas = [z for z in zones if z.kind in self.policy.area_kinds]
        if areas:
            geom = shapely.union_all([z.geometry for z in areas])
            self.area_id = areas[0].id if len(areas) == 1 else None
        elif len(zones):
            geom = shapely.box(*zones.bounds[:, :2].min(axis=0), *zones.bounds[:, 2:].max(axis=0))
            self.area_id = None
        else:
            geom, self.area_id = None, None
        t = self.table
        self.area = None if geom is None else shapely.transform(
            geom, lambda xy: np.column_stack(to_local(xy[:, 0], xy[:, 1], t.lon0, t.lat0)))
        if self.area is not None:
            shapely.prepare(self.area)

    # ------------------------------------------------------------------------------ input
    def step(self, telemetry: Sequence = (), observations: Sequence = (),
             registry: Lookup | None = None) -> TrafficResult:
        """A batch's telemetry rows and observations (any order): the events and states of the instants the
        watermark now closes. `registry`: (key, value) -> registered device id (ingest's RegistryView.device),
        for observations whose identity does not name their UAV yet."""
        p = self.policy
        telemetry, tel_watermark = _thin_rows(telemetry, p.step_s, p.lateness_s)
        self._watermark = max(self._watermark, tel_watermark)
        s = Sightings.concat([from_telemetry(telemetry, self.vertical, p.airborne_agl_m),
                              from_observations(observations, self.vertical, p.airborne_agl_m, registry)])
        if len(s):
            k = np.ceil(s.t / p.step_s - 1e-9).astype(np.int64)
            if self._closed is not None:
                k = np.maximum(k, self._closed + 1)  # late: applied at the next instant
            self._pending = Sightings.concat([self._pending, s])
            self._pending_k = np.concatenate([self._pending_k, k])
            self._watermark = max(self._watermark, float(np.max(np.minimum(s.t, s.recv + p.lateness_s))))
        return self._advance()

    def tick(self, watermark: datetime | float) -> TrafficResult:
        """Event time has reached `watermark` without sightings (the pipeline's idle clock)."""
        wm = watermark if isinstance(watermark, (int, float)) else epoch_of(watermark)
        self._watermark = max(self._watermark, float(wm))
        return self._advance()

    # ---------------------------------------------------------------------------- instants
    def _advance(self) -> TrafficResult:
        p = self.policy
        last = math.ceil((self._watermark - p.lateness_s) / p.step_s - 1e-9) - 1  # instants T < watermark - lateness
        if self._closed is not None:
            k = self._closed + 1
        elif self._pending_k.size:  # the first instant: the earliest sighting's, once it can be decided
            k = int(self._pending_k.min())
        else:
            return TrafficResult()
        res = TrafficResult()
        while k <= last:
            f = self._instant(k, res)
            self._closed = k
            if f.valid.any():
                k += 1
            else:  # nothing live: jump to the next sighting (or the last instant, to forget silent tracks)
                nxt = int(self._pending_k.min()) if self._pending_k.size else last
                k = max(k + 1, min(nxt, last))
        res.events.sort(key=lambda e: (e.ts, KIND_RANK.get(e.kind, 99), e.uav_id, e.zone_id or ""))
        return res

    def _instant(self, k: int, res: TrafficResult) -> Fused:
        T = k * self.policy.step_s
        table = self.table
        res.events += table.declare_losses(T)
        table.forget(T)
        due = self._pending_k <= k
        if due.any():
            batch = self._pending.take(np.flatnonzero(due))
            rank = np.array([self.policy.rank(x) for x in batch.source.tolist()])
            order = np.lexsort((batch.lat, batch.lon, batch.key.astype(str), batch.source.astype(str), rank, batch.t))
            keep = np.flatnonzero(~due)
            self._pending, self._pending_k = self._pending.take(keep), self._pending_k[keep]
            res.events += table.apply(_thin_telemetry(batch.take(order)))
        for tid, into in table.removed.items():
            res.states[tid] = None
            self._close_track_conditions(T, tid, into, res.events)
        table.removed.clear()
        f = table.fused(T)
        res.events += self._separation(T, f)
        res.events += self._discrepancy(T, f)
        res.events += self._unregistered(T, f)
        touched = sorted(t for t in table.touched if t in table.tracks)
        alerts = {tid: self._alert_list(table.tracks[tid]) for tid in touched}
        res.states.update(table.states(touched, T, f, alerts))
        table.touched.clear()
        return f

    # ------------------------------------------------------------------------ conditions
    def _transition(self, kind: str, key, info: _Open | None, T: float, detail: dict, events: list) -> None:
        """Open (info given) or close (None) a condition, with its event(s) and the tracks' alert counts."""
        opened = self._open[kind]
        cur = opened.get(key)
        if info is not None:
            if cur is not None:
                return
            opened[key] = cur = info
            end = False
        else:
            if cur is None:
                return
            del opened[key]
            detail = {**detail, "since": rfc3339(from_epoch(cur.since)), "duration_s": round(T - cur.since, 3)}
            end = True
        name = kind + "_end" if end else kind
        sides = [(cur.a, cur.b), (cur.b, cur.a)] if cur.b is not None else [(cur.a, None)]
        for me, other in sides:
            counts = self._alerts.setdefault(me.uid, Counter())
            counts[kind] += -1 if end else 1
            if counts[kind] <= 0:
                del counts[kind]
                if not counts:
                    del self._alerts[me.uid]
            if me.id in self.table.tracks:
                self.table.touched.add(me.id)
            d = {"track_id": me.id, "kind": me.kind, **detail}
            if other is not None:
                d["other"] = _describe(other)
            zone = other.id if other is not None else cur.zone_id
            events.append(AirspaceEvent(name, me.subject, zone, from_epoch(T), d))

    def _separation(self, T: float, f: Fused) -> list[AirspaceEvent]:
        p, table = self.policy, self.table
        events: list[AirspaceEvent] = []
        idx = np.flatnonzero(f.valid & f.airborne)
        n_slots = len(table.slots)
        manned = ~table.hint_drone[:n_slots]
        kin = Kinematics(f.x[idx], f.y[idx], f.z[idx], f.vx[idx], f.vy[idx], f.vz[idx], manned[idx])
        g = 1.0 + p.end_margin
        dd, dm = p.drone_drone.scaled(g), p.drone_manned.scaled(g)
        i, j = swept_pairs(kin, p.look_ahead_s * g, dd, dm)
        H, V = pair_minima(kin.manned[i], kin.manned[j], p.drone_drone, p.drone_manned)
        held = encounters(kin, i, j, H * g, V * g, p.look_ahead_s * g)
        rel = held.inside | held.predicted  # a superset of the strict conditions: only these pairs matter
        held, i, j, H, V = held.select(rel), i[rel], j[rel], H[rel], V[rel]
        strict = encounters(kin, i, j, H, V, p.look_ahead_s)
        tracks = [table.slots[s] for s in idx.tolist()]
        uid = np.array([t.uid for t in tracks], np.int64)
        ua, ub = uid[i], uid[j]
        swap = ua > ub
        ka, kb = np.where(swap, ub, ua), np.where(swap, ua, ub)
        # a crowd (a swarm, a pile of forged ids at one spot) lists each aircraft's nearest pairs only: open pairs
        # first (so an alert is not dropped for a newcomer), then manned, then the closest
        opened = [k for kind in PAIR_KINDS for k in self._open[kind]]
        is_open = (np.isin(ka * _UID_SPAN + kb, np.array([a * _UID_SPAN + b for a, b in opened], np.int64))
                   if opened else np.zeros(len(ka), bool))
        keep, n_over = nearest_pairs(i, j, (~is_open, ~(kin.manned[i] | kin.manned[j]), strict.horizontal_m),
                                     uid, p.max_pairs_per_aircraft)
        if not keep.all():
            held, strict, i, j, H, V = held.select(keep), strict.select(keep), i[keep], j[keep], H[keep], V[keep]
            swap, ka, kb = swap[keep], ka[keep], kb[keep]
        keys = list(zip(ka.tolist(), kb.tolist()))
        row = {key: r for r, key in enumerate(keys)}
        ia, ib = np.where(swap, j, i), np.where(swap, i, j)  # kinematics index of the lower / higher uid

        def pair_detail(r: int, enc: Encounters) -> dict:
            vert = enc.vertical_m[r]
            d = {"horizontal_m": round(float(enc.horizontal_m[r]), 1),
                 "vertical_m": None if np.isnan(vert) else round(float(vert), 1),
                 "min_horizontal_m": float(H[r]), "min_vertical_m": float(V[r]),
                 "pair": "drone-manned" if kin.manned[i[r]] or kin.manned[j[r]] else "drone-drone"}
            over = {tracks[x].id: int(n_over[x]) for x in (i[r], j[r]) if n_over[x] > 0}
            if over:  # more aircraft around it than it lists (max_pairs_per_aircraft): how many are not listed
                d["not_listed"] = over
            return d

        loss_open = self._open["separation_loss"]
        now = {keys[r] for r in np.flatnonzero(strict.inside).tolist()}
        hold = {keys[r] for r in np.flatnonzero(held.inside).tolist()}
        for key in sorted(set(loss_open) - hold):
            r = row.get(key)
            reason = self._gone(loss_open[key], f) or "separated"
            detail = {"reason": reason, **(pair_detail(r, strict) if r is not None else {})}
            self._transition("separation_loss", key, None, T, detail, events)
        for key in sorted(now - set(loss_open)):
            r = row[key]
            info = _Open(T, tracks[ia[r]], tracks[ib[r]])
            detail = {**pair_detail(r, strict), **self._positions(T, f, idx[ia[r]], idx[ib[r]])}
            self._transition("separation_loss", key, info, T, detail, events)
        conflict_open = self._open["conflict_predicted"]
        pred = {keys[r] for r in np.flatnonzero(strict.predicted).tolist()} - set(loss_open)
        pred_hold = {keys[r] for r in np.flatnonzero(held.predicted | held.inside).tolist()}
        for key in sorted(set(conflict_open) - (pred_hold - set(loss_open))):
            r = row.get(key)
            reason = "separation_loss" if key in loss_open else self._gone(conflict_open[key], f) or "resolved"
            detail = {"reason": reason, **(pair_detail(r, strict) if r is not None else {})}
            self._transition("conflict_predicted", key, None, T, detail, events)
        for key in sorted(pred - set(conflict_open)):
            r = row[key]
            detail = {**pair_detail(r, strict), **self._positions(T, f, idx[ia[r]], idx[ib[r]]),
                      "look_ahead_s": p.look_ahead_s, "loss_in_s": round(float(strict.loss_in_s[r]), 1),
                      "loss_at": rfc3339(from_epoch(T + float(strict.loss_in_s[r]))),
                      "cpa_s": round(float(strict.cpa_s[r]), 1),
                      "cpa_at": rfc3339(from_epoch(T + float(strict.cpa_s[r]))),
                      "cpa_horizontal_m": round(float(strict.cpa_horizontal_m[r]), 1),
                      "cpa_vertical_m": None if np.isnan(strict.cpa_vertical_m[r])
                      else round(float(strict.cpa_vertical_m[r]), 1)}
            self._transition("conflict_predicted", key, _Open(T, tracks[ia[r]], tracks[ib[r]]), T, detail, events)
        return events

    def _gone(self, info: _Open, f: Fused) -> str | None:
        """Why a pair is no longer checked, if for another reason than its geometry: a track lost or landed."""
        for tr in (info.a, info.b):
            if self.table.tracks.get(tr.id) is not tr or not f.valid[tr.slot]:
                return "track_lost"
        return None if f.airborne[info.a.slot] and f.airborne[info.b.slot] else "landed"

    def _positions(self, T: float, f: Fused, a: int, b: int) -> dict:
        """Both aircraft's positions at T (so a display can draw the two and the line between them)."""
        def pos(s: int) -> dict:
            lon, lat = self.table.lon_lat(f.x[s], f.y[s])
            return {"lon": round(float(lon), 7), "lat": round(float(lat), 7),
                    "alt_amsl": None if np.isnan(f.z[s]) else round(float(f.z[s]), 1)}
        return {"positions": {self.table.slots[a].id: pos(a), self.table.slots[b].id: pos(b)}}

    def _discrepancy(self, T: float, f: Fused) -> list[AirspaceEvent]:
        """A drone's own telemetry and its Remote ID (associated by identity), both heard within
        discrepancy_age_s, further apart at T than the tolerances: a spoofing or fault indicator."""
        p, table = self.policy, self.table
        events: list[AirspaceEvent] = []
        opened = self._open["position_discrepancy"]
        n = len(table.slots)
        diff = {}
        if "telemetry" in table.cols and "rid" in table.cols:
            a, b = table.cols["telemetry"], table.cols["rid"]
            both = (a.present[:n] & b.present[:n] & (a.lost[:n] == LIVE) & (b.lost[:n] == LIVE)
                    & (b.how[:n] != GATED) & (T - a.t[:n] <= p.discrepancy_age_s) & (T - b.t[:n] <= p.discrepancy_age_s))
            s = np.flatnonzero(both)
            pa = [getattr(a, c)[s] + np.nan_to_num(getattr(a, "v" + c)[s]) * (T - a.t[s]) for c in "xyz"]
            pb = [getattr(b, c)[s] + np.nan_to_num(getattr(b, "v" + c)[s]) * (T - b.t[s]) for c in "xyz"]
            dh = np.hypot(pa[0] - pb[0], pa[1] - pb[1])
            dv = np.abs(pa[2] - pb[2])
            diff = {table.slots[k].uid: (table.slots[k], float(h), float(v))
                    for k, h, v in zip(s.tolist(), dh.tolist(), dv.tolist())}
        g = 1.0 + p.end_margin

        def detail(h: float, v: float) -> dict:
            return {"horizontal_m": round(h, 1), "vertical_m": None if math.isnan(v) else round(v, 1),
                    "tolerance_horizontal_m": p.discrepancy_horizontal_m,
                    "tolerance_vertical_m": p.discrepancy_vertical_m}

        for key in sorted(opened):
            cur = diff.get(key)
            if cur is None:
                self._transition("position_discrepancy", key, None, T, {"reason": "source_lost"}, events)
            elif not (cur[1] > p.discrepancy_horizontal_m / g or cur[2] > p.discrepancy_vertical_m / g):
                self._transition("position_discrepancy", key, None, T, {"reason": "agree", **detail(*cur[1:])}, events)
        for key in sorted(diff):
            track, h, v = diff[key]
            if key not in opened and (h > p.discrepancy_horizontal_m or v > p.discrepancy_vertical_m):
                k = track.slot
                extra = {src: {"lon": float(table.cols[src].lon[k]), "lat": float(table.cols[src].lat[k]),
                               "alt_amsl": None if np.isnan(table.cols[src].z[k]) else float(table.cols[src].z[k]),
                               "ts": rfc3339(from_epoch(table.cols[src].t[k])), "key": table.cols[src].key[k]}
                         for src in ("telemetry", "rid")}
                self._transition("position_discrepancy", key, _Open(T, track), T, {**detail(h, v), **extra}, events)
        return events

    def _unregistered(self, T: float, f: Fused) -> list[AirspaceEvent]:
        """A Remote ID drone the registry does not know, inside the demonstration zone."""
        table = self.table
        events: list[AirspaceEvent] = []
        opened = self._open["unregistered_aircraft"]
        inside: dict[int, tuple[Track, bool]] = {}
        if self.area is not None and "rid" in table.cols:
            n = len(table.slots)
            rid = table.cols["rid"]
            cand = np.flatnonzero(f.valid & rid.present[:n] & (rid.lost[:n] == LIVE) & ~table.registered[:n])
            cand = cand[table.hint_drone[cand]]
            if cand.size:
                x, y = f.x[cand], f.y[cand]
                now = shapely.contains_xy(self.area, x, y)
                hold = now | shapely.dwithin(self.area, shapely.points(x, y), AREA_EXIT_MARGIN_M)
                inside = {table.slots[k].uid: (table.slots[k], bool(a)) for k, a, h in
                          zip(cand.tolist(), now.tolist(), hold.tolist()) if h}
        for key in sorted(opened):
            if key not in inside:
                track = opened[key].a
                reason = "left_area" if track.id in table.tracks and f.valid[track.slot] else "track_lost"
                self._transition("unregistered_aircraft", key, None, T, {"reason": reason}, events)
        for key in sorted(inside):
            track, now_in = inside[key]
            if now_in and key not in opened:
                k = track.slot
                lon, lat = table.lon_lat(f.x[k], f.y[k])
                detail = {"identity": dict(track.identity), "lon": round(float(lon), 7), "lat": round(float(lat), 7),
                          "alt_amsl": None if np.isnan(f.z[k]) else round(float(f.z[k]), 1),
                          "airborne": bool(f.airborne[k]), "area": self.area_id or "zone set bounds"}
                self._transition("unregistered_aircraft", key, _Open(T, track, zone_id=self.area_id), T, detail,
                                 events)
        return events

    def _close_track_conditions(self, T: float, tid: str, into: str | None, events: list) -> None:
        """A track removed (forgotten, or merged into another when its identity became known) mid-condition."""
        reason = "identified" if into is not None else "track_lost"
        for kind, opened in self._open.items():
            for key in sorted(k for k, info in opened.items() if tid in (info.a.id, info.b.id if info.b else None)):
                self._transition(kind, key, None, T, {"reason": reason, "merged_into": into}, events)

    def _alert_list(self, track: Track) -> list[str]:
        counts = self._alerts.get(track.uid)
        return [k for k in KIND_RANK if counts.get(k)] if counts else []

    def tracks(self) -> int:
        """How many tracks the engine holds."""
        return len(self.table.tracks)


def _describe(track: Track) -> dict:
    """The other aircraft as an event names it."""
    return {"track_id": track.id, "kind": track.kind, "uav_id": track.uav_id,
            "callsign": track.identity.get("callsign"), "registered": track.uav_id is not None}


def _thin_rows(rows: Sequence, step_s: float, lateness_s: float) -> tuple[list, float]:
    """A batch's telemetry rows thinned as `_thin_telemetry` thins an instant (each drone's first and last fix of
    each instant, in the same order: time, then position), before they are made sightings: what the instant
    keeps is among them whatever the batches. Also the watermark all the rows give (see TrafficEngine)."""
    first: dict[tuple, tuple] = {}
    last: dict[tuple, tuple] = {}
    watermark = -math.inf
    for i, r in enumerate(rows):
        t = r.ts.timestamp()
        watermark = max(watermark, min(t, r.received_at.timestamp() + lateness_s))
        key = (r.uav_id, math.ceil(t / step_s - 1e-9))
        order = (t, r.lon, r.lat, i)
        if key not in first or order < first[key]:
            first[key] = order
        if key not in last or order > last[key]:
            last[key] = order
    if len(first) * 2 >= len(rows):
        return list(rows), watermark
    keep = sorted({o[3] for o in first.values()} | {o[3] for o in last.values()})
    return [rows[i] for i in keep], watermark


def _thin_telemetry(s: Sightings) -> Sightings:
    """Of one instant's sightings (in their total order), a drone's own telemetry keeps only its first and last
    fix: the picture is read once per instant, from each source's latest fix; the first keeps a return after a
    silence stamped when it came, and the last, with the previous instant's, gives the derived velocity. A drone
    reporting at 10 Hz thus costs the air picture two rows a second, not ten. Other sources keep every sighting
    (their identity fields come piecemeal)."""
    tel = np.flatnonzero(s.source == "telemetry")
    if tel.size < 3:
        return s
    _, group = np.unique(s.key[tel].astype(str), return_inverse=True)
    g = np.lexsort((tel, group))
    gk = group[g]
    ends = np.r_[True, gk[1:] != gk[:-1]] | np.r_[gk[1:] != gk[:-1], True]
    if ends.all():
        return s
    keep = np.ones(len(s), bool)
    keep[tel[g[~ends]]] = False
    return s.take(np.flatnonzero(keep))
