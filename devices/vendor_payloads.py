"""Fixes and readings in vendors' formats, as the real devices send them: DJI Cloud API (aircraft OSD, dock OSD,
update_topo), ChirpStack v4 and The Things Stack v3 uplinks, MAVLink 2 frames (pymavlink). The simulator speaks
them (devices/vendor_sim.py); tests and the ingest bench build their messages here. Shapes follow the vendors'
documented examples kept in tests/data/dji_cloud and tests/data/lorawan.
"""
from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from airspace.vertical import VerticalModel
from protocol.times import rfc3339

from .flight import Fix
from .sensors import Reading

DEFAULT_VERTICAL = VerticalModel()
DJI_MODE = {"Ground": 0, "Airborne": 5, "Emergency": 11}  # Standby, Wayline flight, Forced landing (DJI's table)


# ------------------------------------------------------------------------------------------------ DJI Cloud API

def dji_sn(device_id: str) -> str:
    """A DJI-style serial number for a simulated device (14 characters of its id's hash after a fixed head)."""
    return "1581F5SIM" + hashlib.sha1(device_id.encode()).hexdigest()[:11].upper()


def _envelope(epoch_s: float, data: dict[str, Any], gateway: str | None = None, method: str | None = None,
              tid: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"tid": tid or str(uuid.uuid4()), "bid": str(uuid.uuid4()),
                           "timestamp": int(round(epoch_s * 1000))}
    if method is not None:
        out["method"] = method
    out["data"] = data
    if gateway is not None:
        out["gateway"] = gateway
    return out


def dji_aircraft_osd(fix: Fix, epoch_s: float, gateway: str | None = None,
                     vertical: VerticalModel = DEFAULT_VERTICAL) -> dict[str, Any]:
    """`thing/product/{aircraft_sn}/osd`: the aircraft's position with `height` as the ellipsoid height (the fix's
    height above ground through the vertical model) and `elevation` above the take-off point (ground level)."""
    height = float(vertical.from_amsl(vertical.to_amsl(fix.alt_m, "AGL"), "WGS84"))
    head = fix.track_deg if fix.track_deg <= 180 else fix.track_deg - 360.0  # DJI: -180..180
    return _envelope(epoch_s, {
        "latitude": round(fix.lat, 8), "longitude": round(fix.lon, 8), "height": round(height, 3),
        "elevation": round(fix.alt_m, 3), "horizontal_speed": round(fix.speed_mps, 2),
        "vertical_speed": round(fix.vspeed_mps, 2), "attitude_head": round(head, 1), "attitude_pitch": 0,
        "attitude_roll": 0, "mode_code": DJI_MODE.get(fix.status, 0), "gear": 1,
        "battery": {"capacity_percent": int(round(fix.battery_pct)), "remain_flight_time": 0,
                    "return_home_power": 0, "landing_power": 0},
        "position_state": {"gps_number": 18, "is_fixed": 0, "quality": 4, "rtk_number": 0},
    }, gateway=gateway)


def dji_dock_osd(epoch_s: float, temperature_c: float, humidity_pct: float, wind_mps: float, drone_in_dock: bool,
                 lon: float, lat: float, aircraft_sn: str | None, gateway: str,
                 vertical: VerticalModel = DEFAULT_VERTICAL) -> dict[str, Any]:
    """`thing/product/{dock_sn}/osd`: the dock's position and environment part (dock2_osd_position_environment.json)."""
    data: dict[str, Any] = {
        "environment_temperature": round(temperature_c, 1), "temperature": round(temperature_c + 1.0, 1),
        "humidity": round(humidity_pct), "wind_speed": round(wind_mps, 1), "rainfall": 0,
        "drone_in_dock": int(drone_in_dock), "latitude": lat, "longitude": lon,
        "height": round(float(vertical.from_amsl(vertical.ground_amsl_m, "WGS84")), 3), "mode_code": 0,
        "cover_state": 0, "putter_state": 0, "emergency_stop_state": 0, "alarm_state": 0,
        "drone_charge_state": {"state": 0, "capacity_percent": 100},
    }
    if aircraft_sn is not None:
        data["sub_device"] = {"device_sn": aircraft_sn, "device_model_key": "0-67-0", "device_online_status": 1,
                              "device_paired": 1}
    return _envelope(epoch_s, data, gateway=gateway)


def dji_update_topo(epoch_s: float, aircraft_sns: list[str], tid: str | None = None) -> dict[str, Any]:
    """`sys/product/{gateway_sn}/status`, method update_topo (sys_status_update_topo_dock2_online.json's shape:
    a DJI RC Plus, type 119, with Matrice 30 aircraft, type 67)."""
    subs = [{"sn": sn, "domain": "0", "type": 67, "sub_type": 0, "index": "A", "device_secret": "secret",
             "nonce": "nonce", "thing_version": "1.1.2"} for sn in aircraft_sns]
    return _envelope(epoch_s, {"domain": "2", "type": 119, "sub_type": 0, "device_secret": "secret",
                               "nonce": "nonce", "thing_version": "1.1.2", "sub_devices": subs},
                     method="update_topo", tid=tid)


