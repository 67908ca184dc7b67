"""Compact Position Reporting (CPR), the position encoding of ADS-B (DO-260B §A.1.7, ICAO Doc 9871 §C.2.6).

A position message carries 17-bit fractions of a latitude and a longitude zone, in one of two formats: even
(60 latitude zones, i = 0) or odd (59 zones, i = 1). A position follows either from an even/odd pair received
close together (global decoding: the pair fixes the zone), or from one message and a reference position within
half a zone of the truth (local decoding: 180 NM airborne, 45 NM on the surface, whose zones are a quarter the
size). Both give the same numbers where both are valid: `lat = dlat * (j + yz / 2^17)` with the same zone j.

Pure functions; the decoding state (which frames pair up, which reference is trusted) is the tracker's
(ingest/bridges/tracker.py). The encoder is here too, for the frames a simulator emits (protocol/modes_encode.py).
"""
from __future__ import annotations

import math
from bisect import bisect_right

NZ = 15
CPR_BITS = 1 << 17


def _transition_latitudes() -> list[float]:
    """Latitudes where NL (the number of longitude zones) drops by one, ascending (DO-260B, A.1.7.2 d)."""
    out = []
    a = 1 - math.cos(math.pi / (2 * NZ))
    for nl in range(59, 1, -1):
        out.append(math.degrees(math.acos(math.sqrt(a / (1 - math.cos(2 * math.pi / nl))))))
    return out


_TRANSITIONS = _transition_latitudes()  # NL 59 -> 58 at 10.47°, ..., NL 2 -> 1 at 87°


def nl(lat: float) -> int:
    """Number of longitude zones at `lat` (1..59), from the standard's transition latitudes."""
    return 59 - bisect_right(_TRANSITIONS, abs(lat))


def _zone_sizes(odd: bool, surface: bool) -> tuple[float, int]:
    span = 90.0 if surface else 360.0
    i = 1 if odd else 0
    return span / (4 * NZ - i), i


def global_airborne(even: tuple[int, int], odd: tuple[int, int], latest_odd: bool) -> tuple[float, float] | None:
    """Position of the latest message of an even/odd pair ((yz, xz) each); None when the two messages lie in
    different longitude-zone counts (the aircraft crossed an NL boundary between them: wait for the next pair)."""
    lat_e, lat_o = even[0] / CPR_BITS, odd[0] / CPR_BITS
    j = math.floor(59 * lat_e - 60 * lat_o + 0.5)
    rlat_e = 6.0 * (j % 60 + lat_e)
    rlat_o = 360.0 / 59 * (j % 59 + lat_o)
    if rlat_e >= 270.0:
        rlat_e -= 360.0
    if rlat_o >= 270.0:
        rlat_o -= 360.0
    if not (-90.0 <= rlat_e <= 90.0 and -90.0 <= rlat_o <= 90.0):
        return None
    nl_e = nl(rlat_e)
    if nl_e != nl(rlat_o):
        return None
    lon_e, lon_o = even[1] / CPR_BITS, odd[1] / CPR_BITS
    m = math.floor(lon_e * (nl_e - 1) - lon_o * nl_e + 0.5)
    if latest_odd:
        lat, n, frac = rlat_o, max(nl_e - 1, 1), lon_o
    else:
        lat, n, frac = rlat_e, max(nl_e, 1), lon_e
    lon = 360.0 / n * (m % n + frac)
    if lon >= 180.0:
        lon -= 360.0
    return lat, lon


def local(yz: int, xz: int, odd: bool, ref_lat: float, ref_lon: float, surface: bool = False) -> tuple[float, float]:
    """Position of one message against a reference within half a zone of the truth (airborne 180 NM,
    surface 45 NM): the zone whose centre is nearest to the reference."""
    dlat, i = _zone_sizes(odd, surface)
    frac_lat = yz / CPR_BITS
    j = math.floor(ref_lat / dlat) + math.floor(0.5 + (ref_lat % dlat) / dlat - frac_lat)
    lat = dlat * (j + frac_lat)
    span = 90.0 if surface else 360.0
    zones = nl(lat) - i
    dlon = span / zones if zones > 0 else span
    frac_lon = xz / CPR_BITS
    m = math.floor(ref_lon / dlon) + math.floor(0.5 + (ref_lon % dlon) / dlon - frac_lon)
    lon = dlon * (m + frac_lon)
    if lon >= 180.0:
        lon -= 360.0
    elif lon < -180.0:
        lon += 360.0
    return lat, lon


def encode(lat: float, lon: float, odd: bool, surface: bool = False) -> tuple[int, int]:
    """(yz, xz), the 17-bit CPR fractions of a position in one format (DO-260B A.1.7.3)."""
    dlat, i = _zone_sizes(odd, surface)
    yz = math.floor(CPR_BITS * (lat % dlat) / dlat + 0.5)
    rlat = dlat * (yz / CPR_BITS + math.floor(lat / dlat))
    span = 90.0 if surface else 360.0
    zones = nl(rlat) - i
    dlon = span / zones if zones > 0 else span
    xz = math.floor(CPR_BITS * (lon % dlon) / dlon + 0.5)
    return yz % CPR_BITS, xz % CPR_BITS
