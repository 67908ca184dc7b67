"""ASTM F3411-22a / ASD-STAN EN 4709-002 Remote ID broadcast messages from a position: what a drone's Remote ID
module transmits (25-byte messages, little-endian, byte 0 = message type << 4 | protocol version 2), for a
simulator that stands in for drones and receivers. The decoder is ingest/dialects/remoteid.py; tests hold both
against vectors built from the field tables.
"""
from __future__ import annotations

import struct

VERSION = 2
MESSAGE_SIZE = 25
_LOCATION = struct.Struct("<BBBbiiHHHBBHBB")


def _header(message_type: int) -> bytes:
    return bytes(((message_type << 4) | VERSION,))


def _alt(metres: float | None) -> int:
    """0.5 m steps from -1000 m; 0 is the unknown value."""
    return 0 if metres is None else max(1, min(0xFFFF, round((metres + 1000.0) / 0.5)))


def basic_id(serial: str, ua_type: int = 2) -> bytes:
    """Basic ID: ID type 1 (serial number, ANSI/CTA-2063-A), UA type 2 (helicopter or multirotor) by default."""
    return _header(0) + bytes(((1 << 4) | ua_type,)) + serial.encode("ascii")[:20].ljust(20, b"\0") + bytes(3)


def location(lat: float, lon: float, geo_alt_m: float | None, height_agl_m: float | None = None, *,
             track_deg: float | None = None, speed_mps: float | None = None, vspeed_mps: float | None = None,
             airborne: bool = True, tenths_of_hour_s: int | None = None) -> bytes:
    """Location/Vector (F3411-22a Table 6): None gives a field's unknown value."""
    direction = 361 if track_deg is None else round(track_deg) % 360
    east_west, dir_byte = (1, direction - 180) if direction >= 180 else (0, direction)  # 361 (unknown): 1, 181
    if speed_mps is None:
        mult, speed = 1, 255
    elif speed_mps <= 255 * 0.25:
        mult, speed = 0, round(speed_mps / 0.25)
    else:
        mult, speed = 1, min(254, round((speed_mps - 63.75) / 0.75))
    vs = 126 if vspeed_mps is None else max(-124, min(124, round(vspeed_mps / 0.5)))  # 126: unknown (63 m/s)
    flags = ((2 if airborne else 1) << 4) | (1 << 2) | (east_west << 1) | mult  # height is above ground (AGL)
    return _header(1) + _LOCATION.pack(
        flags, dir_byte, speed, vs, round(lat * 1e7), round(lon * 1e7), 0, _alt(geo_alt_m), _alt(height_agl_m),
        (4 << 4) | 10, (3 << 4) | 3, 0xFFFF if tenths_of_hour_s is None else tenths_of_hour_s, 1, 0)


def operator_id(text: str) -> bytes:
    return _header(5) + bytes((0,)) + text.encode("ascii")[:20].ljust(20, b"\0") + bytes(3)


def pack(*messages: bytes) -> bytes:
    """A message pack (type 15) of whole messages."""
    if any(len(m) != MESSAGE_SIZE for m in messages):
        raise ValueError("every message of a pack is 25 bytes")
    return _header(15) + bytes((MESSAGE_SIZE, len(messages))) + b"".join(messages)
