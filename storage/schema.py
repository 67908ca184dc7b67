"""Idempotent migrations, applied at start; TimescaleDB features when the extension is there.

Migrations are the files in storage/migrations/, applied in order of their number:
`NNNN_what.sql` runs everywhere, `NNNN_what.timescale.sql` only where TimescaleDB is enabled (keep it
valid for TimescaleDB 2.x; a unique index on a hypertable must include its time column). TimescaleDB
(production, compose.yaml) gets hypertables, compression, retention and continuous aggregates; a plain
PostgreSQL (Debian's, on the developers' machines) gets the same tables and indexes without them.
Which one was found is returned and logged. schema_migrations
records per version which parts ran, so a plain database that later gets TimescaleDB catches up.
"""
from __future__ import annotations

import logging
import re
from contextlib import contextmanager
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


class StorageError(RuntimeError):
    """The database cannot be used as it is; the message says what to change."""


PRELOAD = "shared_preload_libraries = 'timescaledb'"
PRELOAD_STEPS = (f"add {PRELOAD} to the server's postgresql.conf (keep any libraries already listed, comma-"
                 "separated) and restart PostgreSQL")
ROLLUPS = ("sensor_readings_1m", "sensor_readings_1h", "zone_traffic_1m", "zone_traffic_1h")
PLAIN, TIMESCALE_PART = "plain", "timescale"
ENABLE_TIMESCALE = "CREATE EXTENSION IF NOT EXISTS timescaledb"


@dataclass(frozen=True)
class TimescaleState:
    enabled: bool  # CREATE EXTENSION was done in this database
    available: bool  # the server has the extension's files (pg_available_extensions)
    preloaded: bool  # the server loaded the library at start (shared_preload_libraries)


def timescale_state(conn: psycopg.Connection) -> TimescaleState:
    """Without touching the extension: asking never ends the session. The loader library, once preloaded,
    defines timescaledb.max_background_workers (an integer setting anyone may read, where reading
    shared_preload_libraries itself needs pg_read_all_settings)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'), "
        "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), "
        "EXISTS (SELECT 1 FROM pg_settings WHERE name = 'timescaledb.max_background_workers' "
        "AND vartype = 'integer')").fetchone()
    return TimescaleState(*row)


class _SessionLost(Exception):
    """CREATE EXTENSION ended the session (a FATAL error): the caller reconnects."""


def detect_timescale(conn: psycopg.Connection, use: bool | None = None) -> bool:
    """Enable TimescaleDB when the server can run it; False on a plain PostgreSQL.

    `use`: None = whenever possible; False = plain PostgreSQL even where TimescaleDB is available (an
    upgrade can follow later); True = refuse to run without it. Installed but not preloaded is plain
    PostgreSQL with a warning that says what to change (CREATE EXTENSION would end the session there).
    A database that already has the extension cannot fall back: StorageError with the steps."""
    st = timescale_state(conn)
    if st.enabled:
        if not st.preloaded:
            raise StorageError("this database uses TimescaleDB, but the server does not preload it (every query "
                               f"on a hypertable would fail): {PRELOAD_STEPS}")
        return True
    if use is False:
        return False
    if not (st.available and st.preloaded):
        why = ("is installed on this server but not preloaded" if st.available else
               "is not installed on this server")
        if use:
            raise StorageError(f"TimescaleDB was required but {why}: " +
                               (PRELOAD_STEPS if st.available else "install the timescaledb package for this "
                                "PostgreSQL version, then " + PRELOAD_STEPS))
        if st.available:
            log.warning("TimescaleDB %s, so this database uses plain PostgreSQL. For the production path "
                        "(hypertables, compression, policies): %s; the next start converts the plain tables "
                        "with their data (docs/storage.md).", why, PRELOAD_STEPS)
        return False
    try:
        with conn.transaction():
            conn.execute(ENABLE_TIMESCALE)
        return True
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise _SessionLost(str(exc).strip()) from exc
        if use:
            raise StorageError(f"CREATE EXTENSION timescaledb failed: {exc}") from exc
        log.warning("TimescaleDB is installed and preloaded but could not be enabled (%s); using plain "
                    "PostgreSQL", str(exc).strip())
        return False


def migrate(database_url: str, timescale: bool | None = None) -> str:
    """Apply pending migrations; return the storage kind ("timescaledb" or "postgresql").

    `timescale` as in detect_timescale. schema_migrations records per version which parts ran ("plain",
    "timescale"), so a database that ran on plain PostgreSQL and later gets TimescaleDB runs the
    TimescaleDB parts it missed: its tables become hypertables with their rows, and its plain rollups
    become continuous aggregates (adopt_plain_rollups)."""
    enable = timescale
    for attempt in range(2):
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
                try:
                    has_ts = detect_timescale(conn, enable)
                    _apply(conn, has_ts)
                finally:
                    if not conn.broken:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            break
        except _SessionLost as exc:
            if attempt or timescale:
                raise StorageError(f"CREATE EXTENSION timescaledb ended the session ({exc}): {PRELOAD_STEPS}") \
                    from None
            log.error("CREATE EXTENSION timescaledb ended the session (%s); reconnecting and using plain "
                      "PostgreSQL. For TimescaleDB: %s", exc, PRELOAD_STEPS)
            enable = False
    kind = TIMESCALE if has_ts else POSTGRES
    log.info("storage: %s", "TimescaleDB (hypertables, compression, retention, continuous aggregates)"
             if has_ts else "plain PostgreSQL (no TimescaleDB: ordinary tables, rollups by `skylane maintenance`)")
    return kind


def _part(m: Migration) -> str:
    return TIMESCALE_PART if m.timescale_only else PLAIN


def _apply(conn: psycopg.Connection, has_ts: bool) -> None:
    found = migrations()
    recorded = _bookkeeping(conn, found)
    pending = [m for m in found if (has_ts or not m.timescale_only) and _part(m) not in recorded.get(m.version, ())]
    if not has_ts:
        _run(conn, pending)
        return
    with _jobs_paused(conn, any(m.timescale_only for m in pending)):
        set_plain_rollups_aside(conn)
        _run(conn, pending)
        adopt_plain_rollups(conn)


@contextmanager
def _jobs_paused(conn: psycopg.Connection, pause: bool):
    """TimescaleDB starts a policy's job as soon as the policy exists: while TimescaleDB parts run, this
    database's job scheduler is stopped (superusers only; else the migrations run beside the jobs)."""
    fn = conn.execute("SELECT coalesce(to_regproc('_timescaledb_functions.stop_background_workers'), "
                      "to_regproc('_timescaledb_internal.stop_background_workers'))::text").fetchone()[0]
    stopped = False
    if pause and fn:
        try:
            with conn.transaction():
                conn.execute(f"SELECT {fn}()")
            stopped = True
        except psycopg.Error as exc:
            log.info("TimescaleDB jobs keep running during the migration (%s)", str(exc).strip())
    try:
        yield
    finally:
        if stopped and not conn.broken:
            conn.execute(f"SELECT {fn.replace('stop_', 'start_')}()")


