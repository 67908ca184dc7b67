"""Airspace events: what the monitor tells the rest of Skylane (API, storage, alerting).

Every condition the monitor tracks has a start kind and an end kind, so a consumer can keep
the set of open alerts from the event stream alone (`END_OF` maps each start to its end).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from protocol.times import rfc3339

# start kind -> end kind; zone_enter/zone_exit is the plain membership pair
END_OF = {
    "zone_enter": "zone_exit",
    "no_fly_violation": "no_fly_violation_end",
    "altitude_violation": "altitude_violation_end",
    "corridor_exit": "corridor_return",
    "route_deviation": "route_deviation_end",
    "uncleared_flight": "uncleared_flight_end",
    "link_lost": "link_restored",
    "zone_suspended": "zone_activated",
    # the air picture and live separation (airspace.traffic; docs/surveillance-separation.md)
    "separation_loss": "separation_loss_end",
    "conflict_predicted": "conflict_predicted_end",
    "position_discrepancy": "position_discrepancy_end",
    "unregistered_aircraft": "unregistered_aircraft_end",
    "source_lost": "source_restored",
}
# notices: one-off events with no condition to end, so no end kind (not alerts). unregistered_device: a vendor
# identifier (DJI serial number, LoRaWAN device EUI, ...) that no registry entry names; uav_id is that identifier
NOTICE_KINDS = ("unregistered_device",)
EVENT_KINDS = tuple(k for pair in END_OF.items() for k in pair) + NOTICE_KINDS
ALERT_KINDS = tuple(k for k in END_OF if k not in ("zone_enter", "zone_suspended"))


def utc(ts: datetime) -> datetime:
    """`ts` in UTC; a naive datetime is refused, since guessing its zone shifts events by 8 h."""
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp must be a timezone-aware datetime, got {ts!r}")
    return ts.astimezone(timezone.utc)


def from_epoch(t: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (microsecond resolution)."""
    return datetime.fromtimestamp(round(float(t), 6), tz=timezone.utc)


def epoch_of(ts: datetime) -> float:
    return utc(ts).timestamp()


@dataclass(frozen=True)
class AirspaceEvent:
    """One transition for one UAV, stamped with the event time of the fix that caused it
    (or, for a crossing between two fixes, the interpolated time of entry or exit)."""

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
