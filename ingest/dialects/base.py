"""The one shape of an input dialect: topic filters in, the project's rows and observations out.

A dialect is how some other system speaks on the broker (DJI Cloud API, a LoRaWAN network server, Remote ID
receivers, ...). Each is one small module with one class implementing `Dialect`, registered in
`ingest/dialects/__init__.py` and enabled per deployment (`SKYLANE_DIALECTS`). The ingester subscribes to the
enabled dialects' `filters`; the pipeline hands every message on a dialect's topic to its `parse`, which
returns a `DialectResult` or raises `BadMessage` (a dead letter with that reason: nothing is dropped silently).
Parsing is pure: no I/O, no clock; what the dialect needs to know of the registry comes in `DialectContext`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from airspace.vertical import VerticalModel
from protocol.times import rfc3339

from ..validation import BadMessage

from ..rows import DeviceStatus, ObservationRow, OutMessage
from ..sensors import ReadingRow
from ..telemetry import TelemetryRow


# registry properties that name a device in some vendor's terms (compared lower-case for the hex ones)
IDENTIFIER_KEYS = ("dji_sn", "dev_eui", "tts_device_id", "rid_serial", "icao24", "mavlink")
CASELESS_KEYS = frozenset({"dev_eui", "icao24"})


@dataclass(frozen=True)
class RegistryView:
    """What dialects may look up in the device registry: the ids behind vendors' identifiers.

    `by_key[(key, value)] -> device id`, for keys a registry entry carries in its properties, e.g.
    ("dji_sn", "1581F5..."), ("dev_eui", "0004a30b001c0530"), ("tts_device_id", "eui-..."), ("rid_serial", ...),
    ("icao24", "780a3b"), ("mavlink", "<link>/<system id>"). `metric_map[device id]` maps a vendor's field names
    to (metric, unit) for sensors whose payload names its fields its own way."""

    by_key: Mapping[tuple[str, str], str] = field(default_factory=dict)
    metric_map: Mapping[str, Mapping[str, tuple[str, str | None]]] = field(default_factory=dict)

    def device(self, key: str, value: str) -> str | None:
        return self.by_key.get((key, value.lower() if key in CASELESS_KEYS else value))

    @classmethod
    def from_registry(cls, rows) -> RegistryView:
        """From registry entries (dicts from storage.catalog.registry, or devices.registry.DeviceRecord): each
        entry's properties named in IDENTIFIER_KEYS, and its `metric_map` ({field: [metric, unit]})."""
        by_key: dict[tuple[str, str], str] = {}
        metric_map: dict[str, dict[str, tuple[str, str | None]]] = {}
        for r in rows:
            get = r.get if isinstance(r, Mapping) else (lambda k, _r=r: getattr(_r, k, None))
            device_id, props = get("device_id"), get("properties") or {}
            for key in IDENTIFIER_KEYS:
                value = props.get(key)
                if isinstance(value, str) and value:
                    by_key[(key, value.lower() if key in CASELESS_KEYS else value)] = device_id
            fields = props.get("metric_map")
            if isinstance(fields, Mapping):
                metric_map[device_id] = {str(k): (str(v[0]), str(v[1]) if len(v) > 1 and v[1] else None)
                                         for k, v in fields.items() if isinstance(v, (list, tuple)) and v}
        return cls(by_key, metric_map)


@dataclass(frozen=True)
class DialectContext:
    root: str
    registry: RegistryView
    vertical: VerticalModel
    max_payload_bytes: int


@dataclass
class DialectResult:
    """What one message carried, in the project's terms. `replies`: messages the protocol requires back (e.g. DJI's
    `status_reply`), published after the batch is committed. A message from a vendor identifier no registry entry
    names raises UnregisteredDevice: a dead letter naming it, and the pipeline's `unregistered_device` event."""

    telemetry: list[TelemetryRow] = field(default_factory=list)
    readings: list[ReadingRow] = field(default_factory=list)
    statuses: list[DeviceStatus] = field(default_factory=list)
    observations: list[ObservationRow] = field(default_factory=list)
    replies: list[OutMessage] = field(default_factory=list)


class UnregisteredDevice(BadMessage):
    """A vendor identifier that maps to no registry entry: a dead letter whose reason names it ("unregistered DJI
    aircraft SN ..."). `key`/`value`: the registry property and the identifier, for the `unregistered_device`
    event (airspace.events.NOTICE_KINDS)."""

    def __init__(self, what: str, key: str, value: str):
        super().__init__(f"unregistered {what} {value[:80]}: no registry entry has {key} = {value[:80]!r}")
        self.key, self.value = key, value


class Dialect(Protocol):
    name: str

    def filters(self, root: str) -> list[str]:
        """The broker subscriptions this dialect needs (MQTT topic filters)."""
        ...

    def matches(self, topic: str, root: str) -> bool:
        """Whether a received topic is this dialect's."""
        ...

    def parse(self, topic: str, payload: bytes, received_at: datetime, ctx: DialectContext) -> DialectResult:
        """The message in the project's terms; BadMessage (ingest.validation) with the reason otherwise."""
        ...


def iso(ts: datetime) -> str:
    """Times in replies and reasons: the project's one format."""
    return rfc3339(ts)
