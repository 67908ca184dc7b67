"""The records that flow through ingest: messages in, rows and observations out, messages to publish."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from protocol.times import rfc3339


@dataclass(slots=True)
class RawMessage:
    topic: str
    payload: bytes
    received_at: datetime
    qos: int = 0
    mid: int = 0
    generation: int = 0  # connection the message arrived on (acks are only valid on that one)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    received_at: datetime
    topic: str
    payload: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    device_id: str
    online: bool
    at: datetime


class OutMessage(NamedTuple):
    """A message to publish after a batch is committed (ingest.outputs)."""
    topic: str
    payload: bytes
    qos: int
    retain: bool
    coalesce: bool = False  # a live state: a publisher may send only the newest of a topic


ALT_SOURCES = ("baro", "gnss", "geometric", "reported")


@dataclass(frozen=True, slots=True)
class ObservationRow:
    """One sighting of an aircraft by a surveillance source (ADS-B, Remote ID, ...): the observation contract.

    `track_id` is the source's own identity of the aircraft (an ICAO 24-bit address, a Remote ID serial number
    or session id); `identity` what else the source says of it (callsign, emitter category, operator id, the
    registered UAV it maps to). The altitude keeps its reference and where it came from (`alt_source`)."""

    ts: datetime
    source: str
    track_id: str
    lon: float
    lat: float
    alt_m: float | None
    alt_ref: str | None
    alt_source: str | None
    speed_mps: float | None
    track_deg: float | None
    vspeed_mps: float | None
    receiver_id: str | None
    rssi: float | None
    received_at: datetime
    identity: dict = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict:
        return {"ts": rfc3339(self.ts), "source": self.source, "track_id": self.track_id, "lon": self.lon,
                "lat": self.lat, "alt_m": self.alt_m, "alt_ref": self.alt_ref, "alt_source": self.alt_source,
                "speed_mps": self.speed_mps, "track_deg": self.track_deg, "vspeed_mps": self.vspeed_mps,
                "receiver_id": self.receiver_id, "rssi": self.rssi, "identity": dict(self.identity)}
