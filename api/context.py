"""What every route needs: config, the database pool, the live hub, caches, the control publisher.

One ApiContext per app (`app.state.ctx`); routes get it with the `Ctx` dependency. Caches are small
and time-bounded (a few seconds) so several API processes agree quickly without talking to each other.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path as FilePath
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, HTTPException, Path, Query
from prometheus_client.registry import CollectorRegistry
from psycopg_pool import ConnectionPool
from starlette.requests import HTTPConnection

from airspace.monitor import MonitorPolicy
from airspace.traffic_policy import TrafficPolicy
from airspace.zones import ZoneSet
from ingest import dialects
from ingest.stored import PipelineConfig
from protocol import topics
from storage import catalog, queries

from . import dbmetrics
from .control import ControlLink
from .live import LiveHub
from .localize import Msg, remember_zone_names

DeviceId = Annotated[str, Path(pattern=f"^{topics.ID_PATTERN}$", description="a device id")]
IdFilter = Annotated[str | None, Query(pattern=f"^{topics.ID_PATTERN}$")]
KindFilter = Annotated[str | None, Query(pattern="^[a-z_]{1,40}$")]
MAX_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class ApiConfig:
    database_url: str
    mqtt_url: str  # the service listener, with this API's account (mqtt://user:password@host:port)
    mqtt_root: str
    zone_cache_s: float = 5.0
    key_cache_s: float = 5.0
    max_body_bytes: int = 1 << 20  # every request body except zone uploads
    max_upload_bytes: int = 16 << 20  # zone uploads (ED-269/ED-318 files can be large)
    recordings_dir: FilePath | None = None  # the recordings engineers may replay (None: none)
    require_clearance: bool = True  # the monitor policy of evaluated replays, as live ingest runs it
    traffic: TrafficPolicy | None = TrafficPolicy()  # the air picture's policy of evaluated replays (None: off)
    dialects: tuple[str, ...] = ()  # the input dialects live ingest speaks (SKYLANE_DIALECTS): evaluated replays too
    max_payload_bytes: int = 65536  # ingest's payload limit, for evaluated replays
    pool_max_size: int = 8  # database connections of this process
    feed_max_per_key: int = 100  # open live feeds per API key (this process)
    feed_max_total: int = 2000  # open live feeds in all (this process)
    feed_send_timeout_s: float = 10.0  # a feed client whose write takes longer is dropped
    feed_keepalive_s: float = 15.0  # an idle event stream gets a comment line this often
    clearance_max_open: int = 50  # approved, not yet ended clearances per operator (drone owner)
    metrics_token: str | None = None  # a bearer token Prometheus may scrape /metrics with (else an engineer key)

    def __post_init__(self) -> None:
        dialects.enabled(self.dialects)  # an unknown name fails at start, not at the first evaluated replay
        if self.metrics_token is not None and len(self.metrics_token) < 32:
            raise ValueError("metrics_token must be at least 32 characters (e.g. `openssl rand -hex 32`)")

    def pipeline_config(self) -> PipelineConfig:
        """Evaluated replays' part of the settings, as live ingest runs with it (ingest.stored)."""
        return PipelineConfig(policy=MonitorPolicy(require_clearance=self.require_clearance), traffic=self.traffic,
                              dialects=self.dialects, max_payload_bytes=self.max_payload_bytes)


class TtlValue:
    """A value recomputed at most every `ttl` seconds (thread-safe); `invalidate()` forces it."""

    def __init__(self, ttl: float, compute: Callable[[], Any]):
        self.ttl, self.compute = ttl, compute
        self._at, self._value, self._fresh = 0.0, None, False
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if not self._fresh or time.monotonic() - self._at > self.ttl:
                self._value = self.compute()
                self._at, self._fresh = time.monotonic(), True
            return self._value

    def invalidate(self) -> None:
        with self._lock:
            self._fresh = False


@dataclass
class ZoneView:
    """The active zones with their current state (DB suspensions merged with retained control messages)."""

    zones: ZoneSet
    geojson: dict  # the stored FeatureCollection
    states: dict[str, dict]  # zone id -> {"state", "reason", "by", "at", ...} for zones not plainly active

    def state_of(self, zone_id: str, now: float) -> str:
        """suspended, inactive (outside its schedule) or active: ZoneSet.in_force at `now` with the states."""
        j = self.zones.position(zone_id)
        if self.zones.suspended(self.states)[j]:
            return "suspended"
        return "active" if self.zones.in_force(np.array([now]), self.states, zones=np.array([j]))[0] else "inactive"

    def usable(self, now: float) -> ZoneSet:
        """The zones that constrain flights now: suspended ones dropped (schedules stay with the zones)."""
        suspended = self.zones.suspended(self.states)
        if not suspended.any():
            return self.zones
        return ZoneSet([z for z, off in zip(self.zones, suspended.tolist()) if not off], self.zones.vertical,
                       self.zones.meta)


@dataclass
class ApiContext:
    config: ApiConfig
    pool: ConnectionPool
    hub: LiveHub
    control: ControlLink
    zone_view: TtlValue = field(init=False)
    db_metrics: CollectorRegistry = field(init=False)
    _owned: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.zone_view = TtlValue(self.config.zone_cache_s, self._load_zones)
        self.db_metrics = dbmetrics.registry(self.pool.connection)

    def _load_zones(self) -> ZoneView:
        with self.pool.connection() as conn:
            geojson = catalog.load_zones(conn)
            stored = queries.zone_states(conn)
        remember_zone_names(geojson)  # Chinese zone names for texts (api.localize)
        return ZoneView(ZoneSet.from_geojson(geojson), geojson, stored)

    def zones(self) -> ZoneView:
        return self.zone_view.get()

    def owned_uavs(self, owner: str) -> frozenset[str]:
        """The drones an operator owns (devices.owner), cached for a few seconds."""
        now = time.monotonic()
        hit = self._owned.get(owner)
        if hit and now - hit[0] < self.config.zone_cache_s:
            return hit[1]
        with self.pool.connection() as conn:
            ids = frozenset(r[0] for r in conn.execute(
                "SELECT device_id FROM devices WHERE owner = %s AND kind = 'uav'", (owner,)))
        if len(self._owned) > 1000:
            self._owned.clear()
        self._owned[owner] = (now, ids)
        return ids

    def owner_of(self, device_id: str) -> str | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT owner FROM devices WHERE device_id = %s", (device_id,)).fetchone()
        return row[0] if row else None


def get_ctx(conn: HTTPConnection) -> ApiContext:
    return conn.app.state.ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


def window(start: datetime | None, end: datetime | None, default: timedelta,
           max_window: timedelta = MAX_WINDOW) -> tuple[datetime, datetime]:
    """A bounded [start, end) window; 422 naming the parameter when it is unusable."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, Msg("api.needs_offset", name=name))
    end = end or datetime.now(timezone.utc)
    try:
        start = start or end - default
    except OverflowError:
        raise HTTPException(422, Msg("api.window.end_too_early")) from None
    if start >= end:
        raise HTTPException(422, Msg("api.window.start_after_end"))
    if end - start > max_window:
        raise HTTPException(422, Msg("api.window.too_long", days=max_window.days))
    return start, end
