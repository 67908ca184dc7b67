"""Wiring shared by the commands: database preparation, zones and the ingest pipeline."""
from __future__ import annotations

import json
import logging

import psycopg

from airspace.zones import ZoneSet
from ingest.pipeline import Pipeline
from storage import catalog
from storage.schema import migrate

from .settings import Settings

log = logging.getLogger("skylane")


def prepare_database(settings: Settings) -> str:
    """Migrate, seed the zones from the zone file when the store has none; return the storage kind."""
    try:
        kind = migrate(settings.database_url)
    except psycopg.OperationalError as exc:
        raise SystemExit(f"cannot reach the database at {settings.database.host}:{settings.database.port} "
                         f"({exc}). Start the local services with `skylane services up`, or set "
                         f"SKYLANE_DATABASE_URL.") from None
    with psycopg.connect(settings.database_url) as conn:
        if catalog.zone_count(conn) == 0:
            n = catalog.upsert_zones(conn, read_zone_file(settings))
            log.info("seeded %d zones from %s", n, settings.zone_file)
    return kind


def read_zone_file(settings: Settings) -> dict:
    doc = json.loads(settings.zone_file.read_text())
    ZoneSet.from_geojson(doc)  # refuse a bad file before it reaches the store
    return doc


def make_pipeline(settings: Settings) -> Pipeline:
    """The ingest pipeline with the stored zones, the sensor registry's watch (restored from the stored
    sensor events, so a restart does not re-raise what was already raised) and the monitor policy."""
    from airspace.monitor import MonitorPolicy
    from ingest.sensor_watch import SensorWatch, load_rules, sensor_infos
    from storage.sensor_events import sensor_state

    with psycopg.connect(settings.database_url) as conn:
        zones = ZoneSet.from_geojson(catalog.load_zones(conn))
        watch = SensorWatch(sensor_infos(catalog.registry(conn)), load_rules())
        watch.seed(*sensor_state(conn))
    log.info("airspace: %d active zones; %d sensors watched; clearance %s", len(zones), len(watch.registry), "required" if settings.require_clearance else "not required")
    pipe = Pipeline(zones, settings.mqtt_root, settings.max_payload_bytes,
                    policy=MonitorPolicy(require_clearance=settings.require_clearance), sensor_watch=watch)
    pipe.monitor.prepare()  # build the zone indexes now rather than on the first batch
    return pipe


def api_config(settings: Settings):
    """What the API process needs of the settings (the API never reads them itself): an ApiConfig."""
    from api.context import ApiConfig
    host, port = settings.mqtt_host_port
    return ApiConfig(settings.database_url, host, port, settings.mqtt_root,
                     recordings_dir=settings.recordings_dir or settings.state_dir / "recordings",
                     require_clearance=settings.require_clearance)


def register_devices(settings: Settings, records) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return catalog.register_devices(conn, [r.as_row() for r in records])


def register_fleet(settings: Settings, drones, sensors, hz: float) -> None:
    from devices.registry import fleet_records
    n = register_devices(settings, fleet_records(drones, sensors, hz=hz))
    log.info("registered %d simulated devices", n)
