"""Schema migrations on a real PostgreSQL: idempotent, and the TimescaleDB branch only where it exists."""
from __future__ import annotations

import os
import shutil
import subprocess

import psycopg
import pytest

from skylane.settings import REPO_ROOT
from storage import schema

from .helpers import query
from .storage_support import hypertables


@pytest.mark.integration
def test_migrations_are_idempotent_and_report_the_engine(fresh_db, caplog):
    """On either engine: the same kind twice, every applicable part recorded once, the base tables; plain
    PostgreSQL says so in the log, TimescaleDB has its hypertables and continuous aggregates."""
    caplog.set_level("INFO", "skylane.storage")
    kind = schema.migrate(fresh_db)
    assert kind in (schema.POSTGRES, schema.TIMESCALE) and schema.migrate(fresh_db) == kind
    expected: dict[int, list[str]] = {}
    for m in schema.migrations():
        if not m.timescale_only or kind == schema.TIMESCALE:
            expected.setdefault(m.version, []).append("timescale" if m.timescale_only else "plain")
    assert dict(query(fresh_db, "SELECT version, parts FROM schema_migrations")) == expected
    tables = {r[0] for r in query(fresh_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"uav_telemetry", "sensor_readings", "airspace_events", "dead_letters", "devices", "zones",
            "clearances"} <= tables
    if kind == schema.POSTGRES:
        assert "plain PostgreSQL" in caplog.text
    else:
        with psycopg.connect(fresh_db) as conn:
            assert {"uav_telemetry", "sensor_readings", "airspace_events", "sensor_events"} <= hypertables(conn)
        assert len(query(fresh_db, "SELECT 1 FROM timescaledb_information.continuous_aggregates")) == 4


def test_timescale_migration_is_complete_timescale_sql():
    ts_only = [m for m in schema.migrations() if m.timescale_only]
    assert ts_only and not [m for m in schema.migrations() if not m.timescale_only and "timescaledb." in m.sql]
    sql = "\n".join(m.sql for m in ts_only)
    for table in ("uav_telemetry", "sensor_readings", "airspace_events"):
        assert f"create_hypertable('{table}', 'ts'" in sql
    for needle in ("timescaledb.compress", "add_compression_policy", "add_retention_policy",
                   "WITH (timescaledb.continuous)", "add_continuous_aggregate_policy", "WITH NO DATA"):
        assert needle in sql


def test_migration_files_are_checked(tmp_path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0002_b.timescale.sql").write_text("SELECT 2")
    assert [(m.version, m.description, m.timescale_only) for m in schema.migrations(tmp_path)] == [
        (1, "a", False), (2, "b", True)]
    (tmp_path / "0001_c.sql").write_text("SELECT 3")
    with pytest.raises(ValueError, match="duplicate"):
        schema.migrations(tmp_path)
    (tmp_path / "0001_c.sql").rename(tmp_path / "3_c.sql")
    with pytest.raises(ValueError, match="NNNN_what"):
        schema.migrations(tmp_path)


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="Debian's docker-compose validates compose files")
def test_compose_file_is_valid():
    env = dict(os.environ, SKYLANE_DB_PASSWORD="x", SKYLANE_GRAFANA_DB_PASSWORD="y", GRAFANA_ADMIN_PASSWORD="z")
    r = subprocess.run(["docker-compose", "-f", str(REPO_ROOT / "compose.yaml"), "config", "-q"],
                       capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    assert r.returncode == 0, r.stderr
    out = subprocess.run(["docker-compose", "-f", str(REPO_ROOT / "compose.yaml"), "config", "--services"],
                         capture_output=True, text=True, cwd=REPO_ROOT, env=env).stdout.split()
    assert {"timescaledb", "mosquitto", "ingest", "api"} <= set(out)


@pytest.mark.integration
def test_a_number_may_have_a_plain_and_a_timescale_part(tmp_path, fresh_db):
    """NNNN_x.sql then NNNN_x.timescale.sql: one version; on plain PostgreSQL only the plain part runs."""
    (tmp_path / "0001_x.timescale.sql").write_text("SELECT 2")
    (tmp_path / "0001_x.sql").write_text("SELECT 1")
    assert [(m.version, m.timescale_only) for m in schema.migrations(tmp_path)] == [(1, False), (1, True)]
    assert {m.version for m in schema.migrations() if m.timescale_only} >= {2, 4}
    schema.migrate(fresh_db)
    versions = [r[0] for r in query(fresh_db, "SELECT version FROM schema_migrations ORDER BY 1")]
    assert 4 in versions and len(versions) == len(set(versions))
