"""Remote ID broadcasts (ASTM F3411-22a / ASD-STAN EN 4709-002, the Open Drone ID messages) as receivers forward
them on `{root}/rid/{receiver_id}`: decoded here from the public field layout, into observations.

Payload (docs/mqtt-contract.md): a JSON object, or an array of up to 100 of them,
    {"received_at": RFC 3339 or epoch ms, "rssi": dBm, "mac": "aa:bb:cc:dd:ee:ff", "transport": "ble4" | "ble5" |
     "wifi_nan" | "wifi_beacon", "data": base64 of one 25-byte message or of a message pack}
`received_at` is when the receiver heard it (default: arrival at ingest); `mac` (or `session`) names the
broadcaster for as long as no serial number is known.

Messages (25 bytes, little-endian; byte 0 = type << 4 | protocol version 0..2):
  0 Basic ID      id type / UA type, 20-character id (serial number, CAA registration, UTM UUID, session id)
  1 Location      status, direction, speed, vertical speed, lat/lon (1e-7°), pressure and geodetic altitude, height
                  (above take-off or ground), accuracies, time (1/10 s since the full hour)
  2 Authentication  signatures: not verified by Skylane, counted and skipped (identity["auth_pages"])
  3 Self-ID       description type and 23 characters of text
  4 System        operator location, area, EU category/class, operator altitude
  5 Operator ID   the operator's registration (20 characters)
  F Message pack  a 25-byte message size, a count (1-9), then that many messages
Every field has an "unknown" value (direction 361, speed 255 m/s, vertical speed 63 m/s, altitudes -1000 m,
lat/lon 0/0, time 0xFFFF): decoded as absent (None), never as a number.

One observation per Location message with a known position: source "rid", track_id = the serial number when a
Basic ID says one (in the payload, or earlier from the same broadcaster: the dialect remembers each MAC's identity
for `IDENTITY_TTL_S`), else a session id, else the MAC; identity = serial, UA type, operator id, self-id text,
and `uav_id` when the registry maps the serial (`rid_serial`) to a drone. Bad data (truncated pack, a count the
bytes do not hold, an unknown message type or version) is a dead letter with the reason.
"""
from __future__ import annotations

import base64
import binascii
import struct
from collections import OrderedDict
from datetime import datetime, timedelta, timezone

from protocol import topics

from ..observations import each_item
from ..rows import ObservationRow
from ..validation import BadMessage, load_json, number, string, timestamp
from .base import DialectContext, DialectResult

MESSAGE_SIZE = 25
MAX_PACK = 9
MAX_ITEMS = 100
IDENTITY_TTL_S = 600.0
MAX_BROADCASTERS = 10_000
RID_EPOCH = datetime(2019, 1, 1, tzinfo=timezone.utc)  # System message timestamps count from here
TRANSPORTS = ("ble4", "ble5", "wifi_nan", "wifi_beacon")

ID_TYPES = {0: "none", 1: "serial_number", 2: "caa_registration_id", 3: "utm_assigned_uuid", 4: "specific_session_id"}
UA_TYPES = {0: "none", 1: "aeroplane", 2: "helicopter_or_multirotor", 3: "gyroplane", 4: "hybrid_lift",
            5: "ornithopter", 6: "glider", 7: "kite", 8: "free_balloon", 9: "captive_balloon", 10: "airship",
            11: "free_fall_parachute", 12: "rocket", 13: "tethered_powered_aircraft", 14: "ground_obstacle",
            15: "other"}
STATUSES = {0: "undeclared", 1: "ground", 2: "airborne", 3: "emergency", 4: "remote_id_system_failure"}
HEIGHT_REFS = {0: "over_takeoff", 1: "over_ground"}
HOR_ACC_M = {1: 18520.0, 2: 7408.0, 3: 3704.0, 4: 1852.0, 5: 926.0, 6: 555.6, 7: 185.2, 8: 92.6, 9: 30.0, 10: 10.0,
             11: 3.0, 12: 1.0}
VER_ACC_M = {1: 150.0, 2: 45.0, 3: 25.0, 4: 10.0, 5: 3.0, 6: 1.0}
SPEED_ACC_MPS = {1: 10.0, 2: 3.0, 3: 1.0, 4: 0.3}
DESC_TYPES = {0: "text", 1: "emergency", 2: "extended_status"}
OPERATOR_LOCATION_TYPES = {0: "takeoff", 1: "live_gnss", 2: "fixed"}
CLASSIFICATION_TYPES = {0: "undeclared", 1: "eu"}
CATEGORIES_EU = {0: "undeclared", 1: "open", 2: "specific", 3: "certified"}
CLASSES_EU = {0: "undeclared", 1: "class_0", 2: "class_1", 3: "class_2", 4: "class_3", 5: "class_4", 6: "class_5",
              7: "class_6"}
