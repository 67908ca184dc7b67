"""A local flat-earth frame in metres.

The demonstration zone spans about 10 km, where an equirectangular projection around a
reference point errs by well under a metre: far below GNSS noise, and much cheaper and more
predictable than a full geodesic library for a simulator that must be deterministic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon

LonLat = tuple[float, float]


@dataclass(frozen=True, slots=True)
class LocalFrame:
    """East/north metres relative to (lon0, lat0)."""

    lon0: float
    lat0: float

    @property
    def m_per_deg_lon(self) -> float:
        return m_per_deg_lon(self.lat0)

    def to_xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.lon0) * self.m_per_deg_lon, (lat - self.lat0) * M_PER_DEG_LAT

    def to_lonlat(self, x: float, y: float) -> LonLat:
        return self.lon0 + x / self.m_per_deg_lon, self.lat0 + y / M_PER_DEG_LAT


def distance_m(a: LonLat, b: LonLat) -> float:
    """Ground distance between two nearby points."""
    x, y = LocalFrame(a[0], a[1]).to_xy(b[0], b[1])
    return math.hypot(x, y)


def bearing_deg(dx: float, dy: float) -> float:
    """Compass bearing (0 = north, clockwise) of an east/north displacement."""
    return math.degrees(math.atan2(dx, dy)) % 360.0
