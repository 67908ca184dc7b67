"""One batch of raw MQTT messages in, everything to store and publish out.

No network and no database here: the consumer feeds it from the broker, replay feeds it from a file,
and tests call it directly. Airspace decisions run on event time, in one vectorized pass per batch.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from airspace.events import AirspaceEvent, rfc3339
from airspace.monitor import AirspaceMonitor, Fix
from airspace.zones import ZoneSet
from protocol import topics

from .sensors import ReadingRow, parse_reading
from .telemetry import TelemetryRow, parse_telemetry
from .validation import BadMessage

log = logging.getLogger("skylane.ingest")
EVENT_NAMESPACE = uuid.UUID("6f1c6f2e-52a4-4d39-9f0e-3b7d1c0a5e11")


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


@dataclass(frozen=True, slots=True)
class EventRow:
    id: uuid.UUID
    event: AirspaceEvent

    def to_dict(self) -> dict:
        return {"id": str(self.id), **self.event.to_dict()}


@dataclass
class BatchOutput:
    telemetry: list[TelemetryRow] = field(default_factory=list)
    readings: list[ReadingRow] = field(default_factory=list)
    statuses: list[DeviceStatus] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    uav_states: dict[str, dict] = field(default_factory=dict)
    sensor_states: dict[str, dict] = field(default_factory=dict)


def event_id(ev: AirspaceEvent) -> uuid.UUID:
    """Deterministic: the same decision on the same data has the same id (idempotent, comparable replays)."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{ev.uav_id}|{ev.kind}|{ev.zone_id}|{rfc3339(ev.ts)}")


class Pipeline:
    def __init__(self, zones: ZoneSet, root: str = topics.DEFAULT_ROOT, max_payload_bytes: int = 65536):
        self.root = root
        self.max_payload_bytes = max_payload_bytes
        self.monitor = AirspaceMonitor(zones)

    def process(self, messages: list[RawMessage]) -> BatchOutput:
        out = BatchOutput()
        for msg in messages:
            try:
                self._one(msg, out)
            except BadMessage as exc:
                out.dead_letters.append(DeadLetter(msg.received_at, msg.topic, msg.payload, str(exc)))
            except topics.TopicError as exc:
                out.dead_letters.append(DeadLetter(msg.received_at, msg.topic, msg.payload, f"bad topic: {exc}"))
            except Exception as exc:  # a bug must not lose the message nor stop the ingester
                log.exception("unexpected error on %s", msg.topic[:200])
                out.dead_letters.append(DeadLetter(msg.received_at, msg.topic, msg.payload,
                                                   f"internal error: {type(exc).__name__}: {exc}"))
        if out.telemetry:
            fixes = [Fix(r.uav_id, r.ts, r.lon, r.lat, r.alt_m, r.alt_ref, r.status) for r in out.telemetry]
            out.events = [EventRow(event_id(ev), ev) for ev in self.monitor.process(fixes)]
            latest: dict[str, TelemetryRow] = {}
            for row in out.telemetry:
                if row.uav_id not in latest or row.ts >= latest[row.uav_id].ts:
                    latest[row.uav_id] = row
            for uav_id, row in latest.items():
                if row.ts != self.monitor.last_ts(uav_id):
                    continue  # late fixes are stored but do not move the live position back
                out.uav_states[uav_id] = {**row.state(), "zones": self.monitor.zones_of(uav_id),
                                          "alerts": self.monitor.alerts_of(uav_id)}
        for r in out.readings:
            ts = rfc3339(r.ts)
            state = out.sensor_states.setdefault(r.sensor_id, {"sensor_id": r.sensor_id, "ts": ts, "values": {}})
            state["ts"] = max(state["ts"], ts)
            state["values"][r.metric] = r.value if r.value is not None else r.vtext
        return out

    def _one(self, msg: RawMessage, out: BatchOutput) -> None:
        ref = topics.parse_inbound(self.root, msg.topic)
        if ref.kind == "telemetry":
            out.telemetry.extend(parse_telemetry(ref.device_id, msg.payload, msg.received_at, self.max_payload_bytes))
        elif ref.kind == "reading":
            out.readings.extend(parse_reading(ref.device_id, msg.payload, msg.received_at, self.max_payload_bytes))
        else:
            out.statuses.append(DeviceStatus(ref.device_id, _status(msg.payload), msg.received_at))


def _status(payload: bytes) -> bool:
    text = payload.decode("utf-8", "replace").strip().strip('"').lower()
    if text not in ("online", "offline"):
        raise BadMessage("device status must be 'online' or 'offline'")
    return text == "online"
