"""MAVLink's OPEN_DRONE_ID_* messages back into the broadcast they describe: the 25-byte ASTM F3411-22a /
ASD-STAN EN 4709-002 messages (little-endian, byte 0 = type << 4 | protocol version 2), so the MAVLink bridge can
publish an autopilot's Remote ID on the Remote ID path (`{root}/rid/{receiver_id}`, docs/mqtt-contract.md) and
ingest decodes it like any receiver's (ingest/dialects/remoteid.py).

MAVLink's fields mirror the broadcast's one to one (the opendroneid-core-c structures), in plainer units:
directions in centi-degrees (36100 unknown), speeds in cm/s (25500 / 6300 unknown), altitudes in metres
(-1000 unknown), the Location time in seconds since the full hour (0xFFFF unknown). OPEN_DRONE_ID_MESSAGE_PACK
already holds broadcast messages: they are passed on as a pack. Authentication pages are not forwarded.
"""
from __future__ import annotations

import struct

MESSAGE_SIZE = 25
VERSION = 2  # ASTM F3411-22a
_LOCATION = struct.Struct("<BBBBbiiHHHBBHBB")
_SYSTEM = struct.Struct("<BBiiHBHHBHIB")


def _header(mtype: int) -> int:
    return (mtype << 4) | VERSION


def _bytes(value, size: int) -> bytes:
    """A MAVLink char/uint8 array (str, bytes or a list of ints) as `size` NUL-padded bytes."""
    if isinstance(value, str):
        raw = value.encode("ascii", "replace")
    elif isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        raw = bytes(int(b) & 0xFF for b in value)
    return raw[:size].ljust(size, b"\0")


def _altitude(metres: float) -> int:
    """0.5 m steps from -1000 m (the unknown value -1000 m is 0)."""
    if metres != metres or metres <= -1000:  # NaN or unknown
        return 0
    return max(0, min(0xFFFF, round((metres + 1000.0) / 0.5)))


def basic_id(msg) -> bytes:
    return bytes((_header(0), ((msg.id_type & 0x0F) << 4) | (msg.ua_type & 0x0F))) + _bytes(msg.uas_id, 20) + bytes(3)


def location(msg) -> bytes:
    direction = 361 if msg.direction > 36000 else round(msg.direction / 100) % 360
    ew, dir_byte = (1, direction - 180) if direction >= 180 else (0, direction)
    if msg.speed_horizontal >= 25500:
        mult, speed = 1, 255
    elif msg.speed_horizontal <= 6375:  # up to 63.75 m/s in 0.25 m/s steps
        mult, speed = 0, round(msg.speed_horizontal / 25)
    else:
        mult, speed = 1, min(254, round((msg.speed_horizontal / 100 - 63.75) / 0.75))
    vspeed = 126 if abs(msg.speed_vertical) >= 6300 else max(-62, min(62, round(msg.speed_vertical / 50)))
    flags = ((msg.status & 0x0F) << 4) | ((msg.height_reference & 1) << 2) | (ew << 1) | mult
    tenths = 0xFFFF if not 0 <= msg.timestamp <= 3600 else round(msg.timestamp * 10)
    return _LOCATION.pack(_header(1), flags, dir_byte, speed, vspeed, msg.latitude, msg.longitude,
                          _altitude(msg.altitude_barometric), _altitude(msg.altitude_geodetic), _altitude(msg.height),
                          ((msg.vertical_accuracy & 0x0F) << 4) | (msg.horizontal_accuracy & 0x0F),
                          ((msg.barometer_accuracy & 0x0F) << 4) | (msg.speed_accuracy & 0x0F), tenths,
                          msg.timestamp_accuracy & 0x0F, 0)


def self_id(msg) -> bytes:
    return bytes((_header(3), msg.description_type & 0xFF)) + _bytes(msg.description, 23)


def system(msg) -> bytes:
    return _SYSTEM.pack(_header(4), ((msg.classification_type & 0x07) << 2) | (msg.operator_location_type & 0x03),
                        msg.operator_latitude, msg.operator_longitude, msg.area_count & 0xFFFF,
                        min(255, msg.area_radius // 10), _altitude(msg.area_ceiling), _altitude(msg.area_floor),
                        ((msg.category_eu & 0x0F) << 4) | (msg.class_eu & 0x0F), _altitude(msg.operator_altitude_geo),
                        msg.timestamp & 0xFFFFFFFF, 0)


def operator_id(msg) -> bytes:
    return bytes((_header(5), msg.operator_id_type & 0xFF)) + _bytes(msg.operator_id, 20) + bytes(3)


def message_pack(msg) -> bytes | None:
    """The pack as broadcast (header, size, count, messages); None when MAVLink's pack is not one of 25-byte
    messages (then there is nothing to forward)."""
    count = msg.msg_pack_size
    if msg.single_message_size != MESSAGE_SIZE or not 1 <= count <= 9:
        return None
    return bytes((_header(15), MESSAGE_SIZE, count)) + _bytes(msg.messages, 225)[:count * MESSAGE_SIZE]


ENCODERS = {"OPEN_DRONE_ID_BASIC_ID": basic_id, "OPEN_DRONE_ID_LOCATION": location, "OPEN_DRONE_ID_SELF_ID": self_id,
            "OPEN_DRONE_ID_SYSTEM": system, "OPEN_DRONE_ID_OPERATOR_ID": operator_id,
            "OPEN_DRONE_ID_MESSAGE_PACK": message_pack}


def pack(messages: list[bytes]) -> bytes:
    """Several 25-byte messages as one message pack (so a Location travels with its Basic ID)."""
    return bytes((_header(15), MESSAGE_SIZE, len(messages))) + b"".join(messages)
