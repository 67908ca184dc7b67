"""Live feeds over WebSocket (`/v1/live`) and server-sent events (`/v1/live/sse`).

Both take the same filters as query parameters (each list parameter repeatable or comma-separated):
`bbox=minlon,minlat,maxlon,maxlat` (positions, and events that carry a position), `uav_id`, `kind`
(event kinds), `sensor_kind`, `type` (position, event, sensor, zone_state, zones_changed). The API key
comes as `Authorization: Bearer <key>` or `?access_token=<key>` (browsers cannot set headers on
WebSockets and EventSource). Operators get only their own drones' positions and events.

`root` picks the topic root to watch: the live root (default) or a replay's root under `replay/` (as
POST /v1/replays publishes, e.g. `replay/<id>/skylane/v1`; engineers and admins only). A replay root is
served by its own hub, made when its first client connects and closed when its last one leaves; at most
MAX_REPLAY_HUBS at a time (WebSocket close 1013 / HTTP 503 beyond). A root outside `replay/` is refused
(close 1008 / HTTP 422), as is a replay root for other roles (close 4403 / HTTP 403).

WebSocket frames are JSON arrays of messages; SSE sends one event per message, named by its type.
Every message is an object with `type`: position | event | sensor | zone_state | zones_changed | notice.
A slow client loses its oldest positions and is told so by a `notice` with `dropped_positions`; alerts
are never dropped: a client too slow even for those is disconnected (WebSocket close code 1013, or an
SSE `error` event) with the reason.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
import time
from contextlib import asynccontextmanager

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from starlette.datastructures import QueryParams

from i18n import Msg, negotiate, normalize
from protocol import topics

from .auth import Authenticator, Principal, authenticate_token, metrics_reader, token_from
from .live import DISCONNECTS, MESSAGE_TYPES, DeviceDirectory, LiveHub, count_sent, encode_sse, encode_ws
from .subscribers import MAX_ALERTS_QUEUED, MAX_POSITION_AGE_S, MAX_POSITIONS_QUEUED, FeedFilter, Subscriber

log = logging.getLogger("skylane.api.feeds")
MAX_VALUES = 500
_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")
_client_ids = itertools.count(1)
WS_POLICY, WS_TRY_LATER, WS_UNAUTHORIZED, WS_FORBIDDEN = 1008, 1013, 4401, 4403
REPLAY_PREFIX = "replay/"
REPLAY_ROLES = ("engineer", "admin")
MAX_REPLAY_HUBS = 8
MAX_FEEDS_PER_KEY = 100  # open feeds per API key, per API process
MAX_FEEDS = 2000  # open feeds per API process
SEND_TIMEOUT_S = 10.0  # a write to a feed client that takes longer drops the client
KEEPALIVE_S = 15.0  # an idle event stream gets a comment line this often (proxies cut silent streams)
_ROOT = re.compile(r"[A-Za-z0-9_.:-]{1,64}(/[A-Za-z0-9_.:-]{1,64}){0,9}")


class RootError(Exception):
    """A `root` the client may not watch: `status` is the HTTP status, `ws_code` the WebSocket close code."""

    def __init__(self, status: int, ws_code: int, reason: str):
        super().__init__(reason)
        self.status, self.ws_code, self.reason = status, ws_code, reason


class RootHubs:
    """The live hub plus one hub per watched replay root, made on demand and closed with its last client.

    Replay hubs share the live hub's broker and device directory; at most `max_hubs` exist at a time.
    """

    def __init__(self, live: LiveHub, max_hubs: int = MAX_REPLAY_HUBS):
        self.live, self.max_hubs = live, max_hubs
        live.root_hubs = self  # stopped with the live hub
        self.hubs: dict[str, LiveHub] = {}
        self.clients: dict[str, int] = {}

    def check(self, root: str | None, principal: Principal) -> str:
        """The root to serve (the live one when None), or RootError."""
        if root is None or root == "" or root == self.live.root:
            return self.live.root
        if not (root.startswith(REPLAY_PREFIX) and _ROOT.fullmatch(root)):
            raise RootError(422, WS_POLICY, Msg("api.feed.bad_root", live=self.live.root, prefix=REPLAY_PREFIX))
        if principal.role not in REPLAY_ROLES:
            raise RootError(403, WS_FORBIDDEN, Msg("api.feed.replay_role", role=principal.role))
        return root

    def acquire(self, root: str) -> LiveHub:
        """The hub of `root`, started when new (call from the serving loop); pair with release()."""
        if root == self.live.root:
            return self.live
        hub = self.hubs.get(root)
        if hub is None:
            if len(self.hubs) >= self.max_hubs:
                raise RootError(503, WS_TRY_LATER, Msg("api.feed.replay_hubs_full", n=self.max_hubs))
            hub = LiveHub(self.live.mqtt_url, root, directory=self.live.directory, owns_directory=False)
            hub.start()
            self.hubs[root] = hub
            log.info("feed.replay_hub state=opened root=%s", root)
        self.clients[root] = self.clients.get(root, 0) + 1
        return hub

    async def release(self, hub: LiveHub) -> None:
        root = hub.root
        if hub is self.live or self.hubs.get(root) is not hub:
            return
        self.clients[root] -= 1
        if self.clients[root] <= 0:
            self.hubs.pop(root, None)
            self.clients.pop(root, None)
            if hub.ready is not None and not hub.ready.is_set():  # aiomqtt leaks a task if cancelled mid-connect
                try:
                    await asyncio.wait_for(hub.ready.wait(), 3.0)
                except TimeoutError:
                    pass
            await hub.stop()
            log.info("feed.replay_hub state=closed root=%s", root)

    async def close(self) -> None:
        for root in list(self.hubs):
            hub = self.hubs.pop(root)
            self.clients.pop(root, None)
            await hub.stop()


def _values(q: QueryParams, name: str) -> list[str]:
    out = [v.strip() for raw in q.getlist(name) for v in raw.split(",") if v.strip()]
    if len(out) > MAX_VALUES:
        raise ValueError(f"at most {MAX_VALUES} values for {name}")
    return out


def parse_filter(q: QueryParams, principal: Principal, accept_language: str | None = None) -> FeedFilter:
    """The client's filter from its query string; ValueError names the bad parameter. `lang` (zh-CN or en, else
    the Accept-Language header) is the language of the events' `description`."""
    bbox = None
    if q.get("bbox"):
        try:
            parts = tuple(float(v) for v in q["bbox"].split(","))
        except ValueError:
            parts = ()
        if len(parts) != 4 or not all(math.isfinite(v) for v in parts):
            raise ValueError("bbox must be minlon,minlat,maxlon,maxlat")
        x0, y0, x1, y1 = parts
        if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
            raise ValueError("bbox must be minlon,minlat,maxlon,maxlat with min <= max, in degrees")
        bbox = parts
    uav_ids = _values(q, "uav_id")
    bad = [v for v in uav_ids if not topics.valid_id(v)]
    if bad:
        raise ValueError(f"uav_id {bad[0][:80]!r} is not a valid device id")
    kinds, sensor_kinds, types = _values(q, "kind"), _values(q, "sensor_kind"), _values(q, "type")
    for name, values in (("kind", kinds), ("sensor_kind", sensor_kinds)):
        bad = [v for v in values if not _KIND.fullmatch(v)]
        if bad:
            raise ValueError(f"{name} {bad[0][:80]!r} is not a kind name (a-z, 0-9, _)")
    bad = [v for v in types if v not in MESSAGE_TYPES]
    if bad:
        raise ValueError(f"type {bad[0][:80]!r} is not one of {', '.join(MESSAGE_TYPES)}")
    operator = principal.role == "operator"
    return FeedFilter(uav_ids=frozenset(uav_ids), kinds=frozenset(kinds), sensor_kinds=frozenset(sensor_kinds),
                      types=frozenset(types), bbox=bbox, operator=operator,
                      operator_owner=principal.owner if operator else None,
                      lang=normalize(q["lang"]) if q.get("lang") else negotiate(accept_language))


