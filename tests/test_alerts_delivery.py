"""Alert delivery on the real PostgreSQL (and broker and ingest where a drone flies): the outbox is written with
the events, the worker delivers it at least once, retries what receivers could not take, fails what they refuse,
sends a digest when a flood comes, keeps a robot's rate, and a no-fly violation reaches a webhook quickly."""
from __future__ import annotations

import json
import time
import uuid
from collections import Counter

import orjson
import psycopg
import pytest

from ingest.pipeline import BatchOutput
from ingest.sensor_watch import SensorEvent
from protocol import topics
from protocol.mqttclient import close_client, connect_client
from storage.writes import write_batch

from .alerts_support import (T0, HttpReceiver, WorkerThread, call, deliver_all, delivered_ids, event, outbox, store_events,
                             subscribe, violations, wait_delivered, webhook_receiver, wecom_robot)
from .api_support import make_keys
from .helpers import ARTIFACTS, query, wait_until

pytestmark = pytest.mark.integration
SECRET = "a-webhook-secret-for-tests"
INSIDE_BRIDGE_ZONE = {"lat": 31.044, "lon": 121.4885, "alt_m": 50}  # R-BR-MP, band 0-150 m AGL


def test_outbox_rows_are_written_in_the_events_transaction_for_matching_subscriptions(system):
    db = system.database_url
    query(db, "INSERT INTO devices (device_id, kind, owner) VALUES ('U-A', 'uav', 'op-a'), ('U-B', 'uav', 'op-b'), "
              "('S-1', 'sensor', 'city') RETURNING 1")
    url = "http://127.0.0.1:9/x"
    subs = {name: subscribe(db, name=name, channel="webhook", target=url, secret=SECRET, **f) for name, f in {
        "all": {}, "nofly": {"kinds": ["no_fly_violation"]}, "c1": {"zone_ids": ["C1"]}, "ua": {"uav_ids": ["U-A"]},
        "opb": {"owners": ["op-b"]}, "ua+opb": {"uav_ids": ["U-A"], "owners": ["op-b"]},
        "sensors": {"kinds": ["sensor_threshold"], "uav_ids": ["S-1"]}, "off": {"enabled": False}}.items()}
    a = event("no_fly_violation", "U-A", "R-BR-MP", 0)
    b = event("zone_enter", "U-B", "C1", 1)
    lost = event("link_lost", "U-C", None, 2)
    sensor = SensorEvent(uuid.uuid4(), T0, "sensor_threshold", "S-1", "pm25-high", "pm25", 80.0)
    out = BatchOutput(events=[a, b, lost], sensor_events=[sensor])

    with psycopg.connect(db) as conn:  # a batch that does not commit leaves neither events nor deliveries
        with pytest.raises(RuntimeError), conn.transaction():
            write_batch(conn, out)
            raise RuntimeError("the batch's transaction fails after the writes")
    assert outbox(db) == [] and query(db, "SELECT count(*) FROM airspace_events") == [(0,)]

    for _ in range(2):  # a re-delivered batch adds nothing
        with psycopg.connect(db) as conn:
            write_batch(conn, out)
    got = {(sub, ev) for sub, ev, *_ in outbox(db)}
    name = {v: k for k, v in subs.items()}
    by_event = {str(a.id): "a", str(b.id): "b", str(lost.id): "lost", str(sensor.id): "sensor"}
    assert sorted((name[s], by_event[e]) for s, e in got) == sorted([
        ("all", "a"), ("all", "b"), ("all", "lost"), ("all", "sensor"), ("nofly", "a"), ("c1", "b"), ("ua", "a"),
        ("opb", "b"), ("ua+opb", "a"), ("ua+opb", "b"), ("sensors", "sensor")])
    assert query(db, "SELECT DISTINCT source FROM alert_outbox ORDER BY 1") == [("airspace",), ("sensor",)]


