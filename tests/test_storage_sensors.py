"""Migration 0004 on a real PostgreSQL, either engine: the registry's new fields, sensor events, rollups and
retention (continuous aggregates and policies on TimescaleDB, their stand-ins on plain PostgreSQL)."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from devices.fleet import make_fleet
from devices.registry import fleet_records
from ingest.sensor_watch import SensorEvent, sensor_event_id
from storage import catalog, schema
from storage.rollups import run_maintenance
from storage.sensor_events import list_sensor_events, sensor_state, write_sensor_events

from .helpers import query
from .storage_support import engine, retention_jobs

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)


def _ts_sql(version: int = 4) -> str:
    return next(m.sql for m in schema.migrations() if m.version == version and m.timescale_only)


@pytest.fixture
def db(fresh_db) -> str:
    assert schema.migrate(fresh_db) in (schema.POSTGRES, schema.TIMESCALE)
    return fresh_db


@pytest.mark.integration
def test_registry_keeps_complete_fleet_records(db, zones_geojson):
    drones, sensors = make_fleet(zones_geojson, 3, 18, seed=4)
    records = fleet_records(drones, sensors)
    with psycopg.connect(db) as conn:
        assert catalog.register_devices(conn, [r.as_row() for r in records]) == 21
        catalog.register_devices(conn, [r.as_row() for r in records])  # upsert: idempotent
        rows = {r["device_id"]: r for r in catalog.registry(conn)}
        conn.execute("UPDATE devices SET status_at = %s, last_seen = %s WHERE device_id = 'W-C1'",
                     (T0 + timedelta(microseconds=1_234_567), T0))
        listed = {r["device_id"]: r for r in catalog.list_devices(conn, "sensor", 100)}
    # the API's times: protocol.times.rfc3339 (milliseconds), as everywhere else
    assert (listed["W-C1"]["status_at"], listed["W-C1"]["last_seen"]) == (
        "2026-05-01T08:00:01.234Z", "2026-05-01T08:00:00.000Z")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", listed["W-C1"]["first_seen"])
    assert len(rows) == 21 and len(listed) == 18
    mast = rows["W-C1"]
    assert (mast["sensor_kind"], mast["category"], mast["properties"]) == ("wind", "weather", {"corridor_id": "C1"})
    assert mast["metrics"] == ["wind_speed", "wind_gust", "wind_dir"] and mast["units"]["wind_gust"] == "m/s"
    assert mast["expected_interval_s"] == 10.0 and 121.4 < mast["lon"] < 121.6
    manhole = next(r for r in rows.values() if r["sensor_kind"] == "manhole")
    assert "cover_open" in manhole["metrics"] and "cover_open" not in manhole["units"]  # boolean: no unit
    assert {r["category"] for r in listed.values()} == {"traffic", "energy", "municipal", "environment", "weather"}


@pytest.mark.integration
def test_sensor_events_are_stored_once_and_seed_the_watch(db):
    def ev(kind, s, rule=None):
        ts = T0 + timedelta(seconds=s)
        return SensorEvent(sensor_event_id("W-C1", kind, rule, "wind_gust" if rule else None, ts), ts, kind, "W-C1",
                           rule, "wind_gust" if rule else None, 13.5 if rule else None, {"corridor_id": "C1"})
    events = [ev("sensor_threshold", 10, "wind-gust-limit"), ev("sensor_silent", 60)]
    with psycopg.connect(db) as conn:
        write_sensor_events(conn, events)
        write_sensor_events(conn, events)  # a re-delivered batch
        listed = list_sensor_events(conn, sensor_id="W-C1")
        assert [e["kind"] for e in listed] == ["sensor_silent", "sensor_threshold"]
        assert [e["ts"] for e in listed] == ["2026-05-01T08:01:00.000Z", "2026-05-01T08:00:10.000Z"]  # rfc3339
        assert listed[1]["detail"] == {"corridor_id": "C1"} and listed[1]["value"] == 13.5
        assert list_sensor_events(conn, kind="sensor_silent", start=T0 + timedelta(seconds=30))[0]["kind"] \
            == "sensor_silent"
        _, _, active = sensor_state(conn)
        assert active == {("wind-gust-limit", "W-C1")}
        write_sensor_events(conn, [ev("sensor_threshold_cleared", 40, "wind-gust-limit")])
        assert sensor_state(conn)[2] == set()


def _insert_readings(conn, rows):
    with conn.cursor() as cur, cur.copy("COPY sensor_readings (ts, sensor_id, metric, value, received_at) "
                                        "FROM STDIN") as copy:
        for r in rows:
            copy.write_row((*r, r[0]))


@pytest.mark.integration
def test_rollups_match_the_raw_rows_and_pick_up_late_rows(db):
    rows = [(T0 + timedelta(seconds=s), sid, "pm2_5", float(v))
            for s, sid, v in [(0, "aq-1", 10), (30, "aq-1", 20), (59.9, "aq-1", 60), (60, "aq-1", 5),
                              (3600, "aq-1", 7), (10, "aq-2", 1)]]
    with psycopg.connect(db) as conn:
        _insert_readings(conn, rows)
        conn.execute("INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id) VALUES "
                     "(%s, %s, 'zone_enter', 'u1', 'C1'), (%s, %s, 'zone_enter', 'u2', 'C1'), "
                     "(%s, %s, 'zone_exit', 'u1', 'C1'), (%s, %s, 'zone_enter', 'u1', 'C2')",
                     (T0, uuid.uuid4(), T0 + timedelta(seconds=20), uuid.uuid4(), T0 + timedelta(seconds=30),
                      uuid.uuid4(), T0 + timedelta(minutes=61), uuid.uuid4()))
        conn.commit()
    r = run_maintenance(db, now=T0 + timedelta(hours=2), window=timedelta(hours=3), retention=False)
    assert r.storage == engine(db) and (r.rollup_rows > 0 or r.storage == schema.TIMESCALE)
    m1 = {(b, s): (avg, mn, mx, n) for b, s, avg, mn, mx, n in query(
        db, "SELECT bucket, sensor_id, avg, min, max, n FROM sensor_readings_1m WHERE metric = 'pm2_5'")}
    assert m1[(T0, "aq-1")] == (30.0, 10.0, 60.0, 3)
    assert m1[(T0 + timedelta(minutes=1), "aq-1")] == (5.0, 5.0, 5.0, 1)
    assert m1[(T0, "aq-2")] == (1.0, 1.0, 1.0, 1) and len(m1) == 4
    h1 = dict(query(db, "SELECT bucket, n FROM sensor_readings_1h WHERE sensor_id = 'aq-1'"))
    assert h1 == {T0: 4, T0 + timedelta(hours=1): 1}
    assert sorted(query(db, "SELECT bucket, zone_id, entries FROM zone_traffic_1h")) == [
        (T0, "C1", 2), (T0 + timedelta(hours=1), "C2", 1)]
    assert sorted(query(db, "SELECT bucket, zone_id, entries FROM zone_traffic_1m")) == [
        (T0, "C1", 2), (T0 + timedelta(minutes=61), "C2", 1)]
    with psycopg.connect(db) as conn:  # a late reading, then the same refresh again: counted once
        _insert_readings(conn, [(T0 + timedelta(seconds=45), "aq-1", "pm2_5", 30.0)])
    run_maintenance(db, now=T0 + timedelta(hours=2), window=timedelta(hours=3), retention=False)
    run_maintenance(db, now=T0 + timedelta(hours=2), window=timedelta(hours=3), retention=False)
    assert query(db, "SELECT avg, n FROM sensor_readings_1m WHERE sensor_id = 'aq-1' AND bucket = %s", T0) == [
        (30.0, 4)]


@pytest.mark.integration
def test_retention_deletes_by_time_range(db):
    """Plain PostgreSQL: `skylane maintenance` deletes by time range; TimescaleDB: the same figures are
    retention policies (they drop chunks on their own schedule, from the real clock)."""
    keep = dict(query(db, "SELECT table_name, keep FROM retention_policies"))
    assert keep["uav_telemetry"] == timedelta(days=90) and keep["sensor_readings"] == timedelta(days=400)
    if engine(db) == schema.TIMESCALE:
        with psycopg.connect(db) as conn:
            jobs = retention_jobs(conn)
        assert jobs == {t: f"{k.days} days" for t, k in keep.items()}
        return
    now = T0 + timedelta(days=500)
    with psycopg.connect(db) as conn:
        _insert_readings(conn, [(T0, "old", "x", 1.0), (now - timedelta(days=1), "new", "x", 2.0)])
        conn.execute("INSERT INTO uav_telemetry (ts, uav_id, lon, lat, alt_m, alt_ref, received_at) VALUES "
                     "(%s, 'u-old', 121.5, 31.05, 50, 'AGL', %s), (%s, 'u-new', 121.5, 31.05, 50, 'AGL', %s)",
                     (now - timedelta(days=91), now, now - timedelta(days=89), now))
        conn.commit()
    run_maintenance(db, now=now, window=timedelta(minutes=5), retention=False)  # rollups of both readings
    assert query(db, "SELECT count(*) FROM sensor_readings_1m") == [(2,)]
    r = run_maintenance(db, now=now, window=timedelta(minutes=5))
    assert r.deleted_rows == 3  # two raw rows and the old reading's minute rollup (90 days)
    assert query(db, "SELECT sensor_id FROM sensor_readings") == [("new",)]
    assert query(db, "SELECT uav_id FROM uav_telemetry") == [("u-new",)]
    assert query(db, "SELECT sensor_id FROM sensor_readings_1m") == [("new",)]
    assert query(db, "SELECT count(*) FROM sensor_readings_1h") == [(2,)]  # hourly rollups are kept


def test_timescale_0004_is_complete():
    sql = _ts_sql()
    for needle in ("set_chunk_time_interval('uav_telemetry', INTERVAL '1 hour')",
                   "create_hypertable('sensor_events', 'ts'", "timescaledb.compress_segmentby = 'uav_id'",
                   "add_compression_policy('uav_telemetry'", "add_compression_policy('sensor_readings'"):
        assert needle in sql, needle
    for view in ("sensor_readings_1m", "zone_traffic_1m", "zone_traffic_1h"):
        create = re.search(rf"CREATE MATERIALIZED VIEW IF NOT EXISTS {view}\s+WITH \(timescaledb\.continuous"
                           rf"[^;]*WITH NO DATA;", sql)
        assert create, view  # NO DATA: valid inside the migration's transaction
        assert f"add_continuous_aggregate_policy('{view}'" in sql
        assert "DISTINCT" not in create.group(0)
    code = re.sub(r"--[^\n]*", "", sql)
    assert "WITH DATA" not in code.replace("WITH NO DATA", "")
    plain = next(m.sql for m in schema.migrations() if m.version == 4 and not m.timescale_only)
    assert "timescaledb." not in re.sub(r"--[^\n]*", "", plain)  # the plain file stays plain
    # retention: one mechanism for every table, from retention_policies (test_storage_retention.py)
    assert "skylane_add_retention_policies()" in _ts_sql(6) and "add_retention_policy" not in code


@pytest.mark.integration
def test_maintenance_command_backfills_and_reports(db):
    import json
    import os
    import subprocess
    import sys
    with psycopg.connect(db) as conn:
        _insert_readings(conn, [(T0 + timedelta(seconds=5), "nz-1", "noise_laeq", 61.0)])
    env = dict(os.environ, SKYLANE_DATABASE_URL=db)
    r = subprocess.run([sys.executable, "-m", "skylane", "maintenance", "--since", "2026-05-01T07:00:00Z",
                        "--no-retention"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["storage"] == engine(db) and report["deleted_rows"] == 0
    assert report["rollup_rows"] >= 2 or report["storage"] == schema.TIMESCALE  # TimescaleDB counts no rows
    assert query(db, "SELECT avg, n FROM sensor_readings_1m WHERE sensor_id = 'nz-1'") == [(61.0, 1)]
    r = subprocess.run([sys.executable, "-m", "skylane", "maintenance", "--since", "yesterday"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "RFC 3339" in r.stderr
