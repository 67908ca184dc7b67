"""The dashboard in Chromium (Playwright) in both languages and the operator's flight planning:

- a browser whose language is zh-CN gets the whole dashboard in Chinese (screenshot; no visible text is an English
  catalogue value), the switch turns it English and the choice is remembered across a reload;
- an operator uploads a DJI KMZ whose waypoints cross a restricted zone, sees the denial's reasons drawn on the map
  (the piece of route, entry and exit, the zone outlined) and applies the suggested departure with one click: the
  resubmitted route is approved and its 4D volume drawn.
"""
from __future__ import annotations

import json
import re
import shutil

import psycopg
import pytest

from skylane.settings import REPO_ROOT

from .helpers import ARTIFACTS
from .route_support import market_kmz, market_open
from .test_dashboard_browser import CHROMIUM, browser, keys, open_signed_in  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]
STATIC = REPO_ROOT / "api" / "static" / "i18n"


def sign_in(browser, url: str, key: str, role: str, locale: str):  # noqa: F811
    return open_signed_in(browser, url, key, role, locale=locale, size=(1500, 950))


def english_left(page) -> list[str]:
    """English catalogue texts (those that differ in Chinese) visible on the page."""
    en = json.loads((STATIC / "en.json").read_text())
    zh = json.loads((STATIC / "zh-CN.json").read_text())
    visible = page.evaluate("document.body.innerText")
    found = []
    for key, text in en.items():
        if text == zh[key] or not re.search(r"[A-Za-z]{3}", text):
            continue
        plain = re.sub(r"\{\w+\}", "\x00", text)
        for part in plain.split("\x00"):
            part = part.strip(" .·:()")
            if len(part) >= 4 and re.search(r"[A-Za-z]{3}", part) and re.search(rf"(?<![A-Za-z]){re.escape(part)}(?![A-Za-z])", visible, re.IGNORECASE):
                found.append(f"{key}: {part!r}")
    return found


def test_a_chinese_browser_gets_the_dashboard_in_chinese_and_the_switch_is_remembered(system, api, keys, browser):  # noqa: F811
    page = sign_in(browser, api.url, keys["operator"], "operator", "zh-CN")
    page.wait_for_selector("#map path.zone", timeout=15000)
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("#conn").inner_text() == "实时"
    assert page.locator("h2[data-i18n='alerts.title']").text_content() == "告警与事件"
    assert page.locator("#plan-panel").is_visible() and page.locator("#plan-submit").inner_text() == "申请飞行许可"
    assert "北京时间" in page.locator("#topbar").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-zh-CN.png"), full_page=True)
    assert english_left(page) == []
    page.click("#lang-switch button[data-lang='en']")
    page.wait_for_selector("#conn[data-state='live']", timeout=15000)
    page.wait_for_function("document.documentElement.lang === 'en'", timeout=10000)
    assert page.locator("h2[data-i18n='alerts.title']").text_content() == "Alerts & events"
    assert page.evaluate("localStorage.getItem('skylane.lang')") == "en"
    page.reload()  # remembered, although the browser says zh-CN
    page.wait_for_selector("#conn[data-state='live']", timeout=15000)
    assert page.locator("#plan-submit").inner_text() == "Request clearance"
    page.screenshot(path=str(ARTIFACTS / "dashboard-en.png"))
    page.click("#lang-switch button[data-lang='zh-CN']")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'", timeout=10000)
    assert page.evaluate("localStorage.getItem('skylane.lang')") == "zh-CN"
    assert not page.errors, page.errors


@pytest.fixture
def own_drone(system):
    with psycopg.connect(system.database_url) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, owner) VALUES ('PLAN-1', 'uav', 'acme')")
    return "PLAN-1"


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_operator_uploads_a_kmz_sees_the_denial_on_the_map_and_applies_the_suggestion(system, api, keys, browser,  # noqa: F811
                                                                                   own_drone, tmp_path, locale):
    kmz = tmp_path / "market.kmz"
    kmz.write_bytes(market_kmz())
    page = sign_in(browser, api.url, keys["operator"], "operator", locale)
    page.wait_for_selector("#map path.zone[data-zone-id='R-WJ-MKT']", timeout=15000)
    page.fill("#plan-uav", own_drone)
    page.set_input_files("#plan-file", str(kmz))
    page.fill("#plan-departure", market_open().strftime("%Y-%m-%dT%H:%M"))  # Beijing time, the market in force
    page.click("#plan-submit")
    page.wait_for_selector("#plan-decision[data-decision='denied']", timeout=20000)
    reason = page.locator("#plan-reasons li[data-code='restricted_zone']").first
    assert reason.get_attribute("data-zone-id") == "R-WJ-MKT"
    text = reason.inner_text()
    assert ("禁飞区" in text and "北京时间" in text) if locale == "zh-CN" else ("restricted zone" in text and "UTC+8" in text)
    # drawn where it happens: the piece of route in the zone, its entry and exit, the zone outlined
    assert page.locator("#layer-plan polyline.plan-reason[data-code='restricted_zone']").count() >= 1
    assert page.locator("#layer-plan-marks g.plan-entry").count() >= 1
    assert page.locator("#layer-plan-marks g.plan-exit").count() >= 1
    assert "plan-hit" in page.locator("#map path.zone[data-zone-id='R-WJ-MKT']").get_attribute("class")
    page.screenshot(path=str(ARTIFACTS / f"dashboard-plan-denied-{locale}.png"))
    apply = page.locator("#plan-suggestions li[data-kind='departure'] button.plan-apply")
    assert apply.count() == 1
    apply.click()
    page.wait_for_selector("#plan-decision[data-decision='approved']", timeout=20000)
    assert page.locator("#layer-plan polyline.plan-volume").count() == 1
    assert page.locator("#layer-plan polyline.plan-reason").count() == 0
    assert page.locator("#layer-plan-marks g.plan-volume-label").count() == 1
    page.screenshot(path=str(ARTIFACTS / f"dashboard-plan-approved-{locale}.png"))
    assert not page.errors, page.errors


def test_operator_draws_a_route_on_the_map(system, api, keys, browser, own_drone):  # noqa: F811
    page = sign_in(browser, api.url, keys["operator"], "operator", "en-US")
    page.wait_for_selector("#map path.zone", timeout=15000)
    page.fill("#plan-uav", own_drone)
    page.fill("#plan-departure", market_open().replace(hour=16).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#plan-alt", "50")
    page.click("#plan-draw")
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for dx in (-40, 0, 40):
        page.mouse.click(cx + dx, cy)
    assert page.locator("#layer-plan-marks g.plan-wp").count() == 3
    page.click("#plan-submit")
    page.wait_for_selector("#plan-decision[data-decision]", timeout=20000)
    assert page.locator("#plan-decision").get_attribute("data-decision") in ("approved", "denied")
    assert page.locator("#layer-plan polyline.plan-route").count() == 1
    assert not page.errors, page.errors
