"""The DJI Cloud API dialect on DJI's documented example payloads (tests/data/dji_cloud, see PROVENANCE.md): aircraft
OSD to fixes in the vertical model, mode_code to status, dock OSD and state to readings and presence, update_topo
answered as the protocol requires and its topology recorded, unregistered serial numbers refused with the reason."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from airspace.vertical import VerticalModel
from airspace.zones import ZoneSet
from ingest.dialects import DIALECTS, DialectContext, RegistryView, enabled
from ingest.dialects.dji import AIRCRAFT_STATUS, NOT_CONNECTED, DjiDialect
from ingest.dialects.vendor import DEAD_LETTERS, UNREGISTERED
from ingest.pipeline import build_pipeline
from ingest.rows import RawMessage
from ingest.validation import BadMessage

DATA = Path(__file__).parent / "data" / "dji_cloud"
ROOT = "skylane/v1"
NOW = datetime.now(timezone.utc)
NO_FLY = (121.4885, 31.044)  # inside R-BR-MP (prohibited, 0-150 m AGL) of the shipped zone file
REGISTRY = [
    {"device_id": "M30-1", "kind": "uav", "properties": {"dji_sn": "1581F5BKD225D00BP891", "dji_gateway": "dock_sn"}},
    {"device_id": "DOCK-1", "kind": "sensor", "properties": {"dji_sn": "dock_sn"}},
    {"device_id": "RC-1", "kind": "sensor", "properties": {"dji_sn": "rc_sn"}},
    {"device_id": "M300-1", "kind": "uav", "properties": {"dji_sn": "drone001", "dji_gateway": "rc_sn"}},
]


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def doc(name: str) -> dict:
    return json.loads(raw(name))


@pytest.fixture
def ctx() -> DialectContext:
    return DialectContext(ROOT, RegistryView.from_registry(REGISTRY), VerticalModel(), 65536)


def flying_osd(lon: float, lat: float, height: float, mode: int = 5, at: datetime = NOW) -> bytes:
    """DJI's documented aircraft OSD (M30 in a dock) with a position, a flight mode and a current time."""
    body = doc("aircraft_osd_m30_via_dock.json")
    body["data"].update(latitude=lat, longitude=lon, height=height, mode_code=mode, horizontal_speed=12.5,
                        vertical_speed=-0.5, attitude_head=-90.0)
    body["timestamp"] = int(at.timestamp() * 1000)
    return orjson.dumps(body)


def test_the_dialects_are_registered_in_one_place_and_enabled_by_name():
    assert {"dji", "chirpstack", "tts"} <= set(DIALECTS)
    assert [d.name for d in enabled(["dji"])] == ["dji"]
    assert {d.name for d in enabled(["all"])} == set(DIALECTS)
    with pytest.raises(ValueError, match="unknown dialect"):
        enabled(["djix"])
    d = DjiDialect()
    assert d.filters(ROOT) == ["thing/product/+/osd", "thing/product/+/state", "sys/product/+/status"]
    assert d.matches("thing/product/X/osd", ROOT) and d.matches("sys/product/X/status", ROOT)
    assert not d.matches("sys/product/X/status_reply", ROOT) and not d.matches(f"{ROOT}/uav/X/telemetry", ROOT)
    bridged = DjiDialect(prefix="dji/cloud")
    assert bridged.filters(ROOT)[0] == "dji/cloud/thing/product/+/osd"
    assert bridged.matches("dji/cloud/sys/product/X/status", ROOT) and not bridged.matches("thing/product/X/osd", ROOT)


def test_the_documented_aircraft_osd_in_its_dock_has_no_position_and_is_no_fix(ctx):
    res = DjiDialect().parse("thing/product/1581F5BKD225D00BP891/osd", raw("aircraft_osd_m30_via_dock.json"), NOW, ctx)
    assert res.telemetry == [] and res.readings == []  # latitude/longitude 0, 0: DJI's "no position"


def test_an_aircraft_osd_becomes_a_fix_with_its_ellipsoid_height(ctx):
    at = NOW - timedelta(seconds=2)
    res = DjiDialect().parse("thing/product/1581F5BKD225D00BP891/osd", flying_osd(121.5, 31.05, 73.4, at=at), NOW,
                             ctx)
    (row,) = res.telemetry
    assert (row.uav_id, row.lon, row.lat, row.alt_m, row.alt_ref) == ("M30-1", 121.5, 31.05, 73.4, "WGS84")
    assert (row.speed_mps, row.vspeed_mps, row.track_deg, row.battery_pct, row.status) == (
        12.5, -0.5, 270.0, 90.0, "Airborne")
    assert abs((row.ts - at).total_seconds()) < 0.001  # DJI's timestamp (ms), not the arrival time
    assert row.received_at == NOW