MESSAGE_TYPES = {0: "basic_id", 1: "location", 2: "authentication", 3: "self_id", 4: "system", 5: "operator_id",
                 15: "message_pack"}

_LOCATION = struct.Struct("<BBBBbiiHHHBBHBB")
_SYSTEM = struct.Struct("<BBiiHBHHBHIB")


# ------------------------------------------------------------------------------------------ field decoding

def _text(raw: bytes) -> str:
    """A fixed-width ASCII field: up to the first NUL, trailing spaces removed; non-printable characters refused."""
    value = raw.split(b"\0", 1)[0].decode("ascii", "replace").rstrip()
    if not value.isprintable():
        raise BadMessage(f"text field {value[:40]!r} has control characters")
    return value


def _altitude(raw: int) -> float | None:
    """uint16 in 0.5 m steps from -1000 m; 0 (-1000 m) is the unknown value."""
    return None if raw == 0 else raw * 0.5 - 1000.0


def decode_message(msg: bytes) -> dict:
    """One 25-byte message as a dict of its fields ("type" and "version" first); BadMessage when it breaks the
    layout. Unknown values come back as None."""
    if len(msg) != MESSAGE_SIZE:
        raise BadMessage(f"a Remote ID message is {MESSAGE_SIZE} bytes, got {len(msg)}")
    mtype, version = msg[0] >> 4, msg[0] & 0x0F
    if mtype not in MESSAGE_TYPES:
        raise BadMessage(f"unknown Remote ID message type {mtype:#x}")
    if version > 2:
        raise BadMessage(f"protocol version {version} (0-2: ASTM F3411-19, -20, -22a)")
    out: dict = {"type": MESSAGE_TYPES[mtype], "version": version}
    if mtype == 0:
        out.update(id_type=ID_TYPES.get(msg[1] >> 4, f"reserved_{msg[1] >> 4}"),
                   ua_type=UA_TYPES[msg[1] & 0x0F], uas_id=_text(msg[2:22]) or None)
    elif mtype == 1:
        out.update(_location(msg))
    elif mtype == 2:
        out.update(auth_type=msg[1] >> 4, page=msg[1] & 0x0F)
    elif mtype == 3:
        out.update(desc_type=DESC_TYPES.get(msg[1], f"reserved_{msg[1]}" if msg[1] < 201 else f"private_{msg[1]}"),
                   description=_text(msg[2:25]) or None)
    elif mtype == 4:
        out.update(_system(msg))
    elif mtype == 5:
        out.update(operator_id_type=msg[1], operator_id=_text(msg[2:22]) or None)
    else:
        raise BadMessage("a message pack inside a message pack")
    return out


def _location(msg: bytes) -> dict:
    (_, flags, direction, speed, vspeed, lat, lon, baro, geo, height, acc, acc2, ts, ts_acc,
     _) = _LOCATION.unpack(msg)
    ew, mult = flags & 0x02, flags & 0x01
    track = direction + (180 if ew else 0)
    if mult:
        speed_mps = None if speed == 255 else speed * 0.75 + 63.75
    else:
        speed_mps = speed * 0.25
    if track > 360:
        track_deg = None  # 361: unknown
    else:
        track_deg = float(track % 360)
    lat_deg, lon_deg = lat * 1e-7, lon * 1e-7
    known = not (lat == 0 and lon == 0)
    if known and not (-90 <= lat_deg <= 90 and -180 <= lon_deg <= 180):
        raise BadMessage(f"location out of range: lat {lat_deg:.7f}, lon {lon_deg:.7f}")
    return {"status": STATUSES.get(flags >> 4, f"reserved_{flags >> 4}"),
            "height_ref": HEIGHT_REFS[(flags >> 2) & 1], "track_deg": track_deg, "speed_mps": speed_mps,
            "vspeed_mps": None if vspeed == 126 else vspeed * 0.5,
            "lat": lat_deg if known else None, "lon": lon_deg if known else None,
            "pressure_alt_m": _altitude(baro), "geodetic_alt_m": _altitude(geo), "height_m": _altitude(height),
            "horizontal_accuracy_m": HOR_ACC_M.get(acc & 0x0F), "vertical_accuracy_m": VER_ACC_M.get(acc >> 4),
            "baro_accuracy_m": VER_ACC_M.get(acc2 >> 4), "speed_accuracy_mps": SPEED_ACC_MPS.get(acc2 & 0x0F),
            "tenths_since_hour": None if ts == 0xFFFF or ts > 36000 else ts,
            "time_accuracy_s": (ts_acc & 0x0F) / 10 if ts_acc & 0x0F else None}


