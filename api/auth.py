"""Who is calling: API keys with roles, checked on every request.

`Authorization: Bearer <key>` everywhere; WebSocket connections and SSE requests (browsers cannot
set headers there) may pass `?access_token=<key>` instead. Roles, from least to most powerful:
viewer (reads the live picture, zones, events), operator (also submits clearances; sees and acts on
the drones and clearances whose owner is the key's owner only), engineer (history, readings,
replays), admin (changes the airspace, manages everything). `admin` passes every `require(...)`.

Use as a FastAPI dependency::

    @router.get("/v1/things")
    def things(who: Principal = Depends(require("viewer", "operator"))): ...

or, outside a route (e.g. a WebSocket loop), `await authenticate_token(app, token)`.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Security
from fastapi.security import HTTPBearer
from prometheus_client import Counter
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from storage.auth import ROLES, KeyCache, valid_key_ids

from .localize import Msg
from .models import Problem

__all__ = ["ROLES", "ANY_ROLE", "Principal", "Authenticator", "FeedKeys", "authenticate_token", "require",
           "metrics_reader", "token_from", "UNAUTHORIZED", "FORBIDDEN"]

ANY_ROLE = ROLES
log = logging.getLogger("skylane.api.auth")
AUTH_FAILURES = Counter("skylane_api_auth_failures_total", "Refused API requests", ["reason"])


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: str
    owner: str | None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def as_dict(self) -> dict:
        return {"key_id": self.key_id, "role": self.role, "owner": self.owner}


class FeedKeys:
    """The keys of the open live feeds, re-checked together every `interval_s` (one query for all of them): the
    feeds of a key revoked meanwhile are told (their `on_revoked` runs) within one interval, and the key is
    dropped from `cache` so REST refuses it at once too. Runs on the serving event loop while feeds are open.
    """

    def __init__(self, connect, interval_s: float, cache: KeyCache):
        self.connect, self.interval_s, self.cache = connect, interval_s, cache
        self._feeds: dict[str, dict[object, Callable[[], None]]] = {}  # key id -> {feed handle: on_revoked}
        self._task: asyncio.Task | None = None

    def watch(self, key_id: str, on_revoked: Callable[[], None]) -> Callable[[], None]:
        """Watch one feed's key (call on the event loop); returns the function that stops watching it."""
        handle = object()
        self._feeds.setdefault(key_id, {})[handle] = on_revoked
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

        def unwatch() -> None:
            feeds = self._feeds.get(key_id)
            if feeds is not None:
                feeds.pop(handle, None)
                if not feeds:
                    del self._feeds[key_id]
        return unwatch

    def _valid(self, key_ids: list[str]) -> set[str]:
        with self.connect() as conn:
            return valid_key_ids(conn, key_ids)

    async def _run(self) -> None:
        while self._feeds:
            await asyncio.sleep(self.interval_s)
            key_ids = list(self._feeds)
            if not key_ids:
                break
            try:
                valid = await asyncio.to_thread(self._valid, key_ids)
            except Exception as exc:  # noqa: BLE001 - database away: the feeds stay open, checked next time
                log.warning("feed key re-check failed: %s", exc)
                continue
            for key_id in key_ids:
                if key_id not in valid:
                    self.cache.forget(key_id)
                    feeds = self._feeds.pop(key_id, {})
                    log.info("feed.key_revoked key=%s feeds=%d", key_id, len(feeds))
                    for on_revoked in feeds.values():
                        on_revoked()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


class Authenticator:
    """The key lookups of one app: a connection factory (pool.connection), a TTL cache, and the open feeds'
    keys re-checked every TTL (`feeds`)."""

    def __init__(self, connect, ttl_s: float = 5.0):
        self.connect = connect
        self.cache = KeyCache(ttl_s)
        self.feeds = FeedKeys(connect, ttl_s, self.cache)

    def lookup(self, token: str) -> Principal | None:
        return _principal(self.cache.lookup(token, self.connect))

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        found, record = self.cache.peek(token)
        return found, _principal(record)


def _principal(record) -> Principal | None:
    return None if record is None else Principal(record.key_id, record.role, record.owner)


def _unauthorized(detail: str, reason: str) -> HTTPException:
    AUTH_FAILURES.labels(reason).inc()
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate_token(app, token: str | None) -> Principal:
    """The principal of a key, or HTTPException(401). `app.state.auth` is the app's Authenticator."""
    if not token:
        raise _unauthorized(Msg("api.key_missing"), "missing")
    auth: Authenticator = app.state.auth
    found, principal = auth.cached(token)  # the common case: no thread hop, no database
    if not found:
        principal = await run_in_threadpool(auth.lookup, token)
    if principal is None:
        raise _unauthorized(Msg("api.key_invalid"), "invalid")
    return principal


def token_from(conn: HTTPConnection) -> str | None:
    """The bearer token of a request; `?access_token=` only on WebSockets and event streams."""
    header = conn.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    query_ok = conn.scope["type"] == "websocket" or "text/event-stream" in conn.headers.get("accept", "")
    return conn.query_params.get("access_token") if query_ok else None


class _Bearer(HTTPBearer):
    """The OpenAPI `bearer` security scheme, usable by HTTP and WebSocket routes alike."""

    async def __call__(self, conn: HTTPConnection) -> str | None:  # type: ignore[override]
        return token_from(conn)


BEARER = _Bearer(scheme_name="bearer", bearerFormat="sky_<key id>_<secret>", auto_error=False,
                 description="An API key from `skylane keys create --role ROLE`.")
UNAUTHORIZED = {"description": "Missing, invalid or revoked API key", "model": Problem}
FORBIDDEN = {"description": "The key's role may not do this", "model": Problem}


def metrics_reader(scrape_token: Callable[[HTTPConnection], str | None]):
    """A dependency for /metrics: the app's scrape token (`scrape_token(conn)`, e.g. ApiConfig.metrics_token;
    `Authorization: Bearer <token>` only, compared in constant time), else an engineer's or admin's API key."""
    engineer = require("engineer")

    async def dependency(conn: HTTPConnection, token: str | None = Security(BEARER)) -> None:
        expected = scrape_token(conn)
        scheme, _, value = conn.headers.get("authorization", "").partition(" ")
        if expected and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected.encode()):
            return
        await engineer(conn, token)

    return dependency


def require(*roles: str):
    """A dependency giving the caller's Principal: 401 without a valid key, 403 for other roles."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"require() takes roles from {ROLES}, got {roles}")
    allowed = frozenset(roles) | {"admin"}

    async def dependency(conn: HTTPConnection, token: str | None = Security(BEARER)) -> Principal:
        principal = await authenticate_token(conn.app, token)
        if principal.role not in allowed:
            AUTH_FAILURES.labels("forbidden").inc()
            raise HTTPException(403, Msg("api.role_forbidden", role=principal.role, allowed=", ".join(sorted(allowed))))
        return principal

    return dependency
