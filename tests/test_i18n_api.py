"""The API answers in the caller's language: a sample of failures with `Accept-Language: zh-CN` have Chinese
details (English without it), and events carry a description in that language, over REST and the live feed."""
from __future__ import annotations

import re

import psycopg
import pytest

from .api_support import Client, keys  # noqa: F401  (fixture)
from .feeds_support import ws_messages

pytestmark = pytest.mark.integration
CJK = re.compile(r"[\u4e00-\u9fff]")
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


def test_error_details_are_chinese_for_a_chinese_caller(api, keys, system):  # noqa: F811
    with psycopg.connect(system.database_url) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, owner) VALUES ('OTHER-9', 'uav', 'op-beta')")
    op, viewer, anon = Client(api.url, keys.operator), Client(api.url, keys.viewer), Client(api.url, None)
    wps = [{"lon": 121.46, "lat": 31.056, "alt_m": 80}, {"lon": 121.5, "lat": 31.053, "alt_m": 80}]
    samples = [
        (anon.get("/v1/zones", headers=ZH), 401, "API 密钥"),
        (Client(api.url, keys.revoked).get("/v1/zones", headers=ZH), 401, "吊销"),
        (viewer.post("/v1/clearances", json={"waypoints": wps}, headers=ZH), 403, "角色"),
        (op.post("/v1/clearances", json={"waypoints": wps}, headers=ZH), 422, "uav_id"),
        (op.post("/v1/clearances", json={"uav_id": "OTHER-9", "waypoints": wps}, headers=ZH), 403, "不是您的无人机"),
        (op.get("/v1/clearances/aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", headers=ZH), 404, "许可"),
        (viewer.get("/v1/events/11111111-1111-4111-8111-111111111111", headers=ZH), 404, "事件"),
        (viewer.get("/v1/zones/NOPE", headers=ZH), 404, "空域"),
        (viewer.get("/v1/events", params={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
                    headers=ZH), 422, "开始时间"),
        (op.post("/v1/clearances", content=b"x" * (2 << 20), headers={**ZH, "Content-Type": "application/json"}),
         413, "请求体"),
    ]
    for r, status, needle in samples:
        assert r.status_code == status, (r.status_code, r.text)
        detail = r.json()["detail"]
        assert CJK.search(detail) and needle in detail, detail
    english = anon.get("/v1/zones", headers={"Accept-Language": "en-GB"})
    assert english.json()["detail"] == "missing API key: send 'Authorization: Bearer <key>'"


def test_events_are_described_in_the_callers_language(api, keys, system):  # noqa: F811
    with psycopg.connect(system.database_url) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, owner) VALUES ('U-ZH', 'uav', 'op-alpha')")
        conn.execute("INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id, detail) VALUES (now(), "
                     "'33333333-3333-4333-8333-333333333333', 'no_fly_violation', 'U-ZH', 'R-BR-MP', "
                     "'{\"zone_name\": \"Huangpu river bridge exclusion (south)\", \"alt_m\": 50, \"alt_ref\": \"AGL\"}')")
    viewer = Client(api.url, keys.viewer)
    viewer.get("/v1/zones")  # the process has read the zones (their Chinese names)
    zh = viewer.get("/v1/events", headers=ZH).json()["items"][0]
    en = viewer.get("/v1/events").json()["items"][0]
    assert zh["description"].startswith("U-ZH 闯入禁飞区") and "真高" in zh["description"], zh
    assert "大桥" in zh["description"]  # name_zh of R-BR-MP
    assert en["description"] == "U-ZH in no-fly zone Huangpu river bridge exclusion (south) at 50 m AGL"
    one = viewer.get("/v1/events/33333333-3333-4333-8333-333333333333", headers=ZH).json()
    assert one["description"] == zh["description"]


def test_live_events_carry_a_description_in_the_feeds_language(api, keys, system):  # noqa: F811
    import orjson
    from websockets.sync.client import connect

    from protocol.mqttclient import close_client, connect_client
    event = {"id": "44444444-4444-4444-8444-444444444444", "kind": "link_lost", "uav_id": "U-LIVE",
             "zone_id": None, "ts": "2026-11-27T08:00:00.000Z", "detail": {}}
    url = api.url.replace("http", "ws") + f"/v1/live?access_token={keys.viewer}&type=event&lang=zh-CN"
    with connect(url) as ws:
        pub = connect_client(system.mqtt_url, "test-i18n-live")
        got = []
        for _ in range(20):
            pub.publish(f"{system.mqtt_root}/events/link_lost/U-LIVE", orjson.dumps(event), qos=1).wait_for_publish(5)
            try:
                got += ws_messages(ws.recv(timeout=1))
            except TimeoutError:
                continue
            if got:
                break
        close_client(pub)
    assert got and got[0]["description"] == "U-LIVE：链路中断", got
