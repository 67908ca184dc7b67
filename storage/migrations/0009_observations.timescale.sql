-- TimescaleDB 2.x only (0009_observations.sql, applied just before, made the table and its unique key):
-- observations become a hypertable in 1-day chunks, compressed after 2 days (segments per track, the key's
-- columns in segmentby/orderby so TimescaleDB can check the key on compressed chunks), dropped after 30 days
-- (the figure of retention_policies). Run statement by statement (storage/schema.py); each one is re-runnable.
SELECT create_hypertable('observations', 'ts', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
ALTER TABLE observations SET (timescaledb.compress, timescaledb.compress_segmentby = 'source, track_id',
                              timescaledb.compress_orderby = 'ts DESC, receiver_id');
SELECT add_compression_policy('observations', INTERVAL '2 days', if_not_exists => TRUE);
SELECT skylane_add_retention_policies();  -- the retention_policies figure, never shortening an operator's
