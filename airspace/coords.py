"""WGS84 positions: sanity checks (zone files, fixes, route requests) and the local metric frame.

Distances over the ~10 km of the demonstration zone are taken in an equirectangular east/north frame
around a reference point; these are the only metres-per-degree figures the airspace core uses.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

M_PER_DEG_LAT = 110_940.0
M_PER_DEG_LON_EQUATOR = 111_320.0


def m_per_deg_lon(lat0: float) -> float:
    """Metres per degree of longitude at latitude lat0."""
    return M_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0))


def to_local(lon, lat, lon0: float, lat0: float) -> tuple[np.ndarray, np.ndarray]:
    """East/north metres of (lon, lat) relative to (lon0, lat0)."""
    return ((np.asarray(lon, float) - lon0) * m_per_deg_lon(lat0),
            (np.asarray(lat, float) - lat0) * M_PER_DEG_LAT)


def position_problem(lon: object, lat: object, alt: object = 0.0) -> str | None:
    """Why (lon, lat, alt) is not a usable position, or None when it is.

    A NaN or swapped lat/lon would silently classify as "outside everything", which for an
    airspace monitor means missing a violation, so callers reject such input loudly instead.
    """
    for name, value in (("lon", lon), ("lat", lat), ("alt", alt)):
        if isinstance(value, bool) or not isinstance(value, Real):
            return f"{name} must be a number, got {value!r}"
        if not math.isfinite(value):
            return f"{name} must be finite, got {value!r}"
    if not -180.0 <= lon <= 180.0:
        return f"lon {lon} outside [-180, 180]"
    if not -90.0 <= lat <= 90.0:
        return f"lat {lat} outside [-90, 90]"
    return None
