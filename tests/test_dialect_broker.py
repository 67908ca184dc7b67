"""Each dialect through the real broker and database: an ingester started with the dialect subscribes to the vendor's
topics, stores what registered devices send (once, however often it is delivered), answers DJI's update_topo on
status_reply after the commit, and turns everything else into dead letters with the reason."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from devices.registry import DeviceRecord

from .dialect_support import Mqtt, count, register, unique, unique_eui, wait_count
from .helpers import query, start_ingester

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data"
NO_FLY = (121.4885, 31.044)  # inside R-BR-MP (prohibited, 0-150 m AGL)


def _dji_osd(lon: float, lat: float, height: float, at: datetime) -> bytes:
    body = json.loads((DATA / "dji_cloud" / "aircraft_osd_m30_via_dock.json").read_bytes())
    body["data"].update(latitude=lat, longitude=lon, height=height, mode_code=5)
    body["timestamp"] = int(at.timestamp() * 1000)
    return orjson.dumps(body)


def test_dji_aircraft_and_dock_through_the_broker(system):
    aircraft, dock, stranger = unique("1581F5T"), unique("4TADK"), unique("1581F5X")
    register(system, DeviceRecord("DJI-A1", "uav", properties={"dji_sn": aircraft, "dji_gateway": dock}),
             DeviceRecord("DJI-DOCK", "sensor", sensor_kind="dji_dock", properties={"dji_sn": dock}))
    ing, runner = start_ingester(system.with_(dialects=("dji",)))
    watch = Mqtt(system, f"sys/product/{dock}/status_reply")
    try:
        topo = json.loads((DATA / "dji_cloud" / "sys_status_update_topo_dock2_online.json").read_bytes())
        topo["data"]["sub_devices"][0]["sn"] = aircraft
        topo["tid"], topo["bid"] = unique("tid-"), unique("bid-")
        watch.publish(f"sys/product/{dock}/status", orjson.dumps(topo))
        topic, reply = watch.next(15)
        assert topic == f"sys/product/{dock}/status_reply"
        assert json.loads(reply) | {"timestamp": 0} == {"tid": topo["tid"], "bid": topo["bid"], "timestamp": 0,
                                                        "method": "update_topo", "data": {"result": 0}}
        now = datetime.now(timezone.utc)
        height = 64.0  # ellipsoid height over the bridge exclusion zone: 54 m AMSL, 50 m AGL
        osd = _dji_osd(*NO_FLY, height, now - timedelta(seconds=1))
        for _ in range(2):  # delivered twice: stored once
            watch.publish(f"thing/product/{aircraft}/osd", osd)
        dock_osd = json.loads((DATA / "dji_cloud" / "dock2_osd_position_environment.json").read_bytes())
        dock_osd["data"]["sub_device"].update(device_sn=aircraft, device_online_status=1)  # its aircraft, powered on
        watch.publish(f"thing/product/{dock}/osd", orjson.dumps(dock_osd))
        watch.publish(f"thing/product/{stranger}/osd", osd)
        watch.publish(f"thing/product/{aircraft}/osd", osd[:300])
        db = system.database_url
        wait_count(db, "SELECT count(*) FROM airspace_events WHERE uav_id = 'DJI-A1' AND kind = 'no_fly_violation'")
        wait_count(db, "SELECT count(*) FROM dead_letters", at_least=2)
        wait_count(db, "SELECT count(*) FROM sensor_readings WHERE sensor_id = 'DJI-DOCK' AND metric = 'humidity'")
        assert count(db, "SELECT count(*) FROM uav_telemetry WHERE uav_id = 'DJI-A1' AND alt_ref = 'WGS84' "
                         "AND alt_m = 64") == 1
        reasons = [r for (r,) in query(db, "SELECT reason FROM dead_letters ORDER BY id")]
        assert any(r.startswith(f"unregistered DJI aircraft SN {stranger}") for r in reasons)
        assert any(r.startswith("malformed JSON") for r in reasons)
        assert query(db, "SELECT device_id, online FROM devices WHERE device_id IN ('DJI-A1', 'DJI-DOCK') "
                         "ORDER BY device_id") == [("DJI-A1", True), ("DJI-DOCK", True)]
        assert query(db, "SELECT vtext FROM sensor_readings WHERE sensor_id = 'DJI-DOCK' AND metric = "
                         "'dji_topology'") == [("DJI-A1",)]
    finally:
        watch.close()
        runner.close()


def test_chirpstack_uplinks_through_the_broker_dedupe_and_gaps(system):
    eui = unique_eui()
    register(system, DeviceRecord("CS-AQ1", "sensor", sensor_kind="air_quality", properties={
        "dev_eui": eui, "metric_map": {"pm25": ["pm2_5", "ug/m3"]}}))
    ing, runner = start_ingester(system.with_(dialects=("chirpstack",)))
    mqtt = Mqtt(system)
    base = json.loads((DATA / "lorawan" / "chirpstack_v4_docs_event_up.json").read_bytes())
    base["deviceInfo"]["devEui"] = eui
    topic = f"application/{base['deviceInfo']['applicationId']}/device/{eui}/event/"
    t0 = datetime.now(timezone.utc) - timedelta(seconds=30)

    def up(fcnt: int, obj: dict | None) -> bytes:
        body = {**base, "fCnt": fcnt, "time": (t0 + timedelta(seconds=fcnt)).isoformat()}
        return orjson.dumps(body if obj is None else {**body, "object": obj})
    try:
        mqtt.publish(topic + "join", (DATA / "lorawan" / "chirpstack_v4_docs_event_join.json").read_bytes()
                     .replace(b"0101010101010101", eui.encode()))
        for fcnt in (1, 2, 2, 6):  # frame 2 twice (a re-delivery), frames 3-5 lost
            mqtt.publish(topic + "up", up(fcnt, {"pm25": 30.0 + fcnt}))
        mqtt.publish(topic + "up", up(7, None))
        mqtt.publish(topic + "status", (DATA / "lorawan" / "chirpstack_v4_docs_event_status.json").read_bytes()
                     .replace(b"0101010101010101", eui.encode()))
        db = system.database_url
        wait_count(db, "SELECT count(*) FROM sensor_readings WHERE sensor_id = 'CS-AQ1' AND metric = 'batteryLevel'")
        wait_count(db, "SELECT count(*) FROM dead_letters")
        assert query(db, "SELECT value, unit FROM sensor_readings WHERE sensor_id = 'CS-AQ1' AND metric = 'pm2_5' "
                         "ORDER BY ts") == [(31.0, "ug/m3"), (32.0, "ug/m3"), (36.0, "ug/m3")]
        assert query(db, "SELECT value FROM sensor_readings WHERE sensor_id = 'CS-AQ1' "
                         "AND metric = 'lorawan_frames_lost'") == [(3.0,)]
        (reason,) = [r for (r,) in query(db, "SELECT reason FROM dead_letters")]
        assert "has no decoded payload ('object')" in reason
        assert query(db, "SELECT online FROM devices WHERE device_id = 'CS-AQ1'") == [(True,)]
    finally:
        mqtt.close()
        runner.close()


def test_tts_uplinks_through_the_broker(system):
    app, dev = unique("app-").lower(), unique("dev-").lower()
    register(system, DeviceRecord("TTS-T1", "sensor", properties={
        "tts_device_id": f"{app}/{dev}", "metric_map": {"temperature": ["temperature", "Cel"],
                                                       "link.rssi": ["lorawan_rssi", "dBm"],
                                                       "link.snr": ["lorawan_snr", "dB"]}}))
    ing, runner = start_ingester(system.with_(dialects=("tts",)))
    mqtt = Mqtt(system)
    body = json.loads((DATA / "lorawan" / "tts_v3_docs_uplink.json").read_bytes())
    body["end_device_ids"]["device_id"] = dev
    body["received_at"] = (datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat()
    try:
        for _ in range(2):
            mqtt.publish(f"v3/{app}@tenant1/devices/{dev}/up", orjson.dumps(body))
        mqtt.publish(f"v3/{app}@tenant1/devices/{dev}/join", (DATA / "lorawan" / "tts_v3_docs_join_accept.json")
                     .read_bytes().replace(b'"dev1"', f'"{dev}"'.encode()))
        mqtt.publish(f"v3/{app}@tenant1/devices/{dev}/up", (DATA / "lorawan" / "tts_v3_mqtt_docs_uplink_no_fcnt.json")
                     .read_bytes().replace(b'"dev1"', f'"{dev}"'.encode()))
        db = system.database_url
        wait_count(db, "SELECT count(*) FROM dead_letters")
        wait_count(db, "SELECT count(*) FROM devices WHERE device_id = 'TTS-T1' AND online")
        assert query(db, "SELECT metric, value, unit FROM sensor_readings WHERE sensor_id = 'TTS-T1' ORDER BY metric") \
            == [("lorawan_rssi", -35.0, "dBm"), ("lorawan_snr", 5.0, "dB"), ("luminosity", 0.64, None),
                ("temperature", 1.0, "Cel")]
        (reason,) = [r for (r,) in query(db, "SELECT reason FROM dead_letters")]
        assert "has no decoded payload ('decoded_payload')" in reason
    finally:
        mqtt.close()
        runner.close()
