"""Wiring shared by the commands: database preparation, zones and the ingest pipeline."""
from __future__ import annotations

import json
import logging
import os

import psycopg

from airspace.zones import ZoneSet
from airspace.monitor import MonitorPolicy
from ingest.pipeline import Pipeline
from storage import catalog
from storage.schema import StorageError, migrate

from .settings import Settings

log = logging.getLogger("skylane")


def prepare_database(settings: Settings) -> str:
    """Migrate, seed the zones from the zone file when the store has none; return the storage kind."""
    try:
        kind = migrate(settings.database_url)
    except StorageError as exc:  # e.g. TimescaleDB in the database but not preloaded: the message says what to do
        raise SystemExit(f"skylane: {exc}") from None
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
    """The ingest pipeline from the stored truth as of now (ingest.stored: zones, registry, zone states and
    clearances), with the settings' policies and dialects, and the sensor watch restored from the stored sensor
    events, so a restart does not re-raise what was already raised."""
    from datetime import datetime, timezone

    from ingest.stored import read_stored, stored_pipeline
    from storage.sensor_events import sensor_state

    with psycopg.connect(settings.database_url) as conn:
        pipe = stored_pipeline(read_stored(conn, datetime.now(timezone.utc)), pipeline_config(settings),
                               settings.mqtt_root)
        pipe.sensor_watch.seed(*sensor_state(conn))
    log.info("airspace: %d active zones; %d sensors watched; clearance %s", len(pipe.monitor.zones),
             len(pipe.sensor_watch.registry), "required" if settings.require_clearance else "not required")
    return pipe


def pipeline_config(settings: Settings):
    """The settings' part of the pipeline (ingest.stored.PipelineConfig): live ingest, `--evaluate` and the API's
    evaluated replays (through ApiConfig) all use it."""
    from ingest.stored import PipelineConfig
    return PipelineConfig(policy=monitor_policy(settings), traffic=traffic_policy(settings),
                          dialects=tuple(settings.dialects), max_payload_bytes=settings.max_payload_bytes)


def make_ingester(settings: Settings, client_id: str | None = None, **options):
    """An Ingester as `skylane ingest` runs it: the stored truth loaded, control messages checked against the
    store, its own service account. `options`: more Ingester arguments (assignment, limits, ...)."""
    from ingest.consumer import Ingester
    from ingest.controls import ControlAuthority
    from storage.controls import zone_set_version

    with psycopg.connect(settings.database_url) as conn:
        version = zone_set_version(conn)
    pipeline = make_pipeline(settings)
    authority = ControlAuthority(settings.mqtt_root, lambda: psycopg.connect(settings.database_url, connect_timeout=5),
                                 zone_version=version)
    options.setdefault("max_payload_bytes", settings.max_payload_bytes)
    return Ingester(mqtt_url=settings.service_url("ingest"), database_url=settings.database_url, pipeline=pipeline,
                    client_id=client_id or settings.ingest_client_id, batch_size=settings.batch_size,
                    batch_ms=settings.batch_ms, controls=authority, **options)


def recording_context(settings: Settings, zones: bool = True) -> dict:
    """What a recording made now is made under: the monitor policy and (`zones`, when the store answers) the
    stored zone set's version. It goes into the record file's header; `--evaluate` compares."""
    from dataclasses import asdict

    import orjson

    from storage.controls import zone_set_version
    traffic = traffic_policy(settings)
    out: dict = {"policy": {**asdict(monitor_policy(settings)),
                            "separation": None if traffic is None else orjson.loads(orjson.dumps(asdict(traffic)))}}
    if zones:
        try:
            with psycopg.connect(settings.database_url, connect_timeout=3) as conn:
                out["zone_set_version"] = zone_set_version(conn)
        except psycopg.Error as exc:
            log.warning("recording without the zone set's version (the store did not answer: %s)", exc)
    return out


def context_differences(header, now: dict) -> list[str]:
    """Where an evaluation's policy differs from the one a recording was made under (one line each)."""
    if header is None or "policy" not in header.context:
        return []
    then = header.context["policy"]
    return [f"the recording was made with {key}={then.get(key)!r}; this evaluation uses {value!r} "
            f"(events may differ from the live ones for that reason)"
            for key, value in now["policy"].items() if then.get(key, value) != value]


def traffic_policy(settings: Settings):
    """The air picture's policy from the settings (None: off): live ingest, evaluation and replays use it."""
    from airspace.tactical import Minima
    from airspace.traffic_policy import TrafficPolicy
    if not settings.separation:
        return None
    return TrafficPolicy(drone_drone=Minima(*settings.drone_drone_m), drone_manned=Minima(*settings.drone_manned_m),
                         look_ahead_s=settings.look_ahead_s)


def monitor_policy(settings: Settings) -> MonitorPolicy:
    """The airspace monitor's policy from the settings: live ingest, evaluation and replays all use it."""
    return MonitorPolicy(require_clearance=settings.require_clearance)


def api_config(settings: Settings):
    """What the API process needs of the settings (the API never reads them itself): an ApiConfig."""
    from api.context import ApiConfig
    token = settings.metrics_token_file.read_text().strip() if settings.metrics_token_file else None
    return ApiConfig(settings.database_url, settings.service_url("api"), settings.mqtt_root, metrics_token=token,
                     traffic=traffic_policy(settings),
                     recordings_dir=settings.recordings_dir or settings.state_dir / "recordings",
                     require_clearance=settings.require_clearance, dialects=tuple(settings.dialects),
                     max_payload_bytes=settings.max_payload_bytes)


def register_devices(settings: Settings, records) -> int:
    """Enter devices in the registry; a project-local broker then gets their accounts at once, and running
    ingesters are told to reload the registry (announced on {root}/control/registry)."""
    with psycopg.connect(settings.database_url) as conn:
        n = catalog.register_devices(conn, [r.as_row() for r in records])
        registry = catalog.registry(conn)
    refresh_device_accounts(settings, registry)
    announce_registry(settings)
    return n


def announce_registry(settings: Settings) -> bool:
    """Tell running ingesters the registry changed; False (logged) when the broker cannot be reached now:
    they read it at their next start."""
    import orjson

    from protocol import topics
    from protocol.brokerauth import SERVICE_ACCOUNTS, AuthError
    from protocol.mqttclient import close_client, connect_client, publish_confirmed
    try:
        client = connect_client(settings.service_url("admin"), f"skylane-registry-{os.getpid()}", timeout=5)
    except (ConnectionError, AuthError, OSError) as exc:
        log.warning("registry stored; running ingesters not told (%s): they read it when they start", exc)
        return False
    try:
        publish_confirmed(client, topics.control_registry(settings.mqtt_root),
                          orjson.dumps({"issuer": SERVICE_ACCOUNTS["admin"]}), retain=False)
        return True
    except ConnectionError as exc:
        log.warning("registry stored; running ingesters not told (%s)", exc)
        return False
    finally:
        close_client(client)


def refresh_device_accounts(settings: Settings, registry) -> bool:
    """Rewrite the device listener's password and ACL files from the registry and make the project-local
    broker re-read them; False when the broker is not ours (then `skylane mqtt-auth generate` is the way)."""
    from . import localservices
    if not localservices.mosquitto_status(settings).ours:
        return False
    localservices.write_broker_auth(settings, registry)
    return localservices.reload_broker(settings)


def register_fleet(settings: Settings, drones, sensors, hz: float) -> None:
    from devices.registry import fleet_records
    n = register_devices(settings, fleet_records(drones, sensors, hz=hz))
    log.info("registered %d simulated devices", n)
