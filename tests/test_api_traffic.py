"""The air picture through the API: GET /v1/traffic and the live feed's `type=traffic` give every tracked
aircraft from the retained traffic states; operators see other operators' drones without who they are."""
from __future__ import annotations

import time

import orjson
import pytest
from websockets.sync.client import connect as ws_connect

from devices.registry import DeviceRecord
from protocol import topics
from protocol.mqttclient import close_client, connect_client
from skylane.wiring import register_devices

from .api_support import OPERATOR_OWNER, Client, keys  # noqa: F401  (fixture)
from .helpers import wait_until

pytestmark = pytest.mark.integration


def _track(track_id: str, kind: str, lon: float, lat: float, uav_id: str | None = None, **identity) -> dict:
    return {"track_id": track_id, "ts": "2026-12-03T08:00:00.000Z", "kind": kind, "uav_id": uav_id,
            "registered": uav_id is not None, "identity": identity, "lon": lon, "lat": lat, "alt_m": 120.0,
            "alt_ref": "AMSL", "sources": {"adsb" if kind == "manned" else "telemetry": {
                "key": uav_id or identity.get("icao24"), "age_s": 0.5, "lost": False}}, "alerts": []}


@pytest.fixture
def air_picture(system, api, keys):  # noqa: F811
    register_devices(system, [DeviceRecord("MINE-1", "uav", owner=OPERATOR_OWNER),
                              DeviceRecord("THEIRS-1", "uav", owner="op-beta")])
    tracks = [_track("icao:780a3b", "manned", 121.47, 31.05, icao24="780a3b", callsign="B7613"),
              _track("uav:MINE-1", "drone", 121.48, 31.04, "MINE-1"),
              _track("uav:THEIRS-1", "drone", 121.60, 31.20, "THEIRS-1", serial="1596A")]
    _publish(system, tracks)
    viewer = Client(api.url, keys.viewer)
    wait_until(lambda: len(viewer.get("/v1/traffic").json()["items"]) == 3, 10, "traffic states not in the API")
    return tracks


def test_every_aircraft_with_filters(api, keys, air_picture):  # noqa: F811
    viewer = Client(api.url, keys.viewer)
    assert [t["track_id"] for t in viewer.get("/v1/traffic").json()["items"]] == [
        "icao:780a3b", "uav:MINE-1", "uav:THEIRS-1"]
    assert [t["track_id"] for t in viewer.get("/v1/traffic", params={"kind": "manned"}).json()["items"]] == \
        ["icao:780a3b"]
    assert [t["track_id"] for t in viewer.get("/v1/traffic", params={"source": "adsb"}).json()["items"]] == \
        ["icao:780a3b"]
    box = viewer.get("/v1/traffic", params={"bbox": "121.40,31.00,121.50,31.10"}).json()["items"]
    assert {t["track_id"] for t in box} == {"icao:780a3b", "uav:MINE-1"}
    assert viewer.get("/v1/traffic", params={"bbox": "1,2,3"}).status_code == 422
    assert Client(api.url, None).get("/v1/traffic").status_code == 401


def test_operators_see_others_drones_without_who_they_are(api, keys, air_picture):  # noqa: F811
    items = {t["kind"] + ":" + str(t.get("uav_id")): t for t in
             Client(api.url, keys.operator).get("/v1/traffic").json()["items"]}
    assert items["drone:MINE-1"]["track_id"] == "uav:MINE-1"
    hidden = items["drone:None"]
    assert hidden["track_id"].startswith("drone-") and "THEIRS" not in orjson.dumps(hidden).decode()
    assert (hidden["lon"], hidden["lat"]) == (121.60, 31.20)  # where it is stays known: it matters to safety
    assert items["manned:None"]["identity"]["callsign"] == "B7613"


def _publish(system, tracks) -> None:
    pub = connect_client(system.mqtt_url, "t-traffic")
    try:
        for t in tracks:
            pub.publish(topics.traffic_state(system.mqtt_root, t["track_id"]), orjson.dumps(t), qos=1,
                        retain=True).wait_for_publish(5)
    finally:
        close_client(pub)


def test_the_live_feed_gives_traffic(system, api, keys, air_picture):  # noqa: F811
    url = api.url.replace("http", "ws") + f"/v1/live?type=traffic&access_token={keys.operator}"
    seen: dict[str, dict] = {}
    with ws_connect(url) as ws:
        time.sleep(1.5)  # the feed's device directory learns the new registrations (reloaded on a miss)
        _publish(system, air_picture)  # the next updates, as they come every second live
        deadline = time.monotonic() + 10
        while "uav:MINE-1" not in seen and time.monotonic() < deadline:
            for msg in orjson.loads(ws.recv(timeout=5)):
                if msg["type"] == "traffic":
                    seen[msg["track_id"]] = msg
    assert "uav:MINE-1" in seen and "icao:780a3b" in seen and "uav:THEIRS-1" not in seen
    assert all("THEIRS" not in orjson.dumps(m).decode() for m in seen.values())


def test_an_operator_sees_a_separation_event_without_the_other_operators_identity(system, api, keys):  # noqa: F811
    """Both aircraft are named in a pair event; an operator's copy keeps where the other was and what it was,
    not who (REST history; the live feed shares the function, api.subscribers.own_flights_only)."""
    import uuid
    from datetime import datetime, timezone

    from psycopg.types.json import Jsonb

    register_devices(system, [DeviceRecord("MINE-2", "uav", owner=OPERATOR_OWNER),
                              DeviceRecord("THEIRS-2", "uav", owner="op-beta")])
    detail = {"track_id": "uav:MINE-2", "kind": "drone", "horizontal_m": 31.0, "vertical_m": 4.0,
              "other": {"track_id": "uav:THEIRS-2", "kind": "drone", "uav_id": "THEIRS-2", "callsign": None,
                        "registered": True},
              "positions": {"uav:MINE-2": {"lon": 121.48, "lat": 31.04}, "uav:THEIRS-2": {"lon": 121.4803, "lat": 31.04}}}
    import psycopg
    with psycopg.connect(system.database_url) as conn:
        conn.execute("INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id, detail) VALUES (%s,%s,%s,%s,%s,%s)",
                     (datetime.now(timezone.utc), uuid.uuid4(), "separation_loss", "MINE-2", "uav:THEIRS-2",
                      Jsonb(detail)))
    mine = Client(api.url, keys.operator).get("/v1/events", params={"kind": "separation_loss"}).json()["items"]
    assert len(mine) == 1 and "THEIRS" not in orjson.dumps(mine).decode()
    assert mine[0]["zone_id"].startswith("drone-") and mine[0]["detail"]["other"]["kind"] == "drone"
    assert len(mine[0]["detail"]["positions"]) == 2
    admin = Client(api.url, keys.admin).get("/v1/events", params={"kind": "separation_loss"}).json()["items"]
    assert admin[0]["detail"]["other"]["uav_id"] == "THEIRS-2"  # the operations center sees both
