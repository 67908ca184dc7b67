"""Remote ID (ASTM F3411-22a) decoding: vectors built here from the standard's field layout (an encoder written
independently of ingest/dialects/remoteid.py), every field at its "unknown" value, real captured vectors
(tests/data/remoteid/librid_vectors.json) and MAVLink's OPEN_DRONE_ID definitions (pymavlink) as a cross-check
of the enumerations and the unknown values; bad packs become dead letters with the reason."""
from __future__ import annotations

import base64
import inspect
import json
import math
import re
import struct
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from pymavlink.dialects.v20 import common as mavlink

from airspace.zones import ZoneSet
from ingest.dialects import RegistryView, enabled
from ingest.dialects import remoteid as rid
from ingest.pipeline import Pipeline
from ingest.rows import RawMessage

from .helpers import ZONE_FILE

VECTORS = json.loads((Path(__file__).parent / "data" / "remoteid" / "librid_vectors.json").read_text())["vectors"]
ROOT = "sky/v1"
ZONES = ZoneSet.from_geojson(json.loads(ZONE_FILE.read_text()))
AT = datetime(2026, 11, 30, 8, 20, 40, 300000, tzinfo=timezone.utc)


# ----------------------------------------------------------------------------- an encoder from the field layout

def header(mtype: int, version: int = 2) -> bytes:
    return bytes(((mtype << 4) | version,))


def basic_id(uas_id: str, id_type: int = 1, ua_type: int = 2) -> bytes:
    return header(0) + bytes(((id_type << 4) | ua_type,)) + uas_id.encode().ljust(20, b"\0") + bytes(3)


def alt_code(alt: float | None) -> int:
    return 0 if alt is None else round((alt + 1000) / 0.5)


def location(lat=None, lon=None, *, status=2, track=None, speed=None, vspeed=None, baro=None, geo=None, height=None,
             height_agl=False, hacc=0, vacc=0, bacc=0, sacc=0, tenths=None, tacc=0) -> bytes:
    """F3411-22a Table 6 (Location/Vector), every field optional: None is the field's unknown value."""
    direction = 361 if track is None or track > 360 else round(track) % 360
    ew, dir_byte = (1, direction - 180) if direction >= 180 else (0, direction)
    if speed is None:
        mult, sp = 1, 255
    elif speed <= 255 * 0.25:
        mult, sp = 0, round(speed / 0.25)
    else:
        mult, sp = 1, min(254, round((speed - 63.75) / 0.75))
    vs = 126 if vspeed is None else round(vspeed / 0.5)
    flags = (status << 4) | (int(height_agl) << 2) | (ew << 1) | mult
    return header(1) + struct.pack(
        "<BBBbiiHHHBBHBB", flags, dir_byte, sp, vs, 0 if lat is None else round(lat * 1e7),
        0 if lon is None else round(lon * 1e7), alt_code(baro), alt_code(geo), alt_code(height), (vacc << 4) | hacc,
        (bacc << 4) | sacc, 0xFFFF if tenths is None else tenths, tacc, 0)


def self_id(text: str, desc_type: int = 0) -> bytes:
    return header(3) + bytes((desc_type,)) + text.encode().ljust(23, b"\0")


def system(op_lat=None, op_lon=None, *, loc_type=0, classification=0, category=0, klass=0, op_alt=None, ts=0) -> bytes:
    return header(4) + struct.pack("<BiiHBHHBHIB", (classification << 2) | loc_type,
                                   0 if op_lat is None else round(op_lat * 1e7),
                                   0 if op_lon is None else round(op_lon * 1e7), 1, 0, 0, 0, (category << 4) | klass,
                                   alt_code(op_alt), ts, 0)


def operator_id(text: str) -> bytes:
    return header(5) + bytes((0,)) + text.encode().ljust(20, b"\0") + bytes(3)


def auth_page(page: int) -> bytes:
    return header(2) + bytes(((1 << 4) | page,)) + bytes(23)


def pack(*messages: bytes) -> bytes:
    return header(15) + bytes((25, len(messages))) + b"".join(messages)


def payload(data: bytes, **extra) -> bytes:
    return orjson.dumps({"data": base64.b64encode(data).decode(), **extra})


