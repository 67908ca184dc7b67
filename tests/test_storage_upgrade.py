"""TimescaleDB detection and the plain PostgreSQL -> TimescaleDB upgrade (issue 12, TimescaleDB findings 1-2).

Detection must never end the session (CREATE EXTENSION of an installed but not preloaded TimescaleDB is a
FATAL error) and must say what to change; schema_migrations records per version which parts ran, so a
database that ran on plain PostgreSQL runs the TimescaleDB parts it missed once TimescaleDB is there, and
its tables and rollups keep their rows. The last test needs a server with TimescaleDB preloaded.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from storage import schema
from storage.rollups import run_maintenance

from .helpers import query
from .storage_support import engine, hypertables, require_timescale, retention_jobs

pytestmark = pytest.mark.integration


def _parts(url: str) -> dict[int, list[str]]:
    return dict(query(url, "SELECT version, parts FROM schema_migrations"))


def _expected_parts(timescale: bool) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for m in schema.migrations():
        if not m.timescale_only or timescale:
            out.setdefault(m.version, []).append("timescale" if m.timescale_only else "plain")
    return out


def test_plain_postgres_records_which_parts_ran(fresh_db):
    """On plain PostgreSQL (forced here, so it runs on either server) only plain parts run, and the records say
    so: a TimescaleDB-only version is absent, a paired one has only its plain part."""
    assert schema.migrate(fresh_db, timescale=False) == schema.POSTGRES
    parts = _parts(fresh_db)
    assert parts == _expected_parts(False)
    assert 2 not in parts and parts[3] == parts[4] == ["plain"]


def _state(enabled, available, preloaded):
    return lambda conn: schema.TimescaleState(enabled, available, preloaded)


def test_installed_but_not_preloaded_falls_back_and_says_what_to_change(fresh_db, monkeypatch, caplog):
    """The finding: CREATE EXTENSION ended the session, every command exited 1. Now the state is read first
    (pg_available_extensions, the loader's setting) and the extension is not even tried."""
    caplog.set_level(logging.WARNING, "skylane.storage")
    monkeypatch.setattr(schema, "timescale_state", _state(False, True, False))
    monkeypatch.setattr(schema, "ENABLE_TIMESCALE", "SELECT 1/0")  # would fail if it were tried
    assert schema.migrate(fresh_db) == schema.POSTGRES
    assert "shared_preload_libraries = 'timescaledb'" in caplog.text and "restart" in caplog.text
    assert query(fresh_db, "SELECT count(*) FROM uav_telemetry") == [(0,)]
    with pytest.raises(schema.StorageError, match="shared_preload_libraries"):
        schema.migrate(fresh_db, timescale=True)


def test_a_session_ended_by_create_extension_is_reopened(fresh_db, monkeypatch, caplog):
    """Even when the checks pass and CREATE EXTENSION still ends the session (FATAL), migrate reconnects and
    runs on plain PostgreSQL instead of failing on the closed connection."""
    caplog.set_level(logging.WARNING, "skylane.storage")
    monkeypatch.setattr(schema, "timescale_state", _state(False, True, True))
    monkeypatch.setattr(schema, "ENABLE_TIMESCALE", "SELECT pg_terminate_backend(pg_backend_pid())")
    assert schema.migrate(fresh_db) == schema.POSTGRES
    assert "ended the session" in caplog.text and "shared_preload_libraries" in caplog.text
    assert _parts(fresh_db) == _expected_parts(False)


def test_a_timescale_database_without_preload_is_refused_with_the_steps(fresh_db, monkeypatch):
    monkeypatch.setattr(schema, "timescale_state", _state(True, True, False))
    with pytest.raises(schema.StorageError, match="shared_preload_libraries = 'timescaledb'.*restart"):
        schema.migrate(fresh_db)


def test_records_from_before_parts_are_converted(fresh_db):
    """schema_migrations of the previous format: one row per version for whatever ran. A TimescaleDB part
    counts as done only when a TimescaleDB-only version was recorded no later than its version: the broken
    database of the finding (plain 1, 3, 4, 5, then TimescaleDB: only 2) gets 3's and 4's TimescaleDB parts
    pending again; a database that had TimescaleDB from the start has everything done."""
    def legacy(db, rows):
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("CREATE TABLE schema_migrations (version int PRIMARY KEY, description text NOT NULL, "
                         "applied_at timestamptz NOT NULL DEFAULT now())")
            for version, at in rows:
                conn.execute("INSERT INTO schema_migrations VALUES (%s, 'x', %s)", (version, at))
            return schema._bookkeeping(conn, schema.migrations())

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA broken; CREATE SCHEMA fromstart; CREATE SCHEMA plain")
    base = fresh_db + ("&" if "?" in fresh_db else "?") + "options=-csearch_path%3D"
    broken = legacy(base + "broken", [(1, t0), (3, t0), (4, t0), (5, t0), (2, t0 + timedelta(days=9))])
    assert broken == {1: {"plain"}, 2: {"timescale"}, 3: {"plain"}, 4: {"plain"}, 5: {"plain"}}
    start = legacy(base + "fromstart", [(v, t0 + timedelta(seconds=v)) for v in (1, 2, 3, 4, 5)])
    assert start == {1: {"plain"}, 2: {"timescale"}, 3: {"plain", "timescale"}, 4: {"plain", "timescale"},
                     5: {"plain"}}
    plain = legacy(base + "plain", [(v, t0) for v in (1, 3, 4, 5)])
    assert plain == {1: {"plain"}, 3: {"plain"}, 4: {"plain"}, 5: {"plain"}}


T0 = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)


