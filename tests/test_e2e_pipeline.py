"""End to end on the real Mosquitto and PostgreSQL: telemetry in, decisions stored, published and streamed."""
from __future__ import annotations

import asyncio
import queue
import uuid

import httpx
import orjson
import pytest
import websockets

from devices.mqttclient import close_client, connect_client
from protocol import topics

from .conftest import query, wait_until

pytestmark = pytest.mark.integration

OUT_OF_RANGE = orjson.dumps({"lat": 95, "lon": 121.5, "alt_m": 10})
INSIDE_BRIDGE_ZONE = {"lat": 31.044, "lon": 121.4885, "alt_m": 50}  # R-BR-MP, band 0-150 m AGL


def _client(settings, subscriptions=(), on_message=None):
    return connect_client(settings.mqtt_url, f"test-{uuid.uuid4().hex[:8]}", subscriptions=subscriptions,
                          on_message=on_message)


def test_violation_is_stored_published_and_streamed(system, ingester, api):
    root = system.mqtt_root
    received: queue.Queue = queue.Queue()
    watcher = _client(system, [(f"{root}/events/#", 1)], lambda c, u, m: received.put((m.topic, m.payload)))

    async def live_event():
        async with websockets.connect(api.url.replace("http", "ws") + "/v1/live?kind=no_fly_violation") as ws:
            pub = _client(system)
            pub.publish(topics.telemetry(root, "T1"), orjson.dumps({**INSIDE_BRIDGE_ZONE, "seq": 1}), qos=1)
            while True:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg["type"] == "event":
                    close_client(pub)
                    return msg

    try:
        event = asyncio.run(live_event())
        assert event["kind"] == "no_fly_violation"
        assert (event["uav_id"], event["zone_id"]) == ("T1", "R-BR-MP")

        topic, payload = received.get(timeout=10)
        while "no_fly_violation" not in topic:
            topic, payload = received.get(timeout=10)
        assert topic == topics.event(root, "no_fly_violation", "T1")
        assert orjson.loads(payload)["zone_id"] == "R-BR-MP"
    finally:
        close_client(watcher)

    rows = query(system.database_url, "SELECT kind, zone_id FROM airspace_events WHERE uav_id = 'T1'")
    assert ("no_fly_violation", "R-BR-MP") in rows
    pos = query(system.database_url, "SELECT lon, lat, alt_m, alt_ref, seq FROM uav_telemetry WHERE uav_id = 'T1'")
    assert pos == [(121.4885, 31.044, 50.0, "AGL", 1)]

    events = httpx.get(api.url + "/v1/events", params={"kind": "no_fly_violation", "uav_id": "T1"}).json()
    assert [(e["kind"], e["uav_id"], e["zone_id"]) for e in events] == [("no_fly_violation", "T1", "R-BR-MP")]
    assert set(events[0]) >= {"kind", "uav_id", "zone_id", "ts", "detail"}
    uavs = wait_until(lambda: httpx.get(api.url + "/v1/uavs").json(), 5, "no live state")
    assert uavs[0]["uav_id"] == "T1" and "no_fly_violation" in uavs[0]["alerts"]


def test_malformed_payload_is_dead_lettered_and_the_next_message_stored(system, ingester, api):
    root = system.mqtt_root
    pub = _client(system)
    try:
        pub.publish(topics.telemetry(root, "T2"), b'{"lat": 31.05, "lon": ', qos=1)
        pub.publish(topics.telemetry(root, "T2"), OUT_OF_RANGE, qos=1)
        pub.publish(f"{root}/uav/T2/garbage", b"{}", qos=1)
        pub.publish(topics.telemetry(root, "T2"), orjson.dumps({"lat": 31.05, "lon": 121.5, "alt_m": 70, "seq": 7,
                                                                "ts": "2026-01-02T03:04:05Z"}), qos=1).wait_for_publish(5)
    finally:
        close_client(pub)
    wait_until(lambda: query(system.database_url, "SELECT 1 FROM uav_telemetry WHERE uav_id = 'T2'"), 10,
               "the good message after the bad ones was not stored")
    rows = query(system.database_url, "SELECT ts, seq, alt_m FROM uav_telemetry WHERE uav_id = 'T2'")
    assert [(r[0].isoformat(), r[1], r[2]) for r in rows] == [("2026-01-02T03:04:05+00:00", 7, 70.0)]
    dead = httpx.get(api.url + "/v1/dead-letters").json()
    reasons = {d["payload"]: d["reason"] for d in dead}
    assert "malformed JSON" in reasons['{"lat": 31.05, "lon": ']
    assert reasons[OUT_OF_RANGE.decode()] == "field 'lat'=95 out of range [-90, 90]"
    # the topic that matches no subscription never reaches the ingester: two dead letters, not three
    assert len(dead) == 2 and all(d["topic"] == topics.telemetry(root, "T2") for d in dead)
