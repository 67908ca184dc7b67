"""Airspace events: what the monitor tells the rest of Skylane (API, storage, alerting)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

EVENT_KINDS = ("zone_enter", "zone_exit", "no_fly_violation", "altitude_violation")


def utc(ts: datetime) -> datetime:
    """`ts` in UTC; a naive datetime is refused, since guessing its zone shifts events by 8 h."""
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp must be a timezone-aware datetime, got {ts!r}")
    return ts.astimezone(timezone.utc)


def rfc3339(ts: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a 'Z' suffix, e.g. 2025-05-01T02:03:04.567Z."""
    return utc(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class AirspaceEvent:
    """One transition for one UAV, stamped with the event time of the fix that caused it."""

    kind: str
    uav_id: str
    zone_id: str | None
    ts: datetime
    detail: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; expected one of {EVENT_KINDS}")
        object.__setattr__(self, "ts", utc(self.ts))

    def to_dict(self) -> dict:
        """JSON-ready form (the wire/storage shape)."""
        return {"kind": self.kind, "uav_id": self.uav_id, "zone_id": self.zone_id,
                "ts": rfc3339(self.ts), "detail": dict(self.detail)}