def test_a_no_fly_violation_reaches_a_webhook_receiver_within_2_s(system, ingester, api):
    """The issue's figure: drone fix published -> ingest -> stored with its outbox row -> worker -> receiver."""
    admin = make_keys(system.database_url).admin
    port = HttpReceiver().port
    r = call(api, "POST", "/v1/alerts/subscriptions", admin, {
        "name": "duty desk", "channel": "webhook", "target": f"http://127.0.0.1:{port}/skylane",
        "kinds": ["no_fly_violation"], "zone_ids": ["R-BR-MP"]})
    assert r.status_code == 201, r.text
    receiver = webhook_receiver(r.json()["secret"], port).start()  # verifies Skylane's signature with the secret
    worker = WorkerThread(system, {"poll_s": system.alerts_poll_s}).start()  # the default polling, 0.5 s
    pub = connect_client(system.mqtt_url, "test-alerts-pub")
    latencies = []
    try:
        time.sleep(1.0)
        for i, uav in enumerate(("T1", "T2", "T3")):
            t0 = time.time()
            pub.publish(topics.telemetry(system.mqtt_root, uav), orjson.dumps({**INSIDE_BRIDGE_ZONE, "seq": 1}), qos=1)
            wait_until(lambda n=i: len(receiver.accepted) > n, 10, "the violation did not reach the receiver")
            latencies.append(receiver.accepted[i].at - t0)
    finally:
        close_client(pub)
        worker.stop()
        receiver.stop()
    stored = {str(e) for (e,) in query(system.database_url, "SELECT id FROM airspace_events WHERE kind = "
                                                            "'no_fly_violation'")}
    assert sorted(delivered_ids(receiver.accepted)) == sorted(stored) and len(stored) == 3
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "alerts_webhook_latency.json").write_text(json.dumps({"seconds": latencies}))
    print(f"no-fly violation -> webhook receiver: {', '.join(f'{s:.3f}' for s in latencies)} s")
    assert max(latencies) < 5.0  # the issue asks for 2 s; the bound is generous for a loaded machine


@pytest.mark.slow
def test_receiver_down_for_60_s_then_every_event_is_delivered_exactly_once(system, ingester):
    settings = system.with_(alerts_retry_base_s=0.5, alerts_retry_cap_s=2.0)  # a shorter backoff cap
    receiver = webhook_receiver(SECRET)  # its port is known, nothing listens there yet
    subscribe(system.database_url, channel="webhook", target=receiver.url + "/in", secret=SECRET,
              kinds=["no_fly_violation"])
    worker = WorkerThread(settings, {"poll_s": 0.5, "retry_base_s": 0.5, "retry_cap_s": 2.0}).start()
    pub = connect_client(system.mqtt_url, "test-alerts-down")
    try:
        down_since = time.monotonic()
        for uav in ("D1", "D2", "D3", "D4", "D5", "D6"):
            pub.publish(topics.telemetry(system.mqtt_root, uav), orjson.dumps({**INSIDE_BRIDGE_ZONE, "seq": 1}), qos=1)
        wait_until(lambda: len(outbox(system.database_url)) == 6, 20, "the violations were not stored")
        time.sleep(max(0.0, 60.0 - (time.monotonic() - down_since)))
        rows = outbox(system.database_url)
        assert all(not delivered and attempts >= 10 and "unreachable" in error
                   for _s, _e, attempts, delivered, _f, error in rows), rows
        receiver.start()
        wait_delivered(system.database_url, 30)
    finally:
        close_client(pub)
        worker.stop()
        receiver.stop()
    stored = [str(e) for (e,) in query(system.database_url, "SELECT id FROM airspace_events WHERE kind = "
                                                            "'no_fly_violation'")]
    got = Counter(delivered_ids(receiver.accepted))
    assert sorted(got) == sorted(stored) and set(got.values()) == {1}  # every event, exactly once
    assert all(r.headers["x-skylane-event-id"] in stored for r in receiver.accepted)


def test_4xx_fails_at_once_5xx_and_429_are_retried_and_a_bad_url_fails(system):
    db = system.database_url
    answers = {"/flaky": [503, 429, 200]}

    def respond(req):
        if req.path == "/gone":
            return 404, b'{"error": "no such hook"}', {}
        return (answers[req.path].pop(0) if answers[req.path] else 200), b"{}", {"Retry-After": "0"}
    rx = HttpReceiver(respond).start()
    gone = subscribe(db, channel="webhook", target=rx.url + "/gone", secret=SECRET)
    flaky = subscribe(db, channel="webhook", target=rx.url + "/flaky", secret=SECRET)
    bad = subscribe(db, channel="webhook", target="ftp://127.0.0.1/nowhere", secret=SECRET)  # past the API's check
    store_events(db, violations(1))
    deliver_all(system, 30, rx)
    state = {sub: (attempts, delivered, failed, error) for sub, _e, attempts, delivered, failed, error in outbox(db)}
    assert state[gone][:3] == (1, False, True) and state[gone][3].startswith("HTTP 404 from the receiver")
    assert state[flaky][:3] == (3, True, False)
    assert state[bad][:3] == (1, False, True) and "bad target URL" in state[bad][3]


