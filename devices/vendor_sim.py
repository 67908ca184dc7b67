"""The simulated fleet speaking a vendor's dialect: `skylane simulate --dialect dji|mavlink|chirpstack|tts`.

- dji: each drone is a DJI aircraft under one simulated DJI Dock (registered as a sensor): aircraft OSD on
  `thing/product/{sn}/osd` at the drone rate, the dock's `update_topo` on `sys/product/{dock_sn}/status` at start
  and every TOPO_EVERY_S, the dock's environment OSD every DOCK_EVERY_S;
- mavlink: each drone is a PX4 autopilot sending MAVLink 2 over UDP to the MAVLink bridge (`--mavlink-target`),
  system ids 1, 2, ... on one link, with its Remote ID (OPEN_DRONE_ID Basic ID and Location; registry `rid_serial`);
- chirpstack / tts: each sensor is a LoRaWAN device whose uplinks (frame counters from 1, decoded fields named
  after its metrics) come from ChirpStack's MQTT integration or The Things Stack.
The other devices speak the contract. Every device gets an id of its own (PREFIX: "DJI-uav-001"), so a dialect
fleet runs beside the native one, and its registry record the vendor properties the dialect maps it by.
"""
from __future__ import annotations

import dataclasses
import socket
import time
from typing import Any

import orjson

from .fleet import DroneSpec, SensorSpec
from .flight import Fix
from .registry import DeviceRecord
from .sensors import Reading
from .vendor_payloads import (MavlinkVehicle, chirpstack_up, decoded_fields, dev_eui, dji_aircraft_osd, dji_dock_osd,
                              dji_sn, dji_update_topo, metric_map, tts_up)

DIALECTS = ("dji", "mavlink", "chirpstack", "tts")
PREFIX = {"dji": "DJI-", "mavlink": "MAV-", "chirpstack": "CS-", "tts": "TTS-"}
DEFAULT_MAVLINK_TARGET = "udp:127.0.0.1:14550"
TOPO_EVERY_S = 60.0
DOCK_EVERY_S = 10.0
CHIRPSTACK_APPLICATION = "5a1e0000-5c1a-4e00-8000-000000000001"
TTS_APPLICATION = "skylane-sim@skylane"

Message = tuple[str, bytes]


def dialect_fleet(dialect: str, drones: list[DroneSpec], sensors: list[SensorSpec]
                  ) -> tuple[list[DroneSpec], list[SensorSpec]]:
    """The fleet under the dialect's own ids (PREFIX + id)."""
    prefix = PREFIX[dialect]
    return ([dataclasses.replace(d, uav_id=prefix + d.uav_id) for d in drones],
            [dataclasses.replace(s, sensor_id=prefix + s.sensor_id) for s in sensors])


def mavlink_link(target: str) -> tuple[tuple[str, int], str]:
    """(UDP address, the bridge's link name) of `udp:HOST:PORT`."""
    kind, _, rest = target.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "udp" or not host or not port.isdigit():
        raise ValueError(f"--mavlink-target {target!r}: expected udp:HOST:PORT (the bridge's --listen)")
    return (host, int(port)), f"udp:{port}"


