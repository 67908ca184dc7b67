"""Read queries behind the API; every one bounded by a time window and a row limit."""
from __future__ import annotations

import base64
from datetime import datetime

import psycopg
from psycopg.rows import dict_row


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def latest_states(conn: psycopg.Connection, since: datetime, limit: int = 5000) -> list[dict]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT DISTINCT ON (uav_id) uav_id, ts, seq, lon, lat, alt_m, alt_ref, speed_mps, track_deg, vspeed_mps, "
        "battery_pct, status, clearance_id FROM uav_telemetry WHERE ts >= %s ORDER BY uav_id, ts DESC LIMIT %s",
        (since, limit)).fetchall()
    return [{**r, "ts": _iso(r["ts"]), "zones": [], "alerts": []} for r in rows]


def track(conn: psycopg.Connection, uav_id: str, start: datetime, end: datetime, limit: int) -> list[dict]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT ts, seq, lon, lat, alt_m, alt_ref, speed_mps, track_deg, vspeed_mps, battery_pct, status, "
        "clearance_id FROM uav_telemetry WHERE uav_id = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s",
        (uav_id, start, end, limit)).fetchall()
    return [{**r, "ts": _iso(r["ts"])} for r in rows]


def events(conn: psycopg.Connection, start: datetime, end: datetime, kind: str | None, uav_id: str | None,
           limit: int) -> list[dict]:
    sql = ["SELECT id, kind, uav_id, zone_id, ts, detail FROM airspace_events WHERE ts >= %s AND ts < %s"]
    args: list = [start, end]
    if kind:
        sql.append("AND kind = %s")
        args.append(kind)
    if uav_id:
        sql.append("AND uav_id = %s")
        args.append(uav_id)
    sql.append("ORDER BY ts DESC, id LIMIT %s")
    args.append(limit)
    rows = conn.cursor(row_factory=dict_row).execute(" ".join(sql), args).fetchall()
    return [{**r, "id": str(r["id"]), "ts": _iso(r["ts"])} for r in rows]


def dead_letters(conn: psycopg.Connection, limit: int) -> list[dict]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT id, received_at, topic, reason, payload FROM dead_letters ORDER BY received_at DESC, id DESC "
        "LIMIT %s", (limit,)).fetchall()
    return [{"id": r["id"], "topic": r["topic"], "received_at": _iso(r["received_at"]), "reason": r["reason"],
             "payload": bytes(r["payload"]).decode("utf-8", "replace"),
             "payload_base64": base64.b64encode(bytes(r["payload"])).decode()} for r in rows]


def clearance(conn: psycopg.Connection, clearance_id: str) -> dict | None:
    row = conn.cursor(row_factory=dict_row).execute(
        "SELECT id, created_at, uav_id, decision, alt_ref, route, reasons FROM clearances WHERE id = %s",
        (clearance_id,)).fetchone()
    return None if row is None else {**row, "id": str(row["id"]), "created_at": _iso(row["created_at"])}