def test_a_flood_for_one_subscription_becomes_one_digest(system):
    db = system.database_url
    rx = webhook_receiver(SECRET).start()
    subscribe(db, channel="webhook", target=rx.url + "/hook", secret=SECRET)
    events = violations(30)
    store_events(db, events)  # 30 due at once, the worker not running yet
    worker = WorkerThread(system, {"digest_after": 10}).start()
    try:
        wait_delivered(db, 20)
        store_events(db, violations(3, start=100))  # a few afterwards: one message each
        wait_delivered(db, 20)
    finally:
        worker.stop()
        rx.stop()
    first, *rest = rx.accepted
    assert first.json()["type"] == "digest" and first.json()["count"] == 30
    assert sorted(delivered_ids([first])) == sorted(str(e.id) for e in events)
    assert [r.json()["type"] for r in rest] == ["event"] * 3
    digest_ids = {d for (d,) in query(db, "SELECT DISTINCT digest_id::text FROM alert_outbox")}
    assert digest_ids == {first.headers["x-skylane-event-id"], None}


def test_a_robots_rate_is_kept_and_the_rest_waits(system):
    db = system.database_url
    robot = wecom_robot("k1").start()
    subscribe(db, channel="wecom", target=robot.url + "/cgi-bin/webhook/send?key=k1")
    store_events(db, violations(25))
    worker = WorkerThread(system, {"digest_after": 1000}).start()  # no digest: 25 single messages due
    try:
        wait_until(lambda: len(robot.accepted) >= 20, 20, "the robot got nothing")
        time.sleep(1.5)
        assert len(robot.accepted) == 20  # WeCom's documented 20 a minute
        waiting = query(db, "SELECT count(*), min(extract(epoch FROM next_attempt - now())) FROM alert_outbox "
                            "WHERE delivered_at IS NULL")
    finally:
        worker.stop()
        robot.stop()
    assert waiting[0][0] == 5 and 40 < waiting[0][1] <= 60


def test_admins_manage_subscriptions_and_see_deliveries_secrets_never_shown(system, api):
    keys = make_keys(system.database_url)
    path = "/v1/alerts/subscriptions"
    body = {"name": "ops", "channel": "wecom", "target": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY-9f3",
            "kinds": ["no_fly_violation", "sensor_threshold"], "owners": ["op-alpha"], "language": "en"}
    for role in ("viewer", "operator", "engineer"):
        assert call(api, "GET", path, keys.for_role(role)).status_code == 403
        assert call(api, "POST", path, keys.for_role(role), body).status_code == 403
    assert call(api, "GET", path, None).status_code == 401
    wecom = call(api, "POST", path, keys.admin, body)
    assert wecom.status_code == 201 and wecom.json()["secret"] is None and "KEY-9f3" not in wecom.text
    hook = call(api, "POST", path, keys.admin, {"name": "siem", "channel": "webhook", "target": "https://siem.example/in"})
    made = hook.json()["secret"]
    assert hook.status_code == 201 and len(made) >= 32 and hook.json()["has_secret"]
    ding = call(api, "POST", path, keys.admin, {"name": "dd", "channel": "dingtalk", "secret": "SECdingdingsecret",
                                       "target": "https://oapi.dingtalk.com/robot/send?access_token=TOK-77"})
    assert ding.status_code == 201 and ding.json()["secret"] is None
    listed = call(api, "GET", path, keys.admin)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 3
    for secret in (made, "SECdingdingsecret", "KEY-9f3", "TOK-77"):
        assert secret not in listed.text
    assert listed.json()["items"][0]["target"] == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    for bad in ({**body, "kinds": ["no_such_kind"]}, {**body, "target": "https://qyapi.weixin.qq.com/no-key"},
                {**body, "channel": "sms"}, {**body, "target": "duty@x.org", "channel": "email", "secret": "x"}):
        r = call(api, "POST", path, keys.admin, bad)
        assert r.status_code == 422, (bad, r.text)

    store_events(system.database_url, violations(2))
    pending = call(api, "GET", "/v1/alerts/deliveries?status=pending", keys.admin).json()["items"]
    assert len(pending) == 2 * 3 - 2  # wecom (op-alpha's fleet only) gets none of FLOOD*'s
    metrics = call(api, "GET", "/metrics", keys.engineer).text
    assert "skylane_db_alert_outbox_backlog 4.0" in metrics
    assert 'skylane_db_alert_deliveries_last_hour{channel="webhook",outcome="pending"} 2.0' in metrics
    assert 'skylane_db_alert_deliveries_last_hour{channel="email",outcome="delivered"} 0.0' in metrics

    sid = hook.json()["id"]
    assert call(api, "DELETE", f"{path}/{sid}", keys.operator).status_code == 403
    assert call(api, "DELETE", f"{path}/{sid}", keys.admin).status_code == 200
    assert call(api, "DELETE", f"{path}/{sid}", keys.admin).status_code == 404
    assert sid not in call(api, "GET", path, keys.admin).text
    failed = call(api, "GET", f"/v1/alerts/deliveries?status=failed&subscription_id={sid}", keys.admin).json()["items"]
    assert [d["last_error"] for d in failed] == ["subscription deleted before delivery"] * 2
    assert all(d["status"] == "failed" and d["next_attempt"] is None for d in failed)
    assert call(api, "GET", "/v1/alerts/deliveries?status=nonsense", keys.admin).status_code == 422


