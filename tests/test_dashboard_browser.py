"""The dashboard in Debian's Chromium (Playwright): sign-in per role, zones drawn and coloured by state, drones
moving, a violation in the alert panel and on the map, acknowledgement, the sensor chart, the replay control."""
from __future__ import annotations

import os
import shutil

import httpx
import orjson
import psycopg
import pytest

from devices.fleet import make_fleet
from protocol.mqttclient import close_client, connect_client
from devices.simulator import Simulator
from protocol import topics
from storage.auth import create_key

from .helpers import ARTIFACTS, Running

CHROMIUM = os.environ.get("SKYLANE_CHROMIUM", "/usr/bin/chromium")
ROLES = ("viewer", "operator", "engineer", "admin")
pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def keys(system) -> dict[str, str]:
    with psycopg.connect(system.database_url) as conn:
        return {role: create_key(conn, role, "acme" if role == "operator" else None, "dashboard-test").key
                for role in ROLES}


@pytest.fixture
def fleet(system, zones_geojson):
    drones, sensors = make_fleet(zones_geojson, 4, 3, seed=3, rate_scale=10)
    sim = Running(lambda stop: Simulator(system.mqtt_url, system.mqtt_root, drones, sensors, hz=2).run(stop))
    yield drones, sensors
    sim.close()


def open_signed_in(browser, url: str, key: str, role: str, locale: str | None = None, size=(1400, 900)):
    """A fresh tab (own sessionStorage) signed in with `key`, the browser's language `locale` if given; page
    errors are collected on `page.errors`."""
    context = {"viewport": {"width": size[0], "height": size[1]}, **({"locale": locale} if locale else {})}
    page = browser.new_context(**context).new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(url + "/")
    page.wait_for_selector("#login:not([hidden])", timeout=15000)
    page.fill("#login-key", key)
    page.click("#login-submit")
    page.wait_for_selector(f"#whoami[data-role='{role}']", timeout=15000)
    page.wait_for_selector("#conn[data-state='live']", timeout=15000)
    return page


def publish_violation(system, uav_id: str = "T1") -> None:
    pub = connect_client(system.mqtt_url, f"test-dashboard-pub-{uav_id}")
    pub.publish(topics.telemetry(system.mqtt_root, uav_id),
                orjson.dumps({"lat": 31.044, "lon": 121.4885, "alt_m": 50}), qos=1).wait_for_publish(5)
    close_client(pub)


def test_sign_in_per_role(system, api, keys, browser):
    page = browser.new_context().new_page()
    page.goto(api.url + "/")
    page.wait_for_selector("#login:not([hidden])", timeout=15000)
    page.fill("#login-key", "sky_000000000000_" + "x" * 43)
    page.click("#login-submit")
    page.wait_for_selector("#login-error:text('not accepted')", timeout=10000)
    assert page.evaluate("sessionStorage.getItem('skylane.apiKey')") is None
    for role in ROLES:
        page = open_signed_in(browser, api.url, keys[role], role)
        assert page.evaluate("sessionStorage.getItem('skylane.apiKey')") == keys[role]
        assert page.locator("#replay-panel").is_visible() == (role in ("engineer", "admin"))
        if role in ("engineer", "admin"):  # the recordings list loaded (an empty directory is fine)
            page.wait_for_selector("#replay-summary:text('recording')", timeout=10000)
        page.reload()  # the key survives a reload of the tab
        page.wait_for_selector(f"#whoami[data-role='{role}']", timeout=15000)
        assert page.locator("#login").is_hidden()
        if role == "viewer":
            page.click("#logout")
            page.wait_for_selector("#login:not([hidden])", timeout=10000)
            assert page.evaluate("sessionStorage.getItem('skylane.apiKey')") is None
        assert not page.errors, page.errors


def test_dashboard_shows_zones_moving_drones_and_a_violation(system, ingester, api, zones_geojson, keys, fleet,
                                                             browser):
    page = open_signed_in(browser, api.url, keys["viewer"], "viewer")
    assert page.locator("#map path.zone").count() == len(zones_geojson["features"])
    restricted = sum(f["properties"].get("kind") == "restricted" for f in zones_geojson["features"])
    assert restricted and page.locator("#map path.zone-restricted").count() == restricted
    assert page.locator("#map path.zone[data-state]").count() == len(zones_geojson["features"])
    page.wait_for_function("document.querySelectorAll('#map g.uav').length >= 4", timeout=15000)
    uav = page.locator("#map g.uav").first
    uav_id = uav.get_attribute("data-uav-id")
    before = (uav.get_attribute("data-lon"), uav.get_attribute("data-lat"))
    page.wait_for_function(
        "([id, lon, lat]) => { const g = document.querySelector(`#map g.uav[data-uav-id='${id}']`);"
        " return g && (g.dataset.lon !== lon || g.dataset.lat !== lat); }",
        arg=[uav_id, *before], timeout=15000)

    publish_violation(system)
    page.wait_for_selector("#alerts li.alert-no_fly_violation[data-uav-id='T1']", timeout=15000)
    page.wait_for_selector("#map g.uav.alert[data-uav-id='T1']", timeout=15000)
    page.wait_for_selector("#map path.zone.violated[data-zone-id='R-BR-MP']", timeout=5000)
    assert "no_fly_violation" in page.locator("#map g.uav[data-uav-id='T1']").get_attribute("data-alerts")
    assert page.locator("#alerts li.alert-no_fly_violation[data-uav-id='T1'] button.ack-btn").count() == 0  # viewer
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
    assert not page.errors, page.errors