def _system(msg: bytes) -> dict:
    (_, flags, lat, lon, area_count, area_radius, ceiling, floor, cat_class, op_alt, ts, _) = _SYSTEM.unpack(msg)
    known = not (lat == 0 and lon == 0)
    return {"operator_location_type": OPERATOR_LOCATION_TYPES.get(flags & 0x03, f"reserved_{flags & 0x03}"),
            "classification": CLASSIFICATION_TYPES.get((flags >> 2) & 0x07, f"reserved_{(flags >> 2) & 0x07}"),
            "operator_lat": lat * 1e-7 if known else None, "operator_lon": lon * 1e-7 if known else None,
            "area_count": area_count, "area_radius_m": area_radius * 10, "area_ceiling_m": _altitude(ceiling),
            "area_floor_m": _altitude(floor), "category_eu": CATEGORIES_EU.get(cat_class >> 4, "reserved"),
            "class_eu": CLASSES_EU.get(cat_class & 0x0F, "reserved"), "operator_alt_m": _altitude(op_alt),
            "system_time": None if ts == 0 else RID_EPOCH + timedelta(seconds=ts)}


def decode(data: bytes) -> list[dict]:
    """The messages of one broadcast: a single message or a pack (unpacked). BadMessage names what is wrong."""
    if not data:
        raise BadMessage("no Remote ID bytes")
    if data[0] >> 4 != 0xF:
        if len(data) != MESSAGE_SIZE:
            raise BadMessage(f"a single Remote ID message is {MESSAGE_SIZE} bytes, got {len(data)}")
        return [decode_message(data)]
    if len(data) < 3:
        raise BadMessage(f"message pack truncated: {len(data)} bytes, no header")
    size, count = data[1], data[2]
    if size != MESSAGE_SIZE:
        raise BadMessage(f"message pack announces {size}-byte messages ({MESSAGE_SIZE} expected)")
    if not 1 <= count <= MAX_PACK:
        raise BadMessage(f"message pack announces {count} messages (1-{MAX_PACK})")
    need = 3 + count * MESSAGE_SIZE
    if len(data) < need:
        raise BadMessage(f"message pack truncated: announces {count} messages ({need} bytes), holds {len(data)}")
    if len(data) > need and any(data[need:]):
        raise BadMessage(f"message pack of {count} messages has {len(data) - need} bytes after them")
    return [decode_message(data[3 + k * MESSAGE_SIZE:3 + (k + 1) * MESSAGE_SIZE]) for k in range(count)]


def resolve_time(tenths: int, received_at: datetime) -> datetime:
    """A Location time (tenths of a second since the full hour) as the instant nearest to the receive time."""
    hour = received_at.replace(minute=0, second=0, microsecond=0)
    t = hour + timedelta(seconds=tenths / 10)
    if t - received_at > timedelta(minutes=30):
        t -= timedelta(hours=1)
    elif received_at - t > timedelta(minutes=30):
        t += timedelta(hours=1)
    return t


# ------------------------------------------------------------------------------------------------- dialect

