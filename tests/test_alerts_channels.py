"""The channels against local receivers (no database): the generic webhook's signature and replay window, the
WeCom and DingTalk robots' documented bodies and DingTalk's signed address, email over SMTP, and how each
receiver answer is classified (delivered, retried, failed with the reason; never the target's key in it).
Every channel writes in the subscription's language (zh-CN or en) from the catalogue."""
from __future__ import annotations

import email
import email.policy
import hmac
import re
import random
import time
from datetime import datetime, timezone
from urllib.parse import unquote_plus

import orjson
import pytest

from alerting import render
from alerting.channel import DELIVERED, FAILED, RETRY, Alert, Message, Subscription, http_error
from alerting.channels import check_subscription, make_channels
from alerting.dingtalk import sign, signed_url
from alerting.mail import MailChannel, SmtpConfig, message_id
from alerting.store import redact_target
from alerting.webhook import signature, verify
from alerting.worker import MinuteWindow, WorkerConfig, backoff_s

from .alerts_support import HttpReceiver, MailSink, dingtalk_robot, dingtalk_sign, webhook_receiver, wecom_robot

SECRET = "s3cret-for-the-webhook-tests"
EVENT = {"id": "9ae52b28-422e-5e1f-99bd-a663a90cfe12", "ts": "2026-03-10T02:00:36.362Z", "kind": "no_fly_violation",
         "uav_id": "INC-NF1", "zone_id": "R-BR-MP",
         "detail": {"lat": 31.0469963, "lon": 121.4873558, "alt_amsl": 54.0, "between_fixes": True,
                    "zone_name": "Huangpu river bridge exclusion (south)"}}


ZONE_ZH = "黄浦江大桥南侧禁飞区"  # the zone's name_zh, as store.events reads it with the event
CJK = re.compile(r"[\u4e00-\u9fff]")


def alert(i: int = 0, kind: str = "no_fly_violation") -> Alert:
    ev = {**EVENT, "id": EVENT["id"] if i == 0 else f"9ae52b28-422e-5e1f-99bd-a663a90c{i:04x}", "kind": kind}
    return Alert(ev["id"], "airspace", kind, datetime(2026, 3, 10, 2, 0, 36, tzinfo=timezone.utc), ev, ZONE_ZH)


def message(channel: str, target: str, secret: str | None = None, n: int = 1, lang: str = "zh-CN") -> Message:
    sub = Subscription("00000000-0000-4000-8000-000000000001", "duty officers", channel, target, secret, lang)
    alerts = tuple(alert(i) for i in range(n))
    return Message(alerts[0].event_id if n == 1 else "digest-id", sub, alerts, digest=n > 1)


@pytest.fixture
def channels():
    return make_channels(timeout_s=3)


def test_the_webhook_is_signed_over_timestamp_and_body_and_carries_the_event_id(channels):
    rx = webhook_receiver(SECRET).start()
    try:
        assert channels["webhook"].send(message("webhook", rx.url + "/hook", SECRET)).outcome == DELIVERED
    finally:
        rx.stop()
    (req,) = rx.accepted
    ts = req.headers["x-skylane-timestamp"]
    assert abs(int(ts) - time.time()) < 60
    assert req.headers["x-skylane-signature"] == "sha256=" + hmac.new(
        SECRET.encode(), f"{ts}.".encode() + req.body, "sha256").hexdigest()
    body = req.json()
    assert req.headers["x-skylane-event-id"] == body["id"] == body["event"]["id"] == EVENT["id"]
    assert body["type"] == "event" and body["event"]["zone_id"] == "R-BR-MP" and body["language"] == "zh-CN"
    assert body["title"] == f"[Skylane] 闯入禁飞区：INC-NF1，{ZONE_ZH}（R-BR-MP）"
    assert body["event"]["description"] == f"INC-NF1 闯入禁飞区 {ZONE_ZH}"
    assert "时间：2026-03-10 10:00:36（北京时间）" in body["text"]