def _fill(db: str) -> None:
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO uav_telemetry (ts, uav_id, seq, lon, lat, alt_m, alt_ref, received_at) "
                     "SELECT %s + make_interval(secs => i), 'U1', i, 121.5, 31.05, 50, 'AGL', %s "
                     "FROM generate_series(1, 500) i", (T0, T0))
        conn.execute("INSERT INTO sensor_readings (ts, sensor_id, metric, value, received_at) "
                     "SELECT %s + make_interval(mins => i), 'AQ-1', 'pm2_5', i, %s "
                     "FROM generate_series(0, 299) i", (T0 - timedelta(days=100), T0))  # old: their raw rows go
        conn.execute("INSERT INTO sensor_readings (ts, sensor_id, metric, value, received_at) "
                     "SELECT %s + make_interval(mins => i), 'AQ-1', 'pm2_5', i, %s "
                     "FROM generate_series(0, 179) i", (T0, T0))
        conn.execute("INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id) VALUES "
                     "(%s, %s, 'zone_enter', 'U1', 'C1'), (%s, %s, 'zone_enter', 'U2', 'C1')",
                     (T0, uuid.uuid4(), T0 + timedelta(minutes=90), uuid.uuid4()))
        conn.execute("INSERT INTO dead_letters (received_at, topic, payload, reason) VALUES "
                     "(%s, 'skylane/v1/uav/X/telemetry', '\\x00', 'malformed JSON')", (T0,))
        conn.execute("INSERT INTO sensor_events (ts, id, kind, sensor_id) VALUES (%s, %s, 'sensor_silent', 'AQ-1')",
                     (T0, uuid.uuid4()))
        conn.execute("UPDATE retention_policies SET keep = INTERVAL '365 days' WHERE table_name = 'uav_telemetry'")


def test_a_plain_database_that_gets_timescaledb_is_converted_with_its_data(fresh_db):
    """The finding: a plain database that later gets TimescaleDB failed at every start. Now: the TimescaleDB
    parts it missed run, tables become hypertables with their rows, the plain rollups become continuous
    aggregates with their buckets (those whose raw rows retention removed are kept from the plain rollup),
    an operator's retention figure becomes the policy, and every job runs."""
    require_timescale(fresh_db)
    assert schema.migrate(fresh_db, timescale=False) == schema.POSTGRES
    _fill(fresh_db)
    run_maintenance(fresh_db, now=T0 + timedelta(days=1), start=T0 - timedelta(days=101), retention=False)
    with psycopg.connect(fresh_db) as conn:  # retention on plain PostgreSQL removed the old raw readings
        conn.execute("DELETE FROM sensor_readings WHERE ts < %s", (T0 - timedelta(days=50),))
    rollups = ("sensor_readings_1m", "sensor_readings_1h", "zone_traffic_1m", "zone_traffic_1h")
    before = {v: sorted(query(fresh_db, f"SELECT * FROM {v}")) for v in rollups}
    counts = {t: query(fresh_db, f"SELECT count(*) FROM {t}")[0][0]
              for t in ("uav_telemetry", "sensor_readings", "airspace_events", "dead_letters", "sensor_events")}
    assert len(before["sensor_readings_1h"]) == 5 + 3 and len(before["zone_traffic_1m"]) == 2

    assert schema.migrate(fresh_db) == schema.TIMESCALE
    assert schema.migrate(fresh_db) == schema.TIMESCALE  # and again: nothing left to do
    assert _parts(fresh_db) == _expected_parts(True)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert {"uav_telemetry", "sensor_readings", "airspace_events", "sensor_events", "dead_letters",
                "dead_letter_daily"} <= hypertables(conn)
        caggs = {r[0] for r in conn.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates "
                                            "WHERE NOT materialized_only")}
        assert caggs == set(rollups)
        assert not conn.execute("SELECT 1 FROM pg_tables WHERE tablename LIKE '%\\_mat'").fetchall()
        for table, n in counts.items():
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == n, table
        for view in rollups:
            assert sorted(conn.execute(f"SELECT * FROM {view}").fetchall()) == before[view], view
        assert retention_jobs(conn)["uav_telemetry"] == "365 days"
        for (job,) in conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE job_id >= 1000").fetchall():
            conn.execute("CALL run_job(%s)", (job,))
    assert engine(fresh_db) == schema.TIMESCALE
