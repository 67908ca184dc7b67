"""End to end on the real Mosquitto and PostgreSQL: telemetry in, decisions stored, published and streamed."""
from __future__ import annotations

import asyncio
import queue
import uuid

import httpx
import orjson
import pytest
import websockets

from protocol.mqttclient import close_client, connect_client
from protocol import topics

from .api_support import bearer, make_keys
from .helpers import query, wait_until

pytestmark = pytest.mark.integration

OUT_OF_RANGE = orjson.dumps({"lat": 95, "lon": 121.5, "alt_m": 10})
INSIDE_BRIDGE_ZONE = {"lat": 31.044, "lon": 121.4885, "alt_m": 50}  # R-BR-MP, band 0-150 m AGL


def _client(settings, subscriptions=(), on_message=None):
    return connect_client(settings.mqtt_url, f"test-{uuid.uuid4().hex[:8]}", subscriptions=subscriptions,
                          on_message=on_message)


def _frames(raw) -> list[dict]:
    """The messages of one live-feed frame (one object, or a batch of them)."""
    body = orjson.loads(raw)
    return body if isinstance(body, list) else [body]


def _items(body):
    """A list response, or the items of a paged one ({"items": [...], "next_cursor": ...})."""
    return body["items"] if isinstance(body, dict) else body


def test_violation_is_stored_published_and_streamed(system, ingester, api):
    root = system.mqtt_root
    admin = make_keys(system.database_url).admin
    received: queue.Queue = queue.Queue()
    watcher = _client(system, [(f"{root}/events/#", 1)], lambda c, u, m: received.put((m.topic, m.payload)))

    async def live_event():
        async with websockets.connect(api.url.replace("http", "ws") + f"/v1/live?kind=no_fly_violation&access_token={admin}") as ws:
            pub = _client(system)
            pub.publish(topics.telemetry(root, "T1"), orjson.dumps({**INSIDE_BRIDGE_ZONE, "seq": 1}), qos=1)
            while True:
                for msg in _frames(await asyncio.wait_for(ws.recv(), 10)):
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

    events = _items(httpx.get(api.url + "/v1/events", params={"kind": "no_fly_violation", "uav_id": "T1"},
                              headers=bearer(admin)).json())
    assert [(e["kind"], e["uav_id"], e["zone_id"]) for e in events] == [("no_fly_violation", "T1", "R-BR-MP")]
    assert set(events[0]) >= {"kind", "uav_id", "zone_id", "ts", "detail"}
    uavs = wait_until(lambda: _items(httpx.get(api.url + "/v1/uavs", headers=bearer(admin)).json()), 5, "no live state")
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
    dead = _items(httpx.get(api.url + "/v1/dead-letters", headers=bearer(make_keys(system.database_url).admin)).json())
    reasons = {d["payload"]: d["reason"] for d in dead}
    assert "malformed JSON" in reasons['{"lat": 31.05, "lon": ']
    assert reasons[OUT_OF_RANGE.decode()] == "field 'lat'=95 out of range [-90, 90]"
    # a wrong topic shape under a device family is a dead letter too, not passed by unseen
    assert "bad topic" in reasons["{}"]
    assert sorted(d["topic"] for d in dead) == sorted([topics.telemetry(root, "T2")] * 2 + [f"{root}/uav/T2/garbage"])


def test_a_refused_fix_becomes_a_dead_letter_and_keeps_its_alert_and_its_batch(system, monkeypatch):
    """Fault injection in our own write path (the database is real): the database refuses one drone's rows. That
    fix is a dead letter with the database's reason; the no-fly violation it caused is still stored and published
    (the monitor has moved on: lost now, it would never be raised again), the other fixes of the batch are stored,
    and ingest goes on."""
    import psycopg

    import ingest.batchstore as consumer
    from .helpers import start_ingester
    real = consumer.write_batch

    def refuse_r1(conn, out):
        if any(r.uav_id == "R1" for r in out.telemetry):
            raise psycopg.errors.DataError("injected: value out of range")
        return real(conn, out)
    monkeypatch.setattr(consumer, "write_batch", refuse_r1)
    ing, runner = start_ingester(system)
    root = system.mqtt_root
    received: queue.Queue = queue.Queue()
    watcher = _client(system, [(f"{root}/events/#", 1)], lambda c, u, m: received.put((m.topic, m.payload)))
    pub = _client(system)
    try:
        for uav, body in (("R3", {"lat": 31.05, "lon": 121.5, "alt_m": 3}), ("R1", INSIDE_BRIDGE_ZONE),
                          ("R4", {"lat": 31.05, "lon": 121.5, "alt_m": 4})):
            pub.publish(topics.telemetry(root, uav), orjson.dumps(body), qos=1)
        pub.publish(topics.telemetry(root, "R2"), orjson.dumps({"lat": 31.05, "lon": 121.5, "alt_m": 2}),
                    qos=1).wait_for_publish(5)
        wait_until(lambda: query(system.database_url, "SELECT 1 FROM uav_telemetry WHERE uav_id = 'R2'"), 10,
                   "ingest did not go on after the refused rows")
        topic, payload = received.get(timeout=10)
        while "no_fly_violation" not in topic:
            topic, payload = received.get(timeout=10)
    finally:
        close_client(pub)
        close_client(watcher)
        runner.close()
    assert orjson.loads(payload)["uav_id"] == "R1"
    assert ("no_fly_violation",) in query(system.database_url, "SELECT kind FROM airspace_events WHERE uav_id = 'R1'")
    [(topic, payload, reason)] = query(system.database_url, "SELECT topic, payload, reason FROM dead_letters")
    assert topic == topics.telemetry(root, "R1") and orjson.loads(payload)["alt_m"] == 50
    assert reason == "database refused the batch: injected: value out of range"
    assert {r[0] for r in query(system.database_url, "SELECT uav_id FROM uav_telemetry")} == {"R2", "R3", "R4"}


def test_malformed_state_messages_do_not_stop_the_live_feed(system, api):
    """Anyone may publish on the broker: junk on the state and event topics is skipped, the feed goes on."""
    root = system.mqtt_root
    admin = make_keys(system.database_url).admin

    async def run():
        async with websockets.connect(api.url.replace("http", "ws") + f"/v1/live?bbox=121,31,122,32&access_token={admin}") as ws:
            pub = _client(system)
            for topic, body in ((topics.uav_state(root, "X"), b'{"uav_id": "X", "lon": "abc"}'),
                                (topics.uav_state(root, "Y"), b'{"lon": 1}'),
                                (topics.uav_state(root, "Z"), b'{"uav_id": [1], "lon": 1, "lat": 2}'),
                                (topics.event(root, "k", "Q"), b'{"kind": ["x"], "uav_id": "Q"}'),
                                (topics.event(root, "k", "Q"), b"not json")):
                pub.publish(topic, body, qos=1).wait_for_publish(5)
            good = {"uav_id": "G1", "lon": 121.5, "lat": 31.05, "ts": "2026-11-27T08:00:00.000Z"}
            pub.publish(topics.uav_state(root, "G1"), orjson.dumps(good), qos=1).wait_for_publish(5)
            close_client(pub)
            while True:
                for msg in _frames(await asyncio.wait_for(ws.recv(), 10)):
                    if msg["type"] == "position":
                        return msg
    assert asyncio.run(run())["uav_id"] == "G1"
    assert httpx.get(api.url + "/v1/health").json()["mqtt"] == "connected"
    assert [u["uav_id"] for u in _items(httpx.get(api.url + "/v1/uavs", headers=bearer(admin)).json())] == ["G1"]
