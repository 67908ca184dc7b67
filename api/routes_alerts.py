"""Alert subscriptions and their deliveries (admins only; docs/alerts.md).

`GET/POST /v1/alerts/subscriptions`, `DELETE /v1/alerts/subscriptions/{id}`, `GET /v1/alerts/deliveries`.
A subscription's secret (webhook HMAC key, DingTalk signing secret) is never answered back: a webhook
subscription created without one gets a generated key, shown once in the creation's answer. Targets are
shown without their query values (robot addresses carry their key there). The delivery figures in /metrics
(`skylane_db_alert_*`) come from `AlertFigures`, read from the outbox like the other database figures.
Errors are said in the caller's language (catalogue keys `api.alerts.*`, the channels' `alerting.*`); the
messages a subscription gets are written in its `language` (alerting/render.py).
"""
from __future__ import annotations

import logging
import secrets
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from airspace.events import EVENT_KINDS
from alerting import store
from alerting.channels import NAMES, check_subscription, needs_secret
from i18n import Msg
from ingest.sensor_watch import SENSOR_EVENT_KINDS
from protocol import topics

from .auth import FORBIDDEN, UNAUTHORIZED, Principal, require
from .context import Ctx, TtlValue
from .models import Problem

log = logging.getLogger("skylane.api.alerts")
router = APIRouter(tags=["alerts"])
ADMIN = Annotated[Principal, Depends(require("admin"))]
ERRORS = {401: UNAUTHORIZED, 403: FORBIDDEN, 422: {"model": Problem}}
KINDS = frozenset(EVENT_KINDS) | frozenset(SENSOR_EVENT_KINDS)


DeviceId = Annotated[str, Field(pattern=f"^{topics.ID_PATTERN}$")]
ZoneId = Annotated[str, Field(min_length=1, max_length=topics.MAX_ZONE_ID)]


class SubscriptionIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["webhook", "wecom", "dingtalk", "email"]
    target: str = Field(min_length=3, max_length=2000, description="webhook or robot address (WeCom: ...?key=, "
                                                                   "DingTalk: ...?access_token=); email: addresses, "
                                                                   "comma-separated")
    secret: str | None = Field(None, min_length=1, max_length=500,
                               description="webhook HMAC key (made when omitted, shown once); DingTalk signing "
                                           "secret (SEC...); never answered back")
    kinds: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=50,
                                                              description="event kinds; empty: every kind")
    zone_ids: list[ZoneId] = Field(default_factory=list, max_length=500, description="empty: any zone (or none)")
    uav_ids: list[DeviceId] = Field(default_factory=list, max_length=1000,
                                    description="devices (drones; sensors for sensor events)")
    owners: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=100, description="fleets: the registry owners of the devices; with "
                                                          "uav_ids, either matches; both empty: any device")
    language: Literal["zh-CN", "en"] = Field("zh-CN", description="what its messages are written in")
    enabled: bool = True


class DeliveryCounts(BaseModel):
    pending: int
    delivered: int
    failed: int


class SubscriptionOut(BaseModel):
    id: str
    name: str
    channel: str
    target: str = Field(description="query values hidden")
    has_secret: bool
    kinds: list[str]
    zone_ids: list[str]
    uav_ids: list[str]
    owners: list[str]
    language: str
    enabled: bool
    created_by: str | None
    created_at: str
    deliveries: DeliveryCounts
    secret: str | None = Field(None, description="only in the answer that created it, when Skylane made it")


class SubscriptionList(BaseModel):
    items: list[SubscriptionOut]


class Delivery(BaseModel):
    subscription_id: str
    subscription_name: str
    channel: str
    event_id: str
    event_ts: str
    source: Literal["airspace", "sensor"]
    kind: str
    status: Literal["pending", "delivered", "failed"]
    created: str
    attempts: int
    next_attempt: str | None
    delivered_at: str | None
    failed_at: str | None
    last_error: str | None
    digest_id: str | None = Field(description="the digest message it went out in, if any")


class DeliveryList(BaseModel):
    items: list[Delivery]


@router.get("/v1/alerts/subscriptions", response_model=SubscriptionList, responses=ERRORS)
def list_subscriptions(ctx: Ctx, who: ADMIN):
    """Every subscription with its deliveries by status (secrets never shown)."""
    with ctx.pool.connection() as conn:
        return {"items": store.list_subscriptions(conn)}


