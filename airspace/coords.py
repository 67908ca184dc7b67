"""Sanity checks on WGS84 positions, shared by zone files, fixes and route requests."""
from __future__ import annotations

import math
from numbers import Real


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