def _log_start(client: int, transport: str, principal: Principal, f: FeedFilter) -> None:
    log.info("feed.connect client=%d transport=%s key=%s role=%s uav_ids=%d kinds=%s bbox=%s", client, transport,
             principal.key_id, principal.role, len(f.uav_ids), ",".join(sorted(f.kinds)) or "*", f.bbox,
             extra={"feed": {"client": client, "transport": transport, "key_id": principal.key_id,
                             "role": principal.role}})


def _log_end(client: int, transport: str, sub: Subscriber, started: float, sent: int, reason: str) -> None:
    dropped = sub.total_dropped + sub.dropped_positions + sub.dropped_sensors
    log.info("feed.disconnect client=%d transport=%s reason=%s sent=%d dropped=%d duration_s=%.1f", client,
             transport, reason, sent, dropped, time.monotonic() - started,
             extra={"feed": {"client": client, "transport": transport, "reason": reason, "sent": sent,
                             "dropped": dropped}})


def _overflow_reason(sub: Subscriber) -> str:
    return f"client too slow for the alert stream ({sub.max_alerts} alerts pending); reconnect and resync"


REVOKED_REASON = "API key revoked"


class SendTimeout(Exception):
    """A write to a feed client did not complete in time: it stopped reading."""


class FeedLimits:
    """Open live feeds per API key and in total, in this process (replay roots included)."""

    def __init__(self, per_key: int = MAX_FEEDS_PER_KEY, total: int = MAX_FEEDS):
        self.max_per_key, self.max_total = per_key, total
        self.per_key: dict[str, int] = {}
        self.total = 0

    def acquire(self, key_id: str) -> str | None:
        """Take a slot for one feed of `key_id`; the reason when refused (pair a None with release())."""
        if self.total >= self.max_total:
            return Msg("api.feed.server_full", n=self.max_total)
        n = self.per_key.get(key_id, 0)
        if n >= self.max_per_key:
            return Msg("api.feed.key_full", n=n, max=self.max_per_key)
        self.per_key[key_id] = n + 1
        self.total += 1
        return None

    def release(self, key_id: str) -> None:
        n = self.per_key.pop(key_id, 0) - 1
        if n > 0:
            self.per_key[key_id] = n
        self.total -= 1