def run(*payloads: bytes, registry: RegistryView = RegistryView(), receiver: str = "rx-1"):
    pipe = Pipeline(ZONES, ROOT, dialects=enabled(["remoteid"]), registry=registry)
    return pipe.process([RawMessage(f"{ROOT}/rid/{receiver}", p, AT) for p in payloads])


# -------------------------------------------------------------------------------------------------- vectors

def test_a_full_pack_decodes_every_field_into_one_observation_with_identity():
    data = pack(basic_id("1596A303716430A"), location(31.0456123, 121.4912345, track=271, speed=12.25, vspeed=-1.5,
                                                      baro=118.5, geo=130.0, height=96.0, height_agl=True, hacc=11,
                                                      vacc=4, bacc=3, sacc=3, tenths=12403, tacc=2),
                self_id("survey of the Huangpu bank"[:23]), system(31.04, 121.48, loc_type=1, classification=1,
                                                                     category=1, klass=2, op_alt=12.0, ts=250_000_000),
                operator_id("CHN-OP-000123"), auth_page(0))
    assert len(data) == 3 + 6 * 25
    msgs = rid.decode(data)
    loc = msgs[1]
    assert [m["type"] for m in msgs] == ["basic_id", "location", "self_id", "system", "operator_id", "authentication"]
    assert (loc["lat"], loc["lon"]) == (pytest.approx(31.0456123, abs=1e-9), pytest.approx(121.4912345, abs=1e-9))
    assert (loc["track_deg"], loc["speed_mps"], loc["vspeed_mps"]) == (271.0, 12.25, -1.5)
    assert (loc["pressure_alt_m"], loc["geodetic_alt_m"], loc["height_m"], loc["height_ref"]) == \
        (118.5, 130.0, 96.0, "over_ground")
    assert (loc["horizontal_accuracy_m"], loc["vertical_accuracy_m"], loc["baro_accuracy_m"],
            loc["speed_accuracy_mps"], loc["time_accuracy_s"]) == (3.0, 10.0, 25.0, 1.0, 0.2)
    assert msgs[3]["system_time"] == datetime(2026, 12, 3, 12, 26, 40, tzinfo=timezone.utc)  # 2019 + 250e6 s
    out = run(payload(data, rssi=-71, mac="AA:BB:CC:00:11:22", transport="ble5"),
              registry=RegistryView({("rid_serial", "1596A303716430A"): "D-17"}))
    assert out.dead_letters == [] and len(out.observations) == 1
    o = out.observations[0]
    assert (o.source, o.track_id, o.receiver_id, o.rssi) == ("rid", "1596A303716430A", "rx-1", -71.0)
    assert (o.alt_m, o.alt_ref, o.alt_source) == (130.0, "WGS84", "gnss")
    assert o.ts == datetime(2026, 11, 30, 8, 20, 40, 300000, tzinfo=timezone.utc)  # 1240.3 s after 08:00
    assert o.identity == {"serial": "1596A303716430A", "ua_type": "helicopter_or_multirotor", "uav_id": "D-17",
                          "self_id": "survey of the Huangpu b", "self_id_type": "text", "operator_lat": 31.04,
                          "operator_lon": 121.48, "operator_alt_m": 12.0, "category_eu": "open", "class_eu": "class_1",
                          "operator_id": "CHN-OP-000123", "auth_pages": 1, "status": "airborne", "height_m": 96.0,
                          "height_ref": "over_ground", "horizontal_accuracy_m": 3.0, "transport": "ble5"}


