-- Storage limits and read access (plain PostgreSQL and TimescaleDB alike; the TimescaleDB part is
-- 0006_storage_limits.timescale.sql). See docs/storage.md.
--
-- 1. Dead letters are kept 30 days, and each device has a daily cap (storage/writes.py): past it, refused
--    messages are only counted here, per device and day, with the last reason and a truncated payload.
-- 2. Rollups on plain PostgreSQL are real-time like TimescaleDB's continuous aggregates: a view adds the
--    buckets not materialized yet (at or after the watermark) from the raw rows at query time.
-- 3. skylane_reader: a role that may only read what dashboards need (Grafana's database login is a member).
-- Retention figures are only added, never changed: an operator's longer (or shorter) keep stays.

CREATE TABLE IF NOT EXISTS dead_letter_daily (
    day             date        NOT NULL,
    device          text        NOT NULL,  -- the device id of the topic ({root}/<uav|sensor|device>/<id>/...)
    received        bigint      NOT NULL DEFAULT 0,  -- dead letters of the device that day, stored or not
    received_bytes  bigint      NOT NULL DEFAULT 0,
    capped          bigint      NOT NULL DEFAULT 0,  -- of them, past the cap: counted here, not stored
    capped_bytes    bigint      NOT NULL DEFAULT 0,
    capped_reasons  jsonb       NOT NULL DEFAULT '{}',  -- {reason (up to its first ':'): count}
    last_capped_at  timestamptz,
    last_reason     text,
    last_payload    bytea,  -- the last capped payload, truncated
    PRIMARY KEY (device, day)
);
CREATE INDEX IF NOT EXISTS dead_letter_daily_day ON dead_letter_daily (day DESC);

INSERT INTO retention_policies (table_name, time_column, keep) VALUES
    ('dead_letters', 'received_at', INTERVAL '30 days'),
    ('dead_letter_daily', 'day', INTERVAL '400 days')
ON CONFLICT (table_name) DO NOTHING;

-- [lo, hi) of the whole buckets of `p_width` inside [p_start, p_end): both ends aligned down (the bucket
-- holding p_end is not complete yet, so it stays real-time); when that leaves nothing (a window shorter than
-- a bucket), the last complete bucket. The maintenance window of both storages (storage/rollups.py).
CREATE OR REPLACE FUNCTION skylane_bucket_window(p_start timestamptz, p_end timestamptz, p_width interval)
RETURNS tstzrange LANGUAGE sql IMMUTABLE AS $$
    SELECT tstzrange(least(date_bin(p_width, p_start, TIMESTAMPTZ 'epoch'),
                           date_bin(p_width, p_end, TIMESTAMPTZ 'epoch') - p_width),
                     date_bin(p_width, p_end, TIMESTAMPTZ 'epoch'))
$$;

-- The rollups: name, bucket width, raw table, filter, group keys and aggregates (the columns of 0004's
-- tables and of the continuous aggregates, in order).
CREATE OR REPLACE FUNCTION skylane_rollups()
RETURNS TABLE (view_name text, width interval, source text, filter text, keys text, aggs text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('sensor_readings_1m', INTERVAL '1 minute', 'sensor_readings', 'TRUE', 'sensor_id, metric',
            'avg(value), min(value), max(value), count(*)'),
           ('sensor_readings_1h', INTERVAL '1 hour', 'sensor_readings', 'TRUE', 'sensor_id, metric',
            'avg(value), min(value), max(value), count(*)'),
           ('zone_traffic_1m', INTERVAL '1 minute', 'airspace_events', 'kind = ''zone_enter'' AND zone_id IS NOT NULL',
            'zone_id', 'count(*)'),
           ('zone_traffic_1h', INTERVAL '1 hour', 'airspace_events', 'kind = ''zone_enter'' AND zone_id IS NOT NULL',
            'zone_id', 'count(*)')
$$;

-- Plain PostgreSQL: materialized buckets in <rollup>_mat (0004's tables, renamed), the end of what is
-- materialized in rollup_watermarks, and the rollup's name a view: materialized buckets before the
-- watermark, live aggregation of the raw rows from it on (as TimescaleDB's real-time aggregation).
CREATE TABLE IF NOT EXISTS rollup_watermarks (view_name text PRIMARY KEY, watermark timestamptz NOT NULL);
CREATE OR REPLACE FUNCTION skylane_watermark(p_view text)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT watermark FROM rollup_watermarks WHERE view_name = p_view), TIMESTAMPTZ '-infinity')
$$;

DO $$
DECLARE
    r record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RETURN;  -- the rollups are continuous aggregates there
    END IF;
    FOR r IN SELECT * FROM skylane_rollups() LOOP
        IF to_regclass(r.view_name || '_mat') IS NULL THEN
            EXECUTE format('ALTER TABLE %I RENAME TO %I', r.view_name, r.view_name || '_mat');
            -- buckets refreshed before, except the newest (it may have been refreshed half-way): from raw rows
            EXECUTE format('INSERT INTO rollup_watermarks SELECT %L, max(bucket) FROM %I HAVING max(bucket) IS NOT NULL '
                           'ON CONFLICT DO NOTHING', r.view_name, r.view_name || '_mat');
        END IF;
        EXECUTE format('CREATE OR REPLACE VIEW %I AS SELECT * FROM %I WHERE bucket < skylane_watermark(%L) '
                       'UNION ALL SELECT date_bin(%L::interval, ts, TIMESTAMPTZ ''epoch'') AS bucket, %s, %s '
                       'FROM %I WHERE %s AND ts >= skylane_watermark(%L) GROUP BY 1, %s',
                       r.view_name, r.view_name || '_mat', r.view_name, r.width, r.keys, r.aggs, r.source, r.filter,
                       r.view_name, r.keys);
    END LOOP;
END
$$;

-- Recompute the whole buckets in [p_start, p_end) (skylane_bucket_window), from the watermark on if it is
-- older (a pause of maintenance leaves no hole), and move the watermark to the window's end. Idempotent:
-- late rows are counted by refreshing their range again. Returns the rows written.
CREATE OR REPLACE FUNCTION skylane_refresh_rollups(p_start timestamptz, p_end timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r record;
    w tstzrange;
    lo timestamptz;
    n bigint;
    total bigint := 0;
BEGIN
    FOR r IN SELECT * FROM skylane_rollups() LOOP
        w := skylane_bucket_window(p_start, p_end, r.width);
        lo := least(lower(w), skylane_watermark(r.view_name));  -- -infinity before the first refresh: all
        EXECUTE format('DELETE FROM %I WHERE bucket >= $1 AND bucket < $2', r.view_name || '_mat') USING lo, upper(w);
        EXECUTE format('INSERT INTO %I SELECT date_bin($3, ts, TIMESTAMPTZ ''epoch''), %s, %s FROM %I '
                       'WHERE %s AND ts >= $1 AND ts < $2 GROUP BY 1, %s',
                       r.view_name || '_mat', r.keys, r.aggs, r.source, r.filter, r.keys)
            USING lo, upper(w), r.width;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        INSERT INTO rollup_watermarks AS m VALUES (r.view_name, upper(w))
            ON CONFLICT (view_name) DO UPDATE SET watermark = greatest(m.watermark, EXCLUDED.watermark);
    END LOOP;
    RETURN total;
END
$$;

-- Time-range deletes per retention_policies, on a rollup's <name>_mat table where it has one; tables that do
-- not exist here are skipped. Returns the rows deleted.
CREATE OR REPLACE FUNCTION skylane_apply_retention(p_now timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    p record;
    n bigint;
    total bigint := 0;
BEGIN
    FOR p IN SELECT t.tablename, r.time_column, r.keep FROM retention_policies r
             JOIN pg_tables t ON t.schemaname = current_schema() AND t.tablename = CASE
                  WHEN to_regclass(r.table_name || '_mat') IS NULL THEN r.table_name ELSE r.table_name || '_mat' END
    LOOP
        EXECUTE format('DELETE FROM %I WHERE %I < $1', p.tablename, p.time_column) USING p_now - p.keep;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    RETURN total;
END
$$;

-- skylane_reader may read the time series, the registry and the rollups (what Grafana's dashboards and
-- ad-hoc charts need), nothing else: no API keys, no clearances, no writes. The role is cluster-wide and made
-- once; a database owner without CREATEROLE gets a notice instead (create it as a superuser, then run
-- `SELECT skylane_grant_reader()`). The TimescaleDB part grants again once the continuous aggregates exist.
CREATE OR REPLACE FUNCTION skylane_grant_reader()
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'skylane_reader') THEN
        BEGIN
            CREATE ROLE skylane_reader NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;  -- made meanwhile by another database's start
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'role skylane_reader not created (this role lacks CREATEROLE): Grafana gets no read-only role';
                RETURN;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO skylane_reader', current_schema());
    FOREACH t IN ARRAY ARRAY['uav_telemetry', 'sensor_readings', 'airspace_events', 'sensor_events', 'dead_letters',
                             'dead_letter_daily', 'devices', 'zones', 'zone_states', 'sensor_readings_1m',
                             'sensor_readings_1h', 'zone_traffic_1m', 'zone_traffic_1h',
                             'rollup_watermarks']  -- the plain rollup views read it as the caller
    LOOP
        FOR attempt IN 1..20 LOOP
            BEGIN
                EXECUTE format('GRANT SELECT ON %I TO skylane_reader', t);
                EXIT;
            EXCEPTION WHEN internal_error THEN  -- "tuple concurrently updated": a TimescaleDB job changed a chunk
                IF attempt = 20 THEN
                    RAISE;
                END IF;
                PERFORM pg_sleep(0.1 * attempt);
            END;
        END LOOP;
    END LOOP;
END
$$;
SELECT skylane_grant_reader();
