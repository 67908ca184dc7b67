-- TimescaleDB 2.x only: hypertables, compression, continuous aggregate.
-- create_hypertable's classic signature works across all of 2.x.
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
-- Retention policies: 0006_storage_limits.timescale.sql, from the retention_policies table (never shortening one).
CREATE MATERIALIZED VIEW IF NOT EXISTS sensor_readings_1h
    WITH (timescaledb.continuous) AS
    SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket, sensor_id, metric,
           avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS n
    FROM sensor_readings
    GROUP BY bucket, sensor_id, metric
    WITH NO DATA;
SELECT add_continuous_aggregate_policy('sensor_readings_1h', start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