class Feed:
    """One open feed: who, its subscriber, what it has sent, why it ended, and whether its key was revoked."""

    def __init__(self, transport: str, principal: Principal, sub: Subscriber):
        self.client, self.transport, self.principal, self.sub = next(_client_ids), transport, principal, sub
        self.started, self.sent, self.reason, self.revoked = time.monotonic(), 0, "client_closed", False
        _log_start(self.client, transport, principal, sub.filter)

    def on_revoked(self) -> None:
        self.revoked = True
        self.sub.wake.set()

    def end(self, reason: str) -> None:
        """Ended by the server for `reason` (counted)."""
        self.reason = reason
        DISCONNECTS.labels(reason).inc()

    def log_end(self) -> None:
        _log_end(self.client, self.transport, self.sub, self.started, self.sent, self.reason)


class FeedStream(StreamingResponse):
    """An event stream whose every write must complete within `send_timeout_s`: a client that stopped reading
    is dropped (its queues freed at once; the socket keeps at most what its buffers already hold). `on_close`
    runs however the stream ends, even when it never started."""

    def __init__(self, content, feed: Feed, send_timeout_s: float, on_close, **kw):
        super().__init__(content, **kw)
        self.feed, self.send_timeout_s, self.on_close = feed, send_timeout_s, on_close

    async def stream_response(self, send) -> None:
        async def timed(message) -> None:
            try:
                await asyncio.wait_for(send(message), self.send_timeout_s)
            except TimeoutError:
                raise SendTimeout from None
        await super().stream_response(timed)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeout:
            self.feed.end("send_timeout")
        finally:
            await self.body_iterator.aclose()
            self.on_close()


def _sse_error(message: str) -> bytes:
    return b"event: error\ndata: " + orjson.dumps({"type": "error", "message": message}) + b"\n\n"


