"""The stored truth behind the control topics: the zone set's version, zone states, approved clearances.

Control messages on the broker only announce a change; what the ingesters apply is read here (the API and
the ingesters' own sensor rules write it first), so a forged or stale retained message cannot replace it.
"""
from __future__ import annotations

import uuid
from datetime import datetime

import psycopg

from protocol.times import rfc3339


def zone_set_version(conn: psycopg.Connection) -> int:
    """The zone set's version: the latest change to any stored zone (upload, edit, delete), epoch ms."""
    row = conn.execute("SELECT floor(extract(epoch FROM max(updated_at)) * 1000)::bigint FROM zones").fetchone()
    return int(row[0] or 0)


def zone_state(conn: psycopg.Connection, zone_id: str) -> dict | None:
    """The stored state of one zone as its control payload (what airspace.dynamic.ZoneState reads)."""
    row = conn.execute("SELECT state, reason, set_by, set_at, detail FROM zone_states WHERE zone_id = %s",
                       (zone_id,)).fetchone()
    if row is None:
        return None
    state, reason, by, at, detail = row
    return {**(detail or {}), "state": state, "reason": reason, "by": by, "at": rfc3339(at)}


def clearance_payload(conn: psycopg.Connection, clearance_id: str, uav_id: str,
                      now: datetime) -> tuple[str, dict | None] | None:
    """(decision, published payload or None when it is no longer in force) of a stored clearance of `uav_id`,
    or None when the store has no such clearance."""
    try:
        key = uuid.UUID(clearance_id)
    except ValueError:
        return None
    row = conn.execute("SELECT decision, result -> 'clearance', end_time FROM clearances WHERE id = %s AND uav_id = %s",
                       (key, uav_id)).fetchone()
    if row is None:
        return None
    decision, payload, end = row
    in_force = decision == "approved" and payload is not None and (end is None or end > now)
    return decision, payload if in_force else None


def newest_in_force(conn: psycopg.Connection, uav_id: str, now: datetime) -> dict | None:
    """The published payload of a UAV's newest approved clearance not yet ended, or None."""
    row = conn.execute(
        "SELECT result -> 'clearance' FROM clearances WHERE uav_id = %s AND decision = 'approved' "
        "AND result ? 'clearance' AND (end_time IS NULL OR end_time > %s) ORDER BY created_at DESC LIMIT 1",
        (uav_id, now)).fetchone()
    return None if row is None else row[0]


def clearances_in_force(conn: psycopg.Connection, now: datetime, approved_by: datetime | None = None) -> list[dict]:
    """The published payloads of every approved clearance not yet ended (what an ingester starts with);
    `approved_by`: only those approved by then (a replay from that instant)."""
    return [r[0] for r in conn.execute(
        "SELECT result -> 'clearance' FROM clearances WHERE decision = 'approved' AND result ? 'clearance' "
        "AND (end_time IS NULL OR end_time > %s) AND (%s::timestamptz IS NULL OR created_at <= %s) "
        "ORDER BY created_at", (now, approved_by, approved_by))]
