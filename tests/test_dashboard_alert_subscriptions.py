"""The dashboard's alert subscriptions (admins) and the replay panel's incident report button (engineers, admins),
in Chromium (Playwright), in English and Chinese, against the real API and PostgreSQL (api/static/alert-subscriptions.js):

- an admin creates a webhook subscription in the dialog: an invalid one is refused with the API's own words (in the
  page's language) and nothing is stored; a valid one is listed, exists in the REST API with the chosen filters and
  language, and the HMAC key Skylane made is shown once (it is the stored key; after a reload it is nowhere in the
  page); its deliveries are listed with their status and error; deleting it (two clicks) removes it everywhere;
- viewers, operators and engineers get neither the panel nor the dialog; engineers do get the report button;
- the report button opens the selected recording's report in a new tab (asked with the key and the page's
  language, not the browser's; its title is the one the API gives in that language) and says why when there is
  none (the API's words in the panel, the tab it opened closed).
"""
from __future__ import annotations

import json
import re
import shutil
import uuid

import httpx
import psycopg
import pytest

from airspace.events import EVENT_KINDS
from ingest.sensor_watch import SENSOR_EVENT_KINDS
from skylane.settings import REPO_ROOT

from .helpers import ARTIFACTS, ApiServer
from .replay_support import small_trace
from .test_dashboard_browser import CHROMIUM, browser, keys  # noqa: F401 - fixtures
from .test_dashboard_i18n_and_planning import english_left, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]
CJK = re.compile(r"[\u4e00-\u9fff]")
LOCALES = ["en-US", "zh-CN"]
RECEIVER = "https://receiver.example.org/skylane-hook"
CATALOGUE = {lang: json.loads((REPO_ROOT / "api" / "static" / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh-CN")}


@pytest.fixture
def recordings(tmp_path, zones_geojson, system):
    folder = tmp_path / "recordings"
    folder.mkdir()
    small_trace(folder / "small.slrec.gz", zones_geojson, drones=2, sensors=1, seconds=30, root=system.mqtt_root)
    shutil.copy(folder / "small.slrec.gz", folder / "vanishing.slrec.gz")
    return folder


@pytest.fixture
def server(system, recordings):
    api = ApiServer(system.with_(recordings_dir=recordings))
    yield api
    api.app.state.replays.stop_all()
    api.close()


def _rest(api, key: str, lang: str = "en") -> httpx.Client:
    return httpx.Client(base_url=api.url, timeout=60,
                        headers={"Authorization": f"Bearer {key}", "Accept-Language": lang})


def _subscriptions(api, key: str) -> list[dict]:
    r = _rest(api, key).get("/v1/alerts/subscriptions")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _add_deliveries(database_url: str, sub_id: str) -> None:
    """Three outbox rows of the subscription, as ingest and the worker leave them: delivered, failed, pending."""
    with psycopg.connect(database_url) as conn:
        for kind, status, error in (("no_fly_violation", "delivered", None),
                                    ("altitude_violation", "failed", "HTTP 404 from the receiver: refused"),
                                    ("no_fly_violation", "pending", "HTTP 503 from the receiver: retried")):
            conn.execute(
                "INSERT INTO alert_outbox (subscription_id, event_id, event_ts, source, kind, attempts, next_attempt, "
                "delivered_at, failed_at, last_error) VALUES (%s, %s, now() - interval '1 minute', 'airspace', %s, %s, "
                "now() + interval '30 seconds', CASE WHEN %s THEN now() END, CASE WHEN %s THEN now() END, %s)",
                (sub_id, uuid.uuid4(), kind, 1 if status == "delivered" else 3, status == "delivered",
                 status == "failed", error))


@pytest.mark.parametrize("locale", LOCALES)
def test_admin_creates_lists_and_deletes_a_webhook_subscription(system, server, keys, browser, locale):  # noqa: F811
    zh = locale == "zh-CN"
    lang = "zh-CN" if zh else "en"
    admin = keys["admin"]
    page = sign_in(browser, server.url, admin, "admin", locale)
    page.wait_for_selector("#subs-panel:not([hidden])", timeout=10000)
    page.wait_for_function("document.querySelector('#subs-summary').textContent.includes('0')", timeout=10000)
    assert page.locator("#subs-panel h2").text_content() == ("告警订阅" if zh else "Alert subscriptions")
    page.click("#subs-open")
    page.wait_for_selector("#subs-dialog:not([hidden])", timeout=5000)
    page.wait_for_selector("#subs-empty:not([hidden])", timeout=10000)
    # every kind the API takes can be ticked, by its label in the page's language
    kinds = page.eval_on_selector_all("#subs-kinds input[name=kind]", "els => els.map(e => e.value)")
    assert sorted(kinds) == sorted(set(EVENT_KINDS) | set(SENSOR_EVENT_KINDS))
    no_fly = CATALOGUE[lang]["kind.no_fly_violation"]
    assert page.locator("#subs-kinds label[title='no_fly_violation']").inner_text() == no_fly
    options = page.eval_on_selector_all("#subs-channel option", "els => els.map(e => [e.value, e.textContent])")
    assert [v for v, _ in options] == ["webhook", "wecom", "dingtalk", "email"]
    if zh:
        assert dict(options)["wecom"] == "企业微信机器人" and dict(options)["dingtalk"] == "钉钉机器人"
        assert dict(options)["email"] == "电子邮件"
    # the secret field is there for webhooks and DingTalk only
    page.select_option("#subs-channel", "wecom")
    assert page.locator("#subs-secret-input").is_hidden()
    assert "key=" in page.get_attribute("#subs-target", "placeholder")
    page.select_option("#subs-channel", "webhook")
    assert page.locator("#subs-secret-input").is_visible()

    # refused by the API (a webhook key under 16 characters): its words in the page's language, nothing stored
    page.fill("#subs-name", "SIEM " + lang)
    page.fill("#subs-target", RECEIVER)
    page.fill("#subs-secret-input", "short")
    page.click("#subs-submit")
    page.wait_for_selector("#subs-error:not([hidden])", timeout=10000)
    said = _rest(server, admin, lang).post("/v1/alerts/subscriptions", json={
        "name": "x", "channel": "webhook", "target": RECEIVER, "secret": "short"})
    assert said.status_code == 422 and isinstance(said.json()["detail"], str)
    error = page.locator("#subs-error").inner_text()
    assert said.json()["detail"] in error, (error, said.json())
    assert bool(CJK.search(error)) == zh
    assert _subscriptions(server, admin) == []

    # created: Skylane makes the key and shows it once
    page.fill("#subs-secret-input", "")
    page.check("#subs-kinds input[value='no_fly_violation']")
    page.check("#subs-kinds input[value='altitude_violation']")
    page.fill("#subs-zones", "R-BR-MP, C1")
    page.fill("#subs-owners", "Skylane demo fleet")
    other = "en" if zh else "zh-CN"  # the messages' language need not be the page's
    page.select_option("#subs-language", other)
    page.click("#subs-submit")
    page.wait_for_selector("#subs-secret:not([hidden])", timeout=10000)
    assert page.locator("#subs-error").is_hidden()
    page.wait_for_selector("#subs-list li.sub[data-channel='webhook']", timeout=10000)
    secret = page.locator("#subs-secret-value").inner_text().strip()
    assert len(secret) >= 32
    note = page.locator("#subs-secret").inner_text()
    assert ("仅显示这一次" in note) if zh else ("shown only this once" in note)
    [sub] = _subscriptions(server, admin)
    assert (sub["name"], sub["channel"], sub["target"], sub["language"]) == ("SIEM " + lang, "webhook", RECEIVER, other)
    assert sorted(sub["kinds"]) == ["altitude_violation", "no_fly_violation"]
    assert sub["zone_ids"] == ["R-BR-MP", "C1"] and sub["owners"] == ["Skylane demo fleet"] and sub["uav_ids"] == []
    assert sub["has_secret"] and sub.get("secret") is None and sub["enabled"]
    with psycopg.connect(system.database_url) as conn:  # what is shown is the key the webhook will be signed with
        assert conn.execute("SELECT secret FROM alert_subscriptions WHERE id = %s", (sub["id"],)).fetchone()[0] == secret
    row = page.locator(f"#subs-list li.sub[data-sub-id='{sub['id']}']")
    assert row.locator(".sub-name").inner_text() == "SIEM " + lang
    assert row.locator(".sub-target").inner_text() == RECEIVER
    filters = row.locator(".sub-filter").inner_text()
    assert ("R-BR-MP、C1" if zh else "R-BR-MP, C1") in filters and "Skylane demo fleet" in filters
    assert no_fly in filters
    assert "1" in page.locator("#subs-summary").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-alert-subscriptions-{locale}.png"))
    page.click("#subs-secret-done")
    assert page.locator("#subs-secret").is_hidden() and secret not in page.content()
    if zh:
        assert english_left(page) == []

    # its deliveries, with their status and error
    _add_deliveries(system.database_url, sub["id"])
    page.click("#subs-del-refresh")
    page.wait_for_function("document.querySelectorAll('#subs-deliveries tr.delivery').length === 3", timeout=10000)
    statuses = page.eval_on_selector_all("#subs-deliveries tr.delivery", "els => els.map(e => e.dataset.status)")
    assert sorted(statuses) == ["delivered", "failed", "pending"]
    failed = page.locator("#subs-deliveries tr.delivery[data-status='failed']")
    assert "HTTP 404 from the receiver" in failed.inner_text()
    assert failed.locator(".d-status").inner_text() == ("失败" if zh else "failed")
    assert page.locator(f"#subs-list li.sub[data-sub-id='{sub['id']}'] .sub-counts").get_attribute("data-failed") == "1"
    page.locator("#subs-deliveries").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"dashboard-alert-deliveries-{locale}.png"))
    page.select_option("#subs-del-status", "failed")
    page.wait_for_function("document.querySelectorAll('#subs-deliveries tr.delivery').length === 1", timeout=10000)
    page.select_option("#subs-del-status", "")

    # after a reload the key is nowhere in the page; the list still says the subscription signs
    page.reload()
    page.wait_for_selector("#whoami[data-role='admin']", timeout=15000)
    page.click("#subs-open")
    page.wait_for_selector(f"#subs-list li.sub[data-sub-id='{sub['id']}'] .sub-flag", timeout=10000)
    assert page.locator("#subs-secret").is_hidden() and secret not in page.content()

    # deleted: the first click asks, the second deletes
    delete = page.locator(f"#subs-list li.sub[data-sub-id='{sub['id']}'] button.sub-delete")
    delete.click()
    assert "armed" in delete.get_attribute("class").split() and _subscriptions(server, admin) != []
    delete.click()
    page.wait_for_selector(f"#subs-list li.sub[data-sub-id='{sub['id']}']", state="detached", timeout=10000)
    page.wait_for_selector("#subs-empty:not([hidden])", timeout=5000)
    assert _subscriptions(server, admin) == []
    # its deliveries stay as history; the pending one failed with the deletion
    page.wait_for_function("document.querySelectorAll(\"#subs-deliveries tr.delivery[data-status='failed']\").length === 2",
                           timeout=10000)
    page.click("#subs-close")
    assert page.locator("#subs-dialog").is_hidden()
    assert not page.errors, page.errors


def test_only_admins_get_the_subscriptions_and_engineers_get_the_report_button(system, server, keys, browser):  # noqa: F811
    for role in ("viewer", "operator", "engineer"):
        page = sign_in(browser, server.url, keys[role], role, "en-US")
        page.wait_for_timeout(500)  # the page has started its panels
        assert page.locator("#subs-panel").is_hidden() and page.locator("#subs-dialog").is_hidden()
        assert page.locator("#subs-open").is_hidden()
        assert page.locator("#replay-report").is_visible() == (role == "engineer")
        assert not page.errors, page.errors
        page.context.close()
    assert _rest(server, keys["operator"]).get("/v1/alerts/subscriptions").status_code == 403  # nor the API
    page = sign_in(browser, server.url, keys["admin"], "admin", "en-US")
    page.wait_for_selector("#subs-panel:not([hidden])", timeout=10000)
    assert page.locator("#replay-report").is_visible()


@pytest.mark.parametrize("locale", LOCALES)
def test_the_report_button_opens_the_recordings_report(system, server, recordings, keys, browser, locale):  # noqa: F811
    zh = locale == "zh-CN"
    lang = "zh-CN" if zh else "en"
    engineer = keys["engineer"]
    # the browser says the other language: the page's own (the switch) is the one asked for
    page = sign_in(browser, server.url, engineer, "engineer", "en-US" if zh else "zh-CN")
    page.click(f"#lang-switch button[data-lang='{lang}']")
    page.wait_for_function(f"document.documentElement.lang === '{lang}'", timeout=15000)
    page.wait_for_selector("#conn[data-state='live']", timeout=15000)
    page.wait_for_selector("#replay-recording option[value='small.slrec.gz']", state="attached", timeout=10000)
    asked = []
    page.on("request", lambda req: asked.append(req) if "/report" in req.url else None)
    page.select_option("#replay-recording", "small.slrec.gz")
    with page.context.expect_page(timeout=15000) as opened:
        page.click("#replay-report")
    report = opened.value
    report.wait_for_url(re.compile(r"^blob:"), timeout=60000)
    report.wait_for_selector("h1", timeout=15000)
    expected = _rest(server, engineer, lang).get("/v1/recordings/small.slrec.gz/report")
    assert expected.status_code == 200
    title = re.search(r"<title>(.*?)</title>", expected.text).group(1)
    assert report.title() == title and report.locator("h1").inner_text() == title
    assert "small.slrec.gz" in title and bool(CJK.search(title)) == zh
    [req] = asked
    headers = req.all_headers()
    assert headers["accept-language"] == lang and headers["authorization"] == f"Bearer {engineer}"
    status = page.locator("#replay-report-status")
    status.locator("a.report-download").wait_for(timeout=10000)
    assert status.locator("a.report-download").get_attribute("download") == "small.report.html"
    assert ("新标签页" in status.inner_text()) if zh else ("new tab" in status.inner_text())
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-report-button-{locale}.png"))
    report.close()

    # a recording gone since the list was read: the API's reason in the panel, the tab it opened closed again
    (recordings / "vanishing.slrec.gz").unlink()
    page.select_option("#replay-recording", "vanishing.slrec.gz")
    with page.context.expect_page(timeout=15000) as opened:
        page.click("#replay-report")
    page.wait_for_selector("#replay-report-status.error", timeout=30000)
    for _ in range(50):  # (the sync API hears of the close while it waits in the browser)
        if opened.value.is_closed():
            break
        page.wait_for_timeout(100)
    assert opened.value.is_closed(), "the tab opened for the report was not closed"
    said = _rest(server, engineer, lang).get("/v1/recordings/vanishing.slrec.gz/report")
    assert said.status_code == 404
    assert said.json()["detail"] in status.inner_text()
    assert len(page.context.pages) == 1
    assert not page.errors, page.errors
