"""Mode S / ADS-B frames for a position and identity: what a simulated aircraft transmits (DF17, DO-260B).

For the simulator (a helicopter emitting real frames into `skylane adsb`) and the tests: every frame here
decodes through ingest/bridges/modes.py and tracker.py back to what went in (tests/test_adsb_encode.py).

    frames = aircraft_frames("7800ab", lat=31.05, lon=121.47, alt_ft=500, callsign="B7215",
                             category="A7", groundspeed_kt=80, track_deg=45, vrate_fpm=0)
    # [identification, velocity, airborne position even, airborne position odd], 14 bytes each
    beast = b"".join(framing.beast_frame(f, ticks) for f in frames)   # what a receiver serves on TCP 30005
"""
from __future__ import annotations

import math

from . import cpr
from .modes_crc import crc_residue

CHARSET = "#ABCDEFGHIJKLMNOPQRSTUVWXYZ##### ###############0123456789######"
CA_AIRBORNE = 5  # transponder capability: level 2+, airborne


def _df17(icao: str, me: int) -> bytes:
    address = int(icao, 16)
    if not 0 <= address < 1 << 24:
        raise ValueError(f"ICAO address {icao!r} is not 24 bits")
    data = bytes(((17 << 3) | CA_AIRBORNE,)) + address.to_bytes(3, "big") + me.to_bytes(7, "big")
    parity = crc_residue(data + b"\0\0\0")
    return data + parity.to_bytes(3, "big")


def identification(icao: str, callsign: str, category: str = "A0") -> bytes:
    """Type code 1-4 (from the category's set: A -> 4, B -> 3, C -> 2, D -> 1), category number, 8 characters."""
    if len(category) != 2 or category[0] not in "ABCD" or not category[1].isdigit() or int(category[1]) > 7:
        raise ValueError(f"emitter category {category!r} is not A0-D7")
    text = callsign.upper().ljust(8)[:8]
    me = ((4 - "ABCD".index(category[0])) << 51) | (int(category[1]) << 48)
    for k, ch in enumerate(text):
        code = CHARSET.find(ch)
        if code < 0 or ch == "#":
            raise ValueError(f"callsign character {ch!r} cannot be sent (A-Z, 0-9, space)")
        me |= code << (42 - 6 * k)
    return _df17(icao, me)


def altitude_code(alt_ft: float) -> int:
    """The 12-bit altitude field in 25 ft steps (Q bit set), -1,000 to 50,175 ft."""
    n = round((alt_ft + 1000) / 25)
    if not 0 <= n < 1 << 11:
        raise ValueError(f"altitude {alt_ft} ft outside -1000..50175 ft")
    return ((n >> 4) << 5) | 0x10 | (n & 0xF)


def airborne_position(icao: str, lat: float, lon: float, alt_ft: float, odd: bool, type_code: int = 11) -> bytes:
    """Airborne position in one CPR format: barometric altitude (type codes 9-18) or GNSS height above the
    ellipsoid (20-22), both in the 25 ft altitude code (as dump1090 and rs1090 read type codes 20-22)."""
    if not (9 <= type_code <= 18 or 20 <= type_code <= 22):
        raise ValueError("airborne positions are type codes 9-18 (barometric) or 20-22 (GNSS height)")
    yz, xz = cpr.encode(lat, lon, odd)
    me = (type_code << 51) | (altitude_code(alt_ft) << 36) | (int(odd) << 34) | (yz << 17) | xz
    return _df17(icao, me)


def velocity(icao: str, groundspeed_kt: float, track_deg: float, vrate_fpm: float = 0.0,
             geo_minus_baro_ft: float | None = None) -> bytes:
    """Airborne velocity, subtype 1 (ground speed, subsonic): east/north components in knots, vertical rate from
    64 ft/min steps, and the GNSS-minus-baro difference in 25 ft steps."""
    vx = groundspeed_kt * math.sin(math.radians(track_deg))
    vy = groundspeed_kt * math.cos(math.radians(track_deg))
    ew, ns = round(abs(vx)), round(abs(vy))
    if max(ew, ns) > 1021:
        raise ValueError("subtype 1 carries at most 1021 kt per component")
    vr = round(abs(vrate_fpm) / 64)
    me = (19 << 51) | (1 << 48) | (1 << 43)  # type code, subtype, NACv 1
    me |= (int(vx < 0) << 42) | ((ew + 1) << 32) | (int(vy < 0) << 31) | ((ns + 1) << 21)
    me |= (int(vrate_fpm < 0) << 19) | (min(vr + 1, 511) << 10)  # vertical-rate source bit left 0
    if geo_minus_baro_ft is not None:
        d = min(round(abs(geo_minus_baro_ft) / 25) + 1, 127)
        me |= (int(geo_minus_baro_ft < 0) << 7) | d
    return _df17(icao, me)


def aircraft_frames(icao: str, lat: float, lon: float, alt_ft: float, *, callsign: str | None = None,
                    category: str = "A0", groundspeed_kt: float | None = None, track_deg: float = 0.0,
                    vrate_fpm: float = 0.0, geo_minus_baro_ft: float | None = None) -> list[bytes]:
    """What an aircraft sends in about a second: identification (when a callsign is given), both position
    formats (so a receiver decodes the position globally at once) and velocity (when a speed is given; sent
    before the positions, so their observations carry it)."""
    frames = [identification(icao, callsign, category)] if callsign else []
    if groundspeed_kt is not None:
        frames.append(velocity(icao, groundspeed_kt, track_deg, vrate_fpm, geo_minus_baro_ft))
    return frames + [airborne_position(icao, lat, lon, alt_ft, odd=False),
                     airborne_position(icao, lat, lon, alt_ft, odd=True)]
