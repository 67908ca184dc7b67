"""The ingester's own clock and its sensor events, end to end on the real broker and database.

- A lone drone that goes silent gets link_lost from the idle tick (no other traffic moves event time).
- A wind gust above the corridor limit becomes a sensor_threshold event, stored, published on
  {root}/events/sensor_threshold/W-C1 and forwarded by the live feed (to every role, `kind` filter too),
  and the corridor suspension it triggers reaches the feed as zone_state.
"""
from __future__ import annotations

import asyncio
import json
import queue
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
import websockets

from devices.fleet import make_fleet
from protocol.mqttclient import close_client, connect_client
from devices.registry import fleet_records
from ingest.consumer import IDLE_LATENESS_S
from protocol import topics
from skylane.wiring import register_devices

from .api_support import make_keys
from .helpers import query, start_ingester, wait_until
from .feeds_support import FeedServer, ws_messages

pytestmark = pytest.mark.integration
RULES = Path(__file__).resolve().parents[1] / "airspace" / "data" / "dynamic_rules.json"
LINK_TIMEOUT_S = 10.0  # airspace.monitor.MonitorPolicy default


def _client(settings, subscriptions=(), on_message=None):
    return connect_client(settings.mqtt_url, f"t-clock-{uuid.uuid4().hex[:8]}", subscriptions=subscriptions,
                          on_message=on_message)


def test_a_lone_silent_drone_gets_link_lost(system):
    root = system.mqtt_root
    ing, runner = start_ingester(system)
    got: queue.Queue = queue.Queue()
    watcher = _client(system, [(f"{root}/events/#", 1)], lambda c, u, m: got.put((m.topic, m.payload)))
    pub = _client(system)
    try:
        for seq in range(3):
            pub.publish(topics.telemetry(root, "LONE1"), orjson.dumps({"lon": 121.43, "lat": 31.02, "alt_m": 60,
                                                                        "seq": seq}), qos=1)
            time.sleep(0.3)
        wait_until(lambda: query(system.database_url, "SELECT count(*) FROM uav_telemetry WHERE uav_id = 'LONE1'")
                   == [(3,)], 15, "fixes not stored")
        last_fix = query(system.database_url, "SELECT max(ts) FROM uav_telemetry WHERE uav_id = 'LONE1'")[0][0]
        deadline = time.monotonic() + LINK_TIMEOUT_S + IDLE_LATENESS_S + 15
        lost = None
        while lost is None and time.monotonic() < deadline:
            try:
                topic, payload = got.get(timeout=1)
            except queue.Empty:
                continue
            if topic == topics.event(root, "link_lost", "LONE1"):
                lost = orjson.loads(payload)
        assert lost is not None, "no link_lost for the silent drone"
        ts = datetime.fromisoformat(lost["ts"].replace("Z", "+00:00"))
        assert abs((ts - last_fix).total_seconds() - LINK_TIMEOUT_S) < 0.01  # stamped last fix + timeout
        assert query(system.database_url, "SELECT count(*) FROM airspace_events WHERE uav_id = 'LONE1' "
                                          "AND kind = 'link_lost'") == [(1,)]
    finally:
        close_client(pub)
        close_client(watcher)
        runner.close()


def _rule() -> dict:
    rules = json.loads(RULES.read_text())["rules"]
    return next(r for r in rules if r["metric"] == "wind_gust")


def test_wind_gust_reaches_the_live_feed_as_event_and_zone_state(system, zones_geojson):
    root, rule = system.mqtt_root, _rule()
    sensor, zone = rule["sensor_id"], rule["zone_id"]
    _, sensors = make_fleet(zones_geojson, 0, 10, seed=17)
    assert register_devices(system, fleet_records([], [s for s in sensors if s.sensor_id == sensor])) == 1
    viewer = make_keys(system.database_url).viewer
    ing, runner = start_ingester(system)
    feed = FeedServer(system.database_url, system.service_url("api"), root)
    pub = _client(system)
    gust = rule["above"] + 2.2

    async def watch() -> tuple[dict, dict]:
        url = feed.ws_url + f"/v1/live?type=event,zone_state&kind=sensor_threshold&access_token={viewer}"
        event = state = None
        async with websockets.connect(url) as ws:
            await asyncio.sleep(0.5)
            now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
            pub.publish(topics.reading(root, sensor), orjson.dumps({"ts": now, "values": {"wind_gust": gust}}), qos=1)
            deadline = time.monotonic() + 30
            while (event is None or state is None) and time.monotonic() < deadline:
                try:
                    raw = await asyncio.wait_for(ws.recv(), 5)
                except TimeoutError:
                    continue
                for m in ws_messages(raw):
                    if m["type"] == "event":
                        event = m
                    elif m["type"] == "zone_state" and m["zone_id"] == zone and m["state"] == "suspended":
                        state = m
        return event, state

    try:
        event, state = asyncio.run(watch())
        assert event is not None, "no sensor_threshold event on the live feed"
        assert (event["kind"], event["sensor_id"], event["metric"]) == ("sensor_threshold", sensor, "wind_gust")
        assert event["value"] == pytest.approx(gust) and event.get("uav_id") is None
        assert state is not None, f"no zone_state suspended for {zone}"
        assert state.get("sensor_id") == sensor
        stored = query(system.database_url, "SELECT count(*) FROM sensor_events WHERE sensor_id = %s "
                                            "AND kind = 'sensor_threshold'", sensor)
        assert stored == [(1,)]
    finally:
        close_client(pub)
        feed.close()
        runner.close()
        # the retained suspension would outlive the test's root otherwise
        cleaner = _client(system)
        cleaner.publish(topics.control_zone(root, zone), b"", qos=1, retain=True).wait_for_publish(5)
        close_client(cleaner)
