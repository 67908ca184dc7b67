"""Clearances as decided: route, time window, decision, reasons and suggestions, who asked.

Decisions: `approved`, `denied`, `cancelled` (an approved one, by its operator or an admin) and `superseded`
(an approved one replaced by a later approval of the same drone overlapping it in time: `superseded_by`).
A drone's clearance in force is its newest approved one that has not ended: what the airspace monitor holds
it to (storage.controls.clearances_in_force).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from protocol.times import rfc3339_or_none

_COLUMNS = ("id, created_at, uav_id, owner, requested_by, decision, alt_ref, route, start_time, end_time, "
            "ua_class, reasons, suggestions, superseded_by")


@dataclass
class Clearance:
    id: uuid.UUID
    uav_id: str | None
    owner: str | None
    requested_by: str
    decision: str
    alt_ref: str
    route: list[dict]
    start_time: datetime | None
    end_time: datetime | None
    ua_class: str | None = None
    reasons: list[dict] = field(default_factory=list)
    suggestions: list = field(default_factory=list)
    result: dict = field(default_factory=dict)


def _row(r: dict) -> dict:
    return {**r, "id": str(r["id"]), "created_at": rfc3339_or_none(r["created_at"]),
            "start_time": rfc3339_or_none(r["start_time"]), "end_time": rfc3339_or_none(r["end_time"]),
            "superseded_by": None if r["superseded_by"] is None else str(r["superseded_by"])}


def insert(conn: psycopg.Connection, c: Clearance) -> dict:
    with conn.transaction():
        row = conn.cursor(row_factory=dict_row).execute(
            f"INSERT INTO clearances (id, uav_id, owner, requested_by, decision, alt_ref, route, start_time, "
            f"end_time, ua_class, reasons, suggestions, result) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (c.id, c.uav_id, c.owner, c.requested_by, c.decision, c.alt_ref, Jsonb(c.route), c.start_time,
             c.end_time, c.ua_class, Jsonb(c.reasons), Jsonb(c.suggestions), Jsonb(c.result))).fetchone()
    return _row(row)


def get(conn: psycopg.Connection, clearance_id: uuid.UUID) -> dict | None:
    row = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_COLUMNS} FROM clearances WHERE id = %s", (clearance_id,)).fetchone()
    return None if row is None else _row(row)


def list_page(conn: psycopg.Connection, *, owner: str | None = None, uav_id: str | None = None,
              decision: str | None = None, before: datetime | None = None, limit: int = 100) -> list[dict]:
    """Newest first; `owner` keeps only that owner's clearances (operators)."""
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_COLUMNS} FROM clearances WHERE (%(o)s::text IS NULL OR owner = %(o)s) "
        "AND (%(u)s::text IS NULL OR uav_id = %(u)s) AND (%(d)s::text IS NULL OR decision = %(d)s) "
        "AND (%(b)s::timestamptz IS NULL OR created_at < %(b)s) ORDER BY created_at DESC, id DESC LIMIT %(n)s",
        {"o": owner, "u": uav_id, "d": decision, "b": before, "n": limit}).fetchall()
    return [_row(r) for r in rows]


class TooManyApproved(RuntimeError):
    """More approved clearances overlap than one decision reads: deconflicting against a part would be unsafe."""


def approved_overlapping(conn: psycopg.Connection, start: datetime, end: datetime,
                         exclude_uav: str | None = None, limit: int = 5000) -> list[dict]:
    """The published payloads (result->'clearance') of approved clearances whose window overlaps
    [start, end): what a new route is deconflicted against. A UAV's own earlier clearances are left out
    when `exclude_uav` names it (the new one replaces them). TooManyApproved when more than `limit` do."""
    rows = conn.execute(
        "SELECT result -> 'clearance' FROM clearances WHERE decision = 'approved' AND end_time > %(a)s "
        "AND start_time < %(b)s AND result ? 'clearance' AND (%(x)s::text IS NULL OR uav_id IS DISTINCT FROM %(x)s) "
        "ORDER BY start_time LIMIT %(n)s", {"a": start, "b": end, "x": exclude_uav, "n": limit + 1}).fetchall()
    if len(rows) > limit:
        raise TooManyApproved(f"more than {limit} approved clearances overlap this flight's window")
    return [r[0] for r in rows]


def supersede(conn: psycopg.Connection, new_id: uuid.UUID, uav_id: str, start: datetime, end: datetime) -> list[str]:
    """Mark the drone's approved clearances overlapping [start, end) superseded by its new approval `new_id`
    (the monitor holds a drone to one clearance at a time: the latest); their ids."""
    rows = conn.execute(
        "UPDATE clearances SET decision = 'superseded', superseded_by = %(n)s WHERE uav_id = %(u)s "
        "AND decision = 'approved' AND id <> %(n)s AND start_time < %(b)s AND end_time > %(a)s RETURNING id",
        {"n": new_id, "u": uav_id, "a": start, "b": end}).fetchall()
    return [str(r[0]) for r in rows]


def open_approved(conn: psycopg.Connection, owner: str, now: datetime, uav_id: str | None = None,
                  start: datetime | None = None, end: datetime | None = None) -> tuple[int, int]:
    """(the owner's approved clearances not ended at `now`, how many of them are `uav_id`'s overlapping
    [start, end), i.e. would be superseded by an approval of that drone for that window)."""
    n, replaced = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE uav_id = %(u)s AND start_time < %(b)s AND end_time > %(a)s) "
        "FROM clearances WHERE owner = %(o)s AND decision = 'approved' AND end_time > %(t)s",
        {"o": owner, "t": now, "u": uav_id, "a": start, "b": end}).fetchone()
    return n, replaced


def cancel(conn: psycopg.Connection, clearance_id: uuid.UUID) -> tuple[dict, bool] | None:
    """Mark an approved clearance cancelled: (the record, whether it was its UAV's newest approved one, so
    the retained announcement is to be withdrawn); None when it is not an approved clearance."""
    with conn.transaction():
        row = conn.cursor(row_factory=dict_row).execute(
            f"UPDATE clearances SET decision = 'cancelled' WHERE id = %s AND decision = 'approved' "
            f"RETURNING {_COLUMNS}", (clearance_id,)).fetchone()
        if row is None:
            return None
        newer = conn.execute("SELECT 1 FROM clearances WHERE uav_id = %s AND decision = 'approved' "
                             "AND created_at > %s LIMIT 1", (row["uav_id"], row["created_at"])).fetchone()
    return _row(row), newer is None
