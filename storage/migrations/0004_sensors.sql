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

-- How long raw and rolled-up rows are kept. TimescaleDB: the same figures as add_retention_policy (keep the
-- two in step); plain PostgreSQL: skylane_apply_retention() deletes by time range from this table.
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
-- shapes), so queries work on both. Filled by skylane_refresh_rollups().
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

-- Recompute the rollup buckets that overlap [p_start, p_end): delete them, aggregate the raw rows again.
-- Idempotent, so late rows are picked up by refreshing their range again (skylane maintenance refreshes a
-- trailing window on every run). Buckets use date_bin from the Unix epoch, like time_bucket: no time zone.
CREATE OR REPLACE FUNCTION skylane_refresh_rollups(p_start timestamptz, p_end timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    w record;
    lo timestamptz;
    hi timestamptz;
    n bigint;
    total bigint := 0;
BEGIN
    FOR w IN SELECT * FROM (VALUES ('1m', INTERVAL '1 minute'), ('1h', INTERVAL '1 hour')) AS v(suffix, width)
    LOOP
        lo := date_bin(w.width, p_start, TIMESTAMPTZ '1970-01-01 00:00:00+00');
        hi := date_bin(w.width, p_end, TIMESTAMPTZ '1970-01-01 00:00:00+00');
        IF hi < p_end THEN
            hi := hi + w.width;
        END IF;
        EXECUTE format('DELETE FROM %I WHERE bucket >= $1 AND bucket < $2', 'sensor_readings_' || w.suffix)
            USING lo, hi;
        EXECUTE format('INSERT INTO %I (bucket, sensor_id, metric, avg, min, max, n) '
                       'SELECT date_bin($3, ts, TIMESTAMPTZ ''1970-01-01 00:00:00+00''), sensor_id, metric, '
                       'avg(value), min(value), max(value), count(*) FROM sensor_readings '
                       'WHERE ts >= $1 AND ts < $2 GROUP BY 1, 2, 3', 'sensor_readings_' || w.suffix)
            USING lo, hi, w.width;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        EXECUTE format('DELETE FROM %I WHERE bucket >= $1 AND bucket < $2', 'zone_traffic_' || w.suffix)
            USING lo, hi;
        EXECUTE format('INSERT INTO %I (bucket, zone_id, entries) '
                       'SELECT date_bin($3, ts, TIMESTAMPTZ ''1970-01-01 00:00:00+00''), zone_id, count(*) '
                       'FROM airspace_events '
                       'WHERE kind = ''zone_enter'' AND zone_id IS NOT NULL AND ts >= $1 AND ts < $2 '
                       'GROUP BY 1, 2', 'zone_traffic_' || w.suffix)
            USING lo, hi, w.width;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    RETURN total;
END
$$;

-- Time-range deletes per retention_policies (tables that do not exist are skipped); returns rows deleted.
CREATE OR REPLACE FUNCTION skylane_apply_retention(p_now timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    p record;
    n bigint;
    total bigint := 0;
BEGIN
    FOR p IN SELECT r.table_name, r.time_column, r.keep FROM retention_policies r
             JOIN pg_tables t ON t.schemaname = current_schema() AND t.tablename = r.table_name
    LOOP
        EXECUTE format('DELETE FROM %I WHERE %I < $1', p.table_name, p.time_column) USING p_now - p.keep;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    RETURN total;
END
$$;
