"""Retention (issue 11, section 4): migrations never shorten an existing retention, and dead letters have one.

A migration may only add a missing policy: an operator's figure (in retention_policies, or a TimescaleDB
policy made with add_retention_policy) survives re-running and upgrading migrations. Migration 0004 used
to turn telemetry's 180 days (0002) into 90 on upgrade by removing the policy and adding its own.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from storage import schema
from storage.rollups import run_maintenance

from .helpers import query
from .storage_support import engine, hypertables, require_timescale, retention_jobs

T0 = datetime(2026, 5, 1, 8, tzinfo=timezone.utc)


def _migrate_up_to(db: str, version: int, monkeypatch) -> str:
    """A database of an older release: the migrations up to `version` only."""
    with monkeypatch.context() as m:
        older = [mig for mig in schema.migrations() if mig.version <= version]
        m.setattr(schema, "migrations", lambda folder=schema.MIGRATIONS_DIR: older)
        return schema.migrate(db)


def _set_keep(db: str, kind: str, keep: dict[str, str]) -> None:
    """What an operator does: retention_policies on plain PostgreSQL; on TimescaleDB the policy itself."""
    with psycopg.connect(db, autocommit=True) as conn:
        for table, interval in keep.items():
            conn.execute("UPDATE retention_policies SET keep = %s::interval WHERE table_name = %s", (interval, table))
            if kind == schema.TIMESCALE:
                conn.execute("SELECT remove_retention_policy(%s, if_exists => TRUE)", (table,))
                conn.execute("SELECT add_retention_policy(%s, %s::interval)", (table, interval))


@pytest.mark.integration
def test_an_operators_retention_survives_upgrading_and_rerunning_migrations(fresh_db, monkeypatch):
    """An operator keeps telemetry a year and readings two; the release with 0006 comes, then its migration
    runs again (a start interrupted after it, re-run by hand): both figures stay, 0006's new ones are added,
    and a figure lengthened in retention_policies meanwhile lengthens the TimescaleDB policy too."""
    kind = _migrate_up_to(fresh_db, 5, monkeypatch)
    _set_keep(fresh_db, kind, {"uav_telemetry": "365 days", "sensor_readings": "730 days"})
    assert schema.migrate(fresh_db) == kind
    with psycopg.connect(fresh_db) as conn:
        conn.execute("UPDATE retention_policies SET keep = INTERVAL '60 days' WHERE table_name = 'dead_letters'")
        conn.execute("UPDATE schema_migrations SET parts = '{}' WHERE version = 6")
    assert schema.migrate(fresh_db) == kind
    keep = dict(query(fresh_db, "SELECT table_name, keep FROM retention_policies"))
    assert keep["uav_telemetry"] == timedelta(days=365) and keep["sensor_readings"] == timedelta(days=730)
    assert keep["dead_letters"] == timedelta(days=60) and keep["dead_letter_daily"] == timedelta(days=400)
    if kind == schema.TIMESCALE:  # the longer figure of retention_policies lengthened the policy
        with psycopg.connect(fresh_db) as conn:
            jobs = retention_jobs(conn)
        assert (jobs["uav_telemetry"], jobs["sensor_readings"], jobs["dead_letters"]) == (
            "365 days", "730 days", "60 days")


@pytest.mark.integration
def test_timescale_keeps_an_older_longer_policy_on_upgrade(fresh_db, monkeypatch):
    """The finding itself, on TimescaleDB: a database from before 0004 has 0002's 180 days for telemetry;
    0004 and later must leave them (and retention_policies then says 180 days too)."""
    require_timescale(fresh_db)
    _migrate_up_to(fresh_db, 3, monkeypatch)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("SELECT add_retention_policy('uav_telemetry', INTERVAL '180 days')")  # as 0002 did
    schema.migrate(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert retention_jobs(conn)["uav_telemetry"] == "180 days"
        conn.execute("UPDATE schema_migrations SET parts = array_remove(parts, 'timescale') WHERE version >= 4")
    schema.migrate(fresh_db)  # every TimescaleDB part from 0004 on again
    with psycopg.connect(fresh_db) as conn:
        assert retention_jobs(conn)["uav_telemetry"] == "180 days"
    assert query(fresh_db, "SELECT keep FROM retention_policies WHERE table_name = 'uav_telemetry'") == [
        (timedelta(days=180),)]


def _code(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def test_timescale_migrations_only_add_missing_retention_policies():
    """No TimescaleDB part removes a retention policy, and add_retention_policy is called in one place only,
    for tables without a policy, with the figure of retention_policies (the plain storage's table)."""
    ts = {m.version: _code(m.sql) for m in schema.migrations() if m.timescale_only}
    assert not [v for v, sql in ts.items() if "remove_retention_policy" in sql]
    calls = [v for v, sql in ts.items() if "add_retention_policy(" in sql.replace("skylane_add_retention_policies(", "")]
    assert calls == [6], (f"migrations {calls} call add_retention_policy: insert a retention_policies row in the "
                          "plain part and `SELECT skylane_add_retention_policies();` in the TimescaleDB part instead "
                          "(it takes an operator's figure, e.g. from before the database got TimescaleDB, and never "
                          "shortens a policy)")
    body = ts[6]
    assert re.search(r"IF job\.job_id IS NULL THEN\s+PERFORM add_retention_policy\(p\.table_name::regclass, "
                     r"p\.keep\)", body)
    assert "FROM retention_policies" in body and "config->>'drop_after'" in body
    assert re.search(r"ELSIF existing < p\.keep THEN[^;]*;\s*PERFORM alter_job", body)  # only ever longer
    plain = "\n".join(_code(m.sql) for m in schema.migrations() if not m.timescale_only)
    assert "ON CONFLICT (table_name) DO NOTHING" in plain and "UPDATE retention_policies" not in plain


@pytest.mark.integration
def test_every_retention_policy_row_is_a_policy_on_timescale(fresh_db):
    require_timescale(fresh_db)
    schema.migrate(fresh_db)
    keep = dict(query(fresh_db, "SELECT table_name, keep FROM retention_policies"))
    with psycopg.connect(fresh_db) as conn:
        jobs = retention_jobs(conn)
        assert {"dead_letters", "dead_letter_daily"} <= hypertables(conn)
    assert {t: str(k.days) + " days" for t, k in keep.items()} == jobs
    assert keep["uav_telemetry"] == timedelta(days=90) and keep["dead_letters"] == timedelta(days=30)


@pytest.mark.integration
def test_dead_letters_expire_after_30_days(fresh_db):
    kind = schema.migrate(fresh_db)
    now = T0 + timedelta(days=100)
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO dead_letters (received_at, topic, payload, reason) VALUES "
                     "(%s, 'a/uav/X/telemetry', '\\x00', 'old'), (%s, 'a/uav/X/telemetry', '\\x00', 'new')",
                     (now - timedelta(days=31), now - timedelta(days=29)))
        conn.execute("INSERT INTO dead_letter_daily (day, device, received) VALUES (%s, 'X', 1), (%s, 'X', 1)",
                     ((now - timedelta(days=401)).date(), (now - timedelta(days=29)).date()))
    keep = dict(query(fresh_db, "SELECT table_name, keep FROM retention_policies"))
    assert keep["dead_letters"] == timedelta(days=30) and keep["dead_letter_daily"] == timedelta(days=400)
    if engine(fresh_db) == schema.POSTGRES:
        assert kind == schema.POSTGRES
        r = run_maintenance(fresh_db, now=now, window=timedelta(minutes=5))
        assert r.deleted_rows == 2
        assert query(fresh_db, "SELECT reason FROM dead_letters") == [("new",)]
        assert query(fresh_db, "SELECT count(*) FROM dead_letter_daily") == [(1,)]
    else:  # the policies drop whole chunks, relative to the real clock
        with psycopg.connect(fresh_db) as conn:
            jobs = retention_jobs(conn)
        assert jobs["dead_letters"] == "30 days" and jobs["dead_letter_daily"] == "400 days"