def test_engineer_acknowledges_a_violation(system, ingester, api, keys, browser):
    page = open_signed_in(browser, api.url, keys["engineer"], "engineer")
    publish_violation(system, "T2")
    row = page.locator("#alerts li.alert-no_fly_violation[data-uav-id='T2']")
    row.locator("button.ack-btn").click(timeout=15000)
    page.wait_for_selector("#alerts li.alert-no_fly_violation[data-uav-id='T2'].acked", timeout=10000)
    event_id = row.get_attribute("data-event-id")
    r = httpx.get(f"{api.url}/v1/events/{event_id}", headers={"Authorization": f"Bearer {keys['viewer']}"})
    assert r.status_code == 200 and r.json()["ack"] is not None
    page.reload()  # from REST the alert comes back acknowledged
    page.wait_for_selector("#alerts li.alert-no_fly_violation[data-uav-id='T2'].acked", timeout=15000)
    page.screenshot(path=str(ARTIFACTS / "dashboard-ack.png"))
    assert not page.errors, page.errors


def test_zone_suspension_recolours_the_zone(system, api, keys, browser):
    page = open_signed_in(browser, api.url, keys["viewer"], "viewer")
    zone = page.locator("#map path.zone[data-zone-id='R-BR-MP']")
    assert zone.get_attribute("data-state") == "active"
    topic = f"{system.mqtt_root}/control/zone/R-BR-MP"
    pub = connect_client(system.mqtt_url, "test-dashboard-zone")
    try:
        pub.publish(topic, orjson.dumps({"state": "suspended", "reason": "test", "by": "test",
                                         "at": "2026-11-27T03:00:00Z"}), qos=1, retain=True).wait_for_publish(5)
        page.wait_for_selector("#map path.zone[data-zone-id='R-BR-MP'][data-state='suspended']", timeout=10000)
        assert "zone-state-suspended" in zone.get_attribute("class")
        pub.publish(topic, orjson.dumps({"state": "active", "reason": "", "by": "test",
                                         "at": "2026-11-27T03:01:00Z"}), qos=1, retain=True).wait_for_publish(5)
        page.wait_for_selector("#map path.zone[data-zone-id='R-BR-MP'][data-state='active']", timeout=10000)
    finally:
        pub.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        close_client(pub)
    assert not page.errors, page.errors


def test_sensor_panel_shows_latest_values_and_a_history_chart(system, ingester, api, keys, fleet, browser):
    page = open_signed_in(browser, api.url, keys["engineer"], "engineer")
    page.wait_for_selector("#sensors tr.sensor", timeout=20000)
    row = page.locator("#sensors tr.sensor").first
    sensor_id = row.get_attribute("data-sensor-id")
    row.click()
    page.wait_for_selector(f"#sd-id:text('{sensor_id}')", timeout=5000)
    page.wait_for_function("Number(document.querySelector('#sd-chart').dataset.points) >= 2", timeout=20000)
    assert page.locator("#sd-chart polyline.chart-line").count() == 1
    assert page.locator("#sd-metrics button.metric-tab").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "dashboard-sensor.png"))
    assert not page.errors, page.errors


@pytest.fixture
def owned_drones(system) -> None:
    """OWN-1 belongs to the operator key's owner (acme), OTHER-1 to someone else."""
    from storage import catalog
    with psycopg.connect(system.database_url) as conn:
        catalog.register_devices(conn, [
            dict(device_id=d, kind="uav", name=d, owner=o, sensor_kind=None, lon=None, lat=None, units={},
                 expected_interval_s=1.0) for d, o in (("OWN-1", "acme"), ("OTHER-1", "rival"))])


def test_operator_sees_only_own_drones(system, owned_drones, ingester, api, keys, browser):
    operator = open_signed_in(browser, api.url, keys["operator"], "operator")
    viewer = open_signed_in(browser, api.url, keys["viewer"], "viewer")
    pub = connect_client(system.mqtt_url, "test-dashboard-owned")
    for uav, lon in (("OWN-1", 121.47), ("OTHER-1", 121.52)):
        pub.publish(topics.telemetry(system.mqtt_root, uav),
                    orjson.dumps({"lat": 31.06, "lon": lon, "alt_m": 60}), qos=1).wait_for_publish(5)
    close_client(pub)
    viewer.wait_for_selector("#map g.uav[data-uav-id='OTHER-1']", timeout=15000)
    viewer.wait_for_selector("#map g.uav[data-uav-id='OWN-1']", timeout=15000)
    operator.wait_for_selector("#map g.uav[data-uav-id='OWN-1']", timeout=15000)
    operator.reload()  # the REST snapshot is filtered too
    operator.wait_for_selector("#map g.uav[data-uav-id='OWN-1']", timeout=15000)
    assert operator.locator("#map g.uav[data-uav-id='OTHER-1']").count() == 0
    operator.screenshot(path=str(ARTIFACTS / "dashboard-operator.png"))
    assert not operator.errors and not viewer.errors, operator.errors + viewer.errors