def feeds_router(hub: LiveHub, *, max_positions: int = MAX_POSITIONS_QUEUED, max_alerts: int = MAX_ALERTS_QUEUED,
                 max_position_age_s: float = MAX_POSITION_AGE_S, keepalive_s: float = KEEPALIVE_S,
                 batch_window_s: float = 0.05, max_replay_hubs: int = MAX_REPLAY_HUBS,
                 max_feeds_per_key: int = MAX_FEEDS_PER_KEY, max_feeds: int = MAX_FEEDS,
                 send_timeout_s: float = SEND_TIMEOUT_S) -> APIRouter:
    """The live-feed routes over `hub` (one per API process; it reads the broker).

    A client gets at most one frame per `batch_window_s`: messages arriving meanwhile share the next frame,
    which keeps the per-frame cost (framing, syscalls, the browser's parse) flat as the update rate grows.
    At most `max_feeds_per_key` feeds per API key and `max_feeds` in all; a write that takes longer than
    `send_timeout_s` drops the client; an idle event stream gets a comment every `keepalive_s`; the feeds of a
    revoked key end within the app's key cache TTL (`app.state.auth.feeds`).
    """
    router = APIRouter(tags=["live"])
    hubs = RootHubs(hub, max_replay_hubs)
    limits = FeedLimits(max_feeds_per_key, max_feeds)

    def new_subscriber(f: FeedFilter, transport: str) -> Subscriber:
        return Subscriber(f, hub.directory, transport=transport, max_positions=max_positions,
                          max_position_age_s=max_position_age_s, max_alerts=max_alerts)

    async def pace(last_sent: float) -> None:
        wait = last_sent + batch_window_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def timed(aw) -> None:
        try:
            await asyncio.wait_for(aw, send_timeout_s)
        except TimeoutError:
            raise SendTimeout from None

    @router.websocket("/v1/live")
    async def live_ws(ws: WebSocket):
        await ws.accept()
        try:
            principal = await authenticate_token(ws.app, token_from(ws))
        except HTTPException as exc:
            DISCONNECTS.labels("unauthorized").inc()
            await ws.close(code=WS_UNAUTHORIZED, reason=str(exc.detail)[:120])
            return
        try:
            filt = parse_filter(ws.query_params, principal, ws.headers.get("accept-language"))
        except ValueError as exc:
            DISCONNECTS.labels("bad_filter").inc()
            await ws.close(code=WS_POLICY, reason=str(exc)[:120])
            return
        refused = limits.acquire(principal.key_id)
        if refused is not None:
            DISCONNECTS.labels("over_limit").inc()
            await ws.close(code=WS_TRY_LATER, reason=refused[:120])
            return
        try:
            await serve_ws(ws, principal, filt)
        finally:
            limits.release(principal.key_id)

    async def serve_ws(ws: WebSocket, principal: Principal, filt: FeedFilter) -> None:
        try:
            feed_hub = hubs.acquire(hubs.check(ws.query_params.get("root"), principal))
        except RootError as exc:
            DISCONNECTS.labels("bad_root").inc()
            await ws.close(code=exc.ws_code, reason=exc.reason[:120])
            return
        feed = Feed("ws", principal, new_subscriber(filt, "ws"))
        sub = feed.sub
        closed = asyncio.Event()

        async def watch() -> None:  # reading is how a WebSocket learns that the peer left
            try:
                while (await ws.receive())["type"] != "websocket.disconnect":
                    pass
            except Exception:  # noqa: BLE001 - any receive failure means the connection is gone
                pass
            closed.set()
            sub.wake.set()

        feed_hub.subscribe(sub)
        unwatch = ws.app.state.auth.feeds.watch(principal.key_id, feed.on_revoked)
        watcher = asyncio.create_task(watch())
        last_sent = 0.0
        try:
            while not closed.is_set():
                await sub.wake.wait()
                await pace(last_sent)
                if closed.is_set():
                    break
                if feed.revoked or sub.overflow:
                    code, why = (WS_POLICY, REVOKED_REASON) if feed.revoked else (WS_TRY_LATER, _overflow_reason(sub))
                    feed.end("key_revoked" if feed.revoked else "alert_overflow")
                    await timed(ws.close(code=code, reason=why[:120]))
                    break
                batch = sub.take()
                last_sent = time.monotonic()
                if batch:
                    await timed(ws.send_text(encode_ws(batch)))
                    count_sent(batch)
                    feed.sent += len(batch)
        except SendTimeout:
            feed.end("send_timeout")
        except Exception as exc:  # noqa: BLE001 - a send to a vanished client: just end this feed
            feed.reason = f"send_failed:{type(exc).__name__}"
        finally:
            unwatch()
            feed_hub.unsubscribe(sub)
            watcher.cancel()
            await hubs.release(feed_hub)
            feed.log_end()

    @router.get("/v1/live/sse", response_class=StreamingResponse, summary="Live feed as server-sent events",
                responses={200: {"content": {"text/event-stream": {}},
                                 "description": "Endless event stream; one SSE event per message, named by type"},
                           401: {"description": "Missing, invalid or revoked API key"},
                           422: {"description": "A bad filter"},
                           429: {"description": "Too many live feeds open on this key or on this server"}})
    async def live_sse(request: Request,
                       bbox: str | None = Query(None, description="minlon,minlat,maxlon,maxlat"),
                       uav_id: list[str] = Query([], description="UAV ids (repeat or comma-separate)"),
                       kind: list[str] = Query([], description="event kinds"),
                       sensor_kind: list[str] = Query([], description="sensor kinds"),
                       type: list[str] = Query([], description=f"message types: {', '.join(MESSAGE_TYPES)}"),
                       root: str | None = Query(None, description="topic root: the live one (default) or a "
                                                                  "replay root under replay/ (engineer, admin)"),
                       access_token: str | None = Query(None, description="API key (EventSource cannot send headers)")):
        principal = await authenticate_token(request.app, token_from(request) or access_token)
        try:
            filt = parse_filter(request.query_params, principal, request.headers.get("accept-language"))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        try:
            feed_root = hubs.check(root, principal)
        except RootError as exc:
            raise HTTPException(exc.status, exc.reason) from None
        if feed_root != hub.root and feed_root not in hubs.hubs and len(hubs.hubs) >= hubs.max_hubs:
            raise HTTPException(503, Msg("api.feed.replay_hubs_full", n=hubs.max_hubs))
        refused = limits.acquire(principal.key_id)
        if refused is not None:
            DISCONNECTS.labels("over_limit").inc()
            raise HTTPException(429, refused, headers={"Retry-After": "10"})
        feed = Feed("sse", principal, new_subscriber(filt, "sse"))
        sub = feed.sub

        async def stream():
            last_sent = 0.0
            try:
                feed_hub = hubs.acquire(feed_root)
            except RootError as exc:  # the last slot went meanwhile
                yield _sse_error(exc.reason)
                return
            feed_hub.subscribe(sub)
            unwatch = request.app.state.auth.feeds.watch(principal.key_id, feed.on_revoked)
            try:
                yield b"retry: 3000\n\n"
                while True:
                    if not (sub.pending() or sub.overflow or sub.dropped_positions or feed.revoked):
                        sub.wake.clear()
                        try:
                            await asyncio.wait_for(sub.wake.wait(), keepalive_s)
                        except TimeoutError:
                            yield b": keepalive\n\n"
                            continue
                    await pace(last_sent)
                    if feed.revoked or sub.overflow:
                        feed.end("key_revoked" if feed.revoked else "alert_overflow")
                        yield _sse_error(REVOKED_REASON if feed.revoked else _overflow_reason(sub))
                        return
                    batch = sub.take()
                    last_sent = time.monotonic()
                    if batch:
                        yield encode_sse(batch)
                        count_sent(batch)
                        feed.sent += len(batch)
            finally:
                unwatch()
                feed_hub.unsubscribe(sub)
                await hubs.release(feed_hub)

        def closed() -> None:
            limits.release(principal.key_id)
            feed.log_end()

        return FeedStream(stream(), feed, send_timeout_s, closed, media_type="text/event-stream",
                          headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return router


def create_feed_app(database_url: str, mqtt_url: str, root: str, key_cache_s: float = 5.0,
                    metrics_token: str | None = None, **router_kw) -> FastAPI:
    """A feed-only API process: auth, the device directory and the live feeds, nothing else.

    Feeds scale out by running more of these (or full API processes) behind a load balancer: each reads
    the broker itself. Used by the feed tests and `skylane bench feeds --app feeds`.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from psycopg_pool import ConnectionPool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import JSONResponse, Response

    from .localize import localized_http_exception

    pool = ConnectionPool(database_url, min_size=1, max_size=4, open=False, timeout=5)
    hub = LiveHub(mqtt_url, root, directory=DeviceDirectory(pool.connection, ttl_s=5.0))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool.open(wait=False)
        hub.start()
        yield
        await app.state.auth.feeds.close()
        await hub.stop()
        pool.close()

    app = FastAPI(title="Skylane live feeds", lifespan=lifespan)
    app.add_exception_handler(StarletteHTTPException, localized_http_exception)  # as the full API: per caller
    app.state.auth = Authenticator(pool.connection, key_cache_s)
    app.state.hub = hub
    app.include_router(feeds_router(hub, **router_kw))

    @app.get("/v1/health", include_in_schema=False)
    def health():
        ok = hub.connected
        return JSONResponse({"status": "ok" if ok else "degraded", "mqtt": "connected" if ok else "disconnected"},
                            status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_reader(lambda _: metrics_token))])
    def metrics():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