def test_old_events_of_a_deleted_or_disabled_subscription_are_not_sent(system):
    db = system.database_url
    rx = webhook_receiver(SECRET).start()
    off = subscribe(db, channel="webhook", target=rx.url + "/off", secret=SECRET)
    store_events(db, violations(2))
    query(db, "UPDATE alert_subscriptions SET enabled = false WHERE id = %s RETURNING 1", off)
    worker = WorkerThread(system).start()
    try:
        time.sleep(1.5)
        assert rx.accepted == [] and all(not d for _s, _e, _a, d, _f, _x in outbox(db))
    finally:
        worker.stop()
        rx.stop()
    assert query(db, "SELECT min(next_attempt - now()) > interval '30 s' FROM alert_outbox") == [(True,)]


def test_the_worker_writes_each_subscription_in_its_language_with_the_zones_chinese_name(system):
    """The same violation to a Chinese and an English subscription: each message in its language, the zone by
    its stored `name_zh` in Chinese (read with the event), the time in Asia/Shanghai; the event's description
    rides along in the webhook body as the API gives it."""
    db = system.database_url
    rx = webhook_receiver(SECRET).start()
    zh = subscribe(db, name="值班席", channel="webhook", target=rx.url + "/zh", secret=SECRET, language="zh-CN")
    en = subscribe(db, name="night desk", channel="webhook", target=rx.url + "/en", secret=SECRET, language="en")
    store_events(db, violations(1))
    deliver_all(system, 20, rx)
    by_path = {r.path: r.json() for r in rx.accepted}
    assert sorted(by_path) == ["/en", "/zh"] and {b["subscription"]["id"] for b in by_path.values()} == {zh, en}
    zh_body, en_body = by_path["/zh"], by_path["/en"]
    assert zh_body["language"] == "zh-CN" and en_body["language"] == "en"
    assert zh_body["title"] == "[Skylane] 闯入禁飞区：FLOOD0，黄浦江大桥禁飞区（南）（R-BR-MP）"
    assert zh_body["event"]["description"].startswith("FLOOD0 闯入禁飞区 黄浦江大桥禁飞区（南）")
    assert "时间：2026-03-10 10:00:00（北京时间）" in zh_body["text"] and "订阅：值班席" in zh_body["text"]
    assert "No-fly" not in zh_body["text"] and "Time:" not in zh_body["text"]
    assert en_body["title"] == "[Skylane] No-fly zone violation: FLOOD0 in bridge (R-BR-MP)"
    assert "Time: 2026-03-10 10:00:00 (Asia/Shanghai)" in en_body["text"] and "闯入" not in en_body["text"]


def test_alert_api_errors_are_said_in_the_callers_language(system, api):
    import httpx
    admin = make_keys(system.database_url).admin
    path = api.url + "/v1/alerts/subscriptions"
    wecom = {"name": "ops", "channel": "wecom", "target": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K"}

    def post(body, lang):
        return httpx.post(path, json=body, timeout=30, headers={"Authorization": f"Bearer {admin}",
                                                                 "Accept-Language": lang})
    for lang, kind, target, gone in (
            ("zh-CN,zh;q=0.9", "未知的事件类型 'no_such_kind'；可用类型：", "企业微信机器人地址须带 key", "没有该订阅"),
            ("en-US", "unknown event kind 'no_such_kind'; kinds: ", "a WeCom robot address carries its key",
             "no such subscription")):
        r = post({**wecom, "kinds": ["no_such_kind"]}, lang)
        assert r.status_code == 422 and r.json()["detail"].startswith(kind), r.text
        r = post({**wecom, "target": "https://qyapi.weixin.qq.com/no-key"}, lang)
        assert r.status_code == 422 and target in r.json()["detail"], r.text
        r = httpx.delete(f"{path}/{uuid.uuid4()}", timeout=30,
                         headers={"Authorization": f"Bearer {admin}", "Accept-Language": lang})
        assert r.status_code == 404 and r.json()["detail"] == gone, r.text
    r = post({**wecom, "channel": "email", "target": "duty@x.org", "secret": "x"}, "zh-CN")
    assert r.status_code == 422 and r.json()["detail"] == "email 订阅设置有误：邮件订阅不设密钥（SMTP 账户在服务配置中设置）"