def _run(conn: psycopg.Connection, pending: list[Migration]) -> None:
    # NNNN_x.sql and NNNN_x.timescale.sql share a number: the plain part, then the TimescaleDB part, each
    # recorded when done (both re-runnable, so a crash in between is repaired by the next start)
    for mig in pending:
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
        conn.execute("INSERT INTO schema_migrations (version, description, parts) VALUES (%s, %s, %s) "
                     "ON CONFLICT (version) DO UPDATE SET parts = ARRAY(SELECT DISTINCT unnest("
                     "schema_migrations.parts || EXCLUDED.parts) ORDER BY 1)",
                     (mig.version, mig.description, [_part(mig)]))
        log.info("applied migration %d (%s part): %s", mig.version, _part(mig), mig.description)


def _bookkeeping(conn: psycopg.Connection, found: list[Migration]) -> dict[int, set[str]]:
    """schema_migrations with the parts that ran per version; {version: parts}.

    Before per-part records, a version was recorded once for whatever parts applied at the time: on plain
    PostgreSQL its plain part only (a TimescaleDB-only version was not recorded at all). Converting those
    records: a version's TimescaleDB part ran if a TimescaleDB-only version was recorded no later than it
    (TimescaleDB was there by then)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, "
                 "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), "
                 "parts text[] NOT NULL DEFAULT '{}')")
    if not conn.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                        "AND table_name = 'schema_migrations' AND column_name = 'parts'").fetchone():
        kinds: dict[int, set[str]] = {}
        for m in found:
            kinds.setdefault(m.version, set()).add(_part(m))
        with conn.transaction():
            conn.execute("ALTER TABLE schema_migrations ADD COLUMN parts text[] NOT NULL DEFAULT '{}'")
            rows = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
            ts_since = min((at for v, at in rows if kinds.get(v) == {TIMESCALE_PART}), default=None)
            for version, at in rows:
                parts = kinds.get(version, {PLAIN, TIMESCALE_PART})
                if ts_since is None or at < ts_since:
                    parts = parts - {TIMESCALE_PART}
                conn.execute("UPDATE schema_migrations SET parts = %s WHERE version = %s", (sorted(parts), version))
        log.info("schema_migrations now records the parts that ran per version")
    return {v: set(parts) for v, parts in conn.execute("SELECT version, parts FROM schema_migrations")}


# ------------------------------------------------------------------------ plain PostgreSQL -> TimescaleDB

def _is_cagg(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM _timescaledb_catalog.continuous_agg WHERE user_view_schema = "
                        "current_schema() AND user_view_name = %s", (name,)).fetchone() is not None


def _relkind(conn: psycopg.Connection, name: str) -> str | None:
    row = conn.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = current_schema() AND c.relname = %s", (name,)).fetchone()
    return row[0] if row else None


def set_plain_rollups_aside(conn: psycopg.Connection) -> list[str]:
    """Before the TimescaleDB parts create the continuous aggregates: plain PostgreSQL's rollups (views over
    <name>_mat tables, or tables before 0006) leave their names free; their rows stay in <name>_mat."""
    moved = []
    for name in ROLLUPS:
        kind = _relkind(conn, name)
        if kind is None or _is_cagg(conn, name):
            continue
        with conn.transaction():
            if kind == "v":
                conn.execute(f"DROP VIEW {name}")
            elif kind == "r" and _relkind(conn, name + "_mat") is None:
                conn.execute(f"ALTER TABLE {name} RENAME TO {name}_mat")
            else:
                raise StorageError(f"{name} is neither a continuous aggregate nor a plain rollup of Skylane's "
                                   f"(relkind {kind!r}, or {name}_mat exists too): move it away and start again")
        moved.append(name)
    if moved:
        log.warning("upgrading plain PostgreSQL rollups to continuous aggregates: %s", ", ".join(moved))
    return moved


def adopt_plain_rollups(conn: psycopg.Connection) -> list[str]:
    """After the TimescaleDB parts: each plain rollup's rows (<name>_mat) into its continuous aggregate.

    Buckets whose raw rows still exist are recomputed from them (refresh_continuous_aggregate over the
    raw rows' whole buckets, up to the last complete one); older buckets, whose raw rows retention already
    deleted, are copied from the plain rollup into the aggregate's materialization hypertable. Then the
    plain table is dropped. Runs once per upgrade (nothing to do when no <name>_mat table is left)."""
    adopted: list[str] = []
    if conn.execute("SELECT to_regproc('skylane_rollups')").fetchone()[0] is None:
        return adopted
    for name, width, raw, where in conn.execute("SELECT view_name, width, source, filter FROM skylane_rollups()"
                                                ).fetchall():
        if _relkind(conn, name + "_mat") != "r" or not _is_cagg(conn, name):
            continue
        mat = conn.execute(
            "SELECT format('%%I.%%I', h.schema_name, h.table_name) FROM _timescaledb_catalog.continuous_agg ca "
            "JOIN _timescaledb_catalog.hypertable h ON h.id = ca.mat_hypertable_id "
            "WHERE ca.user_view_schema = current_schema() AND ca.user_view_name = %s", (name,)).fetchone()[0]
        lo, hi = conn.execute(
            "SELECT date_bin(%s::interval, min(ts), TIMESTAMPTZ 'epoch'), "
            f"date_bin(%s::interval, now(), TIMESTAMPTZ 'epoch') FROM {raw} WHERE {where}", (width, width)).fetchone()
        cols = [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum", (name + "_mat",))]
        names = ", ".join(cols)
        with conn.transaction():
            conn.execute(f"INSERT INTO {mat} ({names}) SELECT {names} FROM {name}_mat "
                         "WHERE %s::timestamptz IS NULL OR bucket < %s", (lo, lo))
        # The watermark (below it the aggregate shows materialized buckets) becomes the newest bucket this
        # refresh materializes. Without raw rows there is nothing to refresh: the copied buckets show once the
        # refresh policy has materialized the first new bucket.
        if lo is not None and lo < hi:
            conn.execute(f"CALL refresh_continuous_aggregate('{name}', %s::timestamptz, %s::timestamptz)", (lo, hi))
        conn.execute(f"DROP TABLE {name}_mat")
        adopted.append(name)
    if adopted:
        log.warning("plain rollups adopted by their continuous aggregates: %s", ", ".join(adopted))
    return adopted


def storage_kind(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return TIMESCALE if row else POSTGRES
