"""Stateful per-UAV airspace monitor: position fixes in, transition events out.

Pure: time arrives on each fix (its event time), never from a clock. Each batch is
classified against every zone in one vectorized call, and transitions are found with array
comparisons between consecutive fixes of a UAV, so Python only loops over the (rare) events.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .coords import position_problem
from .events import AirspaceEvent, utc
from .vertical import ALT_REFS, normalize_ref
from .zones import CEILING_KINDS, ZoneSet


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
class _UavState:
    last_ts: datetime
    inside: np.ndarray  # per zone: inside its 3D volume
    over: np.ndarray    # per zone: horizontally inside a ceiling zone and above its top


class AirspaceMonitor:
    """Tracks which zones each UAV is in and emits zone/violation events on transitions."""

    def __init__(self, zones: ZoneSet) -> None:
        self.zones = zones
        self._restricted = zones.kinds == "restricted"
        self._ceiling = np.isin(zones.kinds, CEILING_KINDS)
        self._state: dict[str, _UavState] = {}

    def process(self, fixes: Sequence[Fix]) -> list[AirspaceEvent]:
        """Apply a batch of fixes; return its events sorted by (ts, uav_id).

        Within the batch fixes are put in event-time order per UAV (a stable sort, so the
        batch is the reordering window); a fix older than the last one already applied for
        its UAV is late and ignored, since applying it would rewind that UAV's state.
        """
        pending = sorted(fixes, key=lambda f: (f.uav_id, f.ts))
        pending = [f for f in pending
                   if (s := self._state.get(f.uav_id)) is None or f.ts >= s.last_ts]
        if not pending:
            return []
        n, vertical = len(pending), self.zones.vertical
        lon = np.fromiter((f.lon for f in pending), float, n)
        lat = np.fromiter((f.lat for f in pending), float, n)
        alt = np.fromiter((f.alt_m for f in pending), float, n)
        refs = np.array([f.alt_ref for f in pending])
        for ref in ALT_REFS:
            alt[refs == ref] = vertical.to_amsl(alt[refs == ref], ref)
        horizontal, inside = self.zones.classify(lon, lat, alt)
        over = horizontal & self._ceiling & (alt[:, None] > self.zones.upper_amsl)

        uav = [f.uav_id for f in pending]
        first = np.array([i == 0 or uav[i] != uav[i - 1] for i in range(n)])
        prev_in, prev_over = np.roll(inside, 1, axis=0), np.roll(over, 1, axis=0)
        for i in np.flatnonzero(first):
            state = self._state.get(uav[i])
            prev_in[i] = state.inside if state else False
            prev_over[i] = state.over if state else False
        for i in np.flatnonzero(np.append(first[1:], True)):  # last fix of each UAV
            self._state[uav[i]] = _UavState(pending[i].ts, inside[i].copy(), over[i].copy())

        entered = inside & ~prev_in
        transitions = (("zone_exit", prev_in & ~inside), ("zone_enter", entered),
                       ("no_fly_violation", entered & self._restricted),
                       ("altitude_violation", over & ~prev_over))
        found = sorted((int(i), rank, int(j)) for rank, (_, mask) in enumerate(transitions)
                       for i, j in zip(*np.nonzero(mask)))
        events = [self._event(transitions[rank][0], pending[i], j, alt[i]) for i, rank, j in found]
        return sorted(events, key=lambda e: (e.ts, e.uav_id))

    def _event(self, kind: str, fix: Fix, j: int, alt_amsl: float) -> AirspaceEvent:
        zone = self.zones.zones[j]
        detail = {"lon": float(fix.lon), "lat": float(fix.lat), "alt_m": float(fix.alt_m),
                  "alt_ref": fix.alt_ref, "alt_amsl": float(alt_amsl), "zone_name": zone.name,
                  "zone_kind": zone.kind, "status": fix.status}
        if kind.endswith("_violation"):
            detail.update(band=[zone.lower_m, zone.upper_m], upper_m=zone.upper_m,
                          zone_alt_ref=zone.alt_ref,
                          upper_amsl=float(self.zones.upper_amsl[j]))
        return AirspaceEvent(kind, fix.uav_id, zone.id, fix.ts, detail)

    def zones_of(self, uav_id: str) -> list[str]:
        """Ids of the zones whose 3D volume holds the UAV's latest fix."""
        state = self._state.get(uav_id)
        return [] if state is None else [self.zones.zones[j].id for j in np.flatnonzero(state.inside)]

    def alerts_of(self, uav_id: str) -> list[str]:
        """Violation kinds active now for the UAV (in EVENT_KINDS order)."""
        state = self._state.get(uav_id)
        if state is None:
            return []
        active = [("no_fly_violation", (state.inside & self._restricted).any()),
                  ("altitude_violation", state.over.any())]
        return [kind for kind, on in active if on]

    def last_ts(self, uav_id: str) -> datetime | None:
        """Event time of the UAV's latest applied fix (later fixes only move it forward)."""
        state = self._state.get(uav_id)
        return None if state is None else state.last_ts

    def forget(self, uav_id: str) -> None:
        """Drop the UAV's state (e.g. landed and disconnected); its next fix starts afresh."""
        self._state.pop(uav_id, None)
