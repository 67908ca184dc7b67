#!/bin/sh
# Grafana's database login: a member of skylane_reader, which may only SELECT what the dashboards read (the
# grants are Skylane's migrations', storage/migrations/0006_storage_limits.sql), never the owner account.
#
# compose.yaml mounts this folder as the timescaledb container's /docker-entrypoint-initdb.d, so it runs once,
# when the container initializes an empty data volume. For an existing volume, or to rotate the password (then
# also restart Grafana with the new SKYLANE_GRAFANA_DB_PASSWORD), run it by hand:
#   docker compose exec -e SKYLANE_GRAFANA_DB_PASSWORD="$SKYLANE_GRAFANA_DB_PASSWORD" timescaledb \
#       sh /docker-entrypoint-initdb.d/10-grafana-reader.sh
# Settings: SKYLANE_GRAFANA_DB_PASSWORD (required), SKYLANE_GRAFANA_DB_USER (default skylane_grafana); psql
# connects as POSTGRES_USER to POSTGRES_DB (and PGHOST/PGPORT/PGPASSWORD when given). Safe to run again.
if [ -z "${SKYLANE_GRAFANA_DB_PASSWORD:-}" ]; then
    echo "10-grafana-reader.sh: set SKYLANE_GRAFANA_DB_PASSWORD (Grafana's read-only database password)" >&2
    false
else
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-skylane}" --dbname "${POSTGRES_DB:-skylane}" \
         -v user="${SKYLANE_GRAFANA_DB_USER:-skylane_grafana}" -v password="$SKYLANE_GRAFANA_DB_PASSWORD" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'skylane_reader') AS make_reader \gset
\if :make_reader
CREATE ROLE skylane_reader NOLOGIN;
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') AS make_user \gset
\if :make_user
CREATE ROLE :"user" LOGIN;
\endif
ALTER ROLE :"user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT PASSWORD :'password';
ALTER ROLE :"user" SET default_transaction_read_only = on;
GRANT skylane_reader TO :"user";
SQL
fi
