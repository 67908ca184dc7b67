"""Fusion: one track per aircraft from every source (Skylane telemetry, ADS-B, Remote ID, later adapters).

A track holds, per source, the latest fix (time, position, velocity, airborne) in columns over track slots, so
the engine reads every track's position at an instant in a few numpy operations. Association, per sighting
in event-time order (airspace.traffic feeds them):

1. **By identity.** A sighting that names a registered UAV (telemetry always; Remote ID or ADS-B when the
   registry maps its serial or ICAO address: identity `uav_id`) belongs to track `uav:<id>`. Otherwise the
   source's own id (`(source, key)`: the ICAO address, the Remote ID serial or session) or an identity alias
   the table has seen (`serial`, `icao24`) finds the track it went to before.
2. **By gating**, for a (source, key) never seen: the nearest track that (a) was seen within `gate_age_s`,
   (b) has no live sighting of that source already (two Remote ID broadcasters are two aircraft), (c) is of a
   compatible kind, and (d) is, at the sighting's time, within `gate_horizontal_m` horizontally,
   `gate_vertical_m` vertically (when both altitudes are known) and `gate_speed_mps` in velocity (when both
   are known). A gated source is re-checked at each of its sightings against the track's other sources and
   leaves the track (starting its own) when it is more than twice the gates away.
3. Otherwise the sighting starts a track: `icao:<address>`, `rid:<serial>`, `<source>:<key>`.

A track's position is its best fresh source by `TrafficPolicy.source_rank` (telemetry, ADS-B, Remote ID),
extrapolated to the instant with that source's velocity, which is the source's own or, when it gives none,
from its previous fix (within `velocity_window_s`). Kind: a drone when any source is telemetry or Remote ID,
the registry names it, or its emitter category is a UAV; else manned (the larger minima apply).
"""
from __future__ import annotations

import heapq
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from protocol.times import rfc3339
from protocol.topics import valid_id

from .coords import M_PER_DEG_LAT, m_per_deg_lon, to_local
from .events import AirspaceEvent, from_epoch
from .sightings import Sightings
from .tactical import Motion
from .traffic_policy import TrafficPolicy

PREFIXES = {"telemetry": "uav", "adsb": "icao", "rid": "rid"}
DRONE_SOURCES = frozenset({"telemetry", "rid"})
DRONE_CATEGORIES = frozenset({"uav", "unmanned", "drone", "uas", "rpas", "b6"})  # B6: ADS-B emitter category UAV
IDENTITY, GATED = 1, 2
ALIAS_KEYS = (("serial", "serial"), ("icao24", "icao"))  # identity field -> alias namespace
_FLOATS = ("t", "lon", "lat", "x", "y", "z", "vx", "vy", "vz")
_FLAGS = ("airborne", "present")
LIVE, LOST_SILENT, LOST = 0, 1, 2  # SourceColumns.lost: heard within its timeout / lost unreported / lost


@lru_cache(maxsize=1 << 16)
def track_id_for(source: str, key: str) -> str:
    """The id of a track started by (source, key), usable as one topic level (protocol.topics.valid_id)."""
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", PREFIXES.get(source, source))[:12] or "src"
    raw = key.lower() if source == "adsb" else key
    tid = f"{prefix}:{raw}"
    if valid_id(tid):
        return tid
    clean = re.sub(r"[^A-Za-z0-9_.:-]", "_", raw)[:40]
    return f"{prefix}:{clean}-{zlib.crc32(raw.encode()):08x}"


def kind_hint(source: str, identity: dict) -> str | None:
    """What a sighting says of the aircraft: "drone", "manned", or None (no opinion)."""
    if source in DRONE_SOURCES or identity.get("uav_id"):
        return "drone"
    cats = [c.lower() for c in (identity.get("category"), identity.get("category_name")) if isinstance(c, str) and c]
    if cats:  # the ADS-B bridge gives the code ("A7", "B6") and its name ("rotorcraft", "uav")
        return "drone" if DRONE_CATEGORIES.intersection(cats) else "manned"
    return None


