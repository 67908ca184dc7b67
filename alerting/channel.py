"""The one interface every channel implements, what it is given, and what it answers.

A channel gets a `Message` (one event, or a digest of several for one subscription) and answers a `Result`:
delivered, retry (the receiver may take it later: 5xx, 429, timeouts, refused connections) or failed (it never
will: a bad target, a 4xx other than 429; the reason is kept on the delivery). A channel never raises for a
receiver's answer, and never puts its target or secret into an error text (robot URLs carry their key).
Reasons are catalogue texts (`i18n.Msg`, keys `alerting.<module>.*`): English where they are stored on a delivery
and logged; a target check's ValueError carries its Msg, which the admin API says in the caller's language.
"""
from __future__ import annotations

import socket
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from i18n import Msg

DELIVERED, RETRY, FAILED = "delivered", "retry", "failed"
USER_AGENT = "skylane-alerts/1"
MAX_ERROR = 500


@dataclass(frozen=True)
class Subscription:
    id: str
    name: str
    channel: str
    target: str = field(repr=False)  # robot addresses carry their key: never in a repr (logs, tracebacks)
    secret: str | None = field(repr=False)
    language: str = "zh-CN"  # what its messages are written in (zh-CN or en; render.py)


@dataclass(frozen=True)
class Alert:
    """One event to deliver: its id and table (`source`: airspace or sensor) and its JSON as the API serves it."""

    event_id: str
    source: str
    kind: str
    ts: datetime
    event: dict[str, Any]
    zone_name_zh: str | None = None  # the Chinese name of the event's zone (the zone's name_zh), if it has one


@dataclass(frozen=True)
class Message:
    """What one send carries: `id` is the event id (idempotency key), or for a digest a uuid5 of its events."""

    id: str
    subscription: Subscription
    alerts: tuple[Alert, ...]
    digest: bool = False


@dataclass(frozen=True)
class Result:
    outcome: str  # DELIVERED, RETRY or FAILED
    error: str | None = None
    retry_after_s: float | None = None
    maybe_delivered: bool = False  # a retry after which the receiver may have it all the same (a timeout, a
    # connection lost after sending): a digest is then sent again under its id, never merged into another

    @classmethod
    def retry(cls, error: str, retry_after_s: float | None = None, maybe_delivered: bool = False) -> Result:
        return cls(RETRY, error[:MAX_ERROR], retry_after_s, maybe_delivered)

    @classmethod
    def failed(cls, error: str) -> Result:
        return cls(FAILED, error[:MAX_ERROR])


OK = Result(DELIVERED)


class Channel(ABC):
    """A way out. `rate_per_min`: sends per subscription and minute (a flood beyond it becomes a digest)."""

    name: str = ""
    rate_per_min: float = 60.0
    needs_secret: bool = False

    @abstractmethod
    def check_target(self, target: str, secret: str | None) -> None:
        """Raise ValueError saying what is wrong with a subscription's target or secret (the API's 422)."""

    @abstractmethod
    def send(self, message: Message) -> Result:
        """Deliver one message; never raises for what the receiver answers."""


def check_http_url(url: str) -> None:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(Msg("alerting.channel.bad_url")) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(Msg("alerting.channel.bad_url"))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's hook
        return None  # the HTTPError for the 3xx reaches post_json


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes


def post_json(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> HttpAnswer | Result:
    """POST a JSON body: the 2xx answer, or the Result of anything else (retry or failed, with the reason)."""
    try:
        check_http_url(url)
    except ValueError as exc:
        return Result.failed(str(exc))
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **headers})
    try:
        with _OPENER.open(req, timeout=timeout_s) as resp:
            return HttpAnswer(resp.status, resp.read(65536))
    except urllib.error.HTTPError as exc:
        return http_error(exc.code, _peek(exc), exc.headers.get("Retry-After") if exc.headers else None)
    except (TimeoutError, socket.timeout):
        return Result.retry(Msg("alerting.channel.timeout", seconds=timeout_s), maybe_delivered=True)
    except urllib.error.URLError as exc:  # before anything was sent (refused, no route, name unknown)
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            return Result.retry(Msg("alerting.channel.timeout", seconds=timeout_s), maybe_delivered=True)
        return Result.retry(Msg("alerting.channel.unreachable", reason=_reason(exc.reason)))
    except (OSError, ValueError) as exc:  # a connection reset mid-answer, a malformed answer
        return Result.retry(Msg("alerting.channel.unreachable", reason=_reason(exc)), maybe_delivered=True)


def http_error(status: int, body: str, retry_after: str | None) -> Result:
    """4xx other than 429: failed (the receiver will not take it); 429 and 5xx: retry, after Retry-After."""
    detail = f": {body}" if body else ""
    if 300 <= status < 400:
        return Result.failed(Msg("alerting.channel.redirect", status=status))
    if status == 429 or status >= 500:
        return Result.retry(Msg("alerting.channel.http_status", status=status, detail=detail),
                            parse_retry_after(retry_after))
    return Result.failed(Msg("alerting.channel.http_status", status=status, detail=detail))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - datetime.now().timestamp())
    except (TypeError, ValueError):
        return None


def _peek(exc: urllib.error.HTTPError) -> str:
    try:
        return " ".join(exc.read(300).decode("utf-8", "replace").split())[:200]
    except Exception:  # noqa: BLE001 - the body is only a hint in the error text
        return ""


def _reason(reason: object) -> str:
    """An OS error's text without the address it was about (URLs may carry keys)."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__ if not isinstance(reason, str) else reason[:200]
