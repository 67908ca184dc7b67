"""Clearances: operators submit routes for their drones; the decision is stored in full and, when
approved, announced retained on `{root}/control/clearance/{uav_id}` for the airspace monitor.

The route is checked (airspace.clearance.check_route) against the zones with their current states and
deconflicted against the approved clearances whose time windows overlap, as stored in the database. An
approval supersedes the drone's earlier approvals that overlap it (the monitor holds a drone to its latest);
an operator (drone owner) holds at most `ApiConfig.clearance_max_open` approvals that have not ended.

Decisions are made one at a time (DecisionDesk): queued in this process without a thread or a database
connection, then under a database advisory lock (one decision at a time across API processes) taken on the
desk's own connection, never a pooled one, so a burst of decisions cannot starve the rest of the API.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal, TypeVar

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from airspace import clearance as route_check
from airspace.separation import ApprovedClearance
from protocol import topics
from storage import clearances
from storage.controls import clearances_in_force

from .auth import FORBIDDEN, ROLES, UNAUTHORIZED, Principal, require
from .context import ApiContext, Ctx, IdFilter, ZoneView
from .control import ControlUnavailable
from .localize import Lang, Msg, localize_clearance
from .models import DEFAULT_SPEED_MPS, Clearance, ClearanceRequest, ClearanceResponse, Problem
from .route_upload import OPENAPI, RouteParams, clearance_request

log = logging.getLogger("skylane.api.clearances")
router = APIRouter(tags=["clearances"])
ERRORS = {401: UNAUTHORIZED, 422: {"model": Problem}}
NOT_FOUND = {404: {"model": Problem, "description": "unknown, or not one of the operator's clearances"}}
BUSY = {503: {"model": Problem, "description": "decisions queued or the broker unavailable; try again shortly"}}
MAX_DURATION = timedelta(hours=24)
MAX_AHEAD = timedelta(days=30)
DECISION_LOCK = 0x736B_7963_6C72  # pg_advisory_xact_lock key of clearance decisions ("skyclr")
T = TypeVar("T")


class DecisionDesk:
    """Clearance decisions (and cancellations), one at a time.

    In this process an asyncio lock queues them: a waiting decision holds no thread and no database
    connection. The decision then runs in a worker thread on the desk's own connection (never a pooled one)
    in a transaction that first takes the advisory lock DECISION_LOCK, so decisions of several API processes
    are serialised too; waiting for another process's decision is bounded by `lock_timeout_s`. At most
    `max_queued` decisions wait in this process; more are refused (503) rather than queued without bound.
    """

    def __init__(self, database_url: str, max_queued: int = 64, lock_timeout_s: float = 15.0):
        self.database_url, self.max_queued, self.lock_timeout_s = database_url, max_queued, lock_timeout_s
        self.queued = 0
        self._queue: asyncio.Lock | None = None  # made on the serving loop, at first use
        self._conn: psycopg.Connection | None = None
        self._conn_lock = threading.Lock()  # the connection is used by one thread at a time, whatever happens

    async def run(self, decide: Callable[[psycopg.Connection], T], then: Callable[[T], None] | None = None) -> T:
        """`decide(conn)` in a transaction holding the decision lock; then, once committed and still in turn,
        `then(result)` (announcing in decision order)."""
        if self.queued >= self.max_queued:
            raise HTTPException(503, Msg("api.clearance.queue_full", n=self.queued), headers={"Retry-After": "5"})
        if self._queue is None:
            self._queue = asyncio.Lock()
        self.queued += 1
        try:
            async with self._queue:
                return await run_in_threadpool(self._locked, decide, then)
        finally:
            self.queued -= 1

    def _locked(self, decide, then):
        with self._conn_lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute(f"SET LOCAL lock_timeout = {int(self.lock_timeout_s * 1000)}")
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (DECISION_LOCK,))
                    result = decide(conn)
            except psycopg.errors.LockNotAvailable:
                raise HTTPException(503, Msg("api.clearance.lock_timeout", seconds=self.lock_timeout_s),
                                    headers={"Retry-After": "5"}) from None
            except psycopg.OperationalError:
                self.close()  # a broken connection: the next decision connects afresh
                raise
            if then is not None:
                then(result)
            return result

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5,
                                         application_name="skylane-api-clearances")
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def desk_of(conn: HTTPConnection) -> DecisionDesk:
    return conn.app.state.clearance_desk


Desk = Annotated[DecisionDesk, Depends(desk_of)]


def _aware(value: datetime | None, name: str) -> None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(422, Msg("api.needs_offset", name=name))


def _plan_window(req: ClearanceRequest, now: datetime) -> tuple[datetime, datetime]:
    """An upper bound of the flight's time window, before the route is checked (for deconfliction)."""
    _aware(req.departure, "departure")
    for k, w in enumerate(req.waypoints):
        _aware(w.t, f"waypoint {k}: t")
    first = req.waypoints[0].t or req.departure or now
    if first < now - timedelta(hours=1) or first > now + MAX_AHEAD:
        raise HTTPException(422, Msg("api.clearance.start_window", days=MAX_AHEAD.days))
    for k, w in enumerate(req.waypoints):  # before the route check, which works in epoch seconds
        if w.t is not None and not first <= w.t <= first + MAX_DURATION:
            hours = f"{MAX_DURATION.total_seconds() / 3600:g} h"
            raise HTTPException(422, Msg("api.clearance.waypoint_late", k=k, hours=hours))
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


