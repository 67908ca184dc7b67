"""Live feeds end to end: real Mosquitto, real key store and registry, WebSocket and SSE clients over TCP."""
from __future__ import annotations

import time

import httpx
import orjson
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from protocol.mqttclient import close_client, connect_client
from protocol import topics
from storage import catalog
from storage.auth import create_key

from .api_support import bearer
from .feeds_support import FeedServer, RawWebSocket, ws_messages

pytestmark = pytest.mark.integration


@pytest.fixture
def keys(system) -> dict[str, str]:
    """One key per role (the operator owns drone OWN-1) and the registry entries the feed filters need."""
    with psycopg.connect(system.database_url) as conn:
        catalog.register_devices(conn, [
            dict(device_id=d, kind=k, name=d, owner=o, sensor_kind=sk, lon=121.49, lat=31.04, units={},
                 expected_interval_s=1.0)
            for d, k, o, sk in [("OWN-1", "uav", "acme", None), ("OTHER-1", "uav", "rival", None),
                                ("AQ-1", "sensor", "city", "air_quality"), ("NZ-1", "sensor", "city", "noise")]])
        out = {role: create_key(conn, role, "acme" if role == "operator" else None).key
               for role in ("viewer", "operator", "engineer", "admin")}
    return out


@pytest.fixture
def feed(system, keys):
    """The feed server, started after the registry is filled (as in production: drones registered first)."""
    server = FeedServer(system.database_url, system.service_url("api"), system.mqtt_root, max_positions=40, max_alerts=2000)
    yield server
    server.close()


@pytest.fixture
def pub(system):
    client = connect_client(system.mqtt_url, f"test-feeds-pub-{time.monotonic_ns()}")
    yield client
    close_client(client)


def _publish(pub, topic: str, body: dict, retain: bool = False) -> None:
    pub.publish(topic, orjson.dumps(body), qos=1, retain=retain).wait_for_publish(5)


def _receive_until(ws, predicate, timeout: float = 10.0) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        got.extend(ws_messages(frame))
        if predicate(got):
            return got
    raise AssertionError(f"condition not met; received {got[-5:]}")


def _event(root: str, kind: str, uav: str, seq: int) -> tuple[str, dict]:
    return topics.event(root, kind, uav), {"id": f"ev-{uav}-{seq}", "kind": kind, "uav_id": uav, "zone_id": "R-BR-MP",
                                           "ts": "2026-11-27T03:00:00.000Z", "detail": {}, "seq": seq}


def test_websocket_refuses_missing_or_bad_keys(feed):
    for query in ("", "?access_token=sky_000000000000_" + "x" * 43):
        with ws_connect(feed.ws_url + "/v1/live" + query) as ws:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=5)
        assert info.value.rcvd.code == 4401


def test_websocket_bad_filter_closes_with_reason(feed, keys):
    with ws_connect(f"{feed.ws_url}/v1/live?access_token={keys['viewer']}&bbox=1,2") as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    assert info.value.rcvd.code == 1008 and "bbox" in info.value.rcvd.reason


def test_operator_sees_own_drones_viewer_sees_all(system, feed, keys, pub):
    root = system.mqtt_root
    with ws_connect(f"{feed.ws_url}/v1/live?access_token={keys['operator']}") as op, \
            ws_connect(f"{feed.ws_url}/v1/live?access_token={keys['viewer']}&type=position,event") as viewer:
        time.sleep(0.3)  # both subscribed in the hub before anything is published
        for seq, uav in enumerate(["OTHER-1", "OWN-1"]):
            _publish(pub, topics.uav_state(root, uav), {"uav_id": uav, "lon": 121.49, "lat": 31.04, "seq": seq})
            _publish(pub, *_event(root, "no_fly_violation", uav, seq))
        _publish(pub, topics.event(root, "no_fly_violation", "OWN-1"), _event(root, "no_fly_violation", "OWN-1", 9)[1])
        op_got = _receive_until(op, lambda g: any(m.get("seq") == 9 for m in g))
        assert {m["uav_id"] for m in op_got if m["type"] in ("position", "event")} == {"OWN-1"}
        view_got = _receive_until(viewer, lambda g: sum(m["type"] == "event" for m in g) == 3)
        assert {m["uav_id"] for m in view_got if m["type"] == "position"} == {"OWN-1", "OTHER-1"}


