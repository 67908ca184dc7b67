"""Record a short simulated session on the real broker, replay it into a fresh system, get the same events."""
from __future__ import annotations

import threading

import pytest

from devices.fleet import make_fleet
from devices.simulator import Simulator
from replay.player import replay
from replay.recorder import record
from replay.recordfile import read_records

from .helpers import Running, query, start_ingester, wait_until

pytestmark = pytest.mark.integration

EVENTS = "SELECT id, kind, uav_id, zone_id, ts FROM airspace_events ORDER BY ts, uav_id, kind, zone_id"


def _count(settings) -> int:
    return query(settings.database_url, "SELECT count(*) FROM uav_telemetry")[0][0]


def test_replay_gives_the_same_events(new_system, zones_geojson, tmp_path):
    live = new_system()
    path = tmp_path / "session.slrec.gz"
    _, ingest_live = start_ingester(live)
    subscribed = threading.Event()
    recorder = Running(lambda stop: record(live.mqtt_url, path, live.mqtt_root, stop=stop, ready=subscribed))
    assert subscribed.wait(10), "recorder did not subscribe"
    drones, sensors = make_fleet(zones_geojson, 6, 4, seed=5, rate_scale=20)
    stats = Simulator(live.mqtt_url, live.mqtt_root, drones, sensors, hz=5).run(threading.Event(), duration_s=6)
    assert stats.telemetry >= 6 * 5 * 5
    wait_until(lambda: _count(live) == stats.telemetry, 20, "live ingester did not store the session")
    recorder.close()
    ingest_live.close()
    recorded = [r for r in read_records(path) if r.topic.endswith("/telemetry")]
    assert len(recorded) == stats.telemetry
    expected = query(live.database_url, EVENTS)
    assert expected, "the simulated session produced no airspace events"

    copy = new_system()
    _, ingest_copy = start_ingester(copy)
    try:
        published = replay(path, copy.mqtt_url, rate=3, root_from=live.mqtt_root, root_to=copy.mqtt_root)
        assert published >= stats.telemetry
        wait_until(lambda: _count(copy) == stats.telemetry, 30, "replayed telemetry was not all stored")
    finally:
        ingest_copy.close()
    assert query(copy.database_url, EVENTS) == expected
    # nothing of the replay reached the live system
    assert _count(live) == stats.telemetry
