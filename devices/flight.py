"""Pure flight kinematics: where a simulated drone is at time t.

Position is a function of (spec, centerline, t) only, with no state carried between calls, so
the simulator can skip or repeat ticks, tests can probe any instant, and a replayed scenario is
reproducible.

The cycle, starting at t + phase_s = 0:
  outbound leg: on the ground at the from-vertiport (turnaround wait), vertical climb to the
  middle of the corridor band, cruise along the centerline, vertical descent at the
  to-vertiport; return leg: the same back along the reversed centerline.
Misbehaviour happens on the outbound leg: a stray doglegs off the centerline through a point
inside a restricted zone at cruise altitude; a climber rises above its band (and above the
area ceiling) in the middle of the cruise, then returns to the band.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from shapely.geometry import LineString, Point

from .fleet import DroneSpec
from .geo import LocalFrame, LonLat, bearing_deg

CLIMB_MPS = 3.0
DESCENT_MPS = 2.5
TURNAROUND_S = 45.0
STRAY_DOGLEG_MIN_M = 250.0  # half-length of the stretch of centerline the dogleg replaces
DRAIN_VERTICAL_PCT_S = 0.10
DRAIN_CRUISE_PCT_S = 0.05

Status = Literal["Ground", "Airborne"]


@dataclass(frozen=True, slots=True)
class Fix:
    """A position fix as the telemetry reports it (altitude above ground)."""

    lon: float
    lat: float
    alt_m: float
    speed_mps: float
    track_deg: float
    vspeed_mps: float
    status: Status
    battery_pct: float


class Polyline:
    """A path in local metres, walked by distance from its start."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        pts = [points[0]]
        for p in points[1:]:
            if math.dist(p, pts[-1]) > 1e-6:
                pts.append(p)
        if len(pts) < 2:
            raise ValueError("a path needs two distinct points")
        self.points = pts
        self.cum = [0.0]
        for a, b in zip(pts, pts[1:]):
            self.cum.append(self.cum[-1] + math.dist(a, b))

    @property
    def length(self) -> float:
        return self.cum[-1]

    def _segment(self, s: float) -> int:
        return min(max(bisect.bisect_right(self.cum, s) - 1, 0), len(self.points) - 2)

    def at(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading_deg) at distance s (clamped to the path)."""
        s = min(max(s, 0.0), self.length)
        i = self._segment(s)
        (x0, y0), (x1, y1) = self.points[i], self.points[i + 1]
        f = (s - self.cum[i]) / (self.cum[i + 1] - self.cum[i])
        return x0 + f * (x1 - x0), y0 + f * (y1 - y0), bearing_deg(x1 - x0, y1 - y0)

    def head(self, s: float) -> list[tuple[float, float]]:
        """The points from the start up to distance s."""
        i = self._segment(s)
        return self.points[: i + 1] + [self.at(s)[:2]]

    def tail(self, s: float) -> list[tuple[float, float]]:
        """The points from distance s to the end."""
        i = self._segment(s)
        return [self.at(s)[:2]] + self.points[i + 1:]


def _dogleg(path: Polyline, target: tuple[float, float]) -> Polyline:
    """The path with the stretch nearest to `target` replaced by a detour through it."""
    line = LineString(path.points)
    s0 = line.project(Point(target))
    off = line.distance(Point(target))
    half = max(STRAY_DOGLEG_MIN_M, 0.6 * off)
    s_out = max(s0 - half, 0.05 * path.length)
    s_back = min(s0 + half, 0.95 * path.length)
    return Polyline(path.head(s_out) + [target] + path.tail(s_back))


@dataclass(frozen=True)
class _Leg:
    path: Polyline
    cruise_alt: float
    speed: float
    excursion_alt: float | None

    @property
    def climb_s(self) -> float:
        return self.cruise_alt / CLIMB_MPS

    @property
    def cruise_s(self) -> float:
        return self.path.length / self.speed

    @property
    def descent_s(self) -> float:
        return self.cruise_alt / DESCENT_MPS

    @property
    def duration_s(self) -> float:
        return TURNAROUND_S + self.climb_s + self.cruise_s + self.descent_s

    def _excursion(self, tau: float) -> tuple[float, float]:
        """(extra altitude, vertical speed) of a climber tau seconds into the cruise."""
        if self.excursion_alt is None:
            return 0.0, 0.0
        top = self.excursion_alt - self.cruise_alt
        up = CLIMB_MPS * (tau - 0.25 * self.cruise_s)
        down = CLIMB_MPS * (0.75 * self.cruise_s - tau)
        h = min(up, down, top)
        if h <= 0:
            return 0.0, 0.0
        if h >= top:
            return top, 0.0
        return h, (CLIMB_MPS if up < down else -CLIMB_MPS)

    def fix(self, frame: LocalFrame, tau: float) -> Fix:
        """The fix tau seconds into this leg (0 <= tau < duration_s)."""
        climb_end = TURNAROUND_S + self.climb_s
        cruise_end = climb_end + self.cruise_s
        vertical_drain = DRAIN_VERTICAL_PCT_S * self.climb_s
        if tau < TURNAROUND_S:
            x, y, hdg = self.path.at(0.0)
            return _fix(frame, x, y, 0.0, 0.0, hdg, 0.0, "Ground", 100.0)
        if tau < climb_end:
            x, y, hdg = self.path.at(0.0)
            up = tau - TURNAROUND_S
            return _fix(frame, x, y, CLIMB_MPS * up, 0.0, hdg, CLIMB_MPS, "Airborne",
                        100.0 - DRAIN_VERTICAL_PCT_S * up)
        if tau < cruise_end:
            c = tau - climb_end
            x, y, hdg = self.path.at(self.speed * c)
            extra, vs = self._excursion(c)
            return _fix(frame, x, y, self.cruise_alt + extra, self.speed, hdg, vs, "Airborne",
                        100.0 - vertical_drain - DRAIN_CRUISE_PCT_S * c)
        x, y, hdg = self.path.at(self.path.length)
        down = tau - cruise_end
        alt = max(self.cruise_alt - DESCENT_MPS * down, 0.0)
        battery = 100.0 - vertical_drain - DRAIN_CRUISE_PCT_S * self.cruise_s - DRAIN_VERTICAL_PCT_S * down
        return _fix(frame, x, y, alt, 0.0, hdg, -DESCENT_MPS, "Airborne" if alt > 0 else "Ground", battery)


def _fix(frame: LocalFrame, x: float, y: float, alt: float, speed: float, track: float, vs: float,
         status: Status, battery: float) -> Fix:
    lon, lat = frame.to_lonlat(x, y)
    return Fix(lon=round(lon, 7), lat=round(lat, 7), alt_m=round(alt, 1), speed_mps=round(speed, 2),
               track_deg=round(track, 1) % 360.0, vspeed_mps=round(vs, 2), status=status,
               battery_pct=round(max(battery, 0.0), 1))


class FlightPlan:
    """The two legs of a drone's cycle, precomputed once per spec."""

    def __init__(self, spec: DroneSpec, centerline: Sequence[LonLat] | None = None) -> None:
        line = list(centerline if centerline is not None else spec.centerline)
        if len(line) < 2:
            raise ValueError(f"{spec.uav_id}: centerline needs at least two points")
        if spec.speed_mps <= 0:
            raise ValueError(f"{spec.uav_id}: speed must be > 0")
        self.spec = spec
        self.frame = LocalFrame(*line[0])
        out = Polyline([self.frame.to_xy(*p) for p in line])
        back = Polyline(out.points[::-1])
        if spec.behaviour == "stray_no_fly" and spec.stray_target is not None:
            out = _dogleg(out, self.frame.to_xy(*spec.stray_target))
        excursion = spec.excursion_alt_m if spec.behaviour == "climb_above_band" else None
        self.outbound = _Leg(out, spec.cruise_alt_m, spec.speed_mps, excursion)
        self.inbound = _Leg(back, spec.cruise_alt_m, spec.speed_mps, None)

    @property
    def cycle_s(self) -> float:
        return self.outbound.duration_s + self.inbound.duration_s

    def fix(self, t: float) -> Fix:
        """The fix at t seconds since simulation start."""
        tau = (t + self.spec.phase_s) % self.cycle_s
        if tau < self.outbound.duration_s:
            return self.outbound.fix(self.frame, tau)
        return self.inbound.fix(self.frame, tau - self.outbound.duration_s)


@lru_cache(maxsize=4096)
def _plan(spec: DroneSpec, centerline: tuple[LonLat, ...]) -> FlightPlan:
    return FlightPlan(spec, centerline)


def plan_for(spec: DroneSpec, centerline: Sequence[LonLat] | None = None) -> FlightPlan:
    """A cached FlightPlan (plans are immutable, so sharing them is safe)."""
    line = tuple(tuple(p) for p in (centerline if centerline is not None else spec.centerline))
    return _plan(spec, line)  # type: ignore[arg-type]


def fix_at(spec: DroneSpec, t: float, centerline: Sequence[LonLat] | None = None) -> Fix:
    """Where the drone is t seconds after simulation start."""
    return plan_for(spec, centerline).fix(t)