@router.post("/v1/alerts/subscriptions", status_code=201, response_model=SubscriptionOut, responses=ERRORS)
def create_subscription(ctx: Ctx, who: ADMIN, body: SubscriptionIn):
    """Send chosen event kinds for chosen zones and fleets to a webhook, a WeCom or DingTalk group robot, or
    email. Events stored from now on are delivered at least once (docs/alerts.md)."""
    for kind in body.kinds:
        if kind not in KINDS:
            raise HTTPException(422, Msg("api.alerts.unknown_kind", kind=kind, kinds=", ".join(sorted(KINDS))))
    try:
        check_subscription(body.channel, body.target, body.secret)
    except ValueError as exc:  # the channel says what is wrong, with a catalogue text (alerting.*)
        why = exc.args[0] if exc.args and isinstance(exc.args[0], Msg) else str(exc)
        raise HTTPException(422, Msg("api.alerts.bad_target", channel=body.channel, detail=why)) from None
    made = None
    if body.secret is None and needs_secret(body.channel):
        made = secrets.token_urlsafe(32)
    fields = body.model_dump(exclude={"secret"})
    with ctx.pool.connection() as conn:
        out = store.create_subscription(conn, **fields, secret=body.secret or made, created_by=who.key_id)
    log.info("alert subscription %s created by %s: %s to %s", out["id"], who.key_id, body.channel, out["target"])
    return {**out, "secret": made}


@router.delete("/v1/alerts/subscriptions/{subscription_id}", response_model=SubscriptionOut,
               responses={**ERRORS, 404: {"model": Problem}})
def delete_subscription(ctx: Ctx, who: ADMIN, subscription_id: uuid.UUID):
    """Stop a subscription: nothing more is sent, its pending deliveries fail as 'subscription deleted'; the
    deliveries keep their history."""
    with ctx.pool.connection() as conn:
        found = store.list_subscriptions(conn, subscription_id)
        if not found or not store.delete_subscription(conn, subscription_id):
            raise HTTPException(404, Msg("api.alerts.not_found"))
    log.info("alert subscription %s deleted by %s", subscription_id, who.key_id)
    return {**found[0], "enabled": False}


@router.get("/v1/alerts/deliveries", response_model=DeliveryList, responses=ERRORS)
def list_deliveries(ctx: Ctx, who: ADMIN, status: Literal["pending", "delivered", "failed"] | None = None,
                    subscription_id: uuid.UUID | None = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    """Newest first: each (subscription, event) delivery with its attempts, next attempt and last error."""
    with ctx.pool.connection() as conn:
        return {"items": store.deliveries(conn, status, subscription_id, limit)}


class AlertFigures(Collector):
    """/metrics: the outbox backlog and the last hour's deliveries by channel and outcome, from the database
    (what every worker together did), cached for a few seconds."""

    def __init__(self, connect, ttl_s: float = 10.0):
        self.connect = connect
        self.figures = TtlValue(ttl_s, self._read)

    def _read(self) -> store.Figures | None:
        try:
            with self.connect(timeout=2) as conn:
                return store.figures(conn)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database is away
            log.warning("metrics: alert figures unavailable: %s", exc)
            return None

    def collect(self):
        f = self.figures.get()
        if f is None:
            return
        yield GaugeMetricFamily("skylane_db_alert_outbox_backlog", "Alert deliveries pending (due or waiting for "
                                "a retry)", value=f.backlog)
        if f.oldest_pending_s is not None:
            yield GaugeMetricFamily("skylane_db_alert_outbox_oldest_seconds", "Age of the oldest pending delivery",
                                    value=f.oldest_pending_s)
        hour = GaugeMetricFamily("skylane_db_alert_deliveries_last_hour", "Alert deliveries written in the last "
                                 "hour, by channel and outcome (pending, delivered, failed)", labels=["channel", "outcome"])
        seen = {(c, s): n for c, s, n in f.last_hour}
        for channel in NAMES:
            for outcome in store.STATUSES:
                hour.add_metric([channel, outcome], seen.get((channel, outcome), 0))
        yield hour