def test_filters_over_websocket(system, feed, keys, pub):
    root = system.mqtt_root
    url = (f"{feed.ws_url}/v1/live?access_token={keys['engineer']}&uav_id=OWN-1&kind=altitude_violation"
           f"&sensor_kind=noise&bbox=121.48,31.03,121.50,31.05")
    with ws_connect(url) as ws:
        time.sleep(0.3)
        _publish(pub, topics.uav_state(root, "OTHER-1"), {"uav_id": "OTHER-1", "lon": 121.49, "lat": 31.04})
        _publish(pub, topics.uav_state(root, "OWN-1"), {"uav_id": "OWN-1", "lon": 121.60, "lat": 31.04, "seq": 1})
        _publish(pub, topics.uav_state(root, "OWN-1"), {"uav_id": "OWN-1", "lon": 121.49, "lat": 31.04, "seq": 2})
        _publish(pub, *_event(root, "no_fly_violation", "OWN-1", 3))
        _publish(pub, *_event(root, "altitude_violation", "OTHER-1", 4))
        _publish(pub, *_event(root, "altitude_violation", "OWN-1", 5))
        for sid in ("AQ-1", "NZ-1"):
            _publish(pub, topics.sensor_state(root, sid), {"sensor_id": sid, "ts": "2026-11-27T03:00:00Z",
                                                           "values": {"v": 1.5}})
        got = _receive_until(ws, lambda g: any(m["type"] == "sensor" for m in g)
                             and any(m.get("seq") == 5 for m in g))
        time.sleep(0.3)
        try:
            got.extend(ws_messages(ws.recv(timeout=0.5)))
        except TimeoutError:
            pass
    assert [m["seq"] for m in got if m["type"] == "position"] == [2]
    assert [m["seq"] for m in got if m["type"] == "event"] == [5]
    assert [m["sensor_id"] for m in got if m["type"] == "sensor"] == ["NZ-1"]


def test_zone_state_changes_are_forwarded_and_replayed_to_new_clients(system, feed, keys, pub):
    topic = f"{system.mqtt_root}/control/zone/R-BR-MP"
    state = {"state": "suspended", "reason": "wind above limit", "by": "sensor-rule", "at": "2026-11-27T03:00:00Z"}
    try:
        with ws_connect(f"{feed.ws_url}/v1/live?access_token={keys['viewer']}&type=zone_state") as ws:
            time.sleep(0.3)
            _publish(pub, topic, state, retain=True)
            got = _receive_until(ws, lambda g: any(m["type"] == "zone_state" for m in g))
        assert got[0]["zone_id"] == "R-BR-MP" and got[0]["state"] == "suspended"
        with ws_connect(f"{feed.ws_url}/v1/live?access_token={keys['viewer']}&type=zone_state") as ws:
            got = _receive_until(ws, lambda g: any(m["type"] == "zone_state" for m in g))
        assert got[0]["reason"] == "wind above limit"
    finally:
        pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)


def test_sse_stream_with_filters_and_auth(system, feed, keys, pub):
    url = feed.url + "/v1/live/sse"
    assert httpx.get(url, timeout=5).status_code == 401
    assert httpx.get(url, params={"access_token": keys["viewer"], "bbox": "x"}, timeout=5).status_code == 422
    params = {"access_token": keys["operator"], "type": "event"}
    events: list[dict] = []
    with httpx.stream("GET", url, params=params, headers={"Accept": "text/event-stream"}, timeout=10) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        time.sleep(0.3)
        _publish(pub, *_event(system.mqtt_root, "no_fly_violation", "OTHER-1", 1))
        _publish(pub, *_event(system.mqtt_root, "no_fly_violation", "OWN-1", 2))
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append({"event": name, **orjson.loads(line[6:])})
                if events[-1].get("seq") == 2:
                    break
    assert [(e["event"], e["uav_id"], e["seq"]) for e in events] == [("event", "OWN-1", 2)]


