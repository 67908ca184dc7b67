"""A planned 4D route: waypoints validated and turned into arrays, with times from the waypoints or from a
departure time and a ground speed (airspace.clearance checks it)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from .coords import position_problem, to_local
from .events import epoch_of
from .vertical import normalize_ref
from .zones import ZoneSet

if TYPE_CHECKING:
    from .clearance import Waypoint

_MIN_EPOCH, _MAX_EPOCH = -62_135_596_800.0, 253_402_300_799.0  # 0001-01-01 .. 9999-12-31T23:59:59 UTC


@dataclass
class Route:
    """A planned route as arrays: positions (altitudes AMSL), times (None: untimed), the request's altitude
    reference, and the in-force intervals of the scheduled zones it meets (computed as needed)."""

    lon: np.ndarray
    lat: np.ndarray
    alt: np.ndarray       # AMSL
    t: np.ndarray | None  # epoch seconds
    alt_ref: str
    schedules: dict = field(default_factory=dict)  # zone -> its in-force intervals over the route's times

    def in_force_intervals(self, zs: ZoneSet, j: int) -> list[tuple[float, float]]:
        ivs = self.schedules.get(j)
        if ivs is None:
            ivs = self.schedules[j] = zs.scheduled_intervals(j, float(self.t[0]), float(self.t[-1]))
        return ivs

    @property
    def n_seg(self) -> int:
        return self.lon.size - 1


def _epoch(value, what: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{what}: naive datetime (give a time zone)")
        return epoch_of(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ValueError(f"{what}: must be an aware datetime or epoch seconds, got {value!r}")


def plan(zs: ZoneSet, waypoints: Sequence[Waypoint], alt_ref: str, departure, speed_mps) -> Route:
    """The waypoints as a Route, timed by their own t, or by departure + speed_mps (3D distance), or untimed;
    ValueError naming the waypoint for anything malformed."""
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
    return Route(lon, lat, alt, t, alt_ref)


