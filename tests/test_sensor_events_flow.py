"""An hour of a simulated corridor wind mast through the ingest parser, the batch writer, the sensor
watch and the sensor event store, on a real PostgreSQL: gusts become threshold events bound to the
corridor, unknown metrics are stored, and re-processing the same messages stores nothing twice."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import psycopg
import pytest

from airspace.zones import ZoneSet
from devices import payloads
from devices.fleet import make_fleet
from devices.registry import fleet_records
from devices.sensors import read_sensor
from ingest.pipeline import Pipeline, RawMessage
from ingest.sensor_watch import SensorWatch, load_rules, sensor_infos
from protocol import topics
from storage import catalog, schema
from storage.sensor_events import insert_sensor_events, list_sensor_events
from storage.writes import write_batch

from .helpers import query

ROOT = "flow/v1"
START = datetime(2026, 5, 1, 6, 0, tzinfo=timezone.utc).timestamp()


def _messages(sensors, seconds: int) -> list[RawMessage]:
    msgs = []
    for spec in sensors:
        for k in range(int(seconds / spec.interval_s)):
            t = k * spec.interval_s
            pack = payloads.senml_pack(spec.sensor_id, START + t, read_sensor(spec, t, START + t))
            if spec.sensor_id == "W-C1" and k == 7:
                pack.append({"n": "heater_on", "vb": True})  # a metric the registry does not know
            msgs.append(RawMessage(topics.reading(ROOT, spec.sensor_id), payloads.encode(pack),
                                   datetime.fromtimestamp(START + t + 0.2, tz=timezone.utc), qos=1))
    first = min(m.received_at for m in msgs)
    msgs.append(RawMessage(topics.status(ROOT, "W-C1"), payloads.ONLINE, first - timedelta(seconds=1), qos=1))
    msgs.append(RawMessage(topics.status(ROOT, "W-C1"), payloads.ONLINE, first, qos=1))  # retained, again
    msgs.sort(key=lambda m: m.received_at)
    msgs.append(RawMessage(topics.status(ROOT, "W-C1"), payloads.OFFLINE, msgs[-1].received_at, qos=1))  # will
    return msgs


def _run(db: str, pipeline: Pipeline, watch: SensorWatch, msgs: list[RawMessage], batch: int = 200) -> None:
    with psycopg.connect(db) as conn:
        for i in range(0, len(msgs), batch):
            out = pipeline.process(msgs[i:i + batch])
            events = watch.observe(out.readings, out.statuses)
            events += watch.tick(max((r.ts for r in out.readings), default=datetime.fromtimestamp(START, timezone.utc)))
            write_batch(conn, out)
            with conn.transaction(), conn.cursor() as cur:
                insert_sensor_events(cur, events)


@pytest.mark.integration
def test_an_hour_of_gusts_becomes_corridor_events(fresh_db, zones_geojson):
    schema.migrate(fresh_db)
    _, sensors = make_fleet(zones_geojson, 0, 10, seed=17)  # W-C1 and one of each other kind
    with psycopg.connect(fresh_db) as conn:
        catalog.register_devices(conn, [r.as_row() for r in fleet_records([], sensors)])
        registry = sensor_infos(catalog.registry(conn))
    msgs = _messages([s for s in sensors if s.sensor_id in ("W-C1", "aq-wj-01", "mh-wj-01")], 3600)
    zones = ZoneSet.from_geojson(zones_geojson)
    _run(fresh_db, Pipeline(zones, ROOT), SensorWatch(registry, load_rules()), msgs)

    assert query(fresh_db, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert query(fresh_db, "SELECT value FROM sensor_readings WHERE sensor_id = 'W-C1' AND metric = 'heater_on'") \
        == [(1.0,)]
    with psycopg.connect(fresh_db) as conn:
        gusts = list(reversed(list_sensor_events(conn, sensor_id="W-C1", limit=1000)))
    kinds = [e["kind"] for e in gusts if e["rule_id"] == "wind-gust-limit"]
    assert kinds and kinds[0] == "sensor_threshold"
    assert all(a != b for a, b in zip(kinds, kinds[1:]))  # raised and cleared in turn
    raised = [e for e in gusts if e["kind"] == "sensor_threshold"]
    assert all(e["value"] > 12.0 and e["detail"]["corridor_id"] == "C1" for e in raised)
    assert not [e for e in gusts if e["kind"] == "sensor_silent"]  # it reported every 10 s
    assert [e["kind"] for e in gusts if e["kind"].startswith("sensor_o")] == ["sensor_online", "sensor_offline"]

    # the same messages again (a re-delivery or a replay): nothing new is stored
    before = query(fresh_db, "SELECT count(*) FROM sensor_events")[0][0]
    _run(fresh_db, Pipeline(zones, ROOT), SensorWatch(registry, load_rules()), msgs, batch=333)
    assert query(fresh_db, "SELECT count(*) FROM sensor_events")[0][0] == before
    # an hour of silence from the mast, seen on event time
    watch = SensorWatch(registry, load_rules())
    watch.observe(Pipeline(zones, ROOT).process(msgs).readings)
    last = max(m.received_at for m in msgs)
    silent = [e for e in watch.tick(last + timedelta(hours=1)) if e.sensor_id == "W-C1"]
    assert [e.kind for e in silent] == ["sensor_silent"]
    assert silent[0].detail["corridor_id"] == "C1" and orjson.dumps(silent[0].to_dict())
