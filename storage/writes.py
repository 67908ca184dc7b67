"""Batched writes: one transaction per ingest batch, COPY for the bulk tables."""
from __future__ import annotations

import orjson
import psycopg
from psycopg.types.json import Jsonb

TELEMETRY_COLS = ("ts", "uav_id", "seq", "lon", "lat", "alt_m", "alt_ref", "speed_mps", "track_deg",
                  "vspeed_mps", "battery_pct", "status", "clearance_id", "received_at")
READING_COLS = ("ts", "sensor_id", "metric", "value", "vtext", "unit", "received_at")


def _copy(cur: psycopg.Cursor, table: str, cols: tuple[str, ...], rows) -> None:
    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def write_batch(conn: psycopg.Connection, out) -> None:
    """Store an ingest BatchOutput atomically: all of it or none (then the batch is retried, not acked)."""
    with conn.transaction(), conn.cursor() as cur:
        if out.telemetry:
            _copy(cur, "uav_telemetry", TELEMETRY_COLS,
                  ((r.ts, r.uav_id, r.seq, r.lon, r.lat, r.alt_m, r.alt_ref, r.speed_mps, r.track_deg, r.vspeed_mps,
                    r.battery_pct, r.status, r.clearance_id, r.received_at) for r in out.telemetry))
        if out.readings:
            _copy(cur, "sensor_readings", READING_COLS,
                  ((r.ts, r.sensor_id, r.metric, r.value, r.vtext, r.unit, r.received_at) for r in out.readings))
        if out.dead_letters:
            _copy(cur, "dead_letters", ("received_at", "topic", "payload", "reason"),
                  ((d.received_at, d.topic, d.payload, d.reason) for d in out.dead_letters))
        if out.events:
            cur.executemany(
                "INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id, detail) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(e.event.ts, e.id, e.event.kind, e.event.uav_id, e.event.zone_id, Jsonb(e.event.detail, dumps=_dumps))
                 for e in out.events])
        seen = _last_seen(out)
        if seen:
            cur.executemany(
                "INSERT INTO devices (device_id, kind, last_seen) VALUES (%s, %s, %s) ON CONFLICT (device_id) DO "
                "UPDATE SET last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen)", seen)
        if out.statuses:
            cur.executemany(
                "INSERT INTO devices (device_id, kind, online, status_at) VALUES (%s, 'unknown', %s, %s) "
                "ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online, status_at = CASE "
                "WHEN devices.online IS NOT DISTINCT FROM EXCLUDED.online THEN devices.status_at "
                "ELSE EXCLUDED.status_at END",  # a re-delivered retained status keeps its time
                [(s.device_id, s.online, s.at) for s in out.statuses])


def _last_seen(out) -> list[tuple]:
    latest: dict[tuple[str, str], object] = {}
    for kind, dev_id, at in [("uav", r.uav_id, r.received_at) for r in out.telemetry] + \
                            [("sensor", r.sensor_id, r.received_at) for r in out.readings]:
        key = (dev_id, kind)
        if key not in latest or at > latest[key]:
            latest[key] = at
    return [(dev_id, kind, at) for (dev_id, kind), at in latest.items()]


def _dumps(obj) -> str:
    return orjson.dumps(obj).decode()
