-- Surveillance observations (ADS-B, Remote ID, ...: ingest.rows.ObservationRow, docs/surveillance.md): one row per
-- sighting of an aircraft by a source, written by ingest from {root}/obs/{source}/{track_id} and the Remote ID
-- dialect, with the same COPY-then-dedupe path as telemetry (storage/writes.py).
-- Idempotent: the key (source, track_id, ts, receiver_id) refuses a re-delivered sighting; receiver_id is ''
-- when the source names no receiver (NULLs would be distinct and let copies in). The key includes ts, the
-- hypertable's time column on TimescaleDB (0009_observations.timescale.sql), and serves a track's history
-- (source = ? AND track_id = ? ORDER BY ts DESC).
CREATE TABLE IF NOT EXISTS observations (
    ts           timestamptz      NOT NULL,
    source       text             NOT NULL,
    track_id     text             NOT NULL,
    lon          double precision NOT NULL,
    lat          double precision NOT NULL,
    alt_m        real,
    alt_ref      text,
    alt_source   text,
    speed_mps    real,
    track_deg    real,
    vspeed_mps   real,
    receiver_id  text             NOT NULL DEFAULT '',
    rssi         real,
    identity     jsonb            NOT NULL DEFAULT '{}',
    received_at  timestamptz      NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS observations_key ON observations (source, track_id, ts, receiver_id);
CREATE INDEX IF NOT EXISTS observations_ts ON observations (ts DESC);

-- ADS-B alone is hundreds of rows a second per receiver: kept 30 days (plain PostgreSQL: skylane maintenance
-- deletes by time range from this table; TimescaleDB: the retention policy of the .timescale part).
INSERT INTO retention_policies (table_name, time_column, keep) VALUES ('observations', 'ts', INTERVAL '30 days')
ON CONFLICT (table_name) DO NOTHING;

-- Grafana's read-only role (0006) may read the air picture too
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'skylane_reader') THEN
        GRANT SELECT ON observations TO skylane_reader;
    END IF;
END $$;
