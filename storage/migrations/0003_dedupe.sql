-- Idempotent ingest: a re-delivered message (QoS 1 is at-least-once; the ingester acknowledges only after
-- commit, so a crash re-delivers what was already stored) must not become a second row.
-- Keys: a telemetry fix is (uav_id, ts, seq), or (uav_id, ts) when the device sends no seq; a reading is
-- (sensor_id, metric, ts). Every key includes ts, the hypertable's time column, so this is valid on
-- TimescaleDB 2.x as well as on plain PostgreSQL. Writers COPY into a staging table and then
-- INSERT ... ON CONFLICT DO NOTHING.

-- Duplicates stored before this migration would stop the unique indexes: keep the first arrival of each.
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

-- Two partial indexes instead of one with NULLS NOT DISTINCT (PostgreSQL 15+ and not every TimescaleDB 2.x).
CREATE UNIQUE INDEX IF NOT EXISTS uav_telemetry_key_seq ON uav_telemetry (uav_id, ts, seq) WHERE seq IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS uav_telemetry_key_noseq ON uav_telemetry (uav_id, ts) WHERE seq IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS sensor_readings_key ON sensor_readings (sensor_id, metric, ts);
-- The key serves the (sensor_id, metric, ts DESC) queries too (a b-tree scans both ways): one index less to write.
DROP INDEX IF EXISTS sensor_readings_sensor_metric_ts;
