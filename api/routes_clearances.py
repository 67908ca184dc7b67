"""Clearances: operators submit routes for their drones; the decision is stored in full and, when
approved, announced retained on `{root}/control/clearance/{uav_id}` for the airspace monitor.

The route is checked (airspace.clearance.check_route) against the zones with their current states and
deconflicted against the approved clearances whose time windows overlap, as stored in the database.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from airspace import clearance as route_check
from airspace.separation import ApprovedClearance
from protocol import topics
from storage import clearances

from .auth import FORBIDDEN, ROLES, UNAUTHORIZED, Principal, require
from .context import ApiContext, Ctx, IdFilter, ZoneView
from .control import ControlUnavailable
from .models import DEFAULT_SPEED_MPS, Clearance, ClearanceRequest, ClearanceResponse, Problem

log = logging.getLogger("skylane.api.clearances")
router = APIRouter(tags=["clearances"])
ERRORS = {401: UNAUTHORIZED, 422: {"model": Problem}}
NOT_FOUND = {404: {"model": Problem, "description": "unknown, or not one of the operator's clearances"}}
MAX_DURATION = timedelta(hours=24)
MAX_AHEAD = timedelta(days=30)
DECISION_LOCK = 0x736B_7963_6C72  # pg_advisory_xact_lock key of clearance decisions ("skyclr")


def _aware(value: datetime | None, name: str) -> None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(422, f"{name} needs a UTC offset, e.g. 2026-11-27T08:00:00Z")


def _plan_window(req: ClearanceRequest, now: datetime) -> tuple[datetime, datetime]:
    """An upper bound of the flight's time window, before the route is checked (for deconfliction)."""
    _aware(req.departure, "departure")
    for k, w in enumerate(req.waypoints):
        _aware(w.t, f"waypoint {k}: t")
    first = req.waypoints[0].t or req.departure or now
    if first < now - timedelta(hours=1) or first > now + MAX_AHEAD:
        raise HTTPException(422, f"the flight must start after now - 1 h and within {MAX_AHEAD.days} days")
    for k, w in enumerate(req.waypoints):  # before the route check, which works in epoch seconds
        if w.t is not None and not first <= w.t <= first + MAX_DURATION:
            hours = f"{MAX_DURATION.total_seconds() / 3600:g} h"
            raise HTTPException(422, f"waypoint {k}: t is not within {hours} after the first waypoint "
                                     f"(a clearance covers at most {hours} of flight)")
    return first, first + MAX_DURATION


def _check(view: ZoneView, req: ClearanceRequest, now: datetime, approved: list[dict]):
    """The route check against the zones (with their current states) and the approved clearances."""
    waypoints = [route_check.Waypoint(w.lon, w.lat, w.alt_m, w.t) for w in req.waypoints]
    timed = all(w.t is not None for w in req.waypoints)
    others = []
    for payload in approved:
        try:
            others.append(ApprovedClearance.from_dict(payload))
        except ValueError as exc:  # a stored payload from an older format: skip it, say so
            log.warning("approved clearance not usable for deconfliction: %s", exc)
    return route_check.check_route(
        view.zones, waypoints, req.alt_ref,
        departure=None if timed else (req.departure or now),
        speed_mps=None if timed else (req.speed_mps or DEFAULT_SPEED_MPS),
        uav_id=req.uav_id, ua_class=req.ua_class, approved=others, zone_states=view.states)


def _decide(ctx: ApiContext, who: Principal, req: ClearanceRequest) -> dict:
    now = datetime.now(timezone.utc)
    start, horizon = _plan_window(req, now)
    owner = who.owner if who.is_operator else None
    if req.uav_id is not None:
        dev_owner = ctx.owner_of(req.uav_id)
        if who.is_operator and dev_owner != who.owner:
            raise HTTPException(403, f"{req.uav_id!r} is not one of your drones")
        owner = dev_owner or owner
    elif who.is_operator:
        raise HTTPException(422, "uav_id is required for operators (one of your drones)")
    view = ctx.zones()  # before taking the lock: it may need a connection of its own
    # read the approved clearances, check, store: one decision at a time (across API processes too), or two
    # conflicting requests could both pass between the read and the write
    with ctx.pool.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (DECISION_LOCK,))
        try:
            approved = clearances.approved_overlapping(conn, start, horizon, exclude_uav=req.uav_id)
        except clearances.TooManyApproved as exc:
            raise HTTPException(503, f"cannot deconflict now: {exc}; try again later") from None
        try:
            result = _check(view, req, now, approved)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        t0, t1 = result.route[0]["epoch"], result.route[-1]["epoch"]
        if t1 - t0 > MAX_DURATION.total_seconds():
            raise HTTPException(422, f"a clearance covers at most {MAX_DURATION.total_seconds() / 3600:g} h "
                                     f"of flight")
        cid = uuid.uuid4()
        stored_result = result.to_dict()
        payload = None
        if result.approved and req.uav_id is not None:
            payload = result.clearance(str(cid), req.uav_id).to_dict()
            stored_result["clearance"] = payload
        record = clearances.Clearance(
            id=cid, uav_id=req.uav_id, owner=owner, requested_by=who.key_id, decision=result.decision,
            alt_ref=req.alt_ref, route=result.route, start_time=_dt(t0), end_time=_dt(t1), ua_class=req.ua_class,
            reasons=result.reasons, suggestions=result.suggestions, result=stored_result)
        stored = clearances.insert(conn, record)
    if payload is not None:
        try:
            ctx.control.publish(topics.control_clearance(ctx.config.mqtt_root, req.uav_id), payload)
        except ControlUnavailable as exc:
            raise HTTPException(503, f"clearance {stored['id']} stored, but not announced to the airspace monitor "
                                     f"({exc}); submit again") from None
    return {"decision": stored["decision"], "reasons": for_caller(ctx, who, result.reasons),
            "suggestions": result.suggestions,
            "clearance_id": stored["id"], "uav_id": req.uav_id, "start_time": stored["start_time"],
            "end_time": stored["end_time"], "route": result.route, "zones": result.zones,
            "published": payload is not None}


