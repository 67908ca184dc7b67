"""History queries: events with keyset pagination and acks, sensor readings in time buckets.

Pagination is keyset on (ts, id) (newest first), so a page costs the same deep in history as at the
top and rows arriving meanwhile never shift or repeat a page. Buckets use TimescaleDB's `time_bucket`
where the extension is enabled and `date_bin` (PostgreSQL 14+) otherwise, the latter with
time_bucket's default origin (2000-01-03 00:00 UTC) so both give identical buckets.
"""
from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import orjson
import psycopg
from psycopg.rows import dict_row

from protocol.times import rfc3339_or_none

from .schema import TIMESCALE

BUCKET_ORIGIN = "2000-01-03T00:00:00Z"



class BadCursor(ValueError):
    """A cursor this API did not hand out (or that was altered)."""


def encode_cursor(ts: datetime, event_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([ts.isoformat(), event_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        ts, event_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        parsed = datetime.fromisoformat(ts), uuid.UUID(event_id)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise BadCursor("cursor is not one this API returned (pass next_cursor unchanged)") from exc
    if parsed[0].tzinfo is None:
        raise BadCursor("cursor is not one this API returned (pass next_cursor unchanged)")
    return parsed


def events_page(conn: psycopg.Connection, start: datetime, end: datetime, *, kind: str | None = None,
                uav_id: str | None = None, owner: str | None = None, cursor: str | None = None,
                limit: int = 100) -> dict:
    """{"items": [...], "next_cursor": str|None}; `owner` keeps only events of that owner's drones."""
    sql = ["SELECT e.id, e.kind, e.uav_id, e.zone_id, e.ts, e.detail, a.key_id AS ack_by, a.acked_at, a.note "
           "AS ack_note FROM airspace_events e LEFT JOIN event_acks a ON a.event_id = e.id "
           "WHERE e.ts >= %s AND e.ts < %s"]
    args: list = [start, end]
    if kind:
        sql.append("AND e.kind = %s")
        args.append(kind)
    if uav_id:
        sql.append("AND e.uav_id = %s")
        args.append(uav_id)
    if owner is not None:
        sql.append("AND e.uav_id IN (SELECT device_id FROM devices WHERE owner = %s)")
        args.append(owner)
    if cursor:
        ts, eid = decode_cursor(cursor)
        sql.append("AND (e.ts, e.id) < (%s, %s)")
        args += [ts, eid]
    sql.append("ORDER BY e.ts DESC, e.id DESC LIMIT %s")
    args.append(limit + 1)
    rows = conn.cursor(row_factory=dict_row).execute(" ".join(sql), args).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [_event(r) for r in rows]
    next_cursor = encode_cursor(rows[-1]["ts"], str(rows[-1]["id"])) if more else None
    return {"items": items, "next_cursor": next_cursor}


def _event(r: dict) -> dict:
    ack = None if r["ack_by"] is None else {"by": r["ack_by"], "at": rfc3339_or_none(r["acked_at"]), "note": r["ack_note"]}
    return {"id": str(r["id"]), "kind": r["kind"], "uav_id": r["uav_id"], "zone_id": r["zone_id"],
            "ts": rfc3339_or_none(r["ts"]), "detail": r["detail"], "ack": ack}


def event(conn: psycopg.Connection, event_id: uuid.UUID) -> dict | None:
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT e.id, e.kind, e.uav_id, e.zone_id, e.ts, e.detail, a.key_id AS ack_by, a.acked_at, "
        "a.note AS ack_note FROM airspace_events e LEFT JOIN event_acks a ON a.event_id = e.id "
        "WHERE e.id = %s ORDER BY e.ts DESC LIMIT 1", (event_id,)).fetchone()
    return None if row is None else _event(row)


def ack_event(conn: psycopg.Connection, event_id: uuid.UUID, key_id: str, role: str, owner: str | None,
              note: str | None) -> tuple[dict, bool]:
    """Record who acknowledged the event; (the ack, created). A second ack keeps the first one."""
    with conn.transaction():
        created = conn.execute(
            "INSERT INTO event_acks (event_id, key_id, role, owner, note) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (event_id) DO NOTHING", (event_id, key_id, role, owner, note)).rowcount == 1
    by, at, stored_note = conn.execute("SELECT key_id, acked_at, note FROM event_acks WHERE event_id = %s",
                                       (event_id,)).fetchone()
    return {"by": by, "at": rfc3339_or_none(at), "note": stored_note}, created


def readings(conn: psycopg.Connection, sensor_id: str, start: datetime, end: datetime, *, metric: str | None,
             bucket_s: int | None, storage: str, limit: int) -> list[dict]:
    """Raw readings (oldest first), or per (metric, bucket) avg/min/max/count when bucket_s is given."""
    if bucket_s is None:
        rows = conn.cursor(row_factory=dict_row).execute(
            "SELECT ts, metric, value, vtext, unit FROM sensor_readings WHERE sensor_id = %(s)s AND ts >= %(a)s "
            "AND ts < %(b)s AND (%(m)s::text IS NULL OR metric = %(m)s) ORDER BY ts, metric LIMIT %(n)s",
            {"s": sensor_id, "a": start, "b": end, "m": metric, "n": limit}).fetchall()
        return [{**r, "ts": rfc3339_or_none(r["ts"])} for r in rows]
    bucket = ("time_bucket(make_interval(secs => %(w)s), ts)" if storage == TIMESCALE  # origin: 2000-01-03
              else "date_bin(make_interval(secs => %(w)s), ts, %(o)s::timestamptz)")
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {bucket} AS bucket, metric, avg(value) AS avg, min(value) AS min, max(value) AS max, "
        "count(*) AS n, max(unit) AS unit FROM sensor_readings WHERE sensor_id = %(s)s AND ts >= %(a)s "
        "AND ts < %(b)s AND (%(m)s::text IS NULL OR metric = %(m)s) GROUP BY bucket, metric "
        "ORDER BY bucket, metric LIMIT %(n)s",
        {"w": bucket_s, "o": BUCKET_ORIGIN, "s": sensor_id, "a": start, "b": end, "m": metric, "n": limit}
    ).fetchall()
    return [{**r, "bucket": rfc3339_or_none(r["bucket"])} for r in rows]


def latest_readings(conn: psycopg.Connection, since: datetime, limit: int = 5000) -> list[dict]:
    """Latest value of every (sensor, metric) since `since`, grouped per sensor with its registry entry."""
    rows = conn.execute(
        "SELECT DISTINCT ON (r.sensor_id, r.metric) r.sensor_id, r.metric, r.ts, r.value, r.vtext, r.unit "
        "FROM sensor_readings r WHERE r.ts >= %s ORDER BY r.sensor_id, r.metric, r.ts DESC LIMIT %s",
        (since, limit)).fetchall()
    out: dict[str, dict] = {}
    for sensor_id, metric, ts, value, vtext, unit in rows:
        s = out.setdefault(sensor_id, {"sensor_id": sensor_id, "ts": rfc3339_or_none(ts), "values": {}, "units": {}})
        s["values"][metric] = value if value is not None else vtext
        if unit:
            s["units"][metric] = unit
        s["ts"] = max(s["ts"], rfc3339_or_none(ts))
    return list(out.values())
