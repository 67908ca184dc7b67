"""Issue 14's "done when": a registered DJI aircraft publishing DJI's documented OSD payload, a MAVLink vehicle sending
GLOBAL_POSITION_INT to the bridge and a ChirpStack uplink from a registered sensor each appear in the API (`/v1/uavs`,
`/v1/sensors`) like any native device, with their zone events: the no-fly violation of each aircraft over the bridge
exclusion zone, and the corridor the LoRaWAN wind mast suspends. The time from publishing to the API is printed
(the issue asks for 1 s; the test only waits generously, as timing on a shared machine varies)."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import orjson
import pytest

from devices.flight import Fix
from devices.registry import DeviceRecord
from devices.vendor_payloads import MavlinkVehicle

from .api_support import bearer, make_keys
from .dialect_support import Mqtt, register, send_udp, start_bridge, unique, unique_eui
from .helpers import start_ingester, wait_until

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data"
NO_FLY = (121.4885, 31.044)  # inside R-BR-MP (prohibited, 0-150 m AGL)


def test_dji_mavlink_and_chirpstack_devices_appear_in_the_api_with_their_zone_events(system, api):
    keys = make_keys(system.database_url)
    sn, eui = unique("1581F5E"), unique_eui()
    bridge, bridge_runner, port = start_bridge(system, refresh_s=0.5)
    register(system, DeviceRecord("DJI-E1", "uav", properties={"dji_sn": sn}),
             DeviceRecord("MAV-E1", "uav", properties={"mavlink": f"udp:{port}/1"}),
             DeviceRecord("W-C1", "sensor", sensor_kind="wind", properties={
                 "dev_eui": eui, "metric_map": {"gust": ["wind_gust", "m/s"], "speed": ["wind_speed", "m/s"],
                                                "link.rssi": ["lorawan_rssi", "dBm"]}}))
    ing, runner = start_ingester(system.with_(dialects=("dji", "chirpstack")))
    mqtt = Mqtt(system)
    client = httpx.Client(base_url=api.url, headers=bearer(keys.viewer), timeout=10)
    latency: dict[str, float] = {}

    def appears(name: str, check) -> None:
        t0 = time.monotonic()
        wait_until(check, 15, f"{name} did not appear in the API", interval=0.02)
        latency[name] = time.monotonic() - t0

    def uav(uav_id: str):
        return next((u for u in client.get("/v1/uavs").json() if u["uav_id"] == uav_id), None)
    try:
        assert bridge.connected.wait(10)
        wait_until(lambda: bridge.translator.lookup(f"udp:{port}/1"), 10, "the bridge did not read the registry")
        osd = json.loads((DATA / "dji_cloud" / "aircraft_osd_m30_via_dock.json").read_bytes())
        osd["data"].update(latitude=NO_FLY[1], longitude=NO_FLY[0], height=64.0, mode_code=5)  # 50 m AGL
        osd["timestamp"] = int(time.time() * 1000)
        mqtt.publish(f"thing/product/{sn}/osd", orjson.dumps(osd))
        appears("DJI aircraft in /v1/uavs", lambda: uav("DJI-E1"))

        v = MavlinkVehicle(1, time.time() - 60)
        send_udp(port, *v.frames(Fix(NO_FLY[0], NO_FLY[1], 50.0, 6.0, 90.0, 0.0, "Airborne", 88.0), time.time()))
        appears("MAVLink vehicle in /v1/uavs", lambda: uav("MAV-E1"))

        up = json.loads((DATA / "lorawan" / "chirpstack_v4_docs_event_up.json").read_bytes())
        up["deviceInfo"]["devEui"] = eui
        up.update(fCnt=12, time=datetime.now(timezone.utc).isoformat(), object={"gust": 15.5, "speed": 9.0})
        mqtt.publish(f"application/{up['deviceInfo']['applicationId']}/device/{eui}/event/up", orjson.dumps(up))
        appears("ChirpStack sensor in /v1/sensors", lambda: next(
            (s for s in client.get("/v1/sensors").json() if s["sensor_id"] == "W-C1" and s["values"]), None))

        dji, mav = uav("DJI-E1"), uav("MAV-E1")
        assert (dji["alt_ref"], dji["status"], dji["battery_pct"]) == ("WGS84", "Airborne", 90.0)
        assert (mav["alt_ref"], mav["status"], mav["battery_pct"]) == ("AMSL", "Airborne", 88.0)
        assert "no_fly_violation" in dji["alerts"] and "no_fly_violation" in mav["alerts"]
        for uav_id in ("DJI-E1", "MAV-E1"):
            wait_until(lambda u=uav_id: client.get("/v1/events", params={"kind": "no_fly_violation",
                                                                           "uav_id": u}).json()["items"],
                       10, f"no no_fly_violation event of {uav_id}")
        sensor = next(s for s in client.get("/v1/sensors").json() if s["sensor_id"] == "W-C1")
        assert sensor["values"] == {"wind_gust": 15.5, "wind_speed": 9.0, "lorawan_rssi": -36.0} \
            and sensor["registered"]
        wait_until(lambda: client.get("/v1/zones/C1").json()["properties"]["state"] == "suspended", 10,
                   "the LoRaWAN wind mast's gust did not suspend corridor C1")
        readings = client.get("/v1/sensors/W-C1/readings", params={"metric": "wind_gust"}).json()["readings"]
        assert [r["value"] for r in readings] == [15.5]
    finally:
        print("publish -> API:", {k: f"{v * 1000:.0f} ms" for k, v in latency.items()})
        client.close()
        mqtt.close()
        runner.close()
        bridge_runner.close()