def test_without_height_the_elevation_above_take_off_is_taken_as_agl(ctx):
    body = json.loads(flying_osd(121.5, 31.05, 0))
    del body["data"]["height"]
    body["data"]["elevation"] = 42.0
    (row,) = DjiDialect().parse("thing/product/1581F5BKD225D00BP891/osd", orjson.dumps(body), NOW, ctx).telemetry
    assert (row.alt_m, row.alt_ref) == (42.0, "AGL")


def test_every_documented_mode_code_has_a_status():
    tables = doc("mode_code_enum.json")["tables"]
    codes = {int(c) for name, t in tables.items() if name.startswith("aircraft") for c in t["values"]}
    assert codes == set(AIRCRAFT_STATUS) | {NOT_CONNECTED}
    labels = tables["aircraft_dock_m30"]["values"]
    assert {labels[str(c)] for c, s in AIRCRAFT_STATUS.items() if s == "Ground"} == {
        "Standby", "Takeoff preparation", "Takeoff preparation completed", "Upgrading"}
    assert {labels[str(c)] for c, s in AIRCRAFT_STATUS.items() if s == "Emergency"} == {
        "Forced landing", "Three-blade landing"}


@pytest.mark.parametrize("mode, status", [(0, "Ground"), (4, "Airborne"), (9, "Airborne"), (11, "Emergency"),
                                          (99, None)])
def test_mode_code_gives_the_status(ctx, mode, status):
    (row,) = DjiDialect().parse("thing/product/1581F5BKD225D00BP891/osd", flying_osd(121.5, 31.05, 70, mode), NOW,
                                ctx).telemetry
    assert row.status == status


def test_a_not_connected_aircraft_is_offline_and_no_fix(ctx):
    res = DjiDialect().parse("thing/product/1581F5BKD225D00BP891/osd", flying_osd(121.5, 31.05, 70, NOT_CONNECTED),
                             NOW, ctx)
    assert res.telemetry == [] and [(s.device_id, s.online) for s in res.statuses] == [("M30-1", False)]


def test_the_dock_osd_parts_become_readings_and_the_state_presence(ctx):
    d = DjiDialect()
    got = {}
    for part in ("dock2_osd_basic.json", "dock2_osd_link.json", "dock2_osd_position_environment.json"):
        res = d.parse("thing/product/dock_sn/osd", raw(part), NOW, ctx)
        assert res.telemetry == []
        got.update({r.metric: (r.value, r.unit) for r in res.readings if r.sensor_id == "DOCK-1"})
    assert got["environment_temperature"] == (24.0, "Cel") and got["humidity"] == (62.0, "%RH")
    assert got["drone_in_dock"] == (1.0, None) and got["working_voltage"] == (25440.0, "mV")
    assert got["drone_charge_state.capacity_percent"] == (100.0, "%") and got["flighttask_step_code"] == (255.0, None)
    assert "latitude" not in got and "alternate_land_point.latitude" not in got
    res = d.parse("thing/product/dock_sn/state", raw("generic_state_envelope.json"), NOW, ctx)
    assert [(s.device_id, s.online) for s in res.statuses] == [("DOCK-1", True)]
    assert res.statuses[0].at == datetime.fromtimestamp(1598411295.123, timezone.utc)


def test_the_registry_metric_map_renames_dock_fields_and_adds_others():
    reg = RegistryView.from_registry([{"device_id": "DOCK-1", "properties": {
        "dji_sn": "dock_sn", "metric_map": {"environment_temperature": ["air_temperature", "Cel"],
                                            "network_state.type": ["network_type", None]}}}])
    ctx = DialectContext(ROOT, reg, VerticalModel(), 65536)
    res = DjiDialect().parse("thing/product/dock_sn/osd", raw("dock2_osd_position_environment.json"), NOW, ctx)
    metrics = {r.metric: (r.value, r.unit) for r in res.readings}
    assert metrics["air_temperature"] == (24.0, "Cel") and metrics["network_type"] == (2.0, None)
    assert "environment_temperature" not in metrics


def test_update_topo_is_answered_as_the_protocol_requires_and_records_the_topology(ctx):
    d = DjiDialect()
    res = d.parse("sys/product/rc_sn/status", raw("sys_status_update_topo_dock2_online.json"), NOW, ctx)
    (reply,) = res.replies
    request = doc("sys_status_update_topo_dock2_online.json")
    documented = doc("sys_status_reply_update_topo_dock2.json")
    body = json.loads(reply.payload)
    assert reply.topic == "sys/product/rc_sn/status_reply" and reply.qos == 1 and not reply.retain
    assert set(body) == set(documented) and body["data"] == documented["data"] == {"result": 0}
    assert (body["tid"], body["bid"], body["method"]) == (request["tid"], request["bid"], "update_topo")
    assert [(s.device_id, s.online) for s in res.statuses] == [("RC-1", True), ("M300-1", True)]
    assert [(r.sensor_id, r.metric, r.vtext) for r in res.readings] == [("RC-1", "dji_topology", "M300-1")]
    assert d.topology == {"rc_sn": ("drone001",)}
    res = d.parse("sys/product/rc_sn/status", raw("sys_status_update_topo_dock2_sub_device_offline.json"), NOW, ctx)
    assert [(s.device_id, s.online) for s in res.statuses] == [("RC-1", True), ("M300-1", False)]
    assert [r.vtext for r in res.readings] == [""] and len(res.replies) == 1
    older = d.parse("sys/product/rc_sn/status", raw("sys_status_update_topo_dock_online.json"), NOW, ctx)
    assert json.loads(older.replies[0].payload)["tid"] == "tid001"  # the older documented form, answered too