class VendorSpeaker:
    """What the simulator publishes for each fix and reading in the dialect (None: the contract's own message)."""

    def __init__(self, dialect: str, drones: list[DroneSpec], sensors: list[SensorSpec],
                 mavlink_target: str = DEFAULT_MAVLINK_TARGET, clock=time.time):
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; one of {', '.join(DIALECTS)}")
        self.dialect = dialect
        self.drones, self.sensors = drones, sensors
        self.dock_id = f"{PREFIX['dji']}DOCK-1"
        self.dock_sn = dji_sn(self.dock_id)
        self.sns = {d.uav_id: dji_sn(d.uav_id) for d in drones}
        self.sysids = {d.uav_id: i + 1 for i, d in enumerate(drones[:255])}
        self.fcnt: dict[str, int] = {}
        self._topo_at = self._dock_at = -1e18
        self._udp: socket.socket | None = None
        self._address, self.link = mavlink_link(mavlink_target) if dialect == "mavlink" else (None, None)
        start = clock()
        self._vehicles = {uav: MavlinkVehicle(sysid, start) for uav, sysid in self.sysids.items()} \
            if dialect == "mavlink" else {}

    # ------------------------------------------------------------------------------------------- registry
    def records(self, records: list[DeviceRecord]) -> list[DeviceRecord]:
        """The fleet's registry records with the vendor properties this dialect maps its devices by."""
        out = []
        for rec in records:
            props: dict[str, Any] = {}
            if self.dialect == "dji" and rec.device_id in self.sns:
                props = {"dji_sn": self.sns[rec.device_id], "dji_gateway": self.dock_sn}
            elif self.dialect == "mavlink" and rec.device_id in self.sysids:
                props = {"mavlink": f"{self.link}/{self.sysids[rec.device_id]}", "rid_serial": self.sns[rec.device_id]}
            elif self.dialect in ("chirpstack", "tts") and rec.kind == "sensor":
                units = {m: rec.units.get(m, "") for m in rec.metrics}
                props = {"dev_eui": dev_eui(rec.device_id), "metric_map": metric_map(units)}
                if self.dialect == "tts":
                    props["tts_device_id"] = f"{TTS_APPLICATION}/{_tts_id(rec.device_id)}"
            out.append(dataclasses.replace(rec, properties={**rec.properties, **props}) if props else rec)
        if self.dialect == "dji" and self.drones:
            d = self.drones[0]
            out.append(DeviceRecord(self.dock_id, "sensor", "simulated DJI Dock", records[0].owner if records else None,
                                    "dji_dock", d.centerline[0][0], d.centerline[0][1], {"temperature": "Cel"},
                                    DOCK_EVERY_S, "weather", ["environment_temperature", "humidity", "wind_speed"],
                                    {"dji_sn": self.dock_sn}))
        return out

    # -------------------------------------------------------------------------------------------- traffic
    def telemetry(self, uav_id: str, fix: Fix, seq: int, epoch_s: float) -> list[Message] | None:
        if self.dialect == "dji":
            out = self._dock(epoch_s)
            body = dji_aircraft_osd(fix, epoch_s, gateway=self.dock_sn)
            return out + [(f"thing/product/{self.sns[uav_id]}/osd", orjson.dumps(body))]
        if self.dialect == "mavlink" and uav_id in self._vehicles:
            if self._udp is None:
                self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            vehicle = self._vehicles[uav_id]
            for frame in vehicle.frames(fix, epoch_s) + vehicle.remote_id(fix, epoch_s, self.sns[uav_id]):
                try:
                    self._udp.sendto(frame, self._address)
                except OSError:  # nobody listening (the bridge not up yet): like a radio link, it is lost
                    break
            return []
        return None

    def reading(self, spec: SensorSpec, epoch_s: float, reading: Reading) -> list[Message] | None:
        if self.dialect not in ("chirpstack", "tts"):
            return None
        fcnt = self.fcnt[spec.sensor_id] = self.fcnt.get(spec.sensor_id, 0) + 1
        eui = dev_eui(spec.sensor_id)
        if self.dialect == "chirpstack":
            topic, body = chirpstack_up(CHIRPSTACK_APPLICATION, eui, spec.sensor_id, fcnt, epoch_s,
                                        decoded_fields(reading))
        else:
            topic, body = tts_up(TTS_APPLICATION, _tts_id(spec.sensor_id), eui, fcnt, epoch_s, decoded_fields(reading))
        return [(topic, orjson.dumps(body))]

    def _dock(self, epoch_s: float) -> list[Message]:
        """The dock's update_topo and environment OSD when due."""
        out = []
        if epoch_s - self._topo_at >= TOPO_EVERY_S:
            self._topo_at = epoch_s
            out.append((f"sys/product/{self.dock_sn}/status", orjson.dumps(dji_update_topo(epoch_s,
                                                                                         list(self.sns.values())))))
        if epoch_s - self._dock_at >= DOCK_EVERY_S and self.drones:
            self._dock_at = epoch_s
            lon, lat = self.drones[0].centerline[0]
            out.append((f"thing/product/{self.dock_sn}/osd", orjson.dumps(dji_dock_osd(
                epoch_s, 18.0 + 4.0 * ((epoch_s / 3600.0) % 1.0), 65.0, 3.0, False, lon, lat, None, self.dock_sn))))
        return out

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None


def _tts_id(sensor_id: str) -> str:
    """The Things Stack device ids are lower-case letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in sensor_id.lower()).strip("-")[:36]
