"""Idempotent migrations, applied at start; TimescaleDB features when the extension is there.

Migrations are the files in storage/migrations/, applied in order of their number:
`NNNN_what.sql` runs everywhere, `NNNN_what.timescale.sql` only where TimescaleDB is enabled (keep it
valid for TimescaleDB 2.x; a unique index on a hypertable must include its time column). TimescaleDB
(production, compose.yaml) gets hypertables, compression, retention and continuous aggregates; a plain
PostgreSQL (Debian's, on the developers' machines) gets the same tables and indexes without them.
Which one was found is returned and logged, and reported by the API's /v1/health.
"""
from __future__ import annotations

import itertools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

log = logging.getLogger("skylane.storage")

TIMESCALE = "timescaledb"
POSTGRES = "postgresql"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(\.timescale)?\.sql$")
_LOCK_KEY = 0x5C71A9E  # advisory lock: concurrent starters migrate one at a time


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str
    timescale_only: bool


def migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"migration file name {path.name!r} is not NNNN_what[.timescale].sql")
        found.append(Migration(int(m[1]), m[2].replace("_", " "), path.read_text(), bool(m[3])))
    keys = [(m.version, m.timescale_only) for m in found]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate migration numbers in {folder}")
    return sorted(found, key=lambda m: (m.version, m.timescale_only))  # a number's plain part first


_TOKEN = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$[A-Za-z_0-9]*\$)|;", re.S)


def split_statements(sql: str) -> list[str]:
    """The statements of a SQL script, split on `;` outside comments, quotes and $tag$ bodies."""
    out, start, pos = [], 0, 0
    while (m := _TOKEN.search(sql, pos)) is not None:
        if m[1]:  # dollar quote: skip to its closing tag
            end = sql.find(m[1], m.end())
            pos = len(sql) if end < 0 else end + len(m[1])
            continue
        if m[0] == ";":
            out.append(sql[start:m.start()])
            start = m.end()
        pos = m.end()
    out.append(sql[start:])
    cleaned = (_TOKEN.sub(lambda t: t[0] if not t[0].startswith(("--", "/*")) else "", s).strip() for s in out)
    return [s.strip() for s, c in zip(out, cleaned) if c]


def detect_timescale(conn: psycopg.Connection) -> bool:
    """Enable TimescaleDB when the server offers it; False on a plain PostgreSQL."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        return True
    if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone():
        return False
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return True
    except psycopg.Error as exc:  # e.g. not in shared_preload_libraries
        log.warning("timescaledb is installed but could not be enabled (%s); using plain PostgreSQL", exc)
        return False


def migrate(database_url: str) -> str:
    """Apply pending migrations; return the storage kind ("timescaledb" or "postgresql")."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            has_ts = detect_timescale(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, "
                         "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            # NNNN_x.sql and NNNN_x.timescale.sql share a number: the plain part, then the TimescaleDB part,
            # recorded once when both are done (both re-runnable, so a crash in between is repaired)
            for version, group in itertools.groupby(migrations(), key=lambda m: m.version):
                parts = [m for m in group if not m.timescale_only or has_ts]
                if version in done or not parts:
                    continue
                for mig in parts:
                    if mig.timescale_only:
                        # Some TimescaleDB statements (CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous),
                        # policies) refuse to run in a transaction block, and a multi-statement string is one
                        # implicit transaction: run them one by one. They are written to be re-runnable
                        # (if_not_exists), so a crash half-way is repaired by the next start.
                        for statement in split_statements(mig.sql):
                            conn.execute(statement)
                    else:
                        with conn.transaction():
                            conn.execute(mig.sql)
                conn.execute("INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                             (version, parts[0].description))
                log.info("applied migration %d: %s", version, parts[0].description)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    kind = TIMESCALE if has_ts else POSTGRES
    log.info("storage: %s", "TimescaleDB (hypertables, compression, retention, continuous aggregates)"
             if has_ts else "plain PostgreSQL (TimescaleDB extension not available: no hypertables)")
    return kind


def storage_kind(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return TIMESCALE if row else POSTGRES
