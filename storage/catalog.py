"""Reference data: zones, clearances and the device registry."""
from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from protocol.times import rfc3339_or_none

from .queries import stored_upper


def upsert_zones(conn: psycopg.Connection, collection: dict) -> int:
    rows = []
    for f in collection["features"]:
        p = f["properties"]
        rows.append((p["id"], p["name"], p["kind"], p["lower_m"], stored_upper(p["upper_m"]), p.get("alt_ref", "AGL"),
                     Jsonb(f["geometry"]), Jsonb(p)))
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO zones (id, name, kind, lower_m, upper_m, alt_ref, geometry, properties) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, "
            "kind = EXCLUDED.kind, lower_m = EXCLUDED.lower_m, upper_m = EXCLUDED.upper_m, "
            "alt_ref = EXCLUDED.alt_ref, geometry = EXCLUDED.geometry, properties = EXCLUDED.properties, "
            "updated_at = now()", rows)
    return len(rows)


def zone_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM zones").fetchone()[0]


def load_zones(conn: psycopg.Connection) -> dict:
    """Active zones as a GeoJSON FeatureCollection (the shape of the zone file)."""
    rows = conn.execute("SELECT id, geometry, properties FROM zones WHERE active ORDER BY id").fetchall()
    return {"type": "FeatureCollection",
            "features": [{"type": "Feature", "id": zid, "geometry": geom, "properties": props}
                         for zid, geom, props in rows]}


def register_devices(conn: psycopg.Connection, devices: list[dict]) -> int:
    """Upsert registry entries: dicts of the DeviceRecord fields (devices.registry). Online state and
    first/last seen, which the ingester keeps, are left alone."""
    rows = [{"name": None, "owner": None, "sensor_kind": None, "lon": None, "lat": None, "expected_interval_s": None,
             "category": None, **d, "units": Jsonb(d.get("units") or {}), "metrics": Jsonb(list(d.get("metrics") or [])),
             "properties": Jsonb(d.get("properties") or {})} for d in devices]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO devices (device_id, kind, name, owner, sensor_kind, lon, lat, units, expected_interval_s, "
            "category, metrics, properties) VALUES (%(device_id)s, %(kind)s, %(name)s, %(owner)s, %(sensor_kind)s, "
            "%(lon)s, %(lat)s, %(units)s, %(expected_interval_s)s, %(category)s, %(metrics)s, %(properties)s) "
            "ON CONFLICT (device_id) DO UPDATE SET kind = EXCLUDED.kind, name = EXCLUDED.name, owner = EXCLUDED.owner, "
            "sensor_kind = EXCLUDED.sensor_kind, lon = EXCLUDED.lon, lat = EXCLUDED.lat, units = EXCLUDED.units, "
            "expected_interval_s = EXCLUDED.expected_interval_s, category = EXCLUDED.category, "
            "metrics = EXCLUDED.metrics, properties = EXCLUDED.properties", rows)
    return len(devices)


DEVICE_COLUMNS = ("device_id, kind, name, owner, sensor_kind, category, lon, lat, units, metrics, expected_interval_s, "
                  "properties, online, status_at, first_seen, last_seen")


def list_devices(conn: psycopg.Connection, kind: str | None, limit: int) -> list[dict]:
    rows = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {DEVICE_COLUMNS} FROM devices WHERE %(kind)s::text IS NULL OR kind = %(kind)s ORDER BY device_id "
        "LIMIT %(limit)s", {"kind": kind, "limit": limit}).fetchall()
    for r in rows:
        for key in ("status_at", "first_seen", "last_seen"):
            r[key] = rfc3339_or_none(r[key])
    return rows


def registry(conn: psycopg.Connection, kind: str | None = None) -> list[dict]:
    """Every registered device with the fields the ingester's sensor watch and the MQTT ACL generator need
    (devices that only ever appeared on the broker, kind 'unknown', are not registered and not included)."""
    return conn.cursor(row_factory=dict_row).execute(
        "SELECT device_id, kind, name, owner, sensor_kind, category, lon, lat, units, metrics, expected_interval_s, "
        "properties FROM devices WHERE kind <> 'unknown' AND (%(kind)s::text IS NULL OR kind = %(kind)s) "
        "ORDER BY device_id", {"kind": kind}).fetchall()

