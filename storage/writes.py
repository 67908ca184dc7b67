"""Batched, idempotent writes: one transaction per ingest batch.

QoS 1 is at-least-once and the ingester acknowledges only after commit, so a crash or a lost connection
re-delivers messages that may already be stored. The unique keys of migration 0003 ((uav_id, ts, seq), or
(uav_id, ts) without seq, for fixes; (sensor_id, metric, ts) for readings) refuse a second copy. Bulk rows
are binary-COPied straight into their table; a batch that hits a key is instead COPied into a per-connection
temporary staging table and moved with INSERT ... ON CONFLICT DO NOTHING: COPY's speed in the usual case,
without COPY's failure on a duplicate.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import orjson
import psycopg
from psycopg.types.json import Jsonb

TELEMETRY_COLS = ("ts", "uav_id", "seq", "lon", "lat", "alt_m", "alt_ref", "speed_mps", "track_deg",
                  "vspeed_mps", "battery_pct", "status", "clearance_id", "received_at")
TELEMETRY_TYPES = ("timestamptz", "text", "int8", "float8", "float8", "float4", "text", "float4", "float4",
                   "float4", "float4", "text", "text", "timestamptz")
READING_COLS = ("ts", "sensor_id", "metric", "value", "vtext", "unit", "received_at")
READING_TYPES = ("timestamptz", "text", "text", "float8", "text", "text", "timestamptz")
DEAD_LETTER_COLS = ("received_at", "topic", "payload", "reason")
DEAD_LETTER_TYPES = ("timestamptz", "text", "bytea", "text")
STAGES = {"uav_telemetry": "skylane_stage_telemetry", "sensor_readings": "skylane_stage_readings"}

_staged: weakref.WeakSet = weakref.WeakSet()  # connections whose session already has the staging tables


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Rows new to the database; the rest of the batch were re-deliveries (duplicates) of stored rows."""

    telemetry: int = 0
    readings: int = 0


def _copy(cur: psycopg.Cursor, table: str, cols: tuple[str, ...], types: tuple[str, ...], rows) -> None:
    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _ensure_stages(conn: psycopg.Connection, cur: psycopg.Cursor) -> None:
    if conn in _staged:
        return
    for table, stage in STAGES.items():
        # no indexes, no WAL; emptied at every commit (and on rollback with the transaction)
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    _staged.add(conn)


def _insert_new(conn: psycopg.Connection, cur: psycopg.Cursor, table: str, cols: tuple[str, ...],
                types: tuple[str, ...], make_rows) -> int:
    """Rows not stored yet; returns how many were new.

    Re-deliveries are rare (a crash, a lost connection), so first a plain COPY into the table, in a
    savepoint; only when a unique key refuses it, the batch goes through the staging table with ON CONFLICT
    DO NOTHING (twice the database work, but only for that batch)."""
    try:
        with conn.transaction():
            _copy(cur, table, cols, types, make_rows())
        return cur.rowcount
    except psycopg.errors.UniqueViolation:
        pass
    _ensure_stages(conn, cur)
    stage = STAGES[table]
    _copy(cur, stage, cols, types, make_rows())
    names = ", ".join(cols)
    cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ON CONFLICT DO NOTHING")
    return cur.rowcount


def write_batch(conn: psycopg.Connection, out) -> WriteResult:
    """Store an ingest BatchOutput atomically: all of it or none (then the batch is retried, not acked).

    Returns how many telemetry and reading rows were new (the others were already stored).
    """
    new_tel = new_read = 0
    with conn.transaction(), conn.cursor() as cur:
        if out.telemetry:
            new_tel = _insert_new(
                conn, cur, "uav_telemetry", TELEMETRY_COLS, TELEMETRY_TYPES,
                lambda: ((r.ts, r.uav_id, r.seq, r.lon, r.lat, r.alt_m, r.alt_ref, r.speed_mps, r.track_deg,
                          r.vspeed_mps, r.battery_pct, r.status, r.clearance_id, r.received_at) for r in out.telemetry))
        if out.readings:
            new_read = _insert_new(
                conn, cur, "sensor_readings", READING_COLS, READING_TYPES,
                lambda: ((r.ts, r.sensor_id, r.metric, r.value, r.vtext, r.unit, r.received_at) for r in out.readings))
        if out.dead_letters:
            _copy(cur, "dead_letters", DEAD_LETTER_COLS, DEAD_LETTER_TYPES,
                  ((d.received_at, d.topic, d.payload, d.reason) for d in out.dead_letters))
        if out.events:
            cur.executemany(
                "INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id, detail) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(e.event.ts, e.id, e.event.kind, e.event.uav_id, e.event.zone_id, Jsonb(e.event.detail, dumps=_dumps))
                 for e in out.events])
        if out.sensor_events:  # ingest.sensor_watch events
            from .sensor_events import insert_sensor_events
            insert_sensor_events(cur, out.sensor_events)
        seen = _last_seen(out)
        if seen:
            ids, kinds, ats = zip(*seen)
            cur.execute(  # one statement for the whole batch (executemany costs a round trip per device)
                "INSERT INTO devices (device_id, kind, last_seen) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) "
                "ON CONFLICT (device_id) DO UPDATE SET last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen)",
                (list(ids), list(kinds), list(ats)))
        if out.statuses:
            cur.executemany(
                "INSERT INTO devices (device_id, kind, online, status_at) VALUES (%s, 'unknown', %s, %s) "
                "ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online, status_at = CASE "
                "WHEN devices.online IS NOT DISTINCT FROM EXCLUDED.online THEN devices.status_at "
                "ELSE EXCLUDED.status_at END",  # a re-delivered retained status keeps its time
                [(s.device_id, s.online, s.at) for s in out.statuses])
    return WriteResult(new_tel, new_read)


def _last_seen(out) -> list[tuple]:
    """(device_id, kind, latest received_at) per device of the batch, sorted by id: one row per device (an
    upsert may touch a row once per statement) and a stable lock order between concurrent workers."""
    latest: dict[str, tuple[str, object]] = {}
    for kind, rows, attr in (("uav", out.telemetry, "uav_id"), ("sensor", out.readings, "sensor_id")):
        for r in rows:
            dev_id = getattr(r, attr)
            seen = latest.get(dev_id)
            if seen is None or r.received_at > seen[1]:
                latest[dev_id] = (seen[0] if seen else kind, r.received_at)
    return [(dev_id, kind, at) for dev_id, (kind, at) in sorted(latest.items())]


def _dumps(obj) -> str:
    return orjson.dumps(obj).decode()