def test_a_receiver_rejects_stale_timestamps_and_forged_signatures():
    body = b'{"id": "x"}'
    now = time.time()
    fresh = str(int(now))
    assert verify(SECRET, fresh, body, signature(SECRET, fresh, body), now=now)
    stale = str(int(now) - 301)  # a captured request replayed five minutes later
    assert not verify(SECRET, stale, body, signature(SECRET, stale, body), now=now)
    assert not verify(SECRET, fresh, body + b" ", signature(SECRET, fresh, body), now=now)
    assert not verify("another secret of 16+", fresh, body, signature(SECRET, fresh, body), now=now)
    assert not verify(SECRET, None, body, None, now=now) and not verify(SECRET, "abc", body, "sha256=00", now=now)


def test_wecom_gets_its_documented_markdown_body(channels):
    robot = wecom_robot("693a91f6-test").start()
    try:
        url = robot.url + "/cgi-bin/webhook/send?key=693a91f6-test"
        assert channels["wecom"].send(message("wecom", url)).outcome == DELIVERED
        digest = channels["wecom"].send(message("wecom", url, n=300))  # a long digest stays under 4096 bytes
        assert digest.outcome == DELIVERED
        wrong = channels["wecom"].send(message("wecom", robot.url + "/cgi-bin/webhook/send?key=other"))
    finally:
        robot.stop()
    assert wrong.outcome == FAILED and "errcode 40008" in wrong.error and "other" not in wrong.error
    content = robot.accepted[0].json()["markdown"]["content"]
    assert content.startswith(f"### [Skylane] 闯入禁飞区：INC-NF1，{ZONE_ZH}（R-BR-MP）")
    assert EVENT["id"] in content and "（北京时间）" in content and "No-fly" not in content
    assert len(robot.accepted[1].json()["markdown"]["content"].encode()) <= 4096


def test_dingtalk_signs_its_address_as_documented_and_a_wrong_secret_fails(channels):
    secret = "SEC5a3ecf88f2b3eb50db30ecfc00f53033ac909c99bf7f88fd612bda89d7f3a9dc"
    robot = dingtalk_robot("tok123", secret).start()
    try:
        url = robot.url + "/robot/send?access_token=tok123"
        assert channels["dingtalk"].send(message("dingtalk", url, secret)).outcome == DELIVERED
        bad = channels["dingtalk"].send(message("dingtalk", url, "SECnot-the-robots-secret"))
        unsigned = channels["dingtalk"].send(message("dingtalk", url, None))
    finally:
        robot.stop()
    assert bad.outcome == FAILED and "310000" in bad.error and "SEC" not in bad.error and "tok123" not in bad.error
    assert unsigned.outcome == FAILED
    req = robot.seen[0]  # robots answer 200 with an errcode: the first request was the signed one
    md = req.json()["markdown"]
    assert req.json()["msgtype"] == "markdown" and md["title"].startswith("[Skylane] 闯入禁飞区：INC-NF1")
    assert md["text"].startswith("### [Skylane]") and EVENT["id"] in md["text"]
    # the documented example: sign = urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\n{secret}")))
    assert unquote_plus(sign(secret, 1577262236757)) == dingtalk_sign(secret, "1577262236757")
    assert signed_url("https://oapi.dingtalk.com/robot/send?access_token=t", "S", 5) == \
        f"https://oapi.dingtalk.com/robot/send?access_token=t&timestamp=5&sign={sign('S', 5)}"


def test_email_goes_over_smtp_with_a_message_id_from_the_event():
    sink = MailSink().start()
    try:
        mail = MailChannel(SmtpConfig("127.0.0.1", sink.port, sender="alerts@skylane.test"), timeout_s=5)
        assert mail.send(message("email", "duty@minhang.test, ops@minhang.test", lang="en")).outcome == DELIVERED
    finally:
        sink.stop()
    (got,) = sink.messages
    assert got["Message-ID"] == message_id(EVENT["id"]) == f"<{EVENT['id']}@alerts.skylane>"
    assert got["X-Skylane-Event-Id"] == EVENT["id"] and got["To"] == "duty@minhang.test, ops@minhang.test"
    assert got["Subject"].startswith("[Skylane] No-fly zone violation: INC-NF1 in Huangpu river bridge")
    assert "Position: 31.04700, 121.48736, 54 m AMSL" in got.get_payload()


def test_email_without_a_server_waits_and_a_down_server_is_retried():
    assert MailChannel(SmtpConfig(None)).send(message("email", "a@b.cn")).outcome == RETRY
    down = MailChannel(SmtpConfig("127.0.0.1", HttpReceiver().port), timeout_s=2).send(message("email", "a@b.cn"))
    assert down.outcome == RETRY and "unreachable" in down.error


