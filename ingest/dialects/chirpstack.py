"""ChirpStack v4 MQTT integration: `application/{application_id}/device/{dev_eui}/event/{event}` (JSON, camelCase).

  event/up       deviceInfo, time, fCnt, object (the decoded payload: present when the device profile has a
                 codec), rxInfo[] (rssi, snr per gateway): readings of the sensor whose registry entry has
                 `dev_eui` (metric_map renames fields and gives units), frame counters (ingest/dialects/lorawan.py)
  event/join     the device (re)joined: online, its frame counter restarts
  event/status   batteryLevel, margin, externalPowerSource: readings, and online

An uplink without `object` is a dead letter saying so; a device EUI nobody registered is a dead letter
"unregistered LoRaWAN device EUI ...". The other events (ack, txack, log, location, integration) are not
subscribed to.
"""
from __future__ import annotations

import re
from datetime import datetime

from ..rows import DeviceStatus
from ..validation import BadMessage
from .base import DialectContext, DialectResult
from .lorawan import FrameCounters, best_reception, fcnt_of, uplink
from .vendor import counted, device_of, field_readings, json_object, vendor_time

EVENTS = ("up", "join", "status")
_EUI = re.compile(r"[0-9a-fA-F]{16}")
STATUS_FIELDS = {"batteryLevel": "%", "margin": "dB", "externalPowerSource": None, "batteryLevelUnavailable": None}


class ChirpStackDialect:
    name = "chirpstack"

    def __init__(self) -> None:
        self.counters = FrameCounters()
        self.parse = counted(self.name, self._parse)

    def filters(self, root: str) -> list[str]:
        return [f"application/+/device/+/event/{e}" for e in EVENTS]

    def matches(self, topic: str, root: str) -> bool:
        return topic.startswith("application/") and "/device/" in topic and "/event/" in topic

    def _parse(self, topic: str, payload: bytes, received_at: datetime,
               ctx: DialectContext) -> tuple[str, DialectResult]:
        parts = topic.split("/")
        if len(parts) != 6 or parts[2] != "device" or parts[4] != "event" or parts[5] not in EVENTS:
            raise BadMessage("not a ChirpStack event topic (application/{id}/device/{dev_eui}/event/up|join|status)")
        dev_eui, event = parts[3].lower(), parts[5]
        if not _EUI.fullmatch(dev_eui):
            raise BadMessage(f"device EUI {parts[3][:40]!r} is not 16 hex digits")
        doc = json_object(payload, ctx, f"ChirpStack {event} event")
        info = doc.get("deviceInfo")
        if isinstance(info, dict) and isinstance(info.get("devEui"), str) and info["devEui"].lower() != dev_eui:
            raise BadMessage(f"deviceInfo.devEui {info['devEui'][:40]!r} differs from the topic's {dev_eui}")
        sensor_id = device_of(ctx, "dev_eui", dev_eui, "LoRaWAN device EUI")
        ts = vendor_time(doc["time"], received_at, "time") if doc.get("time") is not None else received_at
        if event == "up":
            return event, uplink(self.name, self.counters, sensor_id, fcnt_of(doc.get("fCnt"), "fCnt"), payload, ts,
                                 doc.get("object"), best_reception(doc.get("rxInfo"), "rxInfo"), received_at, ctx,
                                 "object", "give the device profile a codec")
        if event == "join":
            self.counters.reset(sensor_id)
            return event, DialectResult(statuses=[DeviceStatus(sensor_id, True, ts)])
        readings = field_readings(sensor_id, doc, ts, received_at, ctx.registry.metric_map.get(sensor_id, {}),
                                  only=STATUS_FIELDS)
        return event, DialectResult(readings=readings, statuses=[DeviceStatus(sensor_id, True, ts)])
