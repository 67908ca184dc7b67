"""Operators never see other operators' drones, whatever they ask (attack: an operator key reads every REST
endpoint and the live feeds, looking for another operator's drone ids and owner). The subtle one: a zone
suspension lists the flights inside the zone (`detail.flights`), which for an operator's own event named the
other operators' drones too."""
from __future__ import annotations

import threading
import time
import uuid

import httpx
import orjson
import psycopg
import pytest
from websockets.sync.client import connect as ws_connect

from protocol import topics
from protocol.mqttclient import close_client, connect_client

from .api_support import Client, keys  # noqa: F401  (fixture)
from .feeds_support import ws_messages

pytestmark = pytest.mark.integration
MINE, THEIRS, THEIR_OWNER = "U-ALPHA", "U-BETA", "op-beta"
EV_MINE, EV_THEIRS = str(uuid.uuid4()), str(uuid.uuid4())
CL_MINE, CL_THEIRS = str(uuid.uuid4()), str(uuid.uuid4())
FLIGHTS = [MINE, THEIRS, "U-NOBODY"]  # a suspension reaching three drones, one of them unregistered


def _suspension(event_id: str, uav: str) -> dict:
    return {"id": event_id, "kind": "zone_suspended", "uav_id": uav, "zone_id": "C1",
            "ts": "2026-11-27T03:00:00.000Z",
            "detail": {"reason": "wind 14 m/s", "by": "rule:W-C1", "state": "suspended", "flights": FLIGHTS}}


@pytest.fixture
def seeded(system):
    with psycopg.connect(system.database_url) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, owner, name) VALUES (%s, 'uav', 'op-alpha', 'mine'), "
                     "(%s, 'uav', %s, 'theirs'), ('S-AIR1', 'sensor', 'city', 'air')", (MINE, THEIRS, THEIR_OWNER))
        for ev, uav in ((EV_MINE, MINE), (EV_THEIRS, THEIRS)):
            body = _suspension(ev, uav)
            conn.execute("INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id, detail) "
                         "VALUES (now() - interval '1 minute', %s, 'zone_suspended', %s, 'C1', %s)",
                         (ev, uav, orjson.dumps(body["detail"]).decode()))
        for cid, uav, owner in ((CL_MINE, MINE, "op-alpha"), (CL_THEIRS, THEIRS, THEIR_OWNER)):
            conn.execute("INSERT INTO clearances (id, uav_id, owner, requested_by, decision, alt_ref, route, "
                         "start_time, end_time) VALUES (%s, %s, %s, 'seed', 'approved', 'AGL', '[]', now(), "
                         "now() + interval '1 hour')", (cid, uav, owner))
        conn.execute("INSERT INTO uav_telemetry (ts, uav_id, lon, lat, alt_m, alt_ref, received_at) VALUES "
                     "(now() - interval '5 seconds', %s, 121.5, 31.05, 60, 'AGL', now()), "
                     "(now() - interval '5 seconds', %s, 121.49, 31.05, 60, 'AGL', now())", (MINE, THEIRS))
    return system


def _hidden(text: str) -> list[str]:
    return [needle for needle in (THEIRS, THEIR_OWNER, "U-NOBODY", CL_THEIRS, EV_THEIRS) if needle in text]


def test_operator_rest_reads_never_name_other_operators_drones(seeded, api, keys):  # noqa: F811
    op = Client(api.url, keys.operator)
    paths = ["/v1/me", "/v1/uavs", f"/v1/uavs/{MINE}/track", f"/v1/uavs/{THEIRS}/track", "/v1/events",
             "/v1/events?kind=zone_suspended", f"/v1/events?uav_id={THEIRS}", f"/v1/events/{EV_MINE}",
             f"/v1/events/{EV_THEIRS}", "/v1/devices", f"/v1/devices/{MINE}", f"/v1/devices/{THEIRS}",
             "/v1/devices?kind=uav", "/v1/sensors", "/v1/zones", "/v1/clearances", f"/v1/clearances/{CL_MINE}",
             f"/v1/clearances/{CL_THEIRS}", f"/v1/clearances?uav_id={THEIRS}", "/v1/clearances?decision=approved"]
    for path in paths:
        r = op.get(path)
        assert r.status_code in (200, 404), (path, r.status_code, r.text)
        if r.status_code == 404:  # answered exactly as for a drone, event or clearance that does not exist
            ghost = path.replace(THEIRS, "U-GHOST").replace(EV_THEIRS, str(uuid.uuid4()))
            ghost = ghost.replace(CL_THEIRS, str(uuid.uuid4()))
            absent = op.get(ghost)
            assert (absent.status_code, absent.text.replace("U-GHOST", THEIRS)) == (404, r.text), path
            continue
        assert _hidden(r.text) == [], (path, r.text[:500])
    mine = op.get(f"/v1/events/{EV_MINE}").json()
    assert mine["detail"]["flights"] == [MINE] and mine["detail"]["reason"] == "wind 14 m/s"
    listed = op.get("/v1/events", params={"kind": "zone_suspended"}).json()["items"]
    assert [(e["uav_id"], e["detail"]["flights"]) for e in listed] == [(MINE, [MINE])]
    # roles that see every drone still see the whole list
    full = Client(api.url, keys.viewer).get(f"/v1/events/{EV_MINE}").json()
    assert full["detail"]["flights"] == FLIGHTS


