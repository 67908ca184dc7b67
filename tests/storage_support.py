"""Helpers of the storage tests, which run on either engine (SKYLANE_TEST_DATABASE_URL may point at a
PostgreSQL with TimescaleDB preloaded; see docs/storage.md): which one a database uses, and skips for the
parts that only one engine has."""
from __future__ import annotations

import psycopg
import pytest

from storage import schema


def engine(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        return schema.storage_kind(conn)


def timescale_available(database_url: str) -> bool:
    """The server preloads TimescaleDB (a new database there gets it)."""
    with psycopg.connect(database_url) as conn:
        st = schema.timescale_state(conn)
    return st.available and st.preloaded


def require_timescale(database_url: str) -> None:
    if not timescale_available(database_url):
        pytest.skip("needs a PostgreSQL with TimescaleDB preloaded (SKYLANE_TEST_DATABASE_URL, docs/storage.md)")


def retention_jobs(conn: psycopg.Connection) -> dict[str, str]:
    """TimescaleDB: {table or continuous aggregate: drop_after} of the retention policies."""
    rows = conn.execute(
        "SELECT coalesce(c.view_name, j.hypertable_name), j.config->>'drop_after' FROM timescaledb_information.jobs j "
        "LEFT JOIN timescaledb_information.continuous_aggregates c ON c.materialization_hypertable_name = "
        "j.hypertable_name WHERE j.proc_name = 'policy_retention'").fetchall()
    return dict(rows)


def hypertables(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables "
                                       "WHERE hypertable_schema = current_schema()")}
