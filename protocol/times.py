"""Times on the wire: the one RFC 3339 formatter and the one parser of the project.

Every time Skylane writes (event payloads, states, API answers, record headers) is RFC 3339 in UTC with
milliseconds and a 'Z', e.g. ``2026-05-09T07:35:25.123Z``. Every RFC 3339 time it reads goes through
`parse_rfc3339`, which takes any offset (``Z``, ``+08:00``) and 1 to 9 fraction digits.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone, tzinfo

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?")


def rfc3339(ts: datetime | float, digits: int = 3) -> str:
    """UTC, milliseconds (or microseconds: `digits=6`, for exact exports), 'Z'. An aware datetime is
    truncated (as `isoformat` does); epoch seconds are rounded (a float's last digits are noise). A naive
    datetime is refused: guessing its zone shifts events by hours."""
    if digits not in (3, 6):
        raise ValueError("digits must be 3 or 6")
    if isinstance(ts, datetime):
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError(f"timestamp must be a timezone-aware datetime, got {ts!r}")
        dt = ts.astimezone(timezone.utc)
    else:
        dt = datetime.fromtimestamp(round(float(ts), digits), tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds" if digits == 3 else "microseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str, *, naive: tzinfo | None = None) -> datetime:
    """An RFC 3339 date-time as an aware UTC datetime; ValueError saying what is wrong.

    Fractions longer than microseconds are cut to microseconds. With `naive`, a time without an offset
    (and a bare date) is taken in that zone; without it, an offset is required."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an RFC 3339 time (a string such as 2026-05-09T07:35:25Z)")
    value = text.strip()
    if RFC3339.fullmatch(value):
        head, frac, tail = _split_fraction(value.upper().replace("Z", "+00:00").replace(" ", "T"))
        try:
            return datetime.fromisoformat(head + frac[:7] + tail).astimezone(timezone.utc)
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a valid date and time") from None
    if naive is not None and _LOCAL.fullmatch(value):
        head, frac, _ = _split_fraction(value.upper().replace(" ", "T"))
        try:
            return datetime.fromisoformat(head + frac[:7]).replace(tzinfo=naive).astimezone(timezone.utc)
        except ValueError:
            raise ValueError(f"{text[:40]!r} is not a valid date and time") from None
    hint = " (it needs a UTC offset, e.g. 'Z')" if RFC3339.fullmatch(value + "Z") else ""
    raise ValueError(f"{text[:40]!r} is not RFC 3339{hint}")


def _split_fraction(value: str) -> tuple[str, str, str]:
    """(up to the seconds, '.fraction' or '', the offset or '')."""
    dot = value.find(".", 17)
    if dot < 0:
        return value[:19], "", value[19:]
    end = dot + 1
    while end < len(value) and value[end].isdigit():
        end += 1
    return value[:dot], value[dot:end], value[end:]


def rfc3339_or_none(ts: datetime | None) -> str | None:
    """`rfc3339`, passing None through (nullable columns)."""
    return None if ts is None else rfc3339(ts)
