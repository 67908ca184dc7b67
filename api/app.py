"""The operations-center API: REST over the database, live feeds from the broker, the dashboard."""
from __future__ import annotations

import logging
import pathlib
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

import orjson
import psycopg
from fastapi import FastAPI, HTTPException, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import BaseModel, Field

from airspace.clearance import Waypoint, check_route
from protocol import topics
from airspace.zones import ZoneSet
from storage import catalog, queries
from storage.schema import storage_kind

from .live import LiveHub, Subscriber

log = logging.getLogger("skylane.api")
STATIC = pathlib.Path(__file__).parent / "static"
DeviceId = Annotated[str, Path(pattern=f"^{topics.ID_PATTERN}$")]
IdFilter = Annotated[str | None, Query(pattern=f"^{topics.ID_PATTERN}$")]
KindFilter = Annotated[str | None, Query(pattern="^[a-z_]{1,40}$")]
MAX_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class ApiConfig:
    database_url: str
    mqtt_host: str
    mqtt_port: int
    mqtt_root: str
    zone_cache_s: float = 5.0


class WaypointIn(BaseModel):
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    alt_m: float = Field(ge=-500, le=10000, allow_inf_nan=False)


class ClearanceRequest(BaseModel):
    uav_id: str | None = Field(default=None, pattern=f"^{topics.ID_PATTERN}$")
    alt_ref: Literal["AGL", "AMSL", "WGS84"] = "AGL"
    waypoints: list[WaypointIn] = Field(min_length=2, max_length=200)


class ClearanceResponse(BaseModel):
    decision: Literal["approved", "denied"]
    reasons: list[dict]
    clearance_id: str


class _Zones:
    """The active zones from the database, rebuilt at most every few seconds."""

    def __init__(self, pool: ConnectionPool, ttl: float):
        self.pool, self.ttl = pool, ttl
        self._at, self._set, self._geojson = 0.0, None, None
        self._lock = threading.Lock()

    def get(self) -> tuple[ZoneSet, dict]:
        with self._lock:
            if self._set is None or time.monotonic() - self._at > self.ttl:
                with self.pool.connection() as conn:
                    self._geojson = catalog.load_zones(conn)
                self._set = ZoneSet.from_geojson(self._geojson)
                self._at = time.monotonic()
            return self._set, self._geojson


def _window(start: datetime | None, end: datetime | None, default: timedelta) -> tuple[datetime, datetime]:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} needs a UTC offset, e.g. 2026-11-27T08:00:00Z")
    end = end or datetime.now(timezone.utc)
    try:
        start = start or end - default
    except OverflowError:
        raise HTTPException(422, "end is too early") from None
    if start >= end:
        raise HTTPException(422, "start must be before end")
    if end - start > MAX_WINDOW:
        raise HTTPException(422, f"window longer than {MAX_WINDOW.days} days")
    return start, end