def for_caller(ctx: ApiContext, who: Principal, reasons: list[dict]) -> list[dict]:
    """Reasons as the caller may see them: an operator learns that a flight of another operator conflicts,
    where and when, but not whose drone or clearance it is (operators see their own only)."""
    if not who.is_operator:
        return reasons
    own = ctx.owned_uavs(who.owner or "")
    out = []
    for r in reasons:
        c = r.get("conflict")
        if isinstance(c, dict) and c.get("uav_id") not in own:
            msg = str(r.get("message", "")).replace(
                f"clearance {c.get('clearance_id')} (UAV {c.get('uav_id')})", "another operator's approved flight")
            for hidden in (c.get("clearance_id"), c.get("uav_id")):
                if hidden:
                    msg = msg.replace(str(hidden), "(another operator's)")
            r = {**r, "conflict": {**c, "clearance_id": None, "uav_id": None}, "message": msg}
        out.append(r)
    return out


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


@router.post("/v1/clearances", response_model=ClearanceResponse,
             responses={**ERRORS, 403: FORBIDDEN, 503: {"model": Problem}})
async def post_clearance(ctx: Ctx, who: Annotated[Principal, Depends(require("operator"))], req: ClearanceRequest):
    """Check a 4D route (2-200 waypoints, timed by `t` per waypoint or by departure and speed; at most 24 h of
    flight) against the zones in force and the approved clearances; store the decision (operators, admins).
    Approved clearances of a drone are announced retained for the airspace monitor."""
    return await run_in_threadpool(_decide, ctx, who, req)


@router.get("/v1/clearances", response_model=list[Clearance], responses=ERRORS)
def list_clearances(ctx: Ctx, who: Annotated[Principal, Depends(require(*ROLES))], uav_id: IdFilter = None,
                    decision: Literal["approved", "denied"] | None = None, before: datetime | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Newest first (page with `before` = the last item's created_at); operators see their own only."""
    if before is not None and before.tzinfo is None:
        raise HTTPException(422, "before needs a UTC offset")
    with ctx.pool.connection() as conn:
        page = clearances.list_page(conn, owner=(who.owner or "") if who.is_operator else None, uav_id=uav_id,
                                    decision=decision, before=before, limit=limit)
    return [{**c, "reasons": for_caller(ctx, who, c["reasons"])} for c in page]


@router.get("/v1/clearances/{clearance_id}", response_model=Clearance, responses={**ERRORS, **NOT_FOUND})
def get_clearance(ctx: Ctx, who: Annotated[Principal, Depends(require(*ROLES))], clearance_id: uuid.UUID):
    with ctx.pool.connection() as conn:
        found = clearances.get(conn, clearance_id)
    if found is None or (who.is_operator and found["owner"] != who.owner):
        raise HTTPException(404, "no such clearance" + (" of yours" if who.is_operator else ""))
    return {**found, "reasons": for_caller(ctx, who, found["reasons"])}


@router.delete("/v1/clearances/{clearance_id}", response_model=Clearance,
               responses={**ERRORS, 403: FORBIDDEN, **NOT_FOUND, 503: {"model": Problem},
                          409: {"model": Problem, "description": "not an approved clearance"}})
def cancel_clearance(ctx: Ctx, who: Annotated[Principal, Depends(require("operator"))], clearance_id: uuid.UUID):
    """Cancel an approved clearance (operators: their own); the drone's announcement is withdrawn when it was
    its newest, so the monitor no longer holds the flight to it."""
    get_clearance(ctx, who, clearance_id)
    with ctx.pool.connection() as conn, conn.transaction():  # withdrawn first, then committed: safe to repeat
        done = clearances.cancel(conn, clearance_id)
        if done is None:
            raise HTTPException(409, "only an approved clearance can be cancelled")
        record, newest = done
        if newest and record["uav_id"]:
            try:
                ctx.control.publish(topics.control_clearance(ctx.config.mqtt_root, record["uav_id"]), None)
            except ControlUnavailable as exc:
                raise HTTPException(503, f"not cancelled: the withdrawal did not reach the broker ({exc})") from None
    return record