# -------------------------------------------------------------------------------------------------- LoRaWAN

def dev_eui(device_id: str) -> str:
    """A device EUI for a simulated sensor (lower-case hex, as ChirpStack writes it)."""
    return hashlib.sha1(device_id.encode()).hexdigest()[:16]


def decoded_fields(reading: Reading) -> dict[str, Any]:
    """What a payload codec decodes from the sensor's frame: its values by name (booleans stay booleans)."""
    return {name: value for name, (_unit, value) in reading.items()}


def metric_map(reading_units: dict[str, str]) -> dict[str, list]:
    """The registry's metric_map for a sensor whose decoder names fields after its metrics: the unit of each, and
    the link quality (the strongest gateway's rssi and snr) stored too."""
    return {**{name: [name, unit or None] for name, unit in reading_units.items()},
            "link.rssi": ["lorawan_rssi", "dBm"], "link.snr": ["lorawan_snr", "dB"]}


def chirpstack_up(application_id: str, eui: str, device_name: str, fcnt: int, epoch_s: float,
                  decoded: dict[str, Any] | None, rssi: float = -87.0, snr: float = 7.5) -> tuple[str, dict]:
    """(topic, body) of a ChirpStack v4 `event/up` (chirpstack_v4_docs_event_up.json's shape); fCnt 0 is left out
    as ChirpStack's protobuf JSON does, and `object` is there only when there is a decoded payload."""
    body: dict[str, Any] = {
        "deduplicationId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{eui}/{fcnt}/{epoch_s}")),
        "time": rfc3339(epoch_s, 6).replace("Z", "+00:00"),
        "deviceInfo": {"tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "Skylane",
                       "applicationId": application_id, "applicationName": "Skylane sensors",
                       "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad", "deviceProfileName": "sensors",
                       "deviceName": device_name, "devEui": eui},
        "devAddr": eui[-8:], "adr": True, "dr": 5, "fPort": 2, "confirmed": False,
        "data": base64.b64encode(eui.encode()[:8]).decode(),
        "rxInfo": [{"gatewayId": "0016c001f153a14c", "uplinkId": fcnt % 65536, "rssi": rssi, "snr": snr,
                    "context": "E3OWOQ==", "metadata": {"region_common_name": "CN470"}, "crcStatus": "CRC_OK"}],
        "txInfo": {"frequency": 471900000, "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7,
                                                                   "codeRate": "CR_4_5"}}},
    }
    if fcnt:
        body["fCnt"] = fcnt
    if decoded is not None:
        body["object"] = decoded
    return f"application/{application_id}/device/{eui}/event/up", body


def tts_up(application: str, device_id: str, eui: str, fcnt: int, epoch_s: float, decoded: dict[str, Any] | None,
           rssi: float = -87.0, snr: float = 7.5) -> tuple[str, dict]:
    """(topic, body) of a The Things Stack v3 uplink (tts_v3_docs_uplink.json's shape); f_cnt 0 left out."""
    up: dict[str, Any] = {
        "session_key_id": "AXA50tHUGUucuzS/bCGMNw==", "f_port": 2, "frm_payload": base64.b64encode(b"sim").decode(),
        "rx_metadata": [{"gateway_ids": {"gateway_id": "gtw1", "eui": "9C5C8E00001A05C4"},
                         "time": rfc3339(epoch_s), "rssi": rssi, "channel_rssi": rssi, "snr": snr}],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}, "frequency": "471900000"},
        "received_at": rfc3339(epoch_s, 6),
    }
    if fcnt:
        up["f_cnt"] = fcnt
    if decoded is not None:
        up["decoded_payload"] = decoded
    body = {"end_device_ids": {"device_id": device_id, "application_ids": {"application_id": application.split("@")[0]},
                               "dev_eui": eui.upper()},
            "received_at": rfc3339(epoch_s + 0.2, 6), "uplink_message": up}
    return f"v3/{application}/devices/{device_id}/up", body


# --------------------------------------------------------------------------------------------------- MAVLink