@dataclass
class Track:
    id: str
    uid: int
    slot: int
    uav_id: str | None = None
    identity: dict = field(default_factory=dict)
    hints: set = field(default_factory=set)
    merged_into: str | None = None

    @property
    def kind(self) -> str:
        return "drone" if "drone" in self.hints else "manned"

    @property
    def subject(self) -> str:
        """Who an event about this aircraft is for: the registered UAV id, else the track id."""
        return self.uav_id or self.id


class SourceColumns:
    """One source's latest fix per track slot."""

    def __init__(self, cap: int) -> None:
        for f in _FLOATS:
            setattr(self, f, np.full(cap, np.nan))
        for f in _FLAGS:
            setattr(self, f, np.zeros(cap, bool))
        self.lost = np.zeros(cap, np.int8)
        self.how = np.zeros(cap, np.int8)
        self.key = np.full(cap, None, dtype=object)

    def grow(self, cap: int) -> None:
        n = self.t.size
        for f in _FLOATS:
            setattr(self, f, np.r_[getattr(self, f), np.full(cap - n, np.nan)])
        for f in _FLAGS:
            setattr(self, f, np.r_[getattr(self, f), np.zeros(cap - n, bool)])
        self.lost = np.r_[self.lost, np.zeros(cap - n, np.int8)]
        self.how = np.r_[self.how, np.zeros(cap - n, np.int8)]
        self.key = np.r_[self.key, np.full(cap - n, None, dtype=object)]

    def clear(self, slot: int) -> None:
        for f in _FLOATS:
            getattr(self, f)[slot] = np.nan
        for f in _FLAGS:
            getattr(self, f)[slot] = False
        self.lost[slot] = self.how[slot] = 0
        self.key[slot] = None


@dataclass(frozen=True)
class Fused(Motion):
    """Every slot at an instant from its best fresh source, extrapolated (`valid`: it has one)."""

    valid: np.ndarray
    best: np.ndarray        # index into TrackTable.names, -1 none
    t: np.ndarray           # time of that fix
    airborne: np.ndarray


