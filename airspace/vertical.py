"""Altitude references: everything is compared in metres AMSL.

Zones and fixes may state heights as AGL (true height over ground), AMSL, or WGS84 ellipsoid
height (what raw GNSS reports). Minhang is flat, so one ground elevation and one geoid
undulation for the whole zone are accurate to a few metres; a terrain/geoid grid can replace
this model later without changing its callers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALT_REFS = ("AGL", "AMSL", "WGS84")


def normalize_ref(ref: object) -> str:
    """Upper-case a reference name; ValueError when it is not one of ALT_REFS."""
    norm = ref.upper() if isinstance(ref, str) else None
    if norm not in ALT_REFS:
        raise ValueError(f"unknown altitude reference {ref!r}; expected one of {ALT_REFS}")
    return norm


@dataclass(frozen=True)
class VerticalModel:
    """Flat-ground, constant-undulation conversion between the altitude references."""

    ground_amsl_m: float = 4.0
    geoid_undulation_m: float = 10.0

    def offset(self, ref: str) -> float:
        """Metres to add to a height in `ref` to get AMSL."""
        return {"AGL": self.ground_amsl_m, "AMSL": 0.0,
                "WGS84": -self.geoid_undulation_m}[normalize_ref(ref)]

    def to_amsl(self, alt: float | np.ndarray, ref: str) -> float | np.ndarray:
        """Height in `ref` (scalar or array) as metres AMSL."""
        return alt + self.offset(ref)
