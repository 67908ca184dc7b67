-- TimescaleDB 2.x: the unique keys of 0003_dedupe.sql (see there). CREATE UNIQUE INDEX is refused on a
-- hypertable with compression enabled ("operation not supported on hypertables that have compression
-- enabled", timescale/timescaledb#5595), so: compression policies off, chunks decompressed (a one-time cost
-- on an existing database), compression off, duplicates removed, keys created, compression back on with the
-- key columns in segmentby/orderby (TimescaleDB checks the keys on compressed chunks with them), policies
-- back. Run statement by statement (storage/schema.py); each one is re-runnable.
SELECT remove_compression_policy('uav_telemetry', if_exists => TRUE);
SELECT remove_compression_policy('sensor_readings', if_exists => TRUE);
-- Decompress only the chunks that are compressed: decompress_chunk raises "missing compressed hypertable"
-- (even with if_compressed) once compression is off, so a re-run after a stop between the compress = false
-- and the compress re-enable below must not call it.
SELECT count(decompress_chunk(c, if_compressed => TRUE)) FROM show_chunks('uav_telemetry') c
  JOIN timescaledb_information.chunks i ON format('%I.%I', i.chunk_schema, i.chunk_name)::regclass = c
 WHERE i.is_compressed;
SELECT count(decompress_chunk(c, if_compressed => TRUE)) FROM show_chunks('sensor_readings') c
  JOIN timescaledb_information.chunks i ON format('%I.%I', i.chunk_schema, i.chunk_name)::regclass = c
 WHERE i.is_compressed;
ALTER TABLE uav_telemetry SET (timescaledb.compress = false);
ALTER TABLE sensor_readings SET (timescaledb.compress = false);
DELETE FROM uav_telemetry t
 WHERE (t.tableoid, t.ctid) IN (
       SELECT tableoid, ctid FROM (
              SELECT tableoid, ctid, row_number() OVER (PARTITION BY uav_id, ts, seq ORDER BY received_at) AS n
                FROM uav_telemetry) d
        WHERE d.n > 1);
DELETE FROM sensor_readings r
 WHERE (r.tableoid, r.ctid) IN (
       SELECT tableoid, ctid FROM (
              SELECT tableoid, ctid, row_number() OVER (PARTITION BY sensor_id, metric, ts ORDER BY received_at) AS n
                FROM sensor_readings) d
        WHERE d.n > 1);
CREATE UNIQUE INDEX IF NOT EXISTS uav_telemetry_key ON uav_telemetry (uav_id, ts, seq);
CREATE UNIQUE INDEX IF NOT EXISTS uav_telemetry_key_noseq ON uav_telemetry (uav_id, ts) WHERE seq IS NULL;
DROP INDEX IF EXISTS uav_telemetry_uav_ts;
CREATE UNIQUE INDEX IF NOT EXISTS sensor_readings_key ON sensor_readings (sensor_id, metric, ts);
DROP INDEX IF EXISTS sensor_readings_sensor_metric_ts;
ALTER TABLE uav_telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'uav_id',
                               timescaledb.compress_orderby = 'ts DESC, seq');
ALTER TABLE sensor_readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'sensor_id, metric',
                                 timescaledb.compress_orderby = 'ts DESC');
SELECT add_compression_policy('uav_telemetry', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_compression_policy('sensor_readings', INTERVAL '7 days', if_not_exists => TRUE);
