-- TimescaleDB 2.x only (0006_storage_limits.sql, applied just before, made the tables and functions): dead
-- letters become hypertables with retention, every retention_policies row gets its policy, the hourly sensor
-- rollup becomes real-time like the others, and skylane_reader may read the continuous aggregates. Run
-- statement by statement (storage/schema.py); each one is re-runnable.

-- Dead letters in 1-day chunks, so retention drops whole days. A hypertable's keys must include its time
-- column: the key becomes (id, received_at).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_schema = current_schema()
                   AND hypertable_name = 'dead_letters') THEN
        ALTER TABLE dead_letters DROP CONSTRAINT IF EXISTS dead_letters_pkey;
        ALTER TABLE dead_letters ADD PRIMARY KEY (id, received_at);
    END IF;
END
$$;
SELECT create_hypertable('dead_letters', 'received_at', chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE, migrate_data => TRUE);
SELECT create_hypertable('dead_letter_daily', 'day', chunk_time_interval => INTERVAL '30 days',
                         if_not_exists => TRUE, migrate_data => TRUE);

-- Retention: a policy for each table of retention_policies that is a hypertable or a continuous aggregate
-- here and has none yet, with that table's figure (Skylane's default, or what an operator set there, e.g. on
-- plain PostgreSQL before this database got TimescaleDB). A retention is never shortened: where a policy
-- exists (an operator's add_retention_policy, or an older default), its drop_after is compared first and the
-- longer of the two wins, in the policy (alter_job) and in retention_policies, which then says what
-- TimescaleDB does. Later migrations add rows and call it again.
CREATE OR REPLACE FUNCTION skylane_add_retention_policies()
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p record;
    ht_schema text;
    ht_name text;
    job record;
    existing interval;
BEGIN
    FOR p IN SELECT table_name, keep FROM retention_policies ORDER BY table_name LOOP
        SELECT coalesce(c.materialization_hypertable_schema, h.hypertable_schema),
               coalesce(c.materialization_hypertable_name, h.hypertable_name)
          INTO ht_schema, ht_name
          FROM (SELECT p.table_name AS name) x
          LEFT JOIN timescaledb_information.hypertables h
                 ON h.hypertable_schema = current_schema() AND h.hypertable_name = x.name
          LEFT JOIN timescaledb_information.continuous_aggregates c
                 ON c.view_schema = current_schema() AND c.view_name = x.name;
        CONTINUE WHEN ht_name IS NULL;
        -- the jobs view names a continuous aggregate's policy by the aggregate (newer 2.x) or by its
        -- materialization hypertable (older 2.x): either
        SELECT j.job_id, j.config INTO job FROM timescaledb_information.jobs j
         WHERE j.proc_name = 'policy_retention' AND ((j.hypertable_schema = ht_schema AND j.hypertable_name = ht_name)
               OR (j.hypertable_schema = current_schema() AND j.hypertable_name = p.table_name));
        existing := (job.config->>'drop_after')::interval;
        IF job.job_id IS NULL THEN
            PERFORM add_retention_policy(p.table_name::regclass, p.keep);
        ELSIF existing < p.keep THEN
            RAISE NOTICE 'retention of % lengthened from % to % (retention_policies)', p.table_name, existing, p.keep;
            PERFORM alter_job(job.job_id, config => jsonb_set(job.config, '{drop_after}', to_jsonb(p.keep::text)));
        ELSIF existing > p.keep THEN
            RAISE NOTICE 'retention of % stays % (its policy; retention_policies said %)', p.table_name, existing, p.keep;
            UPDATE retention_policies SET keep = existing WHERE table_name = p.table_name;
        END IF;
    END LOOP;
END
$$;
SELECT skylane_add_retention_policies();

-- Real-time like the other three (0002 created it materialized-only: the newest 1-1.5 hours never showed).
ALTER MATERIALIZED VIEW sensor_readings_1h SET (timescaledb.materialized_only = false);

-- the continuous aggregates exist now (on an upgraded plain database they replaced the views granted before)
SELECT skylane_grant_reader();
