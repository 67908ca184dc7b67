"""Altitude references: everything is compared in metres AMSL.

Zones and fixes may state heights as AGL (true height over ground), AMSL, or WGS84 ellipsoid
height (what raw GNSS reports), in metres or feet. Minhang is flat, so one ground elevation and
one geoid undulation for the whole zone are accurate to a few metres and are the default; a
terrain model (any callable ground(lon, lat) -> metres AMSL) can replace the constant without
changing the callers. The 120 m true-height ceiling of uncontrolled airspace is a rule of the
model too (`ceiling_agl_m`, None = no such rule), so monitor and clearance read it from one place.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ALT_REFS = ("AGL", "AMSL", "WGS84")
UNITS = {"M": 1.0, "FT": 0.3048}  # metres per unit; 1 ft = 0.3048 m exactly
GroundModel = Callable[[np.ndarray, np.ndarray], np.ndarray]


def normalize_ref(ref: object) -> str:
    """Upper-case a reference name; ValueError when it is not one of ALT_REFS."""
    norm = ref.upper() if isinstance(ref, str) else None
    if norm not in ALT_REFS:
        raise ValueError(f"unknown altitude reference {ref!r}; expected one of {ALT_REFS}")
    return norm


def normalize_uom(uom: object) -> str:
    """'m'/'M'/'ft'/'FT' as 'M' or 'FT'; ValueError otherwise."""
    norm = uom.upper() if isinstance(uom, str) else None
    if norm not in UNITS:
        raise ValueError(f"unknown unit {uom!r}; expected one of M, FT")
    return norm


def to_metres(value: float | np.ndarray, uom: str) -> float | np.ndarray:
    return value * UNITS[normalize_uom(uom)]


def from_metres(value: float, uom: str) -> float:
    """Metres in `uom`, rounded to 1e-6 so that 400 ft -> 121.92 m -> 400 ft exactly."""
    return round(value / UNITS[normalize_uom(uom)], 6)


@dataclass(frozen=True)
class VerticalModel:
    """Conversion between the altitude references, and the uncontrolled-airspace ceiling rule.

    ground_amsl_m is the ground elevation used for zone bands stated AGL; `ground`, when set,
    gives the elevation per position instead (then AGL bands are resolved per position).
    """

    ground_amsl_m: float = 4.0
    geoid_undulation_m: float = 10.0
    ceiling_agl_m: float | None = 120.0
    ground: GroundModel | None = None

    @property
    def flat(self) -> bool:
        """True when the ground elevation is one constant (bands are then fixed AMSL heights)."""
        return self.ground is None

    def offset(self, ref: str) -> float:
        """Metres to add to a height in `ref` to get AMSL (at the model's constant ground)."""
        return {"AGL": self.ground_amsl_m, "AMSL": 0.0,
                "WGS84": -self.geoid_undulation_m}[normalize_ref(ref)]

    def ground_at(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Ground elevation (m AMSL) at each position."""
        lon = np.asarray(lon, dtype=float)
        if self.ground is None:
            return np.full(lon.shape, self.ground_amsl_m)
        return np.asarray(self.ground(lon, np.asarray(lat, dtype=float)), dtype=float)

    def to_amsl(self, alt: float | np.ndarray, ref: str, lon=None, lat=None,
                uom: str = "M") -> float | np.ndarray:
        """Height in `ref` and `uom` (scalar or array) as metres AMSL; AGL uses the ground at
        (lon, lat) when given and the model has a terrain, else the constant."""
        ref = normalize_ref(ref)
        alt = to_metres(alt, uom) if uom.upper() != "M" else alt
        if ref == "AGL" and self.ground is not None and lon is not None:
            return alt + self.ground_at(lon, lat)
        return alt + self.offset(ref)

    def from_amsl(self, alt_amsl: float | np.ndarray, ref: str, lon=None, lat=None) -> float | np.ndarray:
        """Metres AMSL as a height in `ref` (the inverse of to_amsl, metres)."""
        ref = normalize_ref(ref)
        if ref == "AGL" and self.ground is not None and lon is not None:
            return alt_amsl - self.ground_at(lon, lat)
        return alt_amsl - self.offset(ref)

    def ceiling_amsl(self, lon=None, lat=None) -> float | np.ndarray:
        """The uncontrolled-airspace ceiling in metres AMSL (inf when the rule is off)."""
        if self.ceiling_agl_m is None:
            return np.inf if lon is None else np.full(np.shape(lon), np.inf)
        return self.to_amsl(self.ceiling_agl_m, "AGL", lon, lat)

    def above_ceiling(self, alt_amsl: np.ndarray, lon=None, lat=None) -> np.ndarray:
        """True where a height (m AMSL) is above the 120 m (configurable) true-height ceiling."""
        return np.asarray(alt_amsl, dtype=float) > self.ceiling_amsl(lon, lat)
