"""The operations-center API: REST over the database, live feeds from the broker, the dashboard.

Routes live in api/routes_*.py (REST), api/feeds.py (WebSocket/SSE), api/replay_routes.py (replays)
and api/interuss.py (InterUSS geospatial_map v1 test interface); every route but /v1/health and the
dashboard's static files needs an API key (api/auth.py); /metrics also takes Prometheus's scrape token.
"""
from __future__ import annotations

import logging
import pathlib
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import (interuss, replay_routes, routes_alerts, routes_clearances, routes_events, routes_fleet, routes_reports,
               routes_traffic,
               routes_system, routes_zones)
from .auth import FORBIDDEN, UNAUTHORIZED, Authenticator
from .context import ApiConfig, ApiContext
from .control import ControlLink
from .feeds import feeds_router
from .live import DeviceDirectory, LiveHub
from .localize import Msg, lang_of, localized_http_exception
from .middleware import ApiMiddleware
from .models import Problem

__all__ = ["ApiConfig", "create_app"]
log = logging.getLogger("skylane.api")
STATIC = pathlib.Path(__file__).parent / "static"
AUTH_ERRORS = {401: UNAUTHORIZED, 403: FORBIDDEN}
UNAVAILABLE = {503: {"model": Problem, "description": "database (or broker) unavailable, try again shortly"}}
COMMON = {**UNAVAILABLE, 400: {"model": Problem, "description": "the body is not readable JSON"},
          413: {"model": Problem, "description": "request body too large (1 MiB; zone uploads 16 MiB)"}}


def create_app(config: ApiConfig) -> FastAPI:
    pool = ConnectionPool(config.database_url, min_size=1, max_size=config.pool_max_size, open=False, timeout=5,
                          kwargs={"connect_timeout": 5})
    hub = LiveHub(config.mqtt_url, config.mqtt_root, DeviceDirectory(pool.connection))
    control = ControlLink(config.mqtt_url, config.mqtt_root)
    ctx = ApiContext(config, pool, hub, control)
    replays = replay_routes.ReplayManager()
    desk = routes_clearances.DecisionDesk(config.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool.open(wait=False)
        hub.start()
        control.start()
        yield
        replays.stop_all()
        await app.state.auth.feeds.close()
        await hub.stop()
        control.stop()
        desk.close()
        pool.close()

    app = FastAPI(title="Skylane", version="0.2.0", lifespan=lifespan,
                  description="Pujiang-Wujing low-altitude operations: airspace, drones, urban sensors. "
                              "Send `Authorization: Bearer <API key>` (keys from `skylane keys create`); "
                              "/v1/health is open; /metrics takes the scrape token or an engineer's key.")
    app.state.ctx = ctx
    app.state.replays = replays
    app.state.clearance_desk = desk
    app.state.auth = Authenticator(pool.connection, config.key_cache_s)
    app.add_middleware(ApiMiddleware, max_body=config.max_body_bytes, max_upload=config.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(StarletteHTTPException, localized_http_exception)  # details in the caller's language

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def database_unavailable(request: Request, exc: Exception):
        log.warning("database unavailable for %s: %s", request.url.path, exc)
        return JSONResponse({"detail": Msg("api.db_unavailable").render(lang_of(request))}, status_code=503)

    for router in (routes_system.router, routes_zones.router, routes_fleet.router, routes_traffic.router, routes_events.router,
                   routes_clearances.router, interuss.router):
        app.include_router(router, responses=COMMON)
    # the responses every keyed route can give, documented where these routers are mounted
    app.include_router(feeds_router(hub, max_feeds_per_key=config.feed_max_per_key, max_feeds=config.feed_max_total,
                                    send_timeout_s=config.feed_send_timeout_s, keepalive_s=config.feed_keepalive_s),
                       responses={**AUTH_ERRORS, **COMMON})
    app.include_router(replay_routes.router, responses={
        **AUTH_ERRORS, **COMMON, 404: {"model": Problem, "description": "no such recording or replay"}})
    app.include_router(routes_reports.router, responses=COMMON)
    app.include_router(routes_alerts.router, responses=COMMON)
    ctx.db_metrics.register(routes_alerts.AlertFigures(pool.connection))  # skylane_db_alert_* in /metrics

    return app