@pytest.mark.parametrize("status,outcome", [(200, DELIVERED), (204, DELIVERED), (400, FAILED), (404, FAILED),
                                            (410, FAILED), (429, RETRY), (500, RETRY), (503, RETRY), (302, FAILED)])
def test_receiver_answers_are_classified(channels, status, outcome):
    rx = HttpReceiver(lambda req: (status, b'{"why": "because"}', {"Retry-After": "7", "Location": "/x"})).start()
    try:
        result = channels["webhook"].send(message("webhook", rx.url + "/h?token=SECRETTOKEN", SECRET))
    finally:
        rx.stop()
    assert result.outcome == outcome
    if outcome != DELIVERED:
        assert str(status) in result.error and "SECRETTOKEN" not in result.error
    if status in (429, 503):
        assert result.retry_after_s == 7


def test_bad_targets_fail_with_the_reason_and_dead_receivers_are_retried(channels):
    for target in ("ftp://example.org/x", "not a url", "http:///nohost"):
        result = channels["webhook"].send(message("webhook", target, SECRET))
        assert result.outcome == FAILED and "bad target URL" in result.error
    result = channels["webhook"].send(message("webhook", f"http://127.0.0.1:{HttpReceiver().port}/x", SECRET))
    assert result.outcome == RETRY and "unreachable" in result.error
    assert http_error(418, "", None).outcome == FAILED


def test_subscription_targets_are_checked_per_channel():
    check_subscription("webhook", "https://ops.example.org/skylane", None)
    check_subscription("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc", None)
    check_subscription("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=abc", "SECxyz")
    check_subscription("email", "duty@example.org,ops@example.org", None)
    for channel, target, secret in (("webhook", "gopher://x", None), ("webhook", "https://x.org", "short"),
                                    ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", None),
                                    ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=a", "SEC"),
                                    ("dingtalk", "https://oapi.dingtalk.com/robot/send", None),
                                    ("email", "not-an-address", None), ("sms", "123", None)):
        with pytest.raises(ValueError):
            check_subscription(channel, target, secret)