def test_every_field_at_its_unknown_value_decodes_as_absent_not_as_a_number():
    loc = rid.decode(location(31.0, 121.0, status=0))[0]
    for key in ("track_deg", "speed_mps", "vspeed_mps", "pressure_alt_m", "geodetic_alt_m", "height_m",
                "horizontal_accuracy_m", "vertical_accuracy_m", "baro_accuracy_m", "speed_accuracy_mps",
                "tenths_since_hour", "time_accuracy_s"):
        assert loc[key] is None, key
    assert loc["status"] == "undeclared"
    nothing = rid.decode(location())[0]
    assert nothing["lat"] is None and nothing["lon"] is None
    sysm = rid.decode(system())[0]
    assert (sysm["operator_lat"], sysm["operator_alt_m"], sysm["system_time"], sysm["category_eu"]) == \
        (None, None, None, "undeclared")
    assert rid.decode(basic_id("", id_type=0, ua_type=0))[0]["uas_id"] is None
    # a Location with nothing known but the position: an observation without altitude, speed or track, at arrival
    out = run(payload(pack(basic_id("SN-UNKNOWNS"), location(31.0, 121.0, status=0))))
    o = out.observations[0]
    assert (o.alt_m, o.alt_ref, o.speed_mps, o.track_deg, o.vspeed_mps, o.ts) == (None, None, None, None, None, AT)
    # and a Location without a position gives no observation (and is not an error)
    assert run(payload(pack(basic_id("SN-NOPOS"), location()))).observations == []


def test_speed_direction_and_altitude_encodings_at_their_edges():
    cases = [(dict(speed=63.75, track=0), (63.75, 0.0)), (dict(speed=64.5, track=180), (64.5, 180.0)),
             (dict(speed=254.25, track=359), (254.25, 359.0)), (dict(speed=0.0, track=179), (0.0, 179.0))]
    for fields, (speed, track) in cases:
        m = rid.decode(location(1.0, 1.0, **fields))[0]
        assert (m["speed_mps"], m["track_deg"]) == (speed, track), fields
    m = rid.decode(location(-89.9999999, -179.9999999, baro=-999.5, geo=31767.5, vspeed=-62.0))[0]
    assert (m["lat"], m["lon"]) == (pytest.approx(-89.9999999), pytest.approx(-179.9999999))
    assert (m["pressure_alt_m"], m["geodetic_alt_m"], m["vspeed_mps"]) == (-999.5, 31767.5, -62.0)


def test_real_captured_vectors_decode_as_their_source_asserts():
    v = {x["name"]: x for x in VECTORS}
    # librid's arrays carry one trailing 0x00 after the 25-byte message (see PROVENANCE.md): the message is 25 bytes
    basic = rid.decode(bytes.fromhex(v["basic_id_real_capture"]["hex"])[:25])[0]
    assert (basic["version"], basic["id_type"], basic["ua_type"], basic["uas_id"]) == \
        (2, "serial_number", "none", "2596A403716430B")
    op = rid.decode(bytes.fromhex(v["operator_id_real_capture"]["hex"])[:25])[0]
    assert (op["operator_id_type"], op["operator_id"]) == (0, "FIN87astrdge12k8")
    loc = rid.decode(bytes.fromhex(v["location_readme_example"]["hex"]))[0]
    exp = v["location_readme_example"]["expected"]
    assert (round(loc["lat"], 6), round(loc["lon"], 6)) == (exp["latitude"], exp["longitude"])
    assert (loc["geodetic_alt_m"], loc["pressure_alt_m"], loc["height_m"]) == (exp["geodetic_altitude"], None,
                                                                             exp["height"])
    assert (loc["speed_mps"], loc["vspeed_mps"], loc["track_deg"]) == (exp["speed"], exp["vertical_speed"],
                                                                       exp["track_direction"])
    assert (loc["status"], loc["tenths_since_hour"]) == ("airborne", exp["timestamp"])
    # the real capture of a booting DroneTag announces 4 messages and holds 88 bytes: a dead letter that says so
    with pytest.raises(rid.BadMessage, match=r"truncated: announces 4 messages \(103 bytes\), holds 88"):
        rid.decode(bytes.fromhex(v["message_pack_dronetag_boot_capture"]["hex"]))
    out = run(payload(bytes.fromhex(v["message_pack_dronetag_boot_capture"]["hex"])))
    assert out.observations == [] and "message pack truncated" in out.dead_letters[0].reason