def create_app(config: ApiConfig) -> FastAPI:
    pool = ConnectionPool(config.database_url, min_size=1, max_size=8, open=False, timeout=5,
                          kwargs={"connect_timeout": 5})
    hub = LiveHub(config.mqtt_host, config.mqtt_port, config.mqtt_root)
    zones = _Zones(pool, config.zone_cache_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool.open(wait=False)
        hub.start()
        yield
        await hub.stop()
        pool.close()

    app = FastAPI(title="Skylane", version="0.1.0", lifespan=lifespan,
                  description="Pujiang-Wujing low-altitude operations: airspace, drones, urban sensors.")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def database_unavailable(request: Request, exc: Exception):
        log.warning("database unavailable for %s: %s", request.url.path, exc)
        return JSONResponse({"detail": "database unavailable, try again shortly"}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    def metrics():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def dashboard():
        return FileResponse(STATIC / "index.html")

    @app.get("/v1/health")
    def health():
        try:
            with pool.connection(timeout=3) as conn:
                db = storage_kind(conn)
        except Exception as exc:  # psycopg errors and the pool's timeout alike
            log.warning("health: database unavailable: %s", exc)
            db = "unavailable"
        mqtt = "connected" if hub.connected else "disconnected"
        ok = db != "unavailable" and hub.connected
        body = {"status": "ok" if ok else "degraded", "database": db, "mqtt": mqtt}
        if not ok:
            return JSONResponse(body, status_code=503)
        return body

    @app.get("/v1/zones")
    def get_zones():
        return zones.get()[1]

    @app.get("/v1/uavs")
    def get_uavs():
        if hub.uavs:
            return sorted(hub.uavs.values(), key=lambda s: s["uav_id"])
        with pool.connection() as conn:
            return queries.latest_states(conn, datetime.now(timezone.utc) - timedelta(hours=1))

    @app.get("/v1/uavs/{uav_id}/track")
    def get_track(uav_id: DeviceId, start: datetime | None = None, end: datetime | None = None,
                  limit: Annotated[int, Query(ge=1, le=100000)] = 10000):
        start, end = _window(start, end, timedelta(hours=1))
        with pool.connection() as conn:
            return {"uav_id": uav_id, "start": start.isoformat(), "end": end.isoformat(),
                    "points": queries.track(conn, uav_id, start, end, limit)}

    @app.get("/v1/events")
    def get_events(start: datetime | None = None, end: datetime | None = None,
                   kind: KindFilter = None, uav_id: IdFilter = None,
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        start, end = _window(start, end or datetime.now(timezone.utc) + timedelta(minutes=5), timedelta(days=1))
        with pool.connection() as conn:
            return queries.events(conn, start, end, kind, uav_id, limit)

    @app.get("/v1/devices")
    def get_devices(kind: Literal["uav", "sensor", "unknown"] | None = None,
                    limit: Annotated[int, Query(ge=1, le=10000)] = 1000):
        with pool.connection() as conn:
            return catalog.list_devices(conn, kind, limit)

    @app.get("/v1/dead-letters")
    def get_dead_letters(limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        with pool.connection() as conn:
            return queries.dead_letters(conn, limit)

    @app.post("/v1/clearances", response_model=ClearanceResponse)
    def post_clearance(req: ClearanceRequest):
        zone_set, _ = zones.get()
        try:
            result = check_route(zone_set, [Waypoint(w.lon, w.lat, w.alt_m) for w in req.waypoints], req.alt_ref)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        cid = uuid.uuid4()
        with pool.connection() as conn:
            catalog.insert_clearance(conn, cid, req.uav_id, result.decision, req.alt_ref,
                                     [w.model_dump() for w in req.waypoints], result.reasons)
        return ClearanceResponse(decision=result.decision, reasons=result.reasons, clearance_id=str(cid))

    @app.get("/v1/clearances/{clearance_id}")
    def get_clearance(clearance_id: uuid.UUID):
        with pool.connection() as conn:
            found = queries.clearance(conn, str(clearance_id))
        if found is None:
            raise HTTPException(404, "no such clearance")
        return found

    @app.websocket("/v1/live")
    async def live(ws: WebSocket):
        q = ws.query_params
        try:
            bbox = tuple(float(v) for v in q["bbox"].split(",")) if q.get("bbox") else None
            if bbox is not None and len(bbox) != 4:
                raise ValueError
        except ValueError:
            await ws.close(code=1008, reason="bbox must be minlon,minlat,maxlon,maxlat")
            return
        sub = Subscriber(uav_ids=frozenset(q.getlist("uav_id")), kinds=frozenset(q.getlist("kind")), bbox=bbox)
        await ws.accept()
        hub.subscribe(sub)
        try:
            while True:
                await sub.wake.wait()
                if sub.overflow:
                    await ws.close(code=1013, reason="client too slow for the alert stream")
                    return
                for msg in sub.drain():
                    await ws.send_text(orjson.dumps(msg).decode())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.unsubscribe(sub)

    return app

