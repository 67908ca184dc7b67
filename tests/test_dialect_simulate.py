"""The simulator speaks each dialect (`skylane simulate --dialect ...`): its devices' registry records carry the
vendor properties, their traffic goes out in the vendor's format, and ingest (or the MAVLink bridge) turns it back
into the same fixes and readings the native simulator gives."""
from __future__ import annotations

import json
import threading

import pytest

from devices.fleet import make_fleet
from devices.registry import fleet_records
from devices.vendor_payloads import dji_sn
from devices.vendor_sim import PREFIX, VendorSpeaker, dialect_fleet

from .dialect_support import count, register, start_bridge, wait_count
from .helpers import start_ingester

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("dialect", ["dji", "chirpstack", "tts", "mavlink"])
def test_a_simulated_fleet_speaking_a_dialect_is_ingested(system, zones_geojson, dialect):
    from devices.simulator import Simulator
    drones, sensors = make_fleet(zones_geojson, 2, 2, seed=30 + len(dialect))
    drones, sensors = dialect_fleet(dialect, drones, sensors)
    assert all(d.uav_id.startswith(PREFIX[dialect]) for d in drones)
    bridge = None
    if dialect == "mavlink":
        bridge, bridge_runner, port = start_bridge(system, refresh_s=0.5)
    target = f"udp:127.0.0.1:{port}" if dialect == "mavlink" else "udp:127.0.0.1:14550"
    speaker = VendorSpeaker(dialect, drones, sensors, target)
    records = speaker.records(fleet_records(drones, sensors))
    if dialect == "dji":
        assert {r.properties.get("dji_sn") for r in records if r.kind == "uav"} == {dji_sn(d.uav_id) for d in drones}
        assert any(r.sensor_kind == "dji_dock" for r in records)
    register(system, *records)
    ing, runner = start_ingester(system.with_(dialects=(dialect,)) if dialect != "mavlink" else system)
    sim = Simulator(system.service_url("simulator"), system.mqtt_root, drones, sensors, hz=2.0, dialect=speaker)
    stop = threading.Event()
    t = threading.Thread(target=sim.run, args=(stop, 30), daemon=True)
    try:
        if bridge is not None:
            assert bridge.connected.wait(10)
        t.start()
        db = system.database_url
        ids = tuple(d.uav_id for d in drones)
        wait_count(db, "SELECT count(DISTINCT uav_id) FROM uav_telemetry WHERE uav_id = ANY(%s)", list(ids),
                   at_least=len(ids), timeout=30)
        sensor_ids = [s.sensor_id for s in sensors]
        wait_count(db, "SELECT count(DISTINCT sensor_id) FROM sensor_readings WHERE sensor_id = ANY(%s)", sensor_ids,
                   at_least=len(sensor_ids), timeout=30)
        refs = {r for (r,) in _rows(db, "SELECT DISTINCT alt_ref FROM uav_telemetry")}
        assert refs == {"dji": {"WGS84"}, "mavlink": {"AMSL"}}.get(dialect, {"AGL"})
        if dialect in ("chirpstack", "tts"):  # the registry's metric_map gave the units the uplinks do not carry
            units = dict(_rows(db, "SELECT metric, unit FROM sensor_readings WHERE unit IS NOT NULL "
                                   "AND metric NOT LIKE 'lorawan%%'"))
            assert units and all(u for u in units.values())
        if dialect == "dji":
            wait_count(db, "SELECT count(*) FROM sensor_readings WHERE sensor_id = 'DJI-DOCK-1'")
        assert count(db, "SELECT count(*) FROM dead_letters") == 0, _rows(db, "SELECT topic, reason FROM dead_letters")
    finally:
        stop.set()
        t.join(15)
        runner.close()
        if bridge is not None:
            bridge_runner.close()


def _rows(database_url: str, sql: str) -> list[tuple]:
    import psycopg
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql).fetchall()


def test_the_speaker_leaves_other_devices_native(zones_geojson):
    drones, sensors = make_fleet(zones_geojson, 1, 1, seed=3)
    speaker = VendorSpeaker("chirpstack", drones, sensors)
    assert speaker.telemetry(drones[0].uav_id, None, 0, 0.0) is None  # drones speak the contract
    (topic, body), = speaker.reading(sensors[0], 1_800_000_000.0, {"wind_speed": ("m/s", 3.5)})
    up = json.loads(body)
    assert topic.endswith("/event/up") and up["object"] == {"wind_speed": 3.5} and up["fCnt"] == 1


def test_the_demo_registers_one_device_of_each_dialect_before_ingest_starts(system):
    from skylane.commands.run import _demo_dialects
    children = dict(_demo_dialects(system, 14999))
    assert children["bridge"] == ["bridge", "mavlink", "--listen", "udp:127.0.0.1:14999", "--refresh", "5"]
    assert {name for name in children if name.startswith("simulate-")} == {
        "simulate-dji", "simulate-mavlink", "simulate-chirpstack", "simulate-tts"}
    props = {d: p for d, p in _rows(system.database_url, "SELECT device_id, properties FROM devices")}
    assert any("dji_sn" in p and "dji_gateway" in p for p in props.values())
    assert any(p.get("mavlink") == "udp:14999/1" for p in props.values())
    assert any("dev_eui" in p and "tts_device_id" not in p for p in props.values())
    assert any("tts_device_id" in p for p in props.values())
