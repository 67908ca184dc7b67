"""The simulated fleet's SenML and compact payloads through the ingester's parser: every metric arrives,
booleans as 0/1, units kept, and metrics the registry does not list are recorded (not dropped)."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from devices import payloads
from devices.fleet import make_fleet
from devices.sensors import read_sensor
from ingest.sensors import parse_reading

NOW = datetime(2026, 5, 8, 7, 35, 30, tzinfo=timezone.utc)
EPOCH = NOW.timestamp() - 4.5


@pytest.fixture(scope="module")
def sensors(zones_geojson):
    return make_fleet(zones_geojson, 0, 27, seed=3)[1]


def _expected(reading):
    return {n: (float(v), u or None) for n, (u, v) in reading.items()}


def test_senml_packs_of_every_kind_parse_to_all_their_metrics(sensors):
    for spec in sensors:
        reading = read_sensor(spec, 100.0, EPOCH)
        rows = parse_reading(spec.sensor_id, payloads.encode(payloads.senml_pack(spec.sensor_id, EPOCH, reading)),
                             NOW, 65536)
        assert {r.metric: (r.value, r.unit) for r in rows} == _expected(reading), spec.sensor_id
        assert {r.ts.timestamp() for r in rows} == {EPOCH} and {r.sensor_id for r in rows} == {spec.sensor_id}


def test_compact_form_parses_to_the_same_rows(sensors):
    for spec in sensors:
        reading = read_sensor(spec, 100.0, EPOCH)
        rows = parse_reading(spec.sensor_id, payloads.encode(payloads.compact(EPOCH, reading)), NOW, 65536)
        assert {r.metric: (r.value, r.unit) for r in rows} == _expected(reading), spec.sensor_id


def test_unknown_metrics_are_recorded_not_dropped():
    """A sensor that starts reporting something new (firmware update) is stored as it comes."""
    body = orjson.dumps([{"bn": "urn:dev:skylane:W-C1:", "bt": EPOCH, "n": "wind_gust", "u": "m/s", "v": 9.5},
                         {"n": "battery_v", "u": "V", "v": 3.61}, {"n": "firmware", "vs": "2.4.1"},
                         {"n": "door_open", "vb": True}])
    rows = {r.metric: (r.value, r.vtext, r.unit) for r in parse_reading("W-C1", body, NOW, 65536)}
    assert rows == {"wind_gust": (9.5, None, "m/s"), "battery_v": (3.61, None, "V"),
                    "firmware": (None, "2.4.1", None), "door_open": (1.0, None, None)}
    compact = parse_reading("W-C1", orjson.dumps({"values": {"new_metric": 1.5, "door_open": False}}), NOW, 65536)
    assert [(r.metric, r.value, r.ts) for r in compact] == [("new_metric", 1.5, NOW), ("door_open", 0.0, NOW)]