@pytest.mark.parametrize("data,reason", [
    (b"", "no Remote ID bytes"),
    (bytes.fromhex("f219"), "no header"),
    (header(15) + bytes((25, 2)) + location(1.0, 1.0), r"announces 2 messages \(53 bytes\), holds 28"),
    (header(15) + bytes((25, 0)), r"announces 0 messages \(1-9\)"),
    (header(15) + bytes((25, 10)) + location(1.0, 1.0) * 10, r"announces 10 messages \(1-9\)"),
    (header(15) + bytes((24, 1)) + location(1.0, 1.0), "announces 24-byte messages"),
    (pack(location(1.0, 1.0)) + b"\x01\x02", "bytes after them"),
    (pack(pack(location(1.0, 1.0))[:25]), "a message pack inside a message pack"),
    (location(1.0, 1.0)[:24], "a single Remote ID message is 25 bytes, got 24"),
    (bytes((0x62,)) + bytes(24), "unknown Remote ID message type 0x6"),
    (bytes((0x13,)) + bytes(24), "protocol version 3"),
    (location(95.0, 1.0), "location out of range"),
])
def test_bad_broadcasts_are_dead_letters_with_the_reason(data, reason):
    out = run(payload(data, mac="aa:bb:cc:dd:ee:ff"))
    assert out.observations == [] and len(out.dead_letters) == 1
    assert re.search(reason, out.dead_letters[0].reason), out.dead_letters[0].reason


@pytest.mark.parametrize("body,reason", [
    (b"{not json", "malformed JSON"), (b'{"data": 5}', "base64"), (b'{"data": "%%%"}', "not valid base64"),
    (b"[]", "empty broadcast array"), (b'{"data": "AA==", "rssi": "loud"}', "'rssi' must be a number"),
    (b'{"data": "AA==", "transport": "carrier-pigeon"}', "'transport' must be one of"),
    (b'{"data": "AA==", "mac": "a/b"}', "'mac' must be"), (b'{"data": "AA==", "received_at": "yesterday"}', "received_at"),
])
def test_bad_receiver_payloads_are_dead_letters_with_the_reason(body, reason):
    out = run(body)
    assert len(out.dead_letters) == 1 and reason in out.dead_letters[0].reason, out.dead_letters[0].reason
    out = Pipeline(ZONES, ROOT, dialects=enabled(["remoteid"])).process(
        [RawMessage(f"{ROOT}/rid/bad+id", payload(location(1.0, 1.0)), AT)])
    assert "receiver id" in out.dead_letters[0].reason


def test_single_messages_of_one_broadcaster_are_joined_by_its_mac_and_unserialed_ones_tracked_by_it():
    mac = "AA:BB:CC:00:11:22"
    out = run(payload(location(31.0, 121.0, tenths=12400), mac=mac, transport="ble4"))  # Location before Basic ID
    assert out.observations[0].track_id == "aa:bb:cc:00:11:22" and "serial" not in out.observations[0].identity
    pipe = Pipeline(ZONES, ROOT, dialects=enabled(["remoteid"]),
                    registry=RegistryView({("rid_serial", "1581F5FKD229400"): "D-9"}))
    msgs = [payload(m, mac=mac, transport="ble4") for m in (basic_id("1581F5FKD229400"), operator_id("CHN-OP-9"),
                                                            location(31.001, 121.001, tenths=12401))]
    out = pipe.process([RawMessage(f"{ROOT}/rid/rx-2", p, AT) for p in msgs])
    assert out.dead_letters == [] and len(out.observations) == 1
    o = out.observations[0]
    assert (o.track_id, o.identity["uav_id"], o.identity["operator_id"]) == ("1581F5FKD229400", "D-9", "CHN-OP-9")
    # without a serial, a MAC or a session there is nothing to track the aircraft by
    out = run(payload(location(31.0, 121.0)))
    assert "without an identity" in out.dead_letters[0].reason


# ------------------------------------------------------------------------------- pymavlink as a cross-check

def _mav_names(enum: str) -> dict[int, str]:
    prefix = enum + "_"
    return {v: e.name[len(prefix):].lower() for v, e in mavlink.enums[enum].items() if not e.name.endswith("ENUM_END")}


@pytest.mark.parametrize("enum,ours", [
    ("MAV_ODID_ID_TYPE", rid.ID_TYPES), ("MAV_ODID_UA_TYPE", rid.UA_TYPES), ("MAV_ODID_STATUS", rid.STATUSES),
    ("MAV_ODID_HEIGHT_REF", rid.HEIGHT_REFS), ("MAV_ODID_DESC_TYPE", rid.DESC_TYPES),
    ("MAV_ODID_OPERATOR_LOCATION_TYPE", rid.OPERATOR_LOCATION_TYPES),
    ("MAV_ODID_CLASSIFICATION_TYPE", rid.CLASSIFICATION_TYPES), ("MAV_ODID_CATEGORY_EU", rid.CATEGORIES_EU),
    ("MAV_ODID_CLASS_EU", rid.CLASSES_EU)])
