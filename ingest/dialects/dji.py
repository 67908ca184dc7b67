"""DJI Cloud API (MQTT thing model): DJI Pilot 2 and DJI Docks, as they publish to a third-party broker.

Topics (DJI's "Topic Definition"; a deployment may bridge them under a prefix, SKYLANE_DJI_TOPIC_PREFIX):

  thing/product/{device_sn}/osd        aircraft or dock properties, ~0.5 Hz (a dock splits its OSD into parts)
  thing/product/{device_sn}/state      properties sent on change
  sys/product/{gateway_sn}/status      method update_topo: which aircraft sits under which gateway (RC or dock);
                                       Skylane answers on sys/product/{gateway_sn}/status_reply (same tid and bid,
                                       data {"result": 0}), as the protocol requires

Serial numbers map to registered devices through the registry property `dji_sn` (aircraft: kind uav; docks and
remote controllers: kind sensor). An aircraft OSD becomes a fix: `latitude`/`longitude` (0, 0 is DJI's "no
position": no fix), `height` is the ellipsoid height (alt_ref WGS84, which the vertical model converts; without
it, `elevation` above the take-off point is taken as AGL), `horizontal_speed`, `vertical_speed`, `attitude_head`
(heading, -180..180, as the track), `battery.capacity_percent`, and `mode_code` through DJI's table to
Ground/Airborne/Emergency. A dock's OSD parts and a gateway's state become readings of the dock's environment and
state; update_topo marks the gateway and its aircraft online (aircraft gone from it offline) and records the
topology as the gateway's `dji_topology` reading (the registered ids of its aircraft). A serial number nobody
registered is a dead letter: "unregistered DJI aircraft SN ...".
"""
from __future__ import annotations

import os
from datetime import datetime

import orjson

from ..rows import DeviceStatus, OutMessage
from ..sensors import ReadingRow
from ..validation import BadMessage
from .base import DialectContext, DialectResult
from .vendor import counted, device_of, epoch_ms, field_readings, json_object, native_fix, sub_object

PREFIX_ENV = "SKYLANE_DJI_TOPIC_PREFIX"
MAX_SN = 64
MAX_TOPICS = 1 << 16  # parsed topics remembered (cleared when full)

# DJI's mode_code tables for aircraft (tests/data/dji_cloud/mode_code_enum.json: the same codes on every aircraft
# page, the newer pages adding 18-20) in the contract's terms. Not connected (14): no status (the aircraft is
# offline). Forced landing and three-blade landing are emergencies.
GROUND, AIRBORNE, EMERGENCY = "Ground", "Airborne", "Emergency"
AIRCRAFT_STATUS = {0: GROUND, 1: GROUND, 2: GROUND, 3: AIRBORNE, 4: AIRBORNE, 5: AIRBORNE, 6: AIRBORNE,
                   7: AIRBORNE, 8: AIRBORNE, 9: AIRBORNE, 10: AIRBORNE, 11: EMERGENCY, 12: EMERGENCY, 13: GROUND,
                   15: AIRBORNE, 16: AIRBORNE, 17: AIRBORNE, 18: AIRBORNE, 19: AIRBORNE, 20: AIRBORNE}
NOT_CONNECTED = 14
AIRCRAFT_KEYS = ("attitude_head", "horizontal_speed", "vertical_speed", "elevation")  # what only an aircraft sends

# dock (and remote controller) fields kept as readings: path -> unit; the registry's metric_map may rename them
# or add others
DOCK_FIELDS: dict[str, str | None] = {
    "environment_temperature": "Cel", "temperature": "Cel", "humidity": "%RH", "wind_speed": "m/s",
    "rainfall": None, "drone_in_dock": None, "cover_state": None, "putter_state": None, "mode_code": None,
    "emergency_stop_state": None, "alarm_state": None, "flighttask_step_code": None, "job_number": "count",
    "acc_time": "s", "working_voltage": "mV", "working_current": "mA", "capacity_percent": "%",
    "drone_charge_state.capacity_percent": "%", "drone_charge_state.state": None,
    "backup_battery.voltage": "mV", "backup_battery.temperature": "Cel", "network_state.quality": None,
    "network_state.rate": "kB/s", "position_state.gps_number": "count", "position_state.rtk_number": "count",
    "wireless_link.sdr_quality": None, "wireless_link.4g_quality": None,
}


