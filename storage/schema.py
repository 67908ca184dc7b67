"""Idempotent migrations, applied at start; TimescaleDB features when the extension is there.

TimescaleDB (production, compose.yaml) gets hypertables, compression, retention and a continuous
aggregate; a plain PostgreSQL (Debian's, on the developers' machines) gets the same tables and indexes
without them. Which one was found is returned and logged, and reported by the API's /v1/health.
"""
from __future__ import annotations

import logging

import psycopg

log = logging.getLogger("skylane.storage")

TIMESCALE = "timescaledb"
POSTGRES = "postgresql"

TABLES = """
CREATE TABLE IF NOT EXISTS uav_telemetry (
    ts            timestamptz      NOT NULL,
    uav_id        text             NOT NULL,
    seq           bigint,
    lon           double precision NOT NULL,
    lat           double precision NOT NULL,
    alt_m         real             NOT NULL,
    alt_ref       text             NOT NULL,
    speed_mps     real,
    track_deg     real,
    vspeed_mps    real,
    battery_pct   real,
    status        text,
    clearance_id  text,
    received_at   timestamptz      NOT NULL
);
CREATE INDEX IF NOT EXISTS uav_telemetry_uav_ts ON uav_telemetry (uav_id, ts DESC);

CREATE TABLE IF NOT EXISTS sensor_readings (
    ts           timestamptz      NOT NULL,
    sensor_id    text             NOT NULL,
    metric       text             NOT NULL,
    value        double precision,
    vtext        text,
    unit         text,
    received_at  timestamptz      NOT NULL
);
CREATE INDEX IF NOT EXISTS sensor_readings_sensor_metric_ts ON sensor_readings (sensor_id, metric, ts DESC);

CREATE TABLE IF NOT EXISTS airspace_events (
    ts          timestamptz NOT NULL,
    id          uuid        NOT NULL,
    kind        text        NOT NULL,
    uav_id      text        NOT NULL,
    zone_id     text,
    detail      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, ts)
);
CREATE INDEX IF NOT EXISTS airspace_events_ts ON airspace_events (ts DESC);
CREATE INDEX IF NOT EXISTS airspace_events_uav_ts ON airspace_events (uav_id, ts DESC);
CREATE INDEX IF NOT EXISTS airspace_events_kind_ts ON airspace_events (kind, ts DESC);

CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigserial   PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    topic        text        NOT NULL,
    payload      bytea       NOT NULL,
    reason       text        NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_at DESC);

CREATE TABLE IF NOT EXISTS devices (
    device_id            text PRIMARY KEY,
    kind                 text NOT NULL,
    name                 text,
    owner                text,
    sensor_kind          text,
    lon                  double precision,
    lat                  double precision,
    units                jsonb NOT NULL DEFAULT '{}',
    expected_interval_s  real,
    online               boolean,
    status_at            timestamptz,
    first_seen           timestamptz NOT NULL DEFAULT now(),
    last_seen            timestamptz,
    properties           jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE IF NOT EXISTS zones (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL,
    lower_m     real NOT NULL,
    upper_m     real NOT NULL,
    alt_ref     text NOT NULL,
    geometry    jsonb NOT NULL,
    properties  jsonb NOT NULL DEFAULT '{}',
    active      boolean NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS clearances (
    id          uuid PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    uav_id      text,
    decision    text NOT NULL,
    alt_ref     text NOT NULL,
    route       jsonb NOT NULL,
    reasons     jsonb NOT NULL DEFAULT '[]'
);
"""

# TimescaleDB 2.x; create_hypertable's classic signature works across all of 2.x.
TIMESCALE_SQL = """
SELECT create_hypertable('uav_telemetry', 'ts', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('sensor_readings', 'ts', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('airspace_events', 'ts', chunk_time_interval => INTERVAL '7 days',
                         if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE uav_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'uav_id',
                               timescaledb.compress_orderby = 'ts DESC');
ALTER TABLE sensor_readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'sensor_id, metric',
                                 timescaledb.compress_orderby = 'ts DESC');
SELECT add_compression_policy('uav_telemetry', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_compression_policy('sensor_readings', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('uav_telemetry', INTERVAL '180 days', if_not_exists => TRUE);
SELECT add_retention_policy('sensor_readings', INTERVAL '400 days', if_not_exists => TRUE);
CREATE MATERIALIZED VIEW IF NOT EXISTS sensor_readings_1h
    WITH (timescaledb.continuous) AS
    SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket, sensor_id, metric,
           avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS n
    FROM sensor_readings
    GROUP BY bucket, sensor_id, metric
    WITH NO DATA;
SELECT add_continuous_aggregate_policy('sensor_readings_1h', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
"""

# (version, description, sql, timescale_only)
MIGRATIONS: list[tuple[int, str, str, bool]] = [
    (1, "base tables", TABLES, False),
    (2, "timescaledb hypertables, compression, retention, continuous aggregate", TIMESCALE_SQL, True),
]

_LOCK_KEY = 0x5C71A9E  # advisory lock: concurrent starters migrate one at a time


def detect_timescale(conn: psycopg.Connection) -> bool:
    """Enable TimescaleDB when the server offers it; False on a plain PostgreSQL."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        return True
    if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone():
        return False
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return True
    except psycopg.Error as exc:  # e.g. not in shared_preload_libraries
        log.warning("timescaledb is installed but could not be enabled (%s); using plain PostgreSQL", exc)
        return False


def migrate(database_url: str) -> str:
    """Apply pending migrations; return the storage kind ("timescaledb" or "postgresql")."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            has_ts = detect_timescale(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, "
                         "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, description, sql, ts_only in MIGRATIONS:
                if version in done or (ts_only and not has_ts):
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute("INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                                 (version, description))
                log.info("applied migration %d: %s", version, description)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    kind = TIMESCALE if has_ts else POSTGRES
    log.info("storage: %s", "TimescaleDB (hypertables, compression, retention, continuous aggregates)"
             if has_ts else "plain PostgreSQL (TimescaleDB extension not available: no hypertables)")
    return kind


def storage_kind(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return TIMESCALE if row else POSTGRES
