"""The device registry: records from files and from the demo fleet, stored and served."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import orjson
import pytest

from devices.fleet import make_fleet
from protocol.mqttclient import close_client, connect_client
from devices.registry import fleet_records, parse_registry
from protocol import topics

from .api_support import bearer, make_keys
from .helpers import wait_until

GOOD = [{"device_id": "WX-PJ-C", "kind": "sensor", "name": "Wind mast Pujiang Central", "owner": "Minhang weather",
         "sensor_kind": "wind", "lon": 121.53, "lat": 31.051, "units": {"wind_gust": "m/s"},
         "expected_interval_s": 10},
        {"device_id": "D-001", "kind": "uav", "owner": "Operator A"}]


def test_parse_registry_accepts_good_entries():
    recs = parse_registry(GOOD)
    assert [(r.device_id, r.kind, r.expected_interval_s) for r in recs] == [("WX-PJ-C", "sensor", 10), ("D-001", "uav", None)]


@pytest.mark.parametrize("entry, needle", [
    ({"device_id": "a b", "kind": "uav"}, "field 'device_id'"),
    ({"device_id": "X", "kind": "car"}, "field 'kind'"),
    ({"device_id": "X", "kind": "uav", "lat": 91}, "field 'lat'"),
    ({"device_id": "X", "kind": "uav", "expected_interval_s": float("nan")}, "field 'expected_interval_s'"),
    ({"device_id": "X", "kind": "uav", "units": {"a": 1}}, "field 'units'"),
    ({"device_id": "X", "kind": "uav", "colour": "red"}, "field 'colour': unknown field"),
])
def test_parse_registry_names_entry_and_field(entry, needle):
    with pytest.raises(ValueError) as err:
        parse_registry([GOOD[1], entry])
    assert str(err.value).startswith("entry 1") and needle in str(err.value)


def test_parse_registry_keeps_category_metrics_and_properties():
    rec = parse_registry([{**GOOD[0], "category": "weather", "metrics": ["wind_gust", "wind_speed"],
                           "properties": {"corridor_id": "C2", "limits": {"wind_gust": 14}}}])[0]
    assert rec.category == "weather" and rec.properties["corridor_id"] == "C2"
    assert rec.metrics == ["wind_gust", "wind_speed"]  # named ones first, then those only given a unit
    assert parse_registry([{**GOOD[0], "metrics": []}])[0].metrics == ["wind_gust"]


@pytest.mark.parametrize("entry, needle", [
    ({"device_id": "X", "kind": "sensor", "metrics": "pm2_5"}, "field 'metrics'"),
    ({"device_id": "X", "kind": "sensor", "metrics": [""]}, "field 'metrics'"),
    ({"device_id": "X", "kind": "sensor", "properties": []}, "field 'properties'"),
    ({"device_id": "X", "kind": "sensor", "category": 3}, "field 'category'"),
])
def test_parse_registry_checks_new_fields(entry, needle):
    with pytest.raises(ValueError, match=needle):
        parse_registry([entry])


@pytest.mark.integration
def test_cli_fleet_register_and_list_round_trip(fresh_db, tmp_path):
    env = dict(os.environ, SKYLANE_DATABASE_URL=fresh_db)

    def skylane(*argv):
        r = subprocess.run([sys.executable, "-m", "skylane", "devices", *argv], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout
    path = tmp_path / "fleet.json"
    path.write_text(skylane("fleet", "--drones", "2", "--sensors", "9"))
    assert "registered 11 devices" in skylane("register", str(path))
    listed = [json.loads(line) for line in skylane("list", "--kind", "sensor").splitlines()]
    by_id = {d["device_id"]: d for d in listed}
    assert len(by_id) == 9 and by_id["W-C1"]["properties"] == {"corridor_id": "C1"}
    assert {d["category"] for d in listed} == {"traffic", "energy", "municipal", "environment", "weather"}
    assert all(d["expected_interval_s"] > 0 and d["metrics"] and d["lon"] and d["owner"] for d in listed)


def test_duplicate_ids_refused():
    with pytest.raises(ValueError, match="duplicate"):
        parse_registry([GOOD[1], GOOD[1]])


def test_fleet_records_describe_every_simulated_device(zones_geojson):
    drones, sensors = make_fleet(zones_geojson, 6, 10, seed=1)
    recs = fleet_records(drones, sensors, hz=2)
    assert len(recs) == 16
    uav = next(r for r in recs if r.kind == "uav")
    assert uav.expected_interval_s == 0.5
    for r in recs:
        if r.kind == "sensor":
            assert r.sensor_kind and r.units and r.expected_interval_s > 0 and r.lon and r.lat


@pytest.mark.integration
def test_registered_devices_are_served_with_their_state(system, ingester, api, tmp_path):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(GOOD))
    env = dict(os.environ, SKYLANE_DATABASE_URL=system.database_url, SKYLANE_MQTT_URL=system.mqtt_url)
    out = subprocess.run([sys.executable, "-m", "skylane", "devices", "register", str(path)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "registered 2 devices" in out.stdout, out.stderr
    pub = connect_client(system.mqtt_url, "test-registry-pub")
    try:
        pub.publish(topics.reading(system.mqtt_root, "WX-PJ-C"), orjson.dumps({"values": {"wind_gust": 7.5}}), qos=1)
        pub.publish(topics.status(system.mqtt_root, "WX-PJ-C"), b"online", qos=1, retain=True).wait_for_publish(5)
    finally:
        close_client(pub)

    auth = bearer(make_keys(system.database_url).viewer)

    def wind_mast():
        devs = {d["device_id"]: d for d in httpx.get(api.url + "/v1/devices", params={"kind": "sensor"},
                                                     headers=auth).json()}
        d = devs.get("WX-PJ-C")
        return d if d and d["online"] and d["last_seen"] else None
    mast = wait_until(wind_mast, 10, "reading and status did not reach the registry")
    assert (mast["owner"], mast["sensor_kind"], mast["units"]) == ("Minhang weather", "wind", {"wind_gust": "m/s"})
    assert httpx.get(api.url + "/v1/devices", params={"kind": "boat"}, headers=auth).status_code == 422
    bad = tmp_path / "bad.json"
    bad.write_text('[{"device_id": "x", "kind": "boat"}]')
    out = subprocess.run([sys.executable, "-m", "skylane", "devices", "register", str(bad)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "entry 0 ('x'): field 'kind'" in out.stderr
