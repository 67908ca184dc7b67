"""Contract payloads (telemetry JSON, SenML packs) and the simulated sensor signals."""
from __future__ import annotations

import re

import orjson
import pytest

from devices import payloads
from devices.fleet import make_fleet
from devices.flight import Fix
from devices.sensors import read_sensor

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def sensors(zones_geojson):
    return make_fleet(zones_geojson, 0, 27, seed=9)[1]


def test_telemetry_has_exactly_the_contract_fields():
    fix = Fix(lon=121.48, lat=31.05, alt_m=80.0, speed_mps=15.0, track_deg=90.0, vspeed_mps=0.0,
              status="Airborne", battery_pct=88.5)
    body = orjson.loads(payloads.encode(payloads.telemetry(fix, 42, 1_778_312_125.25)))
    assert set(body) == {"ts", "lat", "lon", "alt_m", "alt_ref", "seq", "speed_mps", "track_deg",
                         "vspeed_mps", "battery_pct", "status", "clearance_id"}
    assert TS.match(body["ts"]) and body["ts"].endswith(".250Z")
    assert body["alt_ref"] == "AGL" and body["clearance_id"] is None and body["seq"] == 42
    assert (body["lon"], body["lat"], body["alt_m"], body["status"]) == (121.48, 31.05, 80.0, "Airborne")


def test_senml_pack_follows_rfc8428(sensors):
    for spec in sensors:
        pack = orjson.loads(payloads.encode(payloads.senml_pack(spec.sensor_id, 1_778_312_125.5,
                                                                read_sensor(spec, 30.0))))
        assert isinstance(pack, list) and len(pack) == len(spec.metrics)
        first, rest = pack[0], pack[1:]
        assert first["bn"] == f"urn:dev:skylane:{spec.sensor_id}:" and first["bt"] == 1_778_312_125.5
        assert all("bn" not in r and "bt" not in r for r in rest)
        for rec in pack:
            assert isinstance(rec["n"], str)
            if "vb" in rec:  # booleans (manhole cover, street lamp): no unit
                assert isinstance(rec["vb"], bool) and "u" not in rec and "v" not in rec
            else:
                assert isinstance(rec["u"], str)
                assert isinstance(rec["v"], (int, float)) and not isinstance(rec["v"], bool)
        assert {r["n"]: r.get("u", "") for r in pack} == {n: m[0] for n, m in spec.metrics.items()}


def test_empty_pack_is_refused():
    with pytest.raises(ValueError):
        payloads.senml_pack("s-1", 0.0, {})


def test_sensor_values_are_plausible_and_deterministic(sensors):
    for spec in sensors:
        for t in (0.0, 10.0, 333.0, 5000.0):
            r = read_sensor(spec, t)
            assert r == read_sensor(spec, t)
            assert set(r) == set(spec.metrics)
            v = {k: val for k, (_u, val) in r.items()}
            if spec.kind == "wind":
                assert 0 <= v["wind_dir"] < 360 and v["wind_gust"] >= v["wind_speed"] >= 0
            if spec.kind == "traffic":
                assert isinstance(v["vehicle_count"], int) and v["vehicle_count"] >= 0
            if spec.kind == "air_quality":
                assert all(x >= 0 for x in v.values())
            if spec.kind == "water_level":
                assert 1.0 < v["water_level"] < 6.0


def test_energy_meter_only_counts_up(sensors):
    spec = next(s for s in sensors if s.kind == "energy")
    readings = [read_sensor(spec, t)["energy"][1] for t in range(0, 4000, 15)]
    assert all(b >= a for a, b in zip(readings, readings[1:]))
    assert readings[-1] > readings[0]


def test_corridor_masts_show_gusts_above_the_rule_limit_now_and_then(sensors):
    """The demo must show the wind rule: within an hour each corridor mast gusts above 12 m/s for a while,
    most of the time it does not, and a gust is never below the mean wind."""
    from ingest.sensor_watch import load_rules
    limit = next(r for r in load_rules() if r.id == "wind-gust-limit").limit
    for spec in (s for s in sensors if s.sensor_id.startswith("W-")):
        gusts = [read_sensor(spec, t, 1_778_312_125.0 + t) for t in range(0, 3600, 10)]
        above = [r["wind_gust"][1] > limit for r in gusts]
        assert 0 < sum(above) < len(above) / 3, spec.sensor_id
        assert all(r["wind_gust"][1] >= r["wind_speed"][1] for r in gusts)


def test_street_lights_follow_the_shanghai_night(sensors):
    spec = next(s for s in sensors if s.kind == "streetlight")
    midnight_local = 1_778_256_000.0  # 2026-05-08T16:00Z = 00:00 in Shanghai
    night = read_sensor(spec, 0.0, midnight_local)
    noon = read_sensor(spec, 0.0, midnight_local + 12 * 3600)
    assert night["lamp_on"][1] is True and night["power"][1] > 50
    assert noon["lamp_on"][1] is False and noon["power"][1] == 0.0


def test_compact_form_carries_the_same_values(sensors):
    spec = next(s for s in sensors if s.kind == "manhole")
    reading = read_sensor(spec, 10.0)
    body = payloads.compact(1_778_312_125.5, reading)
    assert TS.match(body["ts"]) and body["ts"].endswith(".500Z")
    assert body["values"]["cover_open"] in (0, 1) and "cover_open" not in body["units"]
    assert body["units"]["tilt_deg"] == "deg"
