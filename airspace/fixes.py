"""Position fixes as the monitor works on them: one fix, a batch of fixes as columns grouped by UAV in
event-time order, the state kept of a UAV between batches, and the events made from a batch's rows.

Events are collected as (sort key, event) so a batch's output is in one total order whatever its cut:
by time, UAV, fix, then ends before starts (RANK), then zone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from protocol.times import rfc3339

from .coords import position_problem
from .events import AirspaceEvent, from_epoch, utc
from .vertical import ALT_REFS, VerticalModel, normalize_ref

# within one fix: ends before starts, then the order of EVENT_KINDS pairs
RANK = {k: r for r, k in enumerate((
    "link_lost", "link_restored", "zone_exit", "no_fly_violation_end", "altitude_violation_end",
    "uncleared_flight_end", "corridor_return", "route_deviation_end", "zone_enter",
    "no_fly_violation", "altitude_violation", "uncleared_flight", "corridor_exit",
    "route_deviation", "zone_suspended", "zone_activated"))}
FAMILIES = ("member", "nofly", "alt", "uncleared")  # conditions kept as sorted zone columns per UAV


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


@dataclass
class UavState:
    """What the monitor keeps of a UAV after its latest applied fix."""

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
class FixBatch:
    """A batch's fixes as columns, sorted by UAV then event time; `stored` is each UAV's state before
    the batch (one per first row, None for a UAV seen afresh)."""

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
    stored: list[UavState | None]
    lists: tuple | None = None
    prev: np.ndarray | None = None  # prev_points of every row, once per batch

    @property
    def starts(self) -> np.ndarray:
        return np.flatnonzero(self.first)

    def groups(self) -> list[tuple[int, int, UavState | None]]:
        """(first row, end row, stored state) of each UAV in the batch."""
        starts = self.starts
        ends = np.append(starts[1:], self.t.size)
        return list(zip(starts.tolist(), ends.tolist(), self.stored))

    def first_of(self) -> np.ndarray:
        """Each row's UAV's first row."""
        return np.maximum.accumulate(np.where(self.first, np.arange(self.t.size), 0))

    def fix_detail(self, i: int) -> dict:
        if self.lists is None:  # python floats once per batch, not once per event
            self.lists = (self.lon.tolist(), self.lat.tolist(), self.alt_m.tolist(), self.alt.tolist())
        lon, lat, alt_m, alt = self.lists
        return {"lon": lon[i], "lat": lat[i], "alt_m": alt_m[i], "alt_ref": self.ref[i], "alt_amsl": alt[i],
                "status": self.status[i]}

    def prev_points(self, rows: np.ndarray) -> np.ndarray:
        """(lon, lat, alt_amsl, t) of the fix before each row (NaN when the UAV had none)."""
        if self.prev is None:
            self.prev = self._prev_all()
        return self.prev[rows]

    def _prev_all(self) -> np.ndarray:
        out = np.full((self.t.size, 4), np.nan)
        inner = ~self.first
        r = np.flatnonzero(inner) - 1
        out[inner] = np.column_stack([self.lon[r], self.lat[r], self.alt[r], self.t[r]])
        for i, st in zip(self.starts.tolist(), self.stored):
            if st is not None:
                out[i] = (st.lon, st.lat, st.alt_amsl, st.t)
        return out


def build_batch(vertical: VerticalModel, airborne_agl_m: float, idx: np.ndarray, codes: np.ndarray,
                known: list[UavState | None], uav, ts, t, lon, lat, alt_m, alt_ref, status) -> FixBatch:
    """The rows `idx` of the columns as a batch: `idx` in UAV then time order, `codes` their UAV codes,
    `known[code]` the UAV's state before the batch."""
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
            alt[m] = vertical.to_amsl(alt_raw[m], ref)
    stat = [status[i] for i in keep]
    st_arr = np.array([s or "" for s in stat], dtype=object)
    ground = vertical.to_amsl(0.0, "AGL")
    airborne = (st_arr != "Ground") & (np.isin(st_arr, ("Airborne", "Emergency"))
                                       | (alt - ground > airborne_agl_m))
    first = np.ones(n, bool)
    first[1:] = codes[1:] != codes[:-1]
    last = np.append(first[1:], True)
    stored = [known[c] for c in codes[first].tolist()]
    return FixBatch(u, [_as_utc(ts[i]) for i in keep], t[idx], lon_a, lat_a, alt, alt_raw, list(refs), stat,
                    airborne, first, last, stored)


def _as_utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo is timezone.utc else utc(ts)


def make_event(kind: str, uav: str, zone_id: str | None, ts: datetime, detail: dict) -> AirspaceEvent:
    """An AirspaceEvent from values the monitor already validated (kind from RANK, ts aware UTC)."""
    ev = object.__new__(AirspaceEvent)
    for name, value in (("kind", kind), ("uav_id", uav), ("zone_id", zone_id), ("ts", ts), ("detail", detail)):
        object.__setattr__(ev, name, value)
    return ev


def entry(kind: str, uav: str, zone_id: str | None, ts: datetime, detail: dict, order: int, row: int) -> tuple:
    """(sort key, event): by time, UAV, fix, then ends before starts (a total, batch-free order)."""
    return ((ts, uav, row, RANK[kind], order), make_event(kind, uav, zone_id, ts, detail))


def lost_detail(last_t: float, timeout: float, lon: float, lat: float, alt_amsl: float) -> dict:
    """The same detail whether the loss is noticed by tick() or by the gap before the next fix."""
    return {"last_fix": rfc3339(from_epoch(last_t)), "timeout_s": timeout, "lon": float(lon), "lat": float(lat),
            "alt_amsl": float(alt_amsl)}
