"""The evaluation pipeline from the stored truth: the one construction live ingest, `skylane replay --evaluate`
and the API's evaluated replays share, so the same messages give the same decisions on every path.

What a deployment's settings say about the pipeline (`PipelineConfig`: the monitor and traffic policies, the
enabled input dialects, the payload limit) comes from the composition root (skylane/wiring.py; the API through
its ApiConfig). What the store says (`StoredTruth`: the zone set, the device registry behind the dialects' and
the air picture's identifiers, zone states and approved clearances) is read here, as of an instant: a starting
ingester reads it as of now; a replay as of the recording's start, so decisions the recording itself makes
again (a sensor rule's suspension, a clearance approved during it) are not applied before their time.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from airspace.monitor import MonitorPolicy
from airspace.traffic_policy import TrafficPolicy
from airspace.zones import ZoneSet
from protocol.times import parse_rfc3339
from storage import catalog, controls, queries

from . import dialects
from .pipeline import Pipeline, build_pipeline
from .sensor_watch import sensor_infos


@dataclass(frozen=True)
class PipelineConfig:
    """The settings' part of the pipeline: the same for live ingest, evaluation and replays."""
    policy: MonitorPolicy = MonitorPolicy()
    traffic: TrafficPolicy | None = TrafficPolicy()
    dialects: tuple[str, ...] = ()  # enabled input dialects (ingest/dialects), or "all"
    max_payload_bytes: int = 65536


@dataclass(frozen=True)
class StoredTruth:
    """The store's part: what an ingester starts from."""
    zones: Mapping | None = None  # the stored zone set (a GeoJSON FeatureCollection); None: no store
    registry: list[dict] = field(default_factory=list)  # storage.catalog.registry rows
    zone_states: dict[str, dict] = field(default_factory=dict)  # zone id -> control payload
    clearances: list[dict] = field(default_factory=list)  # approved clearances' published payloads


def read_stored(conn: psycopg.Connection, at: datetime, *, starting_now: bool = True) -> StoredTruth:
    """The stored truth as of `at`. `starting_now` (a starting ingester, `at` the wall clock): every stored zone
    state and every clearance not ended by then. Otherwise (a replay from `at`): only zone states set at or before
    `at`, and clearances approved by then and not ended."""
    states = queries.zone_states(conn)
    if not starting_now:
        states = {z: s for z, s in states.items() if s.get("at") and parse_rfc3339(s["at"]) <= at}
    return StoredTruth(catalog.load_zones(conn), catalog.registry(conn), states,
                       controls.clearances_in_force(conn, at, approved_by=None if starting_now else at))


def stored_pipeline(truth: StoredTruth, config: PipelineConfig, root: str, zones: ZoneSet | None = None) -> Pipeline:
    """The pipeline as live ingest builds it (ingest.pipeline.build_pipeline) with the config's policies and
    dialects, the registry's view and sensors, restored to the stored zone states and clearances. `zones`: another
    airspace instead of the stored one (`--zones`, or the zone file when there is no store: `StoredTruth()`)."""
    if zones is None and truth.zones is None:
        raise ValueError("no zones: neither a stored zone set nor a zone file")
    zone_set = zones if zones is not None else ZoneSet.from_geojson(dict(truth.zones or {}))
    pipe = build_pipeline(zone_set, root, policy=config.policy, traffic=config.traffic,
                          sensors=sensor_infos(truth.registry), max_payload_bytes=config.max_payload_bytes,
                          dialects=dialects.enabled(config.dialects),
                          registry=dialects.RegistryView.from_registry(truth.registry))
    pipe.restore(truth.zone_states, truth.clearances)
    return pipe