def test_enumerations_match_mavlinks_open_drone_id_definitions(enum, ours):
    assert _mav_names(enum) == ours


def _metres(name: str) -> float:
    """MAVLink's accuracy names: 10NM, 0_05NM, 30_METER, 0_3_METERS_PER_SECOND -> metres (per second)."""
    m = re.fullmatch(r"(\d+(?:_\d+)?)(nm|_meters?(?:_per_second)?)", name)
    value = float(m.group(1).replace("_", "."))
    return value * 1852 if m.group(2) == "nm" else value


@pytest.mark.parametrize("enum,ours", [("MAV_ODID_HOR_ACC", rid.HOR_ACC_M), ("MAV_ODID_VER_ACC", rid.VER_ACC_M),
                                       ("MAV_ODID_SPEED_ACC", rid.SPEED_ACC_MPS)])
def test_accuracy_categories_match_mavlinks(enum, ours):
    names = _mav_names(enum)
    assert names.pop(0) == "unknown" and 0 not in ours  # category 0 decodes as absent
    assert {k: _metres(v) for k, v in names.items()} == pytest.approx(ours)


def test_the_unknown_values_mavlink_documents_decode_as_absent_and_its_maxima_as_values():
    doc = inspect.getdoc(mavlink.MAVLink.open_drone_id_location_encode)
    unknown = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s*(\w+)\s*:.*?If unknown: ([-\d.]+|0xFFFF)"
                                                                   .replace("|0xFFFF", ""), doc, re.M)}
    assert unknown["direction"] == 36100 and unknown["speed_horizontal"] == 25500  # centidegrees, cm/s
    assert unknown["speed_vertical"] == 6300 and unknown["altitude_barometric"] == -1000 == unknown["height"]
    assert "If unknown: 0xFFFF" in doc.split("timestamp  ")[1]
    m = rid.decode(location(1.0, 1.0, track=unknown["direction"] / 100, speed=None, vspeed=None))[0]
    assert (m["track_deg"], m["speed_mps"], m["vspeed_mps"], m["pressure_alt_m"], m["height_m"],
            m["tenths_since_hour"]) == (None,) * 6
    # the largest speeds MAVLink allows (25425 cm/s, +-6200 cm/s) are values, not unknown
    m = rid.decode(location(1.0, 1.0, speed=254.25, vspeed=62.0))[0]
    assert (m["speed_mps"], m["vspeed_mps"]) == (254.25, 62.0)
    # units: MAVLink's degE7 latitude is the message's int32 as is
    assert mavlink.MAVLink_open_drone_id_location_message.fieldunits_by_name["latitude"] == "degE7"
    raw = location(31.0456123, 121.4912345)
    assert struct.unpack_from("<i", raw, 5)[0] == round(rid.decode(raw)[0]["lat"] * 1e7) == 310456123
    assert math.isclose(rid.decode(raw)[0]["lon"], 121.4912345, abs_tol=1e-9)


def test_a_message_pack_carried_in_mavlink_decodes_the_same():
    """ArduPilot and PX4 forward broadcasts as OPEN_DRONE_ID_MESSAGE_PACK: the same 25-byte messages, packed."""
    msgs = [basic_id("1596A303716430A"), location(31.05, 121.47, geo=80.0, track=90, speed=5.0)]
    mav = mavlink.MAVLink(None, srcSystem=1, srcComponent=1)
    wire = mavlink.MAVLink_open_drone_id_message_pack_message(0, 0, [0] * 20, 25, len(msgs),
                                                              list(b"".join(msgs).ljust(225, b"\0"))).pack(mav)
    parsed = mavlink.MAVLink(None).decode(bytearray(wire))
    carried = bytes(parsed.messages[:25 * parsed.msg_pack_size])
    assert rid.decode(header(15) + bytes((parsed.single_message_size, parsed.msg_pack_size)) + carried) == \
        rid.decode(pack(*msgs))
