"""Health, who-am-I, Prometheus metrics, dead letters and the dashboard page.

/v1/health and the dashboard's static files are open (load balancers probe health without a key, and it says
only whether the database and broker links work; the dashboard asks for a key itself). /metrics needs the
scrape token (ApiConfig.metrics_token) or an engineer's or admin's key; everything else needs a key.
"""
from __future__ import annotations

import logging
import pathlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from storage import queries

from .auth import FORBIDDEN, ROLES, UNAUTHORIZED, Principal, metrics_reader, require
from .context import Ctx, get_ctx
from .models import DeadLetter, Health, Me, Problem

log = logging.getLogger("skylane.api")
STATIC = pathlib.Path(__file__).parent / "static"
router = APIRouter()
AUTH_ERRORS = {401: UNAUTHORIZED, 403: FORBIDDEN}


@router.get("/metrics", include_in_schema=False,
            dependencies=[Depends(metrics_reader(lambda conn: get_ctx(conn).config.metrics_token))])
def metrics(ctx: Ctx):
    """Process metrics (requests, feeds) and the database's figures, for Prometheus (its bearer token) and
    engineers."""
    return Response(generate_latest() + generate_latest(ctx.db_metrics), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
def dashboard():
    return FileResponse(STATIC / "index.html")


@router.get("/v1/health", response_model=Health, tags=["system"],
            responses={503: {"model": Health, "description": "database or broker unavailable"}})
def health(ctx: Ctx):
    """Open (no key): whether this process reaches the database and the broker (live feed and control
    publisher); nothing about what runs underneath."""
    try:
        with ctx.pool.connection(timeout=3) as conn:
            conn.execute("SELECT 1")
        db = "ok"
    except Exception as exc:  # psycopg errors and the pool's timeout alike
        log.warning("health: database unavailable: %s", exc)
        db = "unavailable"
    linked = ctx.hub.connected and ctx.control.connected  # feeds in, control messages out
    mqtt = "connected" if linked else "disconnected"
    ok = db != "unavailable" and linked
    body = {"status": "ok" if ok else "degraded", "database": db, "mqtt": mqtt}
    return body if ok else JSONResponse(body, status_code=503)


@router.get("/v1/me", response_model=Me, tags=["auth"], responses={401: UNAUTHORIZED})
def me(who: Annotated[Principal, Depends(require(*ROLES))]):
    """The caller's key id, role and owner (what the dashboard shows after login)."""
    return who.as_dict()


@router.get("/v1/dead-letters", response_model=list[DeadLetter], tags=["system"],
            responses={**AUTH_ERRORS, 422: {"model": Problem}})
def dead_letters(ctx: Ctx, _: Annotated[Principal, Depends(require("engineer"))],
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Refused device messages with the reason (engineers)."""
    with ctx.pool.connection() as conn:
        return queries.dead_letters(conn, limit)