class TrackTable:
    """Tracks, their sources' latest fixes in columns over slots, and the aliases that find them."""

    def __init__(self, policy: TrafficPolicy, origin: tuple[float, float]) -> None:
        self.policy = policy
        self.lon0, self.lat0 = origin
        self.tracks: dict[str, Track] = {}
        self.slots: list[Track | None] = []
        self._free: list[int] = []
        self._released: list[int] = []
        self.alias: dict[tuple[str, str], str] = {}
        self.names: list[str] = []          # sources in rank order
        self.cols: dict[str, SourceColumns] = {}
        self.cap = 64
        self.hint_drone = np.zeros(self.cap, bool)   # a sighting said drone / manned (Track.hints as columns)
        self.hint_manned = np.zeros(self.cap, bool)
        self.registered = np.zeros(self.cap, bool)   # the track is a registered UAV's
        self._uid = 0
        self.touched: set[str] = set()
        self.removed: dict[str, str | None] = {}  # track id -> the track it was merged into (None: forgotten)

    # ---------------------------------------------------------------- slots and sources
    def _col(self, source: str) -> SourceColumns:
        col = self.cols.get(source)
        if col is None:
            col = self.cols[source] = SourceColumns(self.cap)
            self.names = sorted(self.cols, key=lambda s: (self.policy.rank(s), s))
        return col

    def _create(self, tid: str, uav_id: str | None) -> Track:
        if self._free:
            slot = heapq.heappop(self._free)
        else:
            slot = len(self.slots)
            self.slots.append(None)
            if slot >= self.cap:
                self.cap *= 2
                for col in self.cols.values():
                    col.grow(self.cap)
                self.hint_drone = np.r_[self.hint_drone, np.zeros(self.cap - slot, bool)]
                self.hint_manned = np.r_[self.hint_manned, np.zeros(self.cap - slot, bool)]
                self.registered = np.r_[self.registered, np.zeros(self.cap - slot, bool)]
        self._uid += 1
        track = Track(tid, self._uid, slot, uav_id)
        self.hint_drone[slot] = self.hint_manned[slot] = False
        self.registered[slot] = uav_id is not None
        if uav_id:
            self._hint(track, "drone")
        self.tracks[tid] = track
        self.slots[slot] = track
        self.removed.pop(tid, None)
        return track

    def _hint(self, track: Track, hint: str) -> None:
        track.hints.add(hint)
        (self.hint_drone if hint == "drone" else self.hint_manned)[track.slot] = True

    def sources_of(self, track: Track) -> list[str]:
        return [s for s in self.names if self.cols[s].present[track.slot]]

    def _detach(self, track: Track, source: str, into: str | None) -> None:
        """Take a source off a track; a track left without sources is removed (merged into `into`)."""
        col = self.cols[source]
        if col.key[track.slot] is not None:
            self.alias.pop((source, col.key[track.slot]), None)
        col.clear(track.slot)
        self.touched.add(track.id)
        if not self.sources_of(track):
            self.remove(track, into)

    def remove(self, track: Track, into: str | None = None) -> None:
        for col in self.cols.values():
            col.clear(track.slot)
        self.alias = {k: v for k, v in self.alias.items() if v != track.id}
        del self.tracks[track.id]
        self.slots[track.slot] = None
        self._released.append(track.slot)  # reusable once the current pass is over (_release)
        self.touched.discard(track.id)
        self.removed[track.id] = into

    def _release(self) -> None:
        for slot in self._released:
            heapq.heappush(self._free, slot)
        self._released.clear()

    # ------------------------------------------------------------------------- fused
    def fused(self, t: float | np.ndarray, exclude: str | None = None) -> Fused:
        """Each slot at time `t` from its best source fresh then (excluding `exclude`), extrapolated."""
        n = len(self.slots)
        best = np.full(n, -1, np.int64)
        out = {f: np.full(n, np.nan) for f in ("t", "x", "y", "z", "vx", "vy", "vz")}
        airborne = np.zeros(n, bool)
        for k, name in enumerate(self.names):
            if name == exclude:
                continue
            col = self.cols[name]
            age = t - col.t[:n]
            take = (best < 0) & col.present[:n] & (col.lost[:n] == LIVE) & (age <= self.policy.timeout(name)) \
                & (age >= -1e-9)
            if not take.any():
                continue
            best[take] = k
            for f in out:
                out[f][take] = getattr(col, f)[:n][take]
            airborne[take] = col.airborne[:n][take]
        dt = np.where(best >= 0, t - out["t"], 0.0)
        for p, v in (("x", "vx"), ("y", "vy"), ("z", "vz")):
            out[p] = out[p] + np.nan_to_num(out[v]) * dt
            out[v] = np.nan_to_num(out[v])
        return Fused(out["x"], out["y"], out["z"], out["vx"], out["vy"], out["vz"], valid=best >= 0, best=best,
                     t=out["t"], airborne=airborne)

    # ------------------------------------------------------------------------- input
    def apply(self, s: Sightings) -> list[AirspaceEvent]:
        """Sightings (in the order given: event time, then a stable tie order) onto their tracks; returns the
        source_lost/source_restored of sources back after a silence longer than their timeout.

        Association runs row by row (it may create, gate or split tracks); the fixes are then written per source
        in one vectorized pass, each track keeping its latest (a fix older than the one a track has from the same
        key is ignored: it would rewind the track)."""
        if not len(s):
            return []
        x, y = to_local(s.lon, s.lat, self.lon0, self.lat0)
        n = len(s)
        owners: list[Track] = []
        hows = np.empty(n, np.int8)
        for r in range(n):
            track, how = self._associate(s, r, x[r], y[r])
            owners.append(track)
            hows[r] = how
            self.alias[(s.source[r], s.key[r])] = track.id
            ident = s.identity[r]
            if ident:
                track.identity.update(ident)
                for field_name, space in ALIAS_KEYS:
                    value = ident.get(field_name)
                    if isinstance(value, str) and value:
                        self.alias.setdefault((space, value.lower()), track.id)
            hint = kind_hint(s.source[r], ident)
            if hint and hint not in track.hints:
                self._hint(track, hint)
            self.touched.add(track.id)
        alive = np.array([self.tracks.get(tr.id) is tr for tr in owners])
        slots = np.array([tr.slot for tr in owners], np.int64)
        events: list[AirspaceEvent] = []
        for source in sorted(set(s.source.tolist())):
            m = np.flatnonzero((s.source == source) & alive)
            events += self._write(source, s, m[np.lexsort((m, slots[m]))], slots, hows, x, y)
        self._release()
        return events

    def _write(self, source: str, s: Sightings, m: np.ndarray, slots: np.ndarray, hows: np.ndarray,
               x: np.ndarray, y: np.ndarray) -> list[AirspaceEvent]:
        """Rows `m` of one source (by slot, then order) into its columns: gaps past the timeout become events,
        a missing velocity is derived from the previous fix, the last row of each slot is kept."""
        col = self._col(source)
        sl = slots[m]
        skip = col.present[sl] & (col.key[sl] == s.key[m]) & (s.t[m] < col.t[sl])
        m, sl = m[~skip], sl[~skip]
        if not m.size:
            return []
        first = np.r_[True, sl[1:] != sl[:-1]]
        t = s.t[m]

        def prev(stored: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return np.where(first, stored[sl], np.r_[rows[:1], rows[:-1]])

        p_t, p_x, p_y, p_z = prev(col.t, t), prev(col.x, x[m]), prev(col.y, y[m]), prev(col.z, s.alt[m])
        p_present = np.where(first, col.present[sl], True)
        p_lost = np.where(first, col.lost[sl], LIVE)
        p_key, p_lon, p_lat = prev(col.key, s.key[m]), prev(col.lon, s.lon[m]), prev(col.lat, s.lat[m])
        dt = t - p_t
        events: list[AirspaceEvent] = []
        for r in np.flatnonzero(p_present & ((p_lost != LIVE) | (dt > self.policy.timeout(source)))).tolist():
            before = (float(p_t[r]), p_key[r], float(p_lon[r]), float(p_lat[r]), float(p_z[r]), int(p_lost[r]))
            events += self._gap(self.slots[int(sl[r])], source, before, float(t[r]))
        derive = p_present & (dt > 0) & (dt <= self.policy.velocity_window_s)
        safe = np.where(derive, dt, 1.0)
        vx, vy, vz = s.vx[m], s.vy[m], s.vz[m]
        horiz = derive & (np.isnan(vx) | np.isnan(vy))
        vx = np.where(horiz, (x[m] - p_x) / safe, vx)
        vy = np.where(horiz, (y[m] - p_y) / safe, vy)
        vert = derive & np.isnan(vz)
        vz = np.where(vert, (s.alt[m] - p_z) / safe, vz)
        vx, vy, vz = self._plausible(vx, vy, vz, horiz, vert)
        last = np.r_[sl[1:] != sl[:-1], True]
        w, rows = sl[last], m[last]
        col.t[w], col.lon[w], col.lat[w] = s.t[rows], s.lon[rows], s.lat[rows]
        col.x[w], col.y[w], col.z[w] = x[rows], y[rows], s.alt[rows]
        col.vx[w], col.vy[w], col.vz[w] = vx[last], vy[last], vz[last]
        col.airborne[w], col.present[w], col.lost[w] = s.airborne[rows], True, LIVE
        col.how[w], col.key[w] = hows[rows], s.key[rows]
        return events

    def _plausible(self, vx: np.ndarray, vy: np.ndarray, vz: np.ndarray, derived_h: np.ndarray,
                   derived_v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Velocities beyond what low-level traffic flies: derived ones are position jumps (unknown: NaN),
        reported ones are clipped (direction kept)."""
        p = self.policy
        speed = np.hypot(vx, vy)
        with np.errstate(invalid="ignore", divide="ignore"):
            over = speed > p.max_speed_mps
            scale = np.where(over & ~derived_h, p.max_speed_mps / speed, 1.0)
            jump = over & derived_h
            vx, vy = np.where(jump, np.nan, vx * scale), np.where(jump, np.nan, vy * scale)
            climb = np.abs(vz) > p.max_climb_mps
            vz = np.where(climb & derived_v, np.nan, np.where(climb, np.sign(vz) * p.max_climb_mps, vz))
        return vx, vy, vz

    def _gap(self, track: Track, source: str, before: tuple, t: float) -> list[AirspaceEvent]:
        """A source heard again after its timeout (`before`: its previous fix's time, key, lon, lat, altitude and
        loss state): lost (if not declared yet) and restored."""
        p_t, key, _, _, _, lost = before
        timeout = self.policy.timeout(source)
        out = []
        if lost == LIVE and self._reports_loss(track, source):
            out.append(self._loss_event(track, source, *before[:5]))
        if lost == LOST or out:
            out.append(source_event("source_restored", track, source, t, {
                "key": key, "silent_s": round(t - p_t, 3), "timeout_s": timeout}))
        return out

    def _associate(self, s: Sightings, r: int, x: float, y: float) -> tuple[Track, int]:
        source, key, uav = s.source[r], s.key[r], s.uav_id[r]
        known = self.alias.get((source, key))
        if uav:
            tid = track_id_for("telemetry", uav)
            if known is not None and known != tid and known in self.tracks:
                self._detach(self.tracks[known], source, tid)
            track = self.tracks.get(tid) or self._create(tid, uav)
            return track, IDENTITY
        if known is not None and known in self.tracks:
            track = self.tracks[known]
            how = int(self.cols[source].how[track.slot]) if source in self.cols else IDENTITY
            if how != GATED or self._still_gated(track, source, s, r, x, y):
                return track, how or IDENTITY
            self._detach(track, source, None)
        else:
            for field_name, space in ALIAS_KEYS:
                value = s.identity[r].get(field_name)
                tid = self.alias.get((space, value.lower())) if isinstance(value, str) and value else None
                if tid in self.tracks:
                    return self.tracks[tid], IDENTITY
            track = self._gate(s, r, x, y)
            if track is not None:
                return track, GATED
        tid = track_id_for(source, key)
        track = self.tracks.get(tid)
        if track is None:
            return self._create(tid, None), IDENTITY
        return track, IDENTITY

    def _gate(self, s: Sightings, r: int, x: float, y: float) -> Track | None:
        if not self.tracks:
            return None
        p, source, t = self.policy, s.source[r], float(s.t[r])
        f = self.fused(t)
        n = len(self.slots)
        ok = f.valid & (t - f.t <= p.gate_age_s)
        if source in self.cols:
            col = self.cols[source]
            ok &= ~(col.present[:n] & (col.lost[:n] == LIVE))
        hint = kind_hint(source, s.identity[r])
        if hint is not None:  # a track of the other kind only (a drone never joins a helicopter's track)
            same, other = (self.hint_drone, self.hint_manned) if hint == "drone" else (self.hint_manned, self.hint_drone)
            ok &= same[:n] | ~other[:n]
        dh = np.hypot(f.x - x, f.y - y)
        ok &= dh <= p.gate_horizontal_m
        dz = np.abs(f.z - s.alt[r])
        ok &= np.isnan(dz) | (dz <= p.gate_vertical_m)
        if not (np.isnan(s.vx[r]) or np.isnan(s.vy[r])):
            ok &= np.hypot(f.vx - s.vx[r], f.vy - s.vy[r]) <= p.gate_speed_mps
        cand = np.flatnonzero(ok)
        if not cand.size:
            return None
        best = min(cand.tolist(), key=lambda k: (dh[k], self.slots[k].id))
        return self.slots[best]

    def _still_gated(self, track: Track, source: str, s: Sightings, r: int, x: float, y: float) -> bool:
        """A gated source's new sighting against the track's other sources (when one is fresh): within twice the
        gates it stays."""
        p, t = self.policy, float(s.t[r])
        f = self.fused(t, exclude=source)
        k = track.slot
        if not f.valid[k]:
            return True
        dz = abs(f.z[k] - s.alt[r])
        return bool(np.hypot(f.x[k] - x, f.y[k] - y) <= 2 * p.gate_horizontal_m
                    and (np.isnan(dz) or dz <= 2 * p.gate_vertical_m))

    # ------------------------------------------------------------------------- time
    def _reports_loss(self, track: Track, source: str) -> bool:
        """source_lost is reported for every source except the telemetry of a track seen by telemetry alone
        (the monitor's link_lost already says that)."""
        return source != "telemetry" or len(self.sources_of(track)) > 1

    def _loss_event(self, track: Track, source: str, t: float, key: str, lon: float, lat: float,
                    alt: float) -> AirspaceEvent:
        timeout = self.policy.timeout(source)
        return source_event("source_lost", track, source, t + timeout, {
            "key": key, "last_seen": rfc3339(from_epoch(t)), "timeout_s": timeout, "lon": lon, "lat": lat,
            "alt_amsl": _num(alt)})

    def declare_losses(self, now: float) -> list[AirspaceEvent]:
        """Sources silent for longer than their timeout at event time `now`: lost (stamped last fix + timeout)."""
        n = len(self.slots)
        out = []
        for name in self.names:
            col = self.cols[name]
            due = np.flatnonzero(col.present[:n] & (col.lost[:n] == LIVE)
                                 & (now - col.t[:n] > self.policy.timeout(name)))
            for slot in due.tolist():
                track = self.slots[slot]
                col.lost[slot] = LOST_SILENT
                if self._reports_loss(track, name):
                    out.append(self._loss_event(track, name, float(col.t[slot]), col.key[slot], float(col.lon[slot]),
                                                float(col.lat[slot]), float(col.z[slot])))
                    col.lost[slot] = LOST
                self.touched.add(track.id)
        return out

    def forget(self, now: float) -> list[str]:
        """Tracks silent (every source) for longer than forget_after_s: removed; their ids."""
        n = len(self.slots)
        last = np.full(n, -np.inf)
        for col in self.cols.values():
            last = np.fmax(last, np.where(col.present[:n], col.t[:n], -np.inf))
        gone = np.flatnonzero((last > -np.inf) & (now - last > self.policy.forget_after_s))
        out = []
        for slot in gone.tolist():
            track = self.slots[slot]
            out.append(track.id)
            self.remove(track)
        self._release()
        return out

    # ------------------------------------------------------------------------- views
    def lon_lat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local metres back to degrees (the inverse of coords.to_local around the table's origin)."""
        return self.lon0 + x / m_per_deg_lon(self.lat0), self.lat0 + y / M_PER_DEG_LAT

    def states(self, tids: list[str], now: float, f: Fused, alerts: dict[str, list[str]]) -> dict[str, dict]:
        """The JSON states of tracks at `now` (the traffic state topic), built column-wise."""
        if not tids:
            return {}
        tracks = [self.tracks[t] for t in tids]
        k = np.array([tr.slot for tr in tracks], np.int64)
        valid = f.valid[k].tolist()
        lon, lat = self.lon_lat(f.x[k], f.y[k])
        speed = np.hypot(f.vx[k], f.vy[k])
        course = np.round(np.degrees(np.arctan2(f.vx[k], f.vy[k])) % 360.0, 1)
        cols = {"lon": np.round(lon, 7).tolist(), "lat": np.round(lat, 7).tolist(),
                "alt_m": _nums(f.z[k], 2), "speed_mps": np.round(speed, 2).tolist(),
                "track_deg": np.where(speed > 0, course, np.nan), "vspeed_mps": np.round(f.vz[k], 2).tolist(),
                "airborne": (f.airborne[k] & f.valid[k]).tolist(),
                "position_source": [self.names[b] if b >= 0 else None for b in f.best[k].tolist()],
                "position_ts": iso_ms(np.nan_to_num(f.t[k]))}
        cols["track_deg"] = _nums(cols["track_deg"], 1)
        sources: list[dict] = [{} for _ in tids]
        for name in self.names:
            col = self.cols[name]
            has = np.flatnonzero(col.present[k])
            if not has.size:
                continue
            kk = k[has]
            seen, age = iso_ms(col.t[kk]), np.round(now - col.t[kk], 3).tolist()
            lost, gated, keys = (col.lost[kk] != LIVE).tolist(), (col.how[kk] == GATED).tolist(), col.key[kk].tolist()
            for n, r in enumerate(has.tolist()):
                sources[r][name] = {"key": keys[n], "last_seen": seen[n], "age_s": age[n], "lost": lost[n],
                                    "associated": "gated" if gated[n] else "identity"}
        ts = rfc3339(from_epoch(now))
        out = {}
        for r, tr in enumerate(tracks):
            doc = {"track_id": tr.id, "ts": ts, "kind": tr.kind, "uav_id": tr.uav_id, "registered": tr.uav_id is not None,
                   "identity": dict(tr.identity), "sources": sources[r], "alerts": alerts.get(tr.id, [])}
            if valid[r]:
                doc.update({name: values[r] for name, values in cols.items()}, alt_ref="AMSL")
            else:
                doc.update(lon=None, lat=None, alt_m=None, alt_ref="AMSL", airborne=False, position_source=None)
            out[tr.id] = doc
        return out


def iso_ms(t: np.ndarray) -> list[str]:
    """Epoch seconds as RFC 3339 strings, vectorized, each identical to protocol.times.rfc3339 of the value
    (UTC, milliseconds, 'Z'). rfc3339 rounds the exact value of the float to the millisecond (half to even);
    `t * 1000` is itself rounded, so a value within a few ulps of half a millisecond can round the other way
    here: those few are formatted by rfc3339 itself (tests/test_protocol_times.py compares the two)."""
    t = np.asarray(t, float)
    scaled = t * 1000.0
    ms = np.round(scaled)
    out = [x + "Z" for x in np.datetime_as_string(ms.astype(np.int64).astype("datetime64[ms]"), unit="ms").tolist()]
    near_half = np.abs(np.abs(scaled - ms) - 0.5) <= 4 * np.spacing(np.abs(scaled)) + 1e-9
    for i in np.flatnonzero(near_half).tolist():
        out[i] = rfc3339(float(t.flat[i]))
    return out


def _nums(v: np.ndarray, digits: int) -> list[float | None]:
    return [None if x != x else x for x in np.round(np.asarray(v, float), digits).tolist()]


def _num(v: float, digits: int = 2) -> float | None:
    return None if np.isnan(v) else round(float(v), digits)


def source_event(kind: str, track: Track, source: str, t: float, detail: dict) -> AirspaceEvent:
    """source_lost / source_restored of one source of a track (zone_id names the source)."""
    return AirspaceEvent(kind, track.subject, source, from_epoch(t),
                         {"track_id": track.id, "source": source, "kind": track.kind, **detail})