class MavlinkVehicle:
    """One autopilot's MAVLink 2 stream (system id `sysid`, component 1): the frames PX4/ArduPilot send."""

    def __init__(self, sysid: int, boot_epoch_s: float, vertical: VerticalModel = DEFAULT_VERTICAL):
        from pymavlink.dialects.v20 import common
        self.common = common
        self.mav = common.MAVLink(None, srcSystem=sysid, srcComponent=1)
        self.boot_epoch_s, self.vertical = boot_epoch_s, vertical

    def _boot_ms(self, epoch_s: float) -> int:
        return max(0, int((epoch_s - self.boot_epoch_s) * 1000)) % 2**32

    def heartbeat(self, armed: bool, emergency: bool = False) -> bytes:
        c = self.common
        state = c.MAV_STATE_EMERGENCY if emergency else c.MAV_STATE_ACTIVE if armed else c.MAV_STATE_STANDBY
        base = c.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (c.MAV_MODE_FLAG_SAFETY_ARMED if armed else 0)
        return self.mav.heartbeat_encode(c.MAV_TYPE_QUADROTOR, c.MAV_AUTOPILOT_PX4, base, 0, state).pack(self.mav)

    def system_time(self, epoch_s: float) -> bytes:
        return self.mav.system_time_encode(int(epoch_s * 1e6), self._boot_ms(epoch_s)).pack(self.mav)

    def extended_sys_state(self, airborne: bool) -> bytes:
        c = self.common
        landed = c.MAV_LANDED_STATE_IN_AIR if airborne else c.MAV_LANDED_STATE_ON_GROUND
        return self.mav.extended_sys_state_encode(c.MAV_VTOL_STATE_UNDEFINED, landed).pack(self.mav)

    def sys_status(self, battery_pct: float) -> bytes:
        return self.mav.sys_status_encode(0, 0, 0, 500, 15800, -1, int(round(battery_pct)), 0, 0, 0, 0, 0,
                                          0).pack(self.mav)

    def position(self, fix: Fix, epoch_s: float, home_agl_m: float = 0.0) -> bytes:
        """GLOBAL_POSITION_INT: lat/lon in 1e-7 degrees, `alt` in mm AMSL (the fix's height above ground through
        the vertical model), `relative_alt` in mm above home, velocities in cm/s (north, east, down)."""
        import math
        amsl = float(self.vertical.to_amsl(fix.alt_m, "AGL"))
        north = fix.speed_mps * math.cos(math.radians(fix.track_deg))
        east = fix.speed_mps * math.sin(math.radians(fix.track_deg))
        return self.mav.global_position_int_encode(
            self._boot_ms(epoch_s), int(round(fix.lat * 1e7)), int(round(fix.lon * 1e7)), int(round(amsl * 1000)),
            int(round((fix.alt_m - home_agl_m) * 1000)), int(round(north * 100)), int(round(east * 100)),
            int(round(-fix.vspeed_mps * 100)), int(round(fix.track_deg * 100)) % 36000).pack(self.mav)

    def remote_id(self, fix: Fix, epoch_s: float, serial: str) -> list[bytes]:
        """OPEN_DRONE_ID_BASIC_ID and _LOCATION as an autopilot with Remote ID sends them (ArduPilot's
        OpenDroneID driver): the serial number, then position, speed, heights (geodetic: WGS84 through the vertical
        model; height above take-off) and the time since the full hour."""
        import math
        c = self.common
        status = {"Ground": c.MAV_ODID_STATUS_GROUND, "Airborne": c.MAV_ODID_STATUS_AIRBORNE,
                  "Emergency": c.MAV_ODID_STATUS_EMERGENCY}.get(fix.status, c.MAV_ODID_STATUS_UNDECLARED)
        amsl = float(self.vertical.to_amsl(fix.alt_m, "AGL"))
        geodetic = float(self.vertical.from_amsl(amsl, "WGS84"))
        uas_id = list(serial.encode()[:20].ljust(20, b"\0"))
        basic = self.mav.open_drone_id_basic_id_encode(0, 0, [0] * 20, c.MAV_ODID_ID_TYPE_SERIAL_NUMBER,
                                                       c.MAV_ODID_UA_TYPE_HELICOPTER_OR_MULTIROTOR, uas_id)
        loc = self.mav.open_drone_id_location_encode(
            0, 0, [0] * 20, status, int(round(fix.track_deg * 100)) % 36000, int(round(fix.speed_mps * 100)),
            int(round(fix.vspeed_mps * 100)), int(round(fix.lat * 1e7)), int(round(fix.lon * 1e7)), amsl, geodetic,
            c.MAV_ODID_HEIGHT_REF_OVER_TAKEOFF, fix.alt_m, c.MAV_ODID_HOR_ACC_3_METER, c.MAV_ODID_VER_ACC_3_METER,
            c.MAV_ODID_VER_ACC_3_METER, c.MAV_ODID_SPEED_ACC_1_METERS_PER_SECOND, math.fmod(epoch_s, 3600.0),
            c.MAV_ODID_TIME_ACC_0_1_SECOND)
        return [basic.pack(self.mav), loc.pack(self.mav)]

    def frames(self, fix: Fix, epoch_s: float) -> list[bytes]:
        """What an autopilot sends in one second, in one list: heartbeat, time, state, battery, position."""
        airborne = fix.status == "Airborne"
        return [self.heartbeat(airborne, fix.status == "Emergency"), self.system_time(epoch_s),
                self.extended_sys_state(airborne), self.sys_status(fix.battery_pct), self.position(fix, epoch_s)]
