"""Generic webhook: the JSON of render.webhook_body, signed so the receiver knows it is Skylane and fresh.

Headers: `X-Skylane-Event-Id` (the idempotency key: the event id, or a digest's id), `X-Skylane-Timestamp`
(Unix seconds) and `X-Skylane-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`. A
receiver recomputes the signature over the raw body and rejects timestamps older than a few minutes
(`verify` below does both), so a captured request cannot be replayed later. Every attempt is signed anew;
the body stays the same, so receivers deduplicate on the id.
"""
from __future__ import annotations

import hashlib
import hmac
import time

import orjson

from i18n import Msg

from . import render
from .channel import OK, Channel, HttpAnswer, Message, Result, check_http_url, post_json

REPLAY_WINDOW_S = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, body: bytes, header: str | None, *, now: float | None = None,
           window_s: float = REPLAY_WINDOW_S) -> bool:
    """What a receiver checks: a fresh timestamp (within `window_s` either way) and the signature over it."""
    if not timestamp or not header:
        return False
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return False
    return abs(age) <= window_s and hmac.compare_digest(signature(secret, timestamp, body), header)


class WebhookChannel(Channel):
    name = "webhook"
    rate_per_min = 600.0
    needs_secret = True

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s

    def check_target(self, target: str, secret: str | None) -> None:
        check_http_url(target)
        if secret is not None and len(secret) < 16:
            raise ValueError(Msg("alerting.webhook.secret_short"))

    def send(self, message: Message) -> Result:
        body = orjson.dumps(render.webhook_body(message))
        headers = {"X-Skylane-Event-Id": message.id}
        if message.digest:
            headers["X-Skylane-Digest"] = str(len(message.alerts))
        secret = message.subscription.secret
        if secret:
            ts = str(int(time.time()))
            headers.update({"X-Skylane-Timestamp": ts, "X-Skylane-Signature": signature(secret, ts, body)})
        answer = post_json(message.subscription.target, body, headers, self.timeout_s)
        return OK if isinstance(answer, HttpAnswer) else answer