def _check_quota(conn: psycopg.Connection, ctx: ApiContext, owner: str | None, uav_id: str | None,
                 now: datetime, start: datetime, end: datetime) -> None:
    """429 when one more approval for `uav_id` in [start, end) would give `owner` more open approvals than the
    quota (the drone's approvals it would supersede do not count)."""
    limit = ctx.config.clearance_max_open
    if owner is None:
        return
    held, replaced = clearances.open_approved(conn, owner, now, uav_id, start, end)
    if held - replaced >= limit:
        raise HTTPException(429, Msg("api.clearance.quota", owner=owner, held=held, limit=limit),
                            headers={"Retry-After": "60"})


def _announce(ctx: ApiContext, uav_id: str, payload: dict | None) -> None:
    """Retain the drone's clearance in force for the airspace monitor (None: it has none any more)."""
    ctx.control.publish(topics.control_clearance(ctx.config.mqtt_root, uav_id), payload)


async def _decide(ctx: ApiContext, desk: DecisionDesk, who: Principal, req: ClearanceRequest) -> dict:
    now = datetime.now(timezone.utc)
    start, horizon = _plan_window(req, now)
    owner = who.owner if who.is_operator else None
    if req.uav_id is not None:
        dev_owner = await run_in_threadpool(ctx.owner_of, req.uav_id)
        if who.is_operator and dev_owner != who.owner:
            raise HTTPException(403, Msg("api.clearance.not_yours", uav_id=req.uav_id))
        owner = dev_owner or owner
    elif who.is_operator:
        raise HTTPException(422, Msg("api.clearance.uav_required"))
    view = await run_in_threadpool(ctx.zones)  # outside the decision: it may need a pooled connection

    def decide(conn: psycopg.Connection):
        # read the approved clearances, check, store: under the decision lock, or two conflicting requests
        # could both pass between the read and the write
        _check_quota(conn, ctx, owner, req.uav_id, now, start, horizon)  # cheap: before the route check
        try:
            approved = clearances.approved_overlapping(conn, start, horizon, exclude_uav=req.uav_id)
        except clearances.TooManyApproved as exc:
            raise HTTPException(503, Msg("api.clearance.cannot_deconflict", detail=str(exc))) from None
        try:
            result = _check(view, req, now, approved)
        except ValueError as exc:
            raise HTTPException(422, Msg("api.invalid_request", detail=str(exc))) from None
        t0, t1 = result.route[0]["epoch"], result.route[-1]["epoch"]
        if t1 - t0 > MAX_DURATION.total_seconds():
            raise HTTPException(422, Msg("api.clearance.too_long", hours=MAX_DURATION.total_seconds() / 3600))
        cid = uuid.uuid4()
        stored_result = result.to_dict()
        payload = None
        if result.approved:
            _check_quota(conn, ctx, owner, req.uav_id, now, _dt(t0), _dt(t1))  # exact, now the window is known
            if req.uav_id is not None:
                payload = result.clearance(str(cid), req.uav_id).to_dict()
                stored_result["clearance"] = payload
        record = clearances.Clearance(
            id=cid, uav_id=req.uav_id, owner=owner, requested_by=who.key_id, decision=result.decision,
            alt_ref=req.alt_ref, route=result.route, start_time=_dt(t0), end_time=_dt(t1), ua_class=req.ua_class,
            reasons=result.reasons, suggestions=result.suggestions, result=stored_result)
        stored = clearances.insert(conn, record)
        if payload is not None:
            superseded = clearances.supersede(conn, cid, req.uav_id, _dt(t0), _dt(t1))
            if superseded:
                log.info("clearance %s of %s supersedes %s", cid, req.uav_id, ", ".join(superseded))
        return result, stored, payload

    def announce(decided) -> None:  # in decision order, once stored
        _result, stored, payload = decided
        if payload is None:
            return
        try:
            _announce(ctx, req.uav_id, payload)
        except ControlUnavailable as exc:
            raise HTTPException(503, Msg("api.clearance.not_announced", id=stored["id"], detail=str(exc))) from None

    result, stored, payload = await desk.run(decide, announce)
    reasons = await run_in_threadpool(for_caller, ctx, who, result.reasons)
    return {"decision": stored["decision"], "reasons": reasons, "suggestions": result.suggestions,
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


@router.post("/v1/clearances", response_model=ClearanceResponse, openapi_extra=OPENAPI,
             responses={**ERRORS, 403: FORBIDDEN, **BUSY,
                        415: {"model": Problem, "description": "a content type that is not a route format"},
                        429: {"model": Problem, "description": "the drone owner's quota of open approvals is full"}})
async def post_clearance(ctx: Ctx, desk: Desk, who: Annotated[Principal, Depends(require("operator"))],
                         request: Request, params: Annotated[RouteParams, Depends()], lang: Lang):
    """Check a 4D route (2-200 waypoints, timed by `t` per waypoint or by departure and speed; at most 24 h of
    flight) against the zones in force and the approved clearances; store the decision (operators, admins).
    An approval supersedes the drone's earlier approvals overlapping it and is announced retained for the
    airspace monitor; a drone owner holds at most `clearance_max_open` open approvals (429 beyond).
    The body is a JSON request or a route file (DJI KMZ/WPML, KML, GeoJSON, QGC WPL: the content type names
    it; the query parameters give what the file does not; api/route_upload.py)."""
    req, source = await clearance_request(request, params)
    out = await _decide(ctx, desk, who, req)
    out["reasons"], out["suggestions"] = localize_clearance(out["reasons"], out["suggestions"], lang)
    return {**out, "source": source}


@router.get("/v1/clearances", response_model=list[Clearance], responses=ERRORS)
def list_clearances(ctx: Ctx, who: Annotated[Principal, Depends(require(*ROLES))], lang: Lang, uav_id: IdFilter = None,
                    decision: Literal["approved", "denied", "cancelled", "superseded"] | None = None,
                    before: datetime | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Newest first (page with `before` = the last item's created_at); operators see their own only."""
    if before is not None and before.tzinfo is None:
        raise HTTPException(422, Msg("api.clearance.before_offset"))
    with ctx.pool.connection() as conn:
        page = clearances.list_page(conn, owner=(who.owner or "") if who.is_operator else None, uav_id=uav_id,
                                    decision=decision, before=before, limit=limit)
    return [_localized({**c, "reasons": for_caller(ctx, who, c["reasons"])}, lang) for c in page]


@router.get("/v1/clearances/{clearance_id}", response_model=Clearance, responses={**ERRORS, **NOT_FOUND})
def get_clearance(ctx: Ctx, who: Annotated[Principal, Depends(require(*ROLES))], clearance_id: uuid.UUID,
                  lang: Lang = "en"):
    with ctx.pool.connection() as conn:
        found = clearances.get(conn, clearance_id)
    if found is None or (who.is_operator and found["owner"] != who.owner):
        raise HTTPException(404, Msg("api.clearance.not_found_yours" if who.is_operator else "api.clearance.not_found"))
    return _localized({**found, "reasons": for_caller(ctx, who, found["reasons"])}, lang)


def _localized(c: dict, lang: str) -> dict:
    c["reasons"], c["suggestions"] = localize_clearance(c["reasons"], c.get("suggestions") or [], lang)
    return c


@router.delete("/v1/clearances/{clearance_id}", response_model=Clearance,
               responses={**ERRORS, 403: FORBIDDEN, **NOT_FOUND, **BUSY,
                          409: {"model": Problem, "description": "not an approved clearance"}})
async def cancel_clearance(ctx: Ctx, desk: Desk, who: Annotated[Principal, Depends(require("operator"))],
                           clearance_id: uuid.UUID):
    """Cancel an approved clearance (operators: their own). When it was the drone's newest, the drone's
    clearance in force is announced anew (its latest remaining approval, or none), so the monitor no longer
    holds the flight to the cancelled one."""
    await run_in_threadpool(get_clearance, ctx, who, clearance_id)

    def cancel(conn: psycopg.Connection) -> dict:  # announced first, then committed: safe to repeat
        done = clearances.cancel(conn, clearance_id)
        if done is None:
            raise HTTPException(409, Msg("api.clearance.not_approved"))
        record, newest = done
        uav_id = record["uav_id"]
        if newest and uav_id:
            left = [c for c in clearances_in_force(conn, datetime.now(timezone.utc)) if c.get("uav_id") == uav_id]
            try:
                _announce(ctx, uav_id, left[-1] if left else None)
            except ControlUnavailable as exc:
                raise HTTPException(503, Msg("api.clearance.cancel_not_announced", detail=str(exc))) from None
        return record

    return await desk.run(cancel)
