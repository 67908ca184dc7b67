"""Sensor events (ingest.sensor_watch.SensorEvent) into the sensor_events table, and back out for the API.

Ids are deterministic, so a re-delivered or replayed batch inserts nothing twice (ON CONFLICT DO NOTHING).
The insert takes the batch's cursor so events commit atomically with the readings that caused them.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from protocol.times import rfc3339

COLUMNS = ("ts", "id", "kind", "sensor_id", "rule_id", "metric", "value", "detail")


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def insert_sensor_events(cur: psycopg.Cursor, events: list[Any]) -> None:
    """Insert within the caller's transaction (storage.writes.write_batch passes its cursor)."""
    if not events:
        return
    cur.executemany(
        f"INSERT INTO sensor_events ({', '.join(COLUMNS)}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        [(e.ts, e.id, e.kind, e.sensor_id, e.rule_id, e.metric, e.value, Jsonb(e.detail, dumps=_dumps))
         for e in events])


def write_sensor_events(conn: psycopg.Connection, events: list[Any]) -> None:
    """Insert in a transaction of their own."""
    with conn.transaction(), conn.cursor() as cur:
        insert_sensor_events(cur, events)


def list_sensor_events(conn: psycopg.Connection, *, sensor_id: str | None = None, kind: str | None = None,
                       start: datetime | None = None, end: datetime | None = None, limit: int = 1000) -> list[dict]:
    """Newest first."""
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {', '.join(COLUMNS)} FROM sensor_events WHERE (%(sid)s::text IS NULL OR sensor_id = %(sid)s) "
        "AND (%(kind)s::text IS NULL OR kind = %(kind)s) AND (%(start)s::timestamptz IS NULL OR ts >= %(start)s) "
        "AND (%(end)s::timestamptz IS NULL OR ts < %(end)s) ORDER BY ts DESC, id LIMIT %(limit)s",
        {"sid": sensor_id, "kind": kind, "start": start, "end": end, "limit": limit}).fetchall()
    for r in rows:
        r["id"] = str(r["id"])
        r["ts"] = rfc3339(r["ts"])
    return rows


def sensor_state(conn: psycopg.Connection) -> tuple[dict[str, datetime], dict[str, bool], set[tuple[str, str]]]:
    """What SensorWatch.seed needs after a restart: when each sensor was last heard (the registry's last_seen,
    kept by every batch: one row per device, where max(ts) over the readings would scan them all), online
    state per device, and the (rule, sensor) pairs whose latest threshold event is a raise."""
    last = dict(conn.execute("SELECT device_id, last_seen FROM devices WHERE kind <> 'uav' "
                             "AND last_seen IS NOT NULL").fetchall())
    online = dict(conn.execute("SELECT device_id, online FROM devices WHERE online IS NOT NULL").fetchall())
    active = {(rule, sid) for rule, sid, kind in conn.execute(
        "SELECT DISTINCT ON (rule_id, sensor_id) rule_id, sensor_id, kind FROM sensor_events "
        "WHERE kind IN ('sensor_threshold', 'sensor_threshold_cleared') ORDER BY rule_id, sensor_id, ts DESC")
        if kind == "sensor_threshold"}
    return last, online, active
