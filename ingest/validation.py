"""Field checks shared by the message parsers; every failure carries a reason for the dead letters."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from protocol.times import parse_rfc3339

EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_FUTURE = timedelta(minutes=5)


class BadMessage(ValueError):
    """The message breaks the contract; it becomes a dead letter with this reason."""


def load_json(payload: bytes, max_bytes: int) -> Any:
    if len(payload) > max_bytes:
        raise BadMessage(f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte limit")
    if not payload:
        raise BadMessage("empty payload")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"malformed JSON: {exc}") from None


def number(obj: dict, key: str, *, lo: float | None = None, hi: float | None = None,
           required: bool = False) -> float | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise BadMessage(f"missing field {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadMessage(f"field {key!r} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise BadMessage(f"field {key!r} must be finite")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise BadMessage(f"field {key!r}={value:g} out of range [{lo:g}, {hi:g}]")
    return value


def timestamp(value: Any, received_at: datetime, key: str = "ts") -> datetime:
    """RFC 3339 with an offset, or epoch milliseconds; not before 2000 nor minutes ahead of arrival."""
    if isinstance(value, bool):
        raise BadMessage(f"field {key!r} must be RFC 3339 or epoch milliseconds")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise BadMessage(f"field {key!r} must be finite")
        try:
            ts = datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise BadMessage(f"field {key!r}={value!r} is not a usable epoch-milliseconds time") from None
    elif isinstance(value, str):
        try:
            ts = parse_rfc3339(value)
        except ValueError as exc:
            raise BadMessage(f"field {key!r}={exc}") from None
    else:
        raise BadMessage(f"field {key!r} must be RFC 3339 or epoch milliseconds")
    return check_time(ts, received_at, key)


def check_time(ts: datetime, received_at: datetime, key: str = "ts") -> datetime:
    if ts < EARLIEST:
        raise BadMessage(f"field {key!r} {ts.isoformat()} is before 2000-01-01")
    if ts > received_at + MAX_FUTURE:
        raise BadMessage(f"field {key!r} {ts.isoformat()} is more than 5 minutes ahead of arrival")
    return ts


def string(value: object, key: str, max_len: int) -> str:
    """A JSON string the database can hold: bounded, printable (no NUL or control characters)."""
    if not isinstance(value, str):
        raise BadMessage(f"field {key!r} must be a string")
    if len(value) > max_len:
        raise BadMessage(f"field {key!r} longer than {max_len} characters")
    if not value.isprintable():
        raise BadMessage(f"field {key!r} contains control characters")
    return value


def text(obj: dict, key: str, *, max_len: int = 64, choices: tuple[str, ...] | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    value = string(value, key, max_len)
    if choices is not None:
        match = next((c for c in choices if c.lower() == value.lower()), None)
        if match is None:
            raise BadMessage(f"field {key!r}={value!r} not one of {', '.join(choices)}")
        return match
    return value
