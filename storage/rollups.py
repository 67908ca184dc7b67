"""Rollups and retention: TimescaleDB runs them as background policies; plain PostgreSQL needs this.

The rollups (sensor_readings_1m/_1h, zone_traffic_1m/_1h) are real-time on both storages: materialized
whole buckets up to a watermark, newer buckets aggregated from the raw rows at query time. On TimescaleDB
they are continuous aggregates (materialized_only = false); on plain PostgreSQL views over <name>_mat
tables that the SQL function skylane_refresh_rollups(start, end) recomputes (0006_storage_limits.sql), and
retention is skylane_apply_retention(now) (time-range deletes per the retention_policies table).
`skylane maintenance` calls run_maintenance() on a schedule; each run refreshes a trailing window (late
rows inside it are picked up) and applies retention. On TimescaleDB the same call only refreshes the
continuous aggregates over the window on request (the policies do it anyway); it never deletes.

Windows are whole buckets on both (skylane_bucket_window): both ends aligned down to the bucket, and a window
shorter than a bucket refreshes the last complete one (TimescaleDB refuses a window without a whole bucket,
"refresh window too small"); the bucket still filling is never materialized, it stays real-time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg

log = logging.getLogger("skylane.storage")

DEFAULT_WINDOW = timedelta(hours=2)


@dataclass(frozen=True)
class MaintenanceResult:
    storage: str
    start: datetime
    end: datetime
    rollup_rows: int
    deleted_rows: int


def _timescale(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None


def refresh_windows(conn: psycopg.Connection, start: datetime, end: datetime) -> list[tuple[str, datetime, datetime]]:
    """(rollup, lo, hi) per rollup: the whole buckets of [start, end) that a refresh recomputes."""
    return conn.execute("SELECT r.view_name, lower(w), upper(w) FROM skylane_rollups() r, "
                        "skylane_bucket_window(%s, %s, r.width) w", (start, end)).fetchall()


def refresh_rollups(conn: psycopg.Connection, start: datetime, end: datetime) -> int:
    """Recompute the rollups' whole buckets in [start, end); returns rows written (plain PostgreSQL) or 0.
    On TimescaleDB: refresh_continuous_aggregate, which must run outside a transaction (autocommit)."""
    if _timescale(conn):
        if not conn.autocommit:
            raise ValueError("refreshing continuous aggregates needs an autocommit connection")
        for view, lo, hi in refresh_windows(conn, start, end):
            conn.execute("CALL refresh_continuous_aggregate(%s::regclass, %s::timestamptz, %s::timestamptz)",
                         (view, lo, hi))
        return 0
    with conn.transaction():
        return conn.execute("SELECT skylane_refresh_rollups(%s, %s)", (start, end)).fetchone()[0]


def apply_retention(conn: psycopg.Connection, now: datetime) -> int:
    """Delete rows older than each retention_policies window (plain PostgreSQL); TimescaleDB drops chunks
    by its own policies, so nothing is done there."""
    if _timescale(conn):
        return 0
    with conn.transaction():
        return conn.execute("SELECT skylane_apply_retention(%s)", (now,)).fetchone()[0]


def run_maintenance(database_url: str, now: datetime | None = None, window: timedelta = DEFAULT_WINDOW,
                    start: datetime | None = None, retention: bool = True) -> MaintenanceResult:
    """One maintenance pass: refresh [start or now - window, now), then apply retention."""
    now = now or datetime.now(timezone.utc)
    begin = start or now - window
    with psycopg.connect(database_url, autocommit=True) as conn:
        ts = _timescale(conn)
        rows = refresh_rollups(conn, begin, now)
        deleted = apply_retention(conn, now) if retention else 0
    log.info("maintenance: rollups %s..%s (%d rows), retention deleted %d rows", begin.isoformat(),
             now.isoformat(), rows, deleted)
    return MaintenanceResult("timescaledb" if ts else "postgresql", begin, now, rows, deleted)