class DjiDialect:
    """The DJI Cloud API dialect. Keeps which aircraft each gateway last reported (update_topo, and a dock's
    `sub_device`), so an aircraft that leaves a gateway's topology is marked offline."""

    name = "dji"

    def __init__(self, prefix: str | None = None):
        prefix = os.environ.get(PREFIX_ENV, "") if prefix is None else prefix
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._thing = self.prefix + "thing/product/"
        self._sys = self.prefix + "sys/product/"
        self.topology: dict[str, tuple[str, ...]] = {}  # gateway SN -> aircraft SNs it reported
        self._topics: dict[str, tuple[str, str]] = {}  # topic -> (SN, kind): devices keep their topics
        self.parse = counted(self.name, self._parse)

    def filters(self, root: str) -> list[str]:
        return [f"{self._thing}+/osd", f"{self._thing}+/state", f"{self._sys}+/status"]

    def matches(self, topic: str, root: str) -> bool:
        return ((topic.startswith(self._thing) and topic.endswith(("/osd", "/state")))
                or (topic.startswith(self._sys) and topic.endswith("/status")))

    def _parse(self, topic: str, payload: bytes, received_at: datetime,
               ctx: DialectContext) -> tuple[str, DialectResult]:
        route = self._topics.get(topic)
        if route is None:
            base = self._thing if topic.startswith(self._thing) else self._sys
            parts = topic[len(base):].split("/")
            if len(parts) != 2 or not 0 < len(parts[0]) <= MAX_SN or not parts[0].isprintable():
                raise BadMessage(f"not a DJI Cloud API topic ({base}{{sn}}/osd|state|status)")
            if len(self._topics) >= MAX_TOPICS:
                self._topics.clear()
            route = self._topics[topic] = (parts[0], parts[1])
        sn, kind = route
        msg = json_object(payload, ctx, f"DJI {kind} message")
        ts = epoch_ms(msg["timestamp"], received_at, "timestamp") if msg.get("timestamp") is not None \
            else received_at
        if kind == "status":
            return kind, self._status(sn, msg, ts, received_at, ctx)
        data = sub_object(msg, "data", f"DJI {kind} message")
        if kind == "osd" and any(k in data for k in AIRCRAFT_KEYS):
            return "aircraft_osd", self._aircraft(sn, data, ts, received_at, ctx)
        device_id = device_of(ctx, "dji_sn", sn, "DJI device SN")
        res = DialectResult(readings=self._device_readings(device_id, data, ts, received_at, ctx))
        sub = data.get("sub_device")
        if isinstance(sub, dict) and isinstance(sub.get("device_sn"), str):  # a dock's aircraft
            res.statuses += self._topology(sn, (sub["device_sn"],) if sub.get("device_online_status") else (),
                                           ts, ctx)
        if kind == "state":
            res.statuses.append(DeviceStatus(device_id, True, ts))
        return ("dock_osd" if kind == "osd" else kind), res

    def _aircraft(self, sn: str, data: dict, ts: datetime, received_at: datetime,
                  ctx: DialectContext) -> DialectResult:
        uav_id = device_of(ctx, "dji_sn", sn, "DJI aircraft SN")
        mode = data.get("mode_code")
        if mode == NOT_CONNECTED:
            return DialectResult(statuses=[DeviceStatus(uav_id, False, ts)])
        lat, lon = data.get("latitude"), data.get("longitude")
        if lat == 0 and lon == 0:
            return DialectResult()  # DJI's "no position" (docked, no GNSS fix): nothing to place
        fields: dict = {"lat": lat, "lon": lon}
        if data.get("height") is not None:
            fields["alt_m"], fields["alt_ref"] = data["height"], "WGS84"
        elif data.get("elevation") is not None:  # above the take-off point, taken as ground level
            fields["alt_m"], fields["alt_ref"] = data["elevation"], "AGL"
        else:
            raise BadMessage(f"DJI aircraft OSD of {sn}: neither 'height' nor 'elevation'")
        fields["speed_mps"] = data.get("horizontal_speed")
        fields["vspeed_mps"] = data.get("vertical_speed")
        head = data.get("attitude_head")
        if isinstance(head, (int, float)) and not isinstance(head, bool) and -360 <= head <= 360:
            head = float(head) % 360.0
        fields["track_deg"] = head
        battery = data.get("battery")
        if isinstance(battery, dict):
            fields["battery_pct"] = battery.get("capacity_percent")
        elif battery is not None:
            raise BadMessage(f"DJI aircraft OSD of {sn}: field 'battery' must be an object")
        if isinstance(mode, int) and not isinstance(mode, bool):
            fields["status"] = AIRCRAFT_STATUS.get(mode)
        elif mode is not None:
            raise BadMessage(f"DJI aircraft OSD of {sn}: field 'mode_code' must be an integer")
        row = native_fix(uav_id, fields, received_at, ctx, lambda: f"DJI aircraft OSD of {sn} (latitude, longitude, "
                         "height, horizontal_speed, vertical_speed, attitude_head, battery as the contract's fields)",
                         ts=ts)
        return DialectResult(telemetry=[row])

    def _device_readings(self, device_id: str, data: dict, ts: datetime, received_at: datetime,
                         ctx: DialectContext) -> list[ReadingRow]:
        mapped = ctx.registry.metric_map.get(device_id, {})
        only = {**DOCK_FIELDS, **{k: v[1] for k, v in mapped.items()}}
        return field_readings(device_id, data, ts, received_at, mapped, only=only)

    def _status(self, gateway_sn: str, msg: dict, ts: datetime, received_at: datetime,
                ctx: DialectContext) -> DialectResult:
        if msg.get("method") != "update_topo":
            raise BadMessage(f"DJI status message with method {str(msg.get('method'))[:40]!r}; "
                             "only update_topo is defined")
        gateway_id = device_of(ctx, "dji_sn", gateway_sn, "DJI gateway SN")
        data = sub_object(msg, "data", "DJI update_topo")
        subs = data.get("sub_devices", [])
        if not isinstance(subs, list) or not all(isinstance(s, dict) and isinstance(s.get("sn"), str)
                                                 and 0 < len(s["sn"]) <= MAX_SN for s in subs):
            raise BadMessage("DJI update_topo: 'sub_devices' must be a list of objects with an 'sn'")
        tid, bid = msg.get("tid"), msg.get("bid")
        if not isinstance(tid, str) or not isinstance(bid, str) or len(tid) > 64 or len(bid) > 64:
            raise BadMessage("DJI update_topo: 'tid' and 'bid' must be strings (the reply repeats them)")
        aircraft = tuple(s["sn"] for s in subs)
        statuses = [DeviceStatus(gateway_id, True, ts), *self._topology(gateway_sn, aircraft, ts, ctx)]
        registered = [i for i in (ctx.registry.device("dji_sn", sn) for sn in aircraft) if i is not None]
        topo = ReadingRow(ts, gateway_id, "dji_topology", None, ",".join(registered), None, received_at)
        reply = orjson.dumps({"tid": tid, "bid": bid, "timestamp": int(received_at.timestamp() * 1000),
                              "method": "update_topo", "data": {"result": 0}})
        return DialectResult(readings=[topo], statuses=statuses,
                             replies=[OutMessage(f"{self._sys}{gateway_sn}/status_reply", reply, 1, False)])

    def _topology(self, gateway_sn: str, aircraft: tuple[str, ...], ts: datetime,
                  ctx: DialectContext) -> list[DeviceStatus]:
        """Statuses of the aircraft a gateway now reports (online) and of those it no longer does (offline);
        registered aircraft only (an unregistered one is refused when its own OSD comes)."""
        before = self.topology.get(gateway_sn, ())
        self.topology[gateway_sn] = aircraft
        out = []
        for sn, online in [(sn, True) for sn in aircraft] + [(sn, False) for sn in before if sn not in aircraft]:
            uav_id = ctx.registry.device("dji_sn", sn)
            if uav_id is not None:
                out.append(DeviceStatus(uav_id, online, ts))
        return out
