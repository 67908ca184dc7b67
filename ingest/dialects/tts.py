"""The Things Stack v3 MQTT server: `v3/{application_id}[@{tenant_id}]/devices/{device_id}/{event}` (JSON,
snake_case), as a Mosquitto bridge or an integration forwards it to Skylane's broker.

  up      uplink_message.decoded_payload (from the application's payload formatter), f_cnt, rx_metadata[]
          (rssi, snr), received_at: readings of the sensor the registry maps, frame counters
          (ingest/dialects/lorawan.py)
  join    join_accept: the device (re)joined: online, its frame counter restarts

The registry maps a device by its `tts_device_id`: "{application_id}/{device_id}" (the application id as in the
topic, with or without its "@tenant") or the bare device id; or by its `dev_eui` (end_device_ids.dev_eui). An uplink without
decoded_payload is a dead letter saying so; an unknown device a dead letter "unregistered LoRaWAN device ...".
"""
from __future__ import annotations

from datetime import datetime

from ..rows import DeviceStatus
from ..validation import BadMessage
from .base import DialectContext, DialectResult
from .lorawan import FrameCounters, best_reception, fcnt_of, uplink
from .vendor import UnregisteredDevice, counted, json_object, sub_object, vendor_time

EVENTS = ("up", "join")


class TtsDialect:
    name = "tts"

    def __init__(self) -> None:
        self.counters = FrameCounters()
        self.parse = counted(self.name, self._parse)

    def filters(self, root: str) -> list[str]:
        return [f"v3/+/devices/+/{e}" for e in EVENTS]

    def matches(self, topic: str, root: str) -> bool:
        return topic.startswith("v3/") and "/devices/" in topic

    def _parse(self, topic: str, payload: bytes, received_at: datetime,
               ctx: DialectContext) -> tuple[str, DialectResult]:
        parts = topic.split("/")
        if len(parts) != 5 or parts[2] != "devices" or parts[4] not in EVENTS or not parts[1] or not parts[3]:
            raise BadMessage("not a The Things Stack topic (v3/{application}[@{tenant}]/devices/{device_id}/up|join)")
        application, device, event = parts[1], parts[3], parts[4]
        doc = json_object(payload, ctx, f"The Things Stack {event} message")
        ids = doc.get("end_device_ids") if isinstance(doc.get("end_device_ids"), dict) else {}
        if isinstance(ids.get("device_id"), str) and ids["device_id"] != device:
            raise BadMessage(f"end_device_ids.device_id {ids['device_id'][:40]!r} differs from the topic's {device!r}")
        sensor_id = _sensor(ctx, application, device, ids.get("dev_eui"))
        up = sub_object(doc, "uplink_message" if event == "up" else "join_accept", f"The Things Stack {event}")
        when = doc.get("received_at") or up.get("received_at")
        ts = vendor_time(when, received_at, "received_at") if when is not None else received_at
        if event == "join":
            self.counters.reset(sensor_id)
            return event, DialectResult(statuses=[DeviceStatus(sensor_id, True, ts)])
        return event, uplink(self.name, self.counters, sensor_id, fcnt_of(up.get("f_cnt"), "f_cnt"), payload, ts,
                             up.get("decoded_payload"), best_reception(up.get("rx_metadata"), "rx_metadata"),
                             received_at, ctx, "decoded_payload", "give the application or device an uplink payload "
                             "formatter")


def _sensor(ctx: DialectContext, application: str, device: str, dev_eui: object) -> str:
    app = application.split("@", 1)[0]
    for key, value in (("tts_device_id", f"{application}/{device}"), ("tts_device_id", f"{app}/{device}"),
                       ("tts_device_id", device), ("dev_eui", dev_eui if isinstance(dev_eui, str) else "")):
        if value and (found := ctx.registry.device(key, value)) is not None:
            return found
    raise UnregisteredDevice("LoRaWAN device", "tts_device_id", f"{application}/{device}")
