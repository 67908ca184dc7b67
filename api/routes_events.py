"""Airspace events: filtered history with keyset pagination, and acknowledgement by whom and when."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Query

from storage import history

from .auth import FORBIDDEN, ROLES, UNAUTHORIZED, Principal, require
from .context import Ctx, IdFilter, KindFilter, window
from .localize import Lang, Msg, describe, describe_events
from .models import AckIn, AckResult, Event, EventPage, Problem
from .subscribers import own_flights_only

router = APIRouter(tags=["events"])
ERRORS = {401: UNAUTHORIZED, 422: {"model": Problem}}
NOT_FOUND = {404: {"model": Problem, "description": "unknown event, or not about one of the operator's drones"}}
MAX_PAGE = 1000


@router.get("/v1/events", response_model=EventPage, responses=ERRORS)
def get_events(ctx: Ctx, who: Annotated[Principal, Depends(require(*ROLES))], lang: Lang,
               start: datetime | None = None, end: datetime | None = None,
               kind: KindFilter = None, uav_id: IdFilter = None,
               limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
               cursor: Annotated[str | None, Query(max_length=200, pattern="^[A-Za-z0-9_-]+$")] = None):
    """Newest first in [start, end) (default: the last day; at most 7 days). Follow `next_cursor` for older
    pages. Operators get only events of their own drones, naming only their drones among the flights listed
    (`detail.flights` of a zone suspension)."""
    start, end = window(start, end or datetime.now(timezone.utc) + timedelta(minutes=5), timedelta(days=1))
    with ctx.pool.connection() as conn:
        try:
            page = history.events_page(conn, start, end, kind=kind, uav_id=uav_id, cursor=cursor, limit=limit,
                                       owner=(who.owner or "") if who.is_operator else None)
        except history.BadCursor as exc:
            raise HTTPException(422, Msg("api.invalid_request", detail=str(exc))) from None
    if who.is_operator:
        own = ctx.owned_uavs(who.owner or "")
        page["items"] = [own_flights_only(e, own.__contains__) for e in page["items"]]
    page["items"] = describe_events(page["items"], lang)
    return page


@router.get("/v1/events/{event_id}", response_model=Event, responses={**ERRORS, **NOT_FOUND})
def get_event(ctx: Ctx, who: Annotated[Principal, Depends(require(*ROLES))], event_id: uuid.UUID, lang: Lang = "en"):
    """One event; an operator's own drones' events only, naming only their drones among the flights listed."""
    with ctx.pool.connection() as conn:
        found = history.event(conn, event_id)
    if not who.is_operator:
        if found is None:
            raise HTTPException(404, Msg("api.event.not_found"))
        return describe(found, lang)
    own = ctx.owned_uavs(who.owner or "")
    if found is None or found["uav_id"] not in own:
        raise HTTPException(404, Msg("api.event.not_yours"))
    return describe(own_flights_only(found, own.__contains__), lang)


@router.post("/v1/events/{event_id}/ack", response_model=AckResult,
             responses={**ERRORS, 403: FORBIDDEN, **NOT_FOUND})
def ack_event(ctx: Ctx, who: Annotated[Principal, Depends(require("operator", "engineer"))], event_id: uuid.UUID,
              body: Annotated[AckIn | None, Body()] = None):
    """Acknowledge an alert (operators: their drones' only); the first acknowledgement is kept."""
    get_event(ctx, who, event_id)
    with ctx.pool.connection() as conn:
        ack, created = history.ack_event(conn, event_id, who.key_id, who.role, who.owner, body.note if body else None)
    return {"event_id": str(event_id), "ack": ack, "created": created}
