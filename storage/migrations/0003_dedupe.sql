-- Idempotent ingest: a re-delivered message (QoS 1 is at-least-once; the ingester acknowledges only after
-- commit, so a crash re-delivers what was already stored) must not become a second row.
-- Keys: a telemetry fix is (uav_id, ts, seq), or (uav_id, ts) when the device sends no seq; a reading is
-- (sensor_id, metric, ts). Every key includes ts, the hypertables' time column (TimescaleDB requires it).
-- storage/writes.py COPies into the table and, when a key refuses a batch, moves it through a staging table
-- with INSERT ... ON CONFLICT DO NOTHING.
--
-- Plain PostgreSQL here. TimescaleDB refuses CREATE UNIQUE INDEX on a hypertable with compression enabled
-- (0002 enabled it), so there 0003_dedupe.timescale.sql does the same around switching compression off and on.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        -- Duplicates stored before this migration would stop the unique indexes: keep the first arrival.
        DELETE FROM uav_telemetry t
         WHERE (t.tableoid, t.ctid) IN (
               SELECT tableoid, ctid FROM (
                      SELECT tableoid, ctid,
                             row_number() OVER (PARTITION BY uav_id, ts, seq ORDER BY received_at) AS n
                        FROM uav_telemetry) d
                WHERE d.n > 1);
        DELETE FROM sensor_readings r
         WHERE (r.tableoid, r.ctid) IN (
               SELECT tableoid, ctid FROM (
                      SELECT tableoid, ctid,
                             row_number() OVER (PARTITION BY sensor_id, metric, ts ORDER BY received_at) AS n
                        FROM sensor_readings) d
                WHERE d.n > 1);
        -- Fixes: one unique b-tree on (uav_id, ts, seq) keys the fixes that carry a seq and also serves the
        -- track queries (uav_id = ? ORDER BY ts DESC, a backward scan), so it replaces 0001's (uav_id, ts DESC)
        -- index; fixes without a seq (NULLs are distinct there) are keyed by a partial index on (uav_id, ts),
        -- which only they enter. (One index with NULLS NOT DISTINCT needs PostgreSQL 15 and is not supported
        -- by every TimescaleDB 2.x.)
        CREATE UNIQUE INDEX IF NOT EXISTS uav_telemetry_key ON uav_telemetry (uav_id, ts, seq);
        CREATE UNIQUE INDEX IF NOT EXISTS uav_telemetry_key_noseq ON uav_telemetry (uav_id, ts) WHERE seq IS NULL;
        DROP INDEX IF EXISTS uav_telemetry_uav_ts;
        -- Readings: the key serves the (sensor_id, metric, ts DESC) queries too: one index less to write.
        CREATE UNIQUE INDEX IF NOT EXISTS sensor_readings_key ON sensor_readings (sensor_id, metric, ts);
        DROP INDEX IF EXISTS sensor_readings_sensor_metric_ts;
    END IF;
END
$$;