def _sse_messages(url: str, key: str, out: list, until) -> None:
    with httpx.stream("GET", url, params={"access_token": key}, headers={"Accept": "text/event-stream"},
                      timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append(orjson.loads(line[6:]))
                if until(out):
                    return


def test_operator_live_feeds_never_name_other_operators_drones(seeded, api, keys):  # noqa: F811
    root = seeded.mqtt_root
    pub = connect_client(seeded.mqtt_url, f"t-isolation-{uuid.uuid4().hex[:8]}")
    def done(got: list) -> bool:  # the last event, the zone's state and a position (sent after the alerts)
        return {"zone_state", "position"} <= {m["type"] for m in got} and any(m.get("seq") == "last" for m in got)
    sse: list = []
    reader = threading.Thread(target=_sse_messages, args=(api.url + "/v1/live/sse", keys.operator, sse, done),
                              daemon=True)
    try:
        with ws_connect(f"{api.url.replace('http', 'ws')}/v1/live?access_token={keys.operator}") as op, \
                ws_connect(f"{api.url.replace('http', 'ws')}/v1/live?access_token={keys.viewer}&type=event") as viewer:
            reader.start()
            time.sleep(0.5)  # every feed subscribed before anything is published
            for uav in (MINE, THEIRS):
                pub.publish(topics.uav_state(root, uav), orjson.dumps(
                    {"uav_id": uav, "lon": 121.49, "lat": 31.05, "zones": ["C1"], "alerts": []}), qos=1)
                pub.publish(topics.event(root, "zone_suspended", uav),
                            orjson.dumps(_suspension(str(uuid.uuid4()), uav)), qos=1)
            pub.publish(topics.control_zone(root, "C1"), orjson.dumps(
                {"state": "suspended", "reason": "wind 14 m/s", "by": "rule:W-C1", "at": "2026-11-27T03:00:00Z"}),
                qos=1, retain=True)
            pub.publish(topics.event(root, "no_fly_violation", MINE), orjson.dumps(
                {"id": str(uuid.uuid4()), "kind": "no_fly_violation", "uav_id": MINE, "zone_id": "R-BR-MP",
                 "ts": "2026-11-27T03:00:01.000Z", "detail": {}, "seq": "last"}), qos=1).wait_for_publish(10)
            got, deadline = [], time.monotonic() + 15
            while not done(got) and time.monotonic() < deadline:
                try:
                    got.extend(ws_messages(op.recv(timeout=1)))
                except TimeoutError:
                    pass
            seen_by_viewer, deadline = [], time.monotonic() + 15
            while len([m for m in seen_by_viewer if m.get("kind") == "zone_suspended"]) < 2 \
                    and time.monotonic() < deadline:
                try:
                    seen_by_viewer.extend(ws_messages(viewer.recv(timeout=1)))
                except TimeoutError:
                    pass
            reader.join(15)
    finally:
        pub.publish(topics.control_zone(root, "C1"), b"", qos=1, retain=True).wait_for_publish(10)
        close_client(pub)
    for name, messages in (("websocket", got), ("sse", sse)):
        assert done(messages), (name, messages[-5:])
        assert _hidden(orjson.dumps(messages).decode()) == [], (name, messages)
        suspensions = [m for m in messages if m.get("kind") == "zone_suspended"]
        assert [(m["uav_id"], m["detail"]["flights"]) for m in suspensions] == [(MINE, [MINE])], name
        assert {m["uav_id"] for m in messages if m["type"] == "position"} == {MINE}, name
        assert any(m["type"] == "zone_state" and m["zone_id"] == "C1" for m in messages), name
    assert sorted(m["uav_id"] for m in seen_by_viewer if m.get("kind") == "zone_suspended") == [MINE, THEIRS]
    assert all(m["detail"]["flights"] == FLIGHTS for m in seen_by_viewer if m.get("kind") == "zone_suspended")
