"""Sightings: every position report of an aircraft, whatever its source, as one set of columns.

Two shapes come in, read by attribute name (the airspace core imports nothing of ingest):

- Skylane's own telemetry (`ingest.telemetry.TelemetryRow`): uav_id, ts, lon, lat, alt_m, alt_ref, speed_mps,
  track_deg, vspeed_mps, status, received_at. Source "telemetry", key and registry id = the UAV id.
- Surveillance observations (`ingest.rows.ObservationRow`): source ("adsb", "rid", ...), track_id (ICAO 24-bit
  address, Remote ID serial or session id), the same position and velocity fields (altitude may be None), and
  `identity` (callsign, category, serial, uav_id when the registry maps it, ...).

Heights become metres AMSL through the zone set's vertical model (unknown: NaN); velocity becomes east/north/up
metres per second (NaN where the source gives none: the track table derives it from recent fixes).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .vertical import ALT_REFS, VerticalModel

GROUND_STATES = frozenset({"ground", "on_ground", "landed", "grounded"})
AIRBORNE_STATES = frozenset({"airborne", "emergency", "flying", "in_flight"})
MAX_IDENTITY_KEYS = 32
MAX_IDENTITY_TEXT = 200
Lookup = Callable[[str, str], "str | None"]  # (registry key, value) -> device id, e.g. RegistryView.device


@dataclass
class Sightings:
    """Position reports as columns (numpy arrays; object arrays for the text and identity)."""

    t: np.ndarray            # event time, epoch seconds
    recv: np.ndarray         # receive time, epoch seconds
    source: np.ndarray       # "telemetry" | "adsb" | "rid" | ...
    key: np.ndarray          # the source's own id of the aircraft
    uav_id: np.ndarray       # the registered UAV id, or None
    lon: np.ndarray
    lat: np.ndarray
    alt: np.ndarray          # metres AMSL, NaN unknown
    vx: np.ndarray           # east, north, up m/s; NaN unknown
    vy: np.ndarray
    vz: np.ndarray
    airborne: np.ndarray     # bool
    identity: np.ndarray     # dict per row

    def __len__(self) -> int:
        return int(self.t.size)

    def take(self, idx) -> Sightings:
        return Sightings(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    @classmethod
    def empty(cls) -> Sightings:
        f, o = np.zeros(0), np.zeros(0, dtype=object)
        return cls(f, f, o, o, o, f, f, f, f, f, f, np.zeros(0, bool), o)

    @classmethod
    def concat(cls, parts: Sequence[Sightings]) -> Sightings:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def _column(rows: Sequence, name: str) -> np.ndarray:
    return np.array([getattr(r, name) for r in rows], dtype=object)


def _floats(values: np.ndarray) -> np.ndarray:
    return np.array([math.nan if v is None else float(v) for v in values.tolist()], dtype=float)


def _velocity(speed: np.ndarray, track: np.ndarray, vspeed: np.ndarray) -> tuple[np.ndarray, ...]:
    heading = np.radians(track)
    return speed * np.sin(heading), speed * np.cos(heading), vspeed


def _amsl(vertical: VerticalModel, alt: np.ndarray, ref: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    out = np.full(alt.shape, np.nan)
    refs = np.array([r.upper() if isinstance(r, str) else "" for r in ref.tolist()], dtype=object)
    for name in ALT_REFS:
        m = (refs == name) & ~np.isnan(alt)
        if m.any():
            out[m] = vertical.to_amsl(alt[m], name, lon[m], lat[m])
    return out


def _epochs(values) -> np.ndarray:
    return np.fromiter((v.timestamp() for v in values), float, len(values))


def identity_of(doc: object) -> dict:
    """The identity fields kept of a sighting: short scalar values only (bounded, JSON-ready)."""
    if not isinstance(doc, dict):
        return {}
    out = {}
    for k, v in doc.items():
        if len(out) >= MAX_IDENTITY_KEYS:
            break
        if not isinstance(k, str) or len(k) > 40:
            continue
        if isinstance(v, str):
            out[k] = v[:MAX_IDENTITY_TEXT]
        elif v is None or isinstance(v, (bool, int)) or (isinstance(v, float) and math.isfinite(v)):
            out[k] = v
    return out


def from_telemetry(rows: Sequence, vertical: VerticalModel, airborne_agl_m: float = 1.0) -> Sightings:
    """Skylane telemetry rows as sightings: airborne by status (Ground / Airborne / Emergency), else by height
    above the ground (the monitor's rule)."""
    if not rows:
        return Sightings.empty()
    n = len(rows)
    lon, lat = _floats(_column(rows, "lon")), _floats(_column(rows, "lat"))
    alt = _amsl(vertical, _floats(_column(rows, "alt_m")), _column(rows, "alt_ref"), lon, lat)
    vx, vy, vz = _velocity(_floats(_column(rows, "speed_mps")), _floats(_column(rows, "track_deg")),
                           _floats(_column(rows, "vspeed_mps")))
    airborne = _airborne(_column(rows, "status"), alt, vertical, lon, lat, airborne_agl_m, default=False)
    uav = _column(rows, "uav_id")
    return Sightings(_epochs([r.ts for r in rows]), _epochs([r.received_at for r in rows]),
                     np.full(n, "telemetry", dtype=object), uav, uav.copy(), lon, lat, alt, vx, vy, vz, airborne,
                     np.array([{} for _ in range(n)], dtype=object))


def from_observations(rows: Sequence, vertical: VerticalModel, airborne_agl_m: float = 1.0,
                      registry: Lookup | None = None) -> Sightings:
    """Surveillance observations as sightings. On the ground when the identity says so (`on_ground` true, or
    `status` ground/landed); otherwise airborne when higher than `airborne_agl_m` above the ground or when the
    altitude is unknown (a source that does not say is assumed flying: an alert rather than a miss). The
    registered UAV is identity `uav_id`, else what `registry` maps the ICAO address or serial to (registered)."""
    if not rows:
        return Sightings.empty()
    lon, lat = _floats(_column(rows, "lon")), _floats(_column(rows, "lat"))
    alt = _amsl(vertical, _floats(_column(rows, "alt_m")), _column(rows, "alt_ref"), lon, lat)
    vx, vy, vz = _velocity(_floats(_column(rows, "speed_mps")), _floats(_column(rows, "track_deg")),
                           _floats(_column(rows, "vspeed_mps")))
    identity = np.array([registered(r.source, str(r.track_id), identity_of(r.identity), registry) for r in rows],
                        dtype=object)
    status = np.array([_status_of(d) for d in identity.tolist()], dtype=object)
    airborne = _airborne(status, alt, vertical, lon, lat, airborne_agl_m, default=True)
    uav = np.array([d.get("uav_id") if isinstance(d.get("uav_id"), str) and d.get("uav_id") else None
                    for d in identity.tolist()], dtype=object)
    return Sightings(_epochs([r.ts for r in rows]), _epochs([r.received_at for r in rows]),
                     _column(rows, "source"), np.array([str(r.track_id) for r in rows], dtype=object), uav,
                     lon, lat, alt, vx, vy, vz, airborne, identity)


def registered(source: str, key: str, identity: dict, registry: Lookup | None) -> dict:
    """`identity` with `uav_id` when the registry knows the aircraft: an ADS-B address (`icao24`), a Remote ID
    serial (`rid_serial`) or a vendor serial (`dji_sn`)."""
    if registry is None or identity.get("uav_id"):
        return identity
    serial = identity.get("serial") if isinstance(identity.get("serial"), str) else None
    icao = identity.get("icao24") if isinstance(identity.get("icao24"), str) else None
    tries = [("icao24", key)] if source == "adsb" else [("rid_serial", key)] if source == "rid" else []
    tries += [("icao24", icao)] + [(k, serial) for k in ("rid_serial", "dji_sn")]
    for name, value in tries:
        uav = registry(name, value) if value else None
        if uav:
            return {**identity, "uav_id": uav}
    return identity


def _status_of(identity: dict) -> str | None:
    if identity.get("on_ground") is True:
        return "Ground"
    st = identity.get("status")
    if isinstance(st, str):
        low = st.lower()
        if low in GROUND_STATES:
            return "Ground"
        if low in AIRBORNE_STATES:
            return "Airborne"
    return None


def _airborne(status: np.ndarray, alt: np.ndarray, vertical: VerticalModel, lon, lat, airborne_agl_m: float,
              default: bool) -> np.ndarray:
    st = np.array([s if isinstance(s, str) else "" for s in status.tolist()], dtype=object)
    with np.errstate(invalid="ignore"):
        high = alt - vertical.ground_at(lon, lat) > airborne_agl_m
    high = np.where(np.isnan(alt), default, high)
    return (st != "Ground") & (np.isin(st, ("Airborne", "Emergency")) | high)
