"""Rollups on both engines (issue 12, TimescaleDB findings 3-4): refresh windows are whole buckets, so a short
maintenance window works (TimescaleDB refused it: "refresh window too small"), and all four rollups are
real-time: buckets not materialized yet come from the raw rows at query time, on TimescaleDB
(materialized_only = false, sensor_readings_1h included) and on plain PostgreSQL (views over <name>_mat)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from storage import rollups, schema
from storage.rollups import run_maintenance

from .helpers import query
from .storage_support import engine

pytestmark = pytest.mark.integration
WIDTHS = {"sensor_readings_1m": timedelta(minutes=1), "sensor_readings_1h": timedelta(hours=1),
          "zone_traffic_1m": timedelta(minutes=1), "zone_traffic_1h": timedelta(hours=1)}


@pytest.fixture
def db(fresh_db) -> str:
    schema.migrate(fresh_db)
    return fresh_db


def _whole(t: datetime, width: timedelta) -> bool:
    return t.timestamp() % width.total_seconds() == 0


@pytest.mark.parametrize("start_m, end_m", [(-30, 0), (-5, 0), (-130, -7), (-61, -59), (0, 0.5)])
def test_refresh_windows_are_whole_buckets_and_never_empty(db, start_m, end_m):
    end = datetime(2026, 5, 1, 10, 20, 13, tzinfo=timezone.utc)
    start, end = end + timedelta(minutes=start_m), end + timedelta(minutes=end_m)
    with psycopg.connect(db) as conn:
        windows = rollups.refresh_windows(conn, start, end)
    assert {w[0] for w in windows} == set(WIDTHS)
    for view, lo, hi in windows:
        width = WIDTHS[view]
        assert _whole(lo, width) and _whole(hi, width) and lo < hi <= end, (view, lo, hi)
        assert hi > end - width  # up to the last complete bucket: the one still filling stays real-time
        assert lo <= max(start, hi - width)


class _Recorder:
    """A connection that answers the window query and records the refresh calls instead of running them."""

    autocommit = True

    def __init__(self, conn):
        self.conn, self.calls = conn, []

    def execute(self, sql, params=None):
        if sql.startswith("CALL refresh_continuous_aggregate"):
            self.calls.append(params)
            return None
        return self.conn.execute(sql, params)


def test_timescale_refresh_calls_get_whole_buckets(db, monkeypatch):
    """What `skylane maintenance --window-min 30` passes to refresh_continuous_aggregate: before, the raw
    [now - 30 min, now), which TimescaleDB refuses for the hourly aggregates."""
    monkeypatch.setattr(rollups, "_timescale", lambda conn: True)
    now = datetime(2026, 5, 1, 10, 20, 13, tzinfo=timezone.utc)
    with psycopg.connect(db, autocommit=True) as conn:
        rec = _Recorder(conn)
        assert rollups.refresh_rollups(rec, now - timedelta(minutes=30), now) == 0
    assert sorted(c[0] for c in rec.calls) == sorted(WIDTHS)
    for view, lo, hi in rec.calls:
        assert _whole(lo, WIDTHS[view]) and _whole(hi, WIDTHS[view]) and lo < hi, (view, lo, hi)
    hourly = {c[0]: c[1:] for c in rec.calls}["sensor_readings_1h"]
    assert hourly == (datetime(2026, 5, 1, 9, tzinfo=timezone.utc), datetime(2026, 5, 1, 10, tzinfo=timezone.utc))


def _reading(conn, ts, value, sensor="AQ-9"):
    conn.execute("INSERT INTO sensor_readings (ts, sensor_id, metric, value, received_at) VALUES (%s, %s, 'pm2_5', %s, %s)",
                 (ts, sensor, value, ts))


def test_short_maintenance_windows_run_on_either_engine(db):
    now = datetime.now(timezone.utc)
    for minutes in (30, 5, 0.5):
        r = run_maintenance(db, now=now, window=timedelta(minutes=minutes), retention=False)
        assert r.storage in (schema.POSTGRES, schema.TIMESCALE)


def test_rollups_are_real_time_on_either_engine(db):
    """The newest buckets show at once, before and after maintenance, and a late row inside the bucket still
    filling is counted without another refresh; materialized buckets keep their values."""
    now = datetime.now(timezone.utc)
    hour = now.replace(minute=0, second=0, microsecond=0)
    minute = now.replace(second=0, microsecond=0)
    with psycopg.connect(db) as conn:
        _reading(conn, hour - timedelta(minutes=30), 4.0)  # the previous hour
        _reading(conn, minute, 10.0)
        conn.execute("INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id) VALUES (%s, %s, 'zone_enter', 'U', 'C1')",
                     (minute, uuid.uuid4()))

    def hourly():
        return dict(query(db, "SELECT bucket, n FROM sensor_readings_1h WHERE sensor_id = 'AQ-9'"))

    assert hourly() == {hour - timedelta(hours=1): 1, hour: 1}  # never refreshed: all real-time
    assert query(db, "SELECT entries FROM zone_traffic_1h WHERE bucket = %s", hour) == [(1,)]
    run_maintenance(db, now=now, window=timedelta(hours=2), retention=False)
    assert hourly() == {hour - timedelta(hours=1): 1, hour: 1}
    with psycopg.connect(db) as conn:
        _reading(conn, minute + timedelta(seconds=1), 20.0)
    assert hourly()[hour] == 2  # no refresh needed: the hour still filling is aggregated at query time
    assert query(db, "SELECT avg, n FROM sensor_readings_1m WHERE sensor_id = 'AQ-9' AND bucket = %s", minute) == [
        (15.0, 2)]
    assert query(db, "SELECT entries FROM zone_traffic_1m WHERE bucket = %s", minute) == [(1,)]


def test_maintenance_after_a_pause_leaves_no_hole(db):
    """Plain PostgreSQL refreshes from its watermark when that is older than the window, so a pause of
    `skylane maintenance` leaves no hole. (TimescaleDB's refresh policies cover their own trailing windows;
    there the command refreshes just the window asked for.)"""
    if engine(db) == schema.TIMESCALE:
        pytest.skip("plain PostgreSQL's catch-up; TimescaleDB's policies refresh on their own")
    t0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)
    with psycopg.connect(db) as conn:
        for h in range(6):
            _reading(conn, t0 + timedelta(hours=h, minutes=5), float(h))
    run_maintenance(db, now=t0 + timedelta(hours=1, minutes=30), window=timedelta(hours=1), retention=False)
    run_maintenance(db, now=t0 + timedelta(hours=6, minutes=30), window=timedelta(minutes=30), retention=False)
    got = dict(query(db, "SELECT bucket, avg FROM sensor_readings_1h WHERE sensor_id = 'AQ-9'"))
    assert got == {t0 + timedelta(hours=h): float(h) for h in range(6)}
