"""The dashboard in Debian's Chromium (Playwright): zones drawn, drones moving, a violation in the alerts."""
from __future__ import annotations

import os
import shutil

import orjson
import pytest

from devices.fleet import make_fleet
from devices.mqttclient import close_client, connect_client
from devices.simulator import Simulator
from protocol import topics

from .conftest import ARTIFACTS, Running

CHROMIUM = os.environ.get("SKYLANE_CHROMIUM", "/usr/bin/chromium")
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


def test_dashboard_shows_zones_moving_drones_and_alerts(system, ingester, api, zones_geojson, browser):
    drones, sensors = make_fleet(zones_geojson, 4, 3, seed=3, rate_scale=10)
    sim = Running(lambda stop: Simulator(system.mqtt_url, system.mqtt_root, drones, sensors, hz=2).run(stop))
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(api.url + "/")
        page.wait_for_selector("#conn:text('live')", timeout=15000)
        assert page.locator("#map path.zone").count() == len(zones_geojson["features"])
        assert page.locator("#map path.zone-restricted").count() == 3
        page.wait_for_function("document.querySelectorAll('#map g.uav').length >= 4", timeout=15000)
        uav = page.locator("#map g.uav").first
        uav_id = uav.get_attribute("data-uav-id")
        before = (uav.get_attribute("data-lon"), uav.get_attribute("data-lat"))
        page.wait_for_function(
            "([id, lon, lat]) => { const g = document.querySelector(`#map g.uav[data-uav-id='${id}']`);"
            " return g && (g.dataset.lon !== lon || g.dataset.lat !== lat); }",
            arg=[uav_id, *before], timeout=15000)

        pub = connect_client(system.mqtt_url, "test-dashboard-pub")
        pub.publish(topics.telemetry(system.mqtt_root, "T1"),
                    orjson.dumps({"lat": 31.044, "lon": 121.4885, "alt_m": 50}), qos=1).wait_for_publish(5)
        close_client(pub)
        page.wait_for_selector("#alerts li.alert-no_fly_violation[data-uav-id='T1']", timeout=15000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
        assert not errors, errors
    finally:
        sim.close()