class RemoteIdDialect:
    """`{root}/rid/{receiver_id}`: Remote ID receivers' forwarded broadcasts (module docstring)."""

    name = "remoteid"

    def __init__(self) -> None:
        self._known: OrderedDict[str, tuple[datetime, dict]] = OrderedDict()  # mac/session -> (seen, identity)

    def filters(self, root: str) -> list[str]:
        return [f"{root}/rid/+"]

    def matches(self, topic: str, root: str) -> bool:
        return topic.startswith(f"{root}/rid/")

    def parse(self, topic: str, payload: bytes, received_at: datetime, ctx: DialectContext) -> DialectResult:
        receiver = topic[len(ctx.root) + len("/rid/"):]
        if not topics.valid_id(receiver):
            raise BadMessage(f"bad topic: receiver id {receiver[:80]!r} (expected {{root}}/rid/<receiver_id>, "
                             "1-64 of A-Z a-z 0-9 _ . : -)")
        rows = each_item(load_json(payload, ctx.max_payload_bytes), MAX_ITEMS, "broadcast",
                         lambda item: self._broadcast(item, receiver, received_at, ctx))
        return DialectResult(observations=[o for obs in rows for o in obs])

    def _broadcast(self, item: object, receiver: str, received_at: datetime, ctx: DialectContext) -> list[ObservationRow]:
        if not isinstance(item, dict):
            raise BadMessage("a broadcast must be a JSON object")
        heard = timestamp(item["received_at"], received_at, "received_at") if item.get("received_at") is not None \
            else received_at
        rssi = number(item, "rssi", lo=-200, hi=50)
        transport = item.get("transport")
        if transport is not None and transport not in TRANSPORTS:
            raise BadMessage(f"field 'transport' must be one of {', '.join(TRANSPORTS)}")
        sender = None
        for key in ("mac", "session"):
            if item.get(key) is not None:
                sender = string(item[key], key, 64).lower() if key == "mac" else string(item[key], key, 64)
                if not topics.valid_id(sender):
                    raise BadMessage(f"field {key!r} must be 1-64 of A-Z a-z 0-9 _ . : -")
                break
        raw = item.get("data")
        if not isinstance(raw, str):
            raise BadMessage("field 'data' must be the broadcast's bytes in base64")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadMessage("field 'data' is not valid base64") from None
        messages = decode(data)
        identity = self._identity(messages, sender, heard, ctx)
        track = identity.get("serial") or identity.get("session_id") or sender
        rows = []
        for m in messages:
            if m["type"] != "location" or m["lat"] is None:
                continue
            if not track or not topics.valid_id(track):
                raise BadMessage("a location without an identity: no serial number, session id or 'mac' to track it by")
            rows.append(self._observation(m, track, identity, receiver, rssi, heard, received_at, transport))
        return rows

    def _identity(self, messages: list[dict], sender: str | None, heard: datetime, ctx: DialectContext) -> dict:
        """What the broadcast (and, for its sender, earlier ones) says of the aircraft."""
        ident: dict = {}
        if sender is not None and (known := self._known.get(sender)) is not None:
            if (heard - known[0]).total_seconds() <= IDENTITY_TTL_S:
                ident.update(known[1])
        for m in messages:
            kind = m["type"]
            if kind == "basic_id" and m["uas_id"]:
                key = {"serial_number": "serial", "caa_registration_id": "registration",
                       "utm_assigned_uuid": "utm_uuid", "specific_session_id": "session_id"}.get(m["id_type"])
                if key:
                    ident[key] = m["uas_id"]
                if m["ua_type"] != "none":
                    ident["ua_type"] = m["ua_type"]
            elif kind == "operator_id" and m["operator_id"]:
                ident["operator_id"] = m["operator_id"]
            elif kind == "self_id" and m["description"]:
                ident["self_id"] = m["description"]
                ident["self_id_type"] = m["desc_type"]
            elif kind == "system":
                for key in ("operator_lat", "operator_lon", "operator_alt_m"):
                    if m[key] is not None:
                        ident[key] = round(m[key], 7)
                for key in ("category_eu", "class_eu"):
                    if m[key] not in ("undeclared", "reserved"):
                        ident[key] = m[key]
            elif kind == "authentication":
                ident["auth_pages"] = ident.get("auth_pages", 0) + 1  # signatures are not verified by Skylane
        if "serial" in ident:
            uav = ctx.registry.device("rid_serial", ident["serial"])
            if uav is not None:
                ident["uav_id"] = uav
        if sender is not None:
            self._known[sender] = (heard, {k: v for k, v in ident.items() if k != "auth_pages"})
            self._known.move_to_end(sender)
            while len(self._known) > MAX_BROADCASTERS:
                self._known.popitem(last=False)
        return ident

    @staticmethod
    def _observation(m: dict, track: str, identity: dict, receiver: str, rssi: float | None, heard: datetime,
                     received_at: datetime, transport: str | None) -> ObservationRow:
        if m["geodetic_alt_m"] is not None:
            alt, ref, src = m["geodetic_alt_m"], "WGS84", "gnss"
        elif m["pressure_alt_m"] is not None:
            alt, ref, src = m["pressure_alt_m"], "AMSL", "baro"
        elif m["height_m"] is not None and m["height_ref"] == "over_ground":
            alt, ref, src = m["height_m"], "AGL", "reported"
        else:
            alt = ref = src = None
        ts = heard if m["tenths_since_hour"] is None else resolve_time(m["tenths_since_hour"], heard)
        ident = dict(identity)
        ident["status"] = m["status"]
        if m["height_m"] is not None:
            ident["height_m"] = m["height_m"]
            ident["height_ref"] = m["height_ref"]
        if m["horizontal_accuracy_m"] is not None:
            ident["horizontal_accuracy_m"] = m["horizontal_accuracy_m"]
        if transport is not None:
            ident["transport"] = transport
        return ObservationRow(ts, "rid", track, round(m["lon"], 7), round(m["lat"], 7), alt, ref, src, m["speed_mps"],
                              m["track_deg"], m["vspeed_mps"], receiver, rssi, received_at, ident)