def test_unregistered_serial_numbers_are_dead_letters_that_name_them(zones_geojson):
    pipe = build_pipeline(ZoneSet.from_geojson(zones_geojson), ROOT, dialects=[DjiDialect()],
                          registry=RegistryView.from_registry(REGISTRY))
    before = (UNREGISTERED.labels("dji")._value.get(), DEAD_LETTERS.labels("dji")._value.get())
    out = pipe.process([
        RawMessage("thing/product/UNKNOWN123/osd", flying_osd(121.5, 31.05, 70), NOW),
        RawMessage("sys/product/UNKNOWN_GW/status", raw("sys_status_update_topo_dock2_online.json"), NOW),
        RawMessage("thing/product/UNKNOWN_DOCK/osd", raw("dock2_osd_basic.json"), NOW),
    ])
    assert [d.reason.split(":")[0] for d in out.dead_letters] == [
        "unregistered DJI aircraft SN UNKNOWN123", "unregistered DJI gateway SN UNKNOWN_GW",
        "unregistered DJI device SN UNKNOWN_DOCK"]
    assert out.replies == [] and out.telemetry == []
    assert (UNREGISTERED.labels("dji")._value.get(), DEAD_LETTERS.labels("dji")._value.get()) == (
        before[0] + 3, before[1] + 3)
    # and an unregistered_device notice each, once per serial number however often it speaks
    notices = [(e.event.kind, e.event.uav_id, e.event.detail["key"]) for e in out.events]
    assert notices == [("unregistered_device", "UNKNOWN123", "dji_sn"), ("unregistered_device", "UNKNOWN_GW", "dji_sn"),
                       ("unregistered_device", "UNKNOWN_DOCK", "dji_sn")]
    again = pipe.process([RawMessage("thing/product/UNKNOWN123/osd", flying_osd(121.5, 31.05, 70), NOW)])
    assert again.events == [] and len(again.dead_letters) == 1


def test_a_dji_fix_is_judged_like_a_native_one(zones_geojson):
    """A DJI aircraft at 64 m ellipsoid height over the bridge exclusion zone (54 m AMSL, 50 m AGL with the zone
    file's vertical model) raises the same no-fly violation as a native fix there at 50 m AGL."""
    zones = ZoneSet.from_geojson(zones_geojson)
    height = zones.vertical.from_amsl(zones.vertical.to_amsl(50.0, "AGL"), "WGS84")
    pipe = build_pipeline(zones, ROOT, dialects=[DjiDialect()], registry=RegistryView.from_registry(REGISTRY))
    out = pipe.process([RawMessage("thing/product/1581F5BKD225D00BP891/osd", flying_osd(*NO_FLY, height), NOW)])
    assert not out.dead_letters
    assert ("no_fly_violation", "R-BR-MP") in {(e.event.kind, e.event.zone_id) for e in out.events}
    assert out.uav_states["M30-1"]["alt_ref"] == "WGS84"


@pytest.mark.parametrize("payload, reason", [
    (raw("aircraft_osd_m30_via_dock.json")[:500], "malformed JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"timestamp": 1670422793916}', "field 'data' must be an object"),
    (b'{"data": {"latitude": "31", "longitude": 121, "height": 10, "elevation": 1}}', "field 'lat' must be a number"),
    (b'{"data": {"latitude": 95, "longitude": 121, "height": 10, "elevation": 1}}', "out of range"),
    (b'{"data": {"latitude": 31, "longitude": 121, "elevation": null, "attitude_head": 1}}', "neither 'height'"),
    (b'{"timestamp": "soon", "data": {}}', "field 'timestamp' must be epoch milliseconds"),
    (b'{"timestamp": 99999999999999, "data": {}}', "ahead of arrival"),
])
def test_malformed_aircraft_osd_are_dead_letters_with_the_reason(ctx, payload, reason):
    with pytest.raises(BadMessage, match=reason.replace("(", r"\(")):
        DjiDialect().parse("thing/product/1581F5BKD225D00BP891/osd", payload, NOW, ctx)
