"""ASGI middleware: request-body size limits (413 before reading), request metrics and an access log.

Metrics are labelled by the route template (`/v1/uavs/{uav_id}/track`), never the raw path, so
label cardinality stays bounded whatever clients send.
"""
from __future__ import annotations

import logging
import time

import orjson
from fastapi import HTTPException

from i18n import Msg, negotiate
from prometheus_client import Counter, Histogram

log = logging.getLogger("skylane.api.access")

REQUESTS = Counter("skylane_api_requests_total", "API requests by route template, method and status",
                   ["route", "method", "status"])
LATENCY = Histogram("skylane_api_request_seconds", "API request latency by route template", ["route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
REFUSED_BODIES = Counter("skylane_api_refused_bodies_total", "Request bodies refused for size")


async def _problem(send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _too_large(scope, limit: int) -> str:
    return Msg("api.body_too_large", limit=limit).render(negotiate(dict(scope["headers"]).get(b"accept-language",
                                                                                             b"").decode("latin-1")))


class ApiMiddleware:
    """Refuses over-long bodies (declared or streamed), then times and counts the request."""

    def __init__(self, app, max_body: int, max_upload: int, upload_paths: tuple[str, ...] = ("/v1/zones",)):
        self.app, self.max_body, self.max_upload, self.upload_paths = app, max_body, max_upload, upload_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.max_upload if path.startswith(self.upload_paths) else self.max_body
        declared = dict(scope["headers"]).get(b"content-length")
        started = time.perf_counter()
        status = {"code": 500}
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            REFUSED_BODIES.inc()
            status["code"] = 413
            await _problem(send, 413, _too_large(scope, limit))
            self._record(scope, status["code"], started)
            return
        seen = {"n": 0}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen["n"] += len(message.get("body", b""))
                if seen["n"] > limit:
                    raise _TooLarge(limit)
            return message

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _TooLarge:
            REFUSED_BODIES.inc()
            status["code"] = 413
            await _problem(send, 413, _too_large(scope, limit))
        finally:
            self._record(scope, status["code"], started)

    @staticmethod
    def _record(scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        elapsed = time.perf_counter() - started
        REQUESTS.labels(template, scope["method"], str(status)).inc()
        LATENCY.labels(template).observe(elapsed)
        quiet = status < 400 and scope["method"] in ("GET", "HEAD")
        log.log(logging.DEBUG if quiet else logging.INFO, "method=%s route=%s status=%d ms=%.1f",
                scope["method"], template, status, elapsed * 1000)


class _TooLarge(HTTPException):
    """Raised while FastAPI reads the body: it passes HTTPExceptions through, so this stays a 413."""

    def __init__(self, limit: int):
        super().__init__(413, Msg("api.body_too_large", limit=limit))
