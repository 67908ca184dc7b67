"""Read queries behind the API; every one bounded by a time window and a row limit."""
from __future__ import annotations

import base64
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from protocol.times import rfc3339_or_none



def latest_states(conn: psycopg.Connection, since: datetime, limit: int = 5000) -> list[dict]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT DISTINCT ON (uav_id) uav_id, ts, seq, lon, lat, alt_m, alt_ref, speed_mps, track_deg, vspeed_mps, "
        "battery_pct, status, clearance_id FROM uav_telemetry WHERE ts >= %s ORDER BY uav_id, ts DESC LIMIT %s",
        (since, limit)).fetchall()
    return [{**r, "ts": rfc3339_or_none(r["ts"]), "zones": [], "alerts": []} for r in rows]


def track(conn: psycopg.Connection, uav_id: str, start: datetime, end: datetime, limit: int) -> list[dict]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT ts, seq, lon, lat, alt_m, alt_ref, speed_mps, track_deg, vspeed_mps, battery_pct, status, "
        "clearance_id FROM uav_telemetry WHERE uav_id = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s",
        (uav_id, start, end, limit)).fetchall()
    return [{**r, "ts": rfc3339_or_none(r["ts"])} for r in rows]


def dead_letters(conn: psycopg.Connection, limit: int) -> list[dict]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT id, received_at, topic, reason, payload FROM dead_letters ORDER BY received_at DESC, id DESC "
        "LIMIT %s", (limit,)).fetchall()
    return [{"id": r["id"], "topic": r["topic"], "received_at": rfc3339_or_none(r["received_at"]), "reason": r["reason"],
             "payload": bytes(r["payload"]).decode("utf-8", "replace"),
             "payload_base64": base64.b64encode(bytes(r["payload"])).decode()} for r in rows]


def store_zones(conn: psycopg.Connection, collection: dict, replace: bool = False) -> dict:
    """Upsert zones (re-activating deleted ones); with `replace`, deactivate every zone not in `collection`.

    {"stored": n, "deactivated": [ids]}: one transaction, so ingest never sees half an upload.
    """
    rows = [(p["id"], p.get("name", p["id"]), p["kind"], p["lower_m"], stored_upper(p["upper_m"]), p.get("alt_ref", "AGL"),
             Jsonb(f["geometry"]), Jsonb(p)) for f in collection["features"] for p in [f["properties"]]]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO zones (id, name, kind, lower_m, upper_m, alt_ref, geometry, properties, active) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
            "kind = EXCLUDED.kind, lower_m = EXCLUDED.lower_m, upper_m = EXCLUDED.upper_m, "
            "alt_ref = EXCLUDED.alt_ref, geometry = EXCLUDED.geometry, properties = EXCLUDED.properties, "
            "active = true, updated_at = now()", rows)
        gone: list[str] = []
        if replace:
            gone = [r[0] for r in cur.execute(
                "UPDATE zones SET active = false, updated_at = now() WHERE active AND NOT (id = ANY(%s)) "
                "RETURNING id", ([r[0] for r in rows],))]
    return {"stored": len(rows), "deactivated": sorted(gone)}


def deactivate_zone(conn: psycopg.Connection, zone_id: str) -> bool:
    with conn.transaction():
        return conn.execute("UPDATE zones SET active = false, updated_at = now() WHERE id = %s AND active",
                            (zone_id,)).rowcount == 1


def zone_exists(conn: psycopg.Connection, zone_id: str) -> bool:
    return conn.execute("SELECT 1 FROM zones WHERE id = %s AND active", (zone_id,)).fetchone() is not None


def zone_states(conn: psycopg.Connection) -> dict[str, dict]:
    """Stored zone states, as the control message body (`by`, `at`, as docs/mqtt-contract.md gives them)."""
    rows = conn.execute("SELECT zone_id, state, reason, set_by, set_at, detail FROM zone_states").fetchall()
    return {z: {**(detail or {}), "state": st, "reason": reason, "by": by, "at": rfc3339_or_none(at)}
            for z, st, reason, by, at, detail in rows}


def set_zone_state(conn: psycopg.Connection, zone_id: str, state: str, reason: str, by: str) -> dict:
    with conn.transaction():
        at = conn.execute(
            "INSERT INTO zone_states (zone_id, state, reason, set_by) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (zone_id) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason, "
            "set_by = EXCLUDED.set_by, set_at = now(), detail = '{}' RETURNING set_at",
            (zone_id, state, reason, by)).fetchone()[0]
    return {"state": state, "reason": reason, "by": by, "at": rfc3339_or_none(at)}


def _jsonable(row: dict) -> dict:
    return {k: rfc3339_or_none(v) if isinstance(v, datetime) else v for k, v in row.items()}


def devices(conn: psycopg.Connection, kind: str | None, owner: str | None, limit: int) -> list[dict]:
    """Registry rows (every column, so registry additions show), optionally one owner's only."""
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM devices WHERE (%(k)s::text IS NULL OR kind = %(k)s) AND (%(o)s::text IS NULL OR owner = %(o)s) "
        "ORDER BY device_id LIMIT %(n)s", {"k": kind, "o": owner, "n": limit}).fetchall()
    return [_jsonable(r) for r in rows]


def device(conn: psycopg.Connection, device_id: str) -> dict | None:
    row = conn.cursor(row_factory=dict_row).execute("SELECT * FROM devices WHERE device_id = %s",
                                                    (device_id,)).fetchone()
    return None if row is None else _jsonable(row)


def stored_upper(value: float | None) -> float:
    """A null upper limit (ED-269/ED-318: unlimited) is stored as Infinity; the properties keep the null."""
    return float("inf") if value is None else value
