-- TimescaleDB 2.x only (0004_sensors.sql, applied just before, made the tables): chunk intervals for these
-- volumes, compression and continuous aggregates. storage/schema.py runs these statements one by
-- one outside a transaction block, so every one is re-runnable (if_not_exists / if_exists / IF NOT EXISTS)
-- and a start interrupted half-way is repaired by the next. They would also be valid inside one: continuous
-- aggregates are created WITH NO DATA (only WITH DATA must run outside a transaction) and are filled by
-- their refresh policies. See docs/storage.md.

-- Chunk intervals (new chunks only; existing ones keep theirs). Aim: the chunks being written, with their
-- indexes, fit in about a quarter of the server's memory.
--   uav_telemetry: 25,000 fixes/s sustained = 90 M rows/hour = 2.16 billion rows/day, ~130 B per row with
--   its two indexes -> ~12 GB per hour uncompressed: 1-hour chunks (one day would be ~280 GB, far beyond RAM).
SELECT set_chunk_time_interval('uav_telemetry', INTERVAL '1 hour');
--   sensor_readings: 10,000 sensors x 5 metrics every 10-60 s is ~2,000-5,000 rows/s sustained (bursts of
--   100,000 records/s from packs are short) = ~430 M rows/day, ~25 GB/day -> 6-hour chunks (~6 GB).
SELECT set_chunk_time_interval('sensor_readings', INTERVAL '6 hours');
--   sensor_events: thousands a day at most -> 30-day chunks (fewer, larger chunks for rare data).
SELECT create_hypertable('sensor_events', 'ts', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);

-- Compression, segmented by device (each segment is one device's run of rows, so per-device queries decompress
-- only their own segments). The unique keys of 0003 (uav_id, ts, seq) and (sensor_id, metric, ts) are all in
-- segmentby or orderby, which TimescaleDB needs to check them on compressed chunks (late re-deliveries).
-- Compress earlier than 0002 did: at these volumes a week of raw telemetry is ~2 TB; a day is what replay and
-- the live track queries need raw. Changing the order-by needs that no chunk is compressed yet (true on a new
-- install); an existing database with compressed chunks keeps 0002's order-by rather than failing to start.
SELECT remove_compression_policy('uav_telemetry', if_exists => TRUE);
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.chunks
                   WHERE hypertable_name = 'uav_telemetry' AND is_compressed) THEN
        ALTER TABLE uav_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'uav_id',
                                       timescaledb.compress_orderby = 'ts DESC, seq');
    ELSE
        RAISE NOTICE 'uav_telemetry has compressed chunks: compress_orderby stays as 0002 set it';
    END IF;
END
$$;
SELECT add_compression_policy('uav_telemetry', INTERVAL '1 day', if_not_exists => TRUE);
SELECT remove_compression_policy('sensor_readings', if_exists => TRUE);
SELECT add_compression_policy('sensor_readings', INTERVAL '2 days', if_not_exists => TRUE);

-- Retention: 0006_storage_limits.timescale.sql adds a policy for every table of retention_policies that has
-- none (telemetry 90 days, readings 400, sensor events 730, rollups ...), from that table's figures. A
-- migration never shortens a retention: this file used to replace telemetry's policy (180 days from 0002)
-- by 90 days; now an existing policy, an operator's or an older default, is kept as it is.

-- One-minute sensor rollups (0002 made the hourly one). Real-time aggregation on (materialized_only = false):
-- the newest minute, not yet materialized, is computed from raw rows at query time.
CREATE MATERIALIZED VIEW IF NOT EXISTS sensor_readings_1m
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 minute', ts) AS bucket, sensor_id, metric,
           avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS n
    FROM sensor_readings
    GROUP BY bucket, sensor_id, metric
    WITH NO DATA;
-- refreshes the last 2 hours every minute (late readings within 2 hours are picked up)
SELECT add_continuous_aggregate_policy('sensor_readings_1m', start_offset => INTERVAL '2 hours',
    end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);

-- Per-zone traffic: zone entries per zone per minute and per hour, from the monitor's zone_enter events.
CREATE MATERIALIZED VIEW IF NOT EXISTS zone_traffic_1m
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 minute', ts) AS bucket, zone_id, count(*) AS entries
    FROM airspace_events
    WHERE kind = 'zone_enter' AND zone_id IS NOT NULL
    GROUP BY bucket, zone_id
    WITH NO DATA;
SELECT add_continuous_aggregate_policy('zone_traffic_1m', start_offset => INTERVAL '2 hours',
    end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE);

CREATE MATERIALIZED VIEW IF NOT EXISTS zone_traffic_1h
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket, zone_id, count(*) AS entries
    FROM airspace_events
    WHERE kind = 'zone_enter' AND zone_id IS NOT NULL
    GROUP BY bucket, zone_id
    WITH NO DATA;
SELECT add_continuous_aggregate_policy('zone_traffic_1h', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