def test_slow_websocket_client_loses_oldest_positions_counted_and_told_never_alerts(system, feed, keys, pub):
    root, n_positions, pad = system.mqtt_root, 2400, "x" * 4000  # ~10 MB: more than socket buffers hold
    ws = RawWebSocket(feed.port, f"/v1/live?access_token={keys['viewer']}&type=position,event")
    try:
        time.sleep(0.3)
        for i in range(n_positions):  # the client reads nothing meanwhile
            pub.publish(topics.uav_state(root, f"U{i % 7}"),
                        orjson.dumps({"uav_id": f"U{i % 7}", "lon": 121.49, "lat": 31.04, "seq": i, "pad": pad}),
                        qos=1)
            if i % 100 == 50:
                topic, body = _event(root, "no_fly_violation", "U1", i)
                pub.publish(topic, orjson.dumps(body), qos=1)
        pub.publish(topics.uav_state(root, "U0"), orjson.dumps(
            {"uav_id": "U0", "lon": 121.49, "lat": 31.04, "seq": n_positions, "pad": ""}), qos=1).wait_for_publish(30)
        time.sleep(1.0)
        got = _receive_until(ws, lambda g: any(m.get("seq") == n_positions and m["type"] == "position" for m in g),
                             timeout=60)
    finally:
        ws.close()
    positions = [m["seq"] for m in got if m["type"] == "position"]
    told = sum(m.get("dropped_positions", 0) for m in got if m["type"] == "notice")
    events = [m["seq"] for m in got if m["type"] == "event"]
    assert events == list(range(50, n_positions, 100))          # every alert, in order
    assert told > 0                                             # it was slow, and it was told
    assert len(positions) + told == n_positions + 1             # every position either delivered or counted
    assert positions == sorted(positions) and positions[-1] == n_positions   # oldest lost, newest kept


def test_a_client_too_slow_even_for_alerts_is_disconnected_with_a_reason(system, keys, pub):
    server = FeedServer(system.database_url, system.service_url("api"), system.mqtt_root, max_positions=10, max_alerts=20)
    ws = RawWebSocket(server.port, f"/v1/live?access_token={keys['viewer']}&type=event")
    try:
        time.sleep(0.3)
        n, pad = 3000, "y" * 4000  # ~12 MB of alerts the client does not read
        for i in range(n):
            topic, body = _event(system.mqtt_root, "no_fly_violation", "U1", i)
            last = pub.publish(topic, orjson.dumps({**body, "detail": {"pad": pad}}), qos=1)
        last.wait_for_publish(30)
        time.sleep(1.0)
        seqs: list[int] = []
        with pytest.raises(ConnectionError) as info:
            while True:
                seqs.extend(m["seq"] for m in ws_messages(ws.recv(timeout=20)) if m["type"] == "event")
        assert "03f5" in str(info.value) and "too slow" in str(info.value)   # close code 1013 with the reason
        assert seqs == list(range(len(seqs))) and len(seqs) < n                # what it got has no gap
        metrics = httpx.get(server.url + "/metrics", headers=bearer(keys["engineer"]), timeout=5).text
        assert 'skylane_feed_disconnects_total{reason="alert_overflow"}' in metrics
    finally:
        ws.close()
        server.close()


def test_several_api_processes_serve_the_same_feed_and_count_it(system, feed, keys, pub):
    other = FeedServer(system.database_url, system.service_url("api"), system.mqtt_root)
    try:
        with ws_connect(f"{feed.ws_url}/v1/live?access_token={keys['viewer']}&type=event") as a, \
                ws_connect(f"{other.ws_url}/v1/live?access_token={keys['admin']}&type=event") as b:
            time.sleep(0.3)
            _publish(pub, *_event(system.mqtt_root, "altitude_violation", "OWN-1", 7))
            for ws in (a, b):
                got = _receive_until(ws, lambda g: any(m.get("seq") == 7 for m in g))
                assert [m["kind"] for m in got] == ["altitude_violation"]
            metrics = httpx.get(other.url + "/metrics", headers=bearer(keys["engineer"]), timeout=5).text
        assert 'skylane_feed_clients{transport="ws"}' in metrics
        assert 'skylane_feed_updates_sent_total{type="event"}' in metrics
    finally:
        other.close()