def test_targets_are_shown_without_their_keys():
    assert redact_target("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6") == \
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    assert redact_target("webhook", "https://user:pw@ops.example.org:8443/h?a=1&b=2") == \
        "https://ops.example.org:8443/h?a=***&b=***"
    assert redact_target("email", "duty@example.org") == "duty@example.org"


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    cfg = WorkerConfig(retry_base_s=2, retry_cap_s=60)
    assert [backoff_s(n, cfg, lambda: 1.0) for n in (1, 2, 3, 4, 5, 6, 7, 50)] == [2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff_s(3, cfg, lambda: 0.0) == 4
    rng = random.Random(1)
    assert len({round(backoff_s(4, cfg, rng.random), 3) for _ in range(20)}) > 10  # spread: no thundering herd


def test_the_minute_window_keeps_a_robots_rate():
    w = MinuteWindow(20)
    assert all(w.take(100.0 + i * 0.1) for i in range(20))
    assert not w.take(103.0) and 56 < w.wait_s(103.0) <= 58
    assert w.take(160.05) and not w.take(160.06)


def test_a_digest_lists_every_event_and_its_text_stays_short():
    msg = message("webhook", "http://x", SECRET, n=45, lang="en")
    body = render.webhook_body(msg)
    assert body["type"] == "digest" and body["count"] == 45 and len({e["id"] for e in body["events"]}) == 45
    text = render.plain_text(msg)
    assert text.startswith("45 alerts in 2026-03-10 10:00:36") and "... and 25 more" in text
    assert orjson.loads(orjson.dumps(body))["title"] == "[Skylane] 45 alerts for duty officers"
    zh = message("webhook", "http://x", SECRET, n=45)
    assert render.title(zh) == "[Skylane] duty officers：45 条告警"
    text = render.plain_text(zh)
    assert text.startswith("告警密集：2026-03-10 10:00:36 至 10:00:36（北京时间）共 45 条告警")
    assert "按类型：闯入禁飞区 45 条" in text and "……另有 25 条" in text and "alerts" not in text


def _mail(sink: MailSink) -> email.message.EmailMessage:
    (got,) = sink.messages
    return email.message_from_bytes(got.as_bytes(), policy=email.policy.default)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_channel_writes_in_the_subscriptions_language(channels, lang):
    """The same event to a webhook, both robots and email: each says it in the subscription's language, with
    the catalogue's kind label, the zone's Chinese name in Chinese and the time in Asia/Shanghai."""
    title = {"zh-CN": f"[Skylane] 闯入禁飞区：INC-NF1，{ZONE_ZH}（R-BR-MP）",
             "en": "[Skylane] No-fly zone violation: INC-NF1 in Huangpu river bridge exclusion (south) (R-BR-MP)"}[lang]
    lines = {"zh-CN": ["事件：闯入禁飞区（no_fly_violation）", "无人机：INC-NF1", "位置：31.04700, 121.48736，海拔 54 米",
                       "时间：2026-03-10 10:00:36（北京时间），UTC 2026-03-10 02:00:36", "订阅：duty officers"],
             "en": ["Event: No-fly zone violation (no_fly_violation)", "Drone: INC-NF1",
                    "Time: 2026-03-10 10:00:36 (Asia/Shanghai), 2026-03-10 02:00:36 UTC", "Subscription: duty officers"]}[lang]
    hook, wecom, ding, sink = webhook_receiver(SECRET).start(), wecom_robot("k1").start(), \
        dingtalk_robot("t1", "SECsigning-secret").start(), MailSink().start()
    try:
        mail = MailChannel(SmtpConfig("127.0.0.1", sink.port), timeout_s=5)
        for channel, sender, target, secret in (
                ("webhook", channels["webhook"], hook.url + "/h", SECRET),
                ("wecom", channels["wecom"], wecom.url + "/cgi-bin/webhook/send?key=k1", None),
                ("dingtalk", channels["dingtalk"], ding.url + "/robot/send?access_token=t1", "SECsigning-secret"),
                ("email", mail, "duty@minhang.test", None)):
            assert sender.send(message(channel, target, secret, lang=lang)).outcome == DELIVERED, channel
    finally:
        for rx in (hook, wecom, ding, sink):
            rx.stop()
    body = hook.accepted[0].json()
    md_wecom = wecom.accepted[0].json()["markdown"]["content"]
    md_ding = ding.accepted[0].json()["markdown"]
    mail = _mail(sink)
    texts = {"webhook": body["text"], "wecom": md_wecom, "dingtalk": md_ding["text"], "email": mail.get_content()}
    assert body["title"] == md_ding["title"] == mail["Subject"] == title
    assert md_wecom.startswith(f"### {title}\n") and md_ding["text"].startswith(f"### {title}\n")
    assert body["language"] == lang
    for channel, text in texts.items():
        for line in lines:
            assert line in text, (channel, line, text)
        assert bool(CJK.search(text.replace("duty officers", ""))) == (lang == "zh-CN"), (channel, text)
        if lang == "zh-CN":  # no English catalogue text in a Chinese message
            assert not re.search(r"\b(Event|Drone|Zone|Time|Position|Subscription|No-fly)\b", text), (channel, text)


def test_a_sensor_alert_says_the_metric_in_the_subscriptions_language():
    ev = {"id": "5d0c7f2e-0000-4000-8000-000000000001", "ts": "2026-03-10T02:00:36.000Z", "kind": "sensor_threshold",
          "sensor_id": "W-C1", "rule_id": "C1-wind", "metric": "wind_gust", "value": 13.6,
          "detail": {"op": "above", "limit": 12.0, "clear": 10.0}}
    sensor = Alert(ev["id"], "sensor", "sensor_threshold", datetime(2026, 3, 10, 2, 0, 36, tzinfo=timezone.utc), ev)
    sub = Subscription("s", "desk", "email", "duty@minhang.test", None, "zh-CN")
    text = render.plain_text(Message(ev["id"], sub, (sensor,)))
    assert text.splitlines()[:3] == ["W-C1：阵风 为 13.6，高于 12", "事件：传感器超限（sensor_threshold）", "传感器：W-C1"]
    assert "数值：阵风 = 13.6" in text
    en = render.plain_text(Message(ev["id"], Subscription("s", "desk", "email", "d@x.cn", None, "en"), (sensor,)))
    assert "Sensor: W-C1" in en and "Value: wind gust = 13.6" in en
