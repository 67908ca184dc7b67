-- Sensors: a complete registry, sensor events, and (on plain PostgreSQL) rollups and retention that
-- stand in for TimescaleDB's continuous aggregates and policies (0004_sensors.timescale.sql).
-- Runs everywhere; the blocks guarded by "no timescaledb" only where the extension is absent, because on
-- TimescaleDB the same names are continuous aggregates. See docs/storage.md.

-- Registry: the family of a sensor (traffic, energy, municipal, environment, weather) and what it reports.
ALTER TABLE devices ADD COLUMN IF NOT EXISTS category text;
ALTER TABLE devices ADD COLUMN IF NOT EXISTS metrics jsonb NOT NULL DEFAULT '[]';
CREATE INDEX IF NOT EXISTS devices_kind ON devices (kind, device_id);

-- Sensor events (threshold crossed/cleared, silent/resumed, online/offline). airspace_events needs a uav_id,
-- so sensors get their own table; ids are uuid5 of (sensor, kind, rule, metric, time): re-delivered or
-- replayed batches insert nothing twice (ON CONFLICT DO NOTHING).
CREATE TABLE IF NOT EXISTS sensor_events (
    ts          timestamptz NOT NULL,
    id          uuid        NOT NULL,
    kind        text        NOT NULL,
    sensor_id   text        NOT NULL,
    rule_id     text,
    metric      text,
    value       double precision,
    detail      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, ts)
);
CREATE INDEX IF NOT EXISTS sensor_events_ts ON sensor_events (ts DESC);
CREATE INDEX IF NOT EXISTS sensor_events_sensor_ts ON sensor_events (sensor_id, ts DESC);
CREATE INDEX IF NOT EXISTS sensor_events_kind_ts ON sensor_events (kind, ts DESC);

-- How long raw and rolled-up rows are kept. TimescaleDB: the retention policies are made from this table
-- (0006_storage_limits.timescale.sql); plain PostgreSQL: skylane_apply_retention() deletes by time range.
CREATE TABLE IF NOT EXISTS retention_policies (
    table_name  text PRIMARY KEY,
    time_column text     NOT NULL,
    keep        interval NOT NULL
);
INSERT INTO retention_policies (table_name, time_column, keep) VALUES
    ('uav_telemetry', 'ts', INTERVAL '90 days'),
    ('sensor_readings', 'ts', INTERVAL '400 days'),
    ('sensor_events', 'ts', INTERVAL '730 days'),
    ('sensor_readings_1m', 'bucket', INTERVAL '90 days'),
    ('zone_traffic_1m', 'bucket', INTERVAL '30 days')
ON CONFLICT (table_name) DO NOTHING;

-- Plain PostgreSQL only: rollup tables with the columns of the continuous aggregates (same names, same
-- shapes), so queries work on both. 0006 renames them <name>_mat under real-time views of these names.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        CREATE TABLE IF NOT EXISTS sensor_readings_1m (
            bucket timestamptz NOT NULL, sensor_id text NOT NULL, metric text NOT NULL,
            avg double precision, min double precision, max double precision, n bigint NOT NULL,
            PRIMARY KEY (sensor_id, metric, bucket));
        CREATE INDEX IF NOT EXISTS sensor_readings_1m_bucket ON sensor_readings_1m (bucket);
        CREATE TABLE IF NOT EXISTS sensor_readings_1h (
            bucket timestamptz NOT NULL, sensor_id text NOT NULL, metric text NOT NULL,
            avg double precision, min double precision, max double precision, n bigint NOT NULL,
            PRIMARY KEY (sensor_id, metric, bucket));
        CREATE INDEX IF NOT EXISTS sensor_readings_1h_bucket ON sensor_readings_1h (bucket);
        CREATE TABLE IF NOT EXISTS zone_traffic_1m (
            bucket timestamptz NOT NULL, zone_id text NOT NULL, entries bigint NOT NULL,
            PRIMARY KEY (zone_id, bucket));
        CREATE INDEX IF NOT EXISTS zone_traffic_1m_bucket ON zone_traffic_1m (bucket);
        CREATE TABLE IF NOT EXISTS zone_traffic_1h (
            bucket timestamptz NOT NULL, zone_id text NOT NULL, entries bigint NOT NULL,
            PRIMARY KEY (zone_id, bucket));
        CREATE INDEX IF NOT EXISTS zone_traffic_1h_bucket ON zone_traffic_1h (bucket);
    END IF;
END
$$;

-- skylane_refresh_rollups() and skylane_apply_retention(), which fill these tables and apply retention on
-- plain PostgreSQL, are defined in 0006_storage_limits.sql (they were here before the rollups became real-time).
