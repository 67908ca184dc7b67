"""The dashboard (Chromium) on the new feeds: the replay control switches the map to the replay's feed and
back to live; a sensor threshold event shows in the alert panel as "<sensor> <metric> <value> > <limit>"."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from devices.fleet import make_fleet
from protocol.mqttclient import close_client, connect_client
from devices.registry import fleet_records
from protocol import topics
from skylane.wiring import register_devices

from .helpers import ApiServer, start_ingester
from .replay_support import small_trace
from .test_dashboard_browser import CHROMIUM, browser, keys, open_signed_in  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]
RULES = Path(__file__).resolve().parents[1] / "ingest" / "data" / "sensor_rules.json"


def test_replay_control_switches_the_map_to_the_replay_and_back(system, zones_geojson, keys, browser,  # noqa: F811
                                                                 tmp_path):
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    small_trace(rec_dir / "w.slrec.gz", zones_geojson, drones=5, sensors=0, seconds=120, root=system.mqtt_root)
    api = ApiServer(system.with_(recordings_dir=rec_dir))
    try:
        _watch_replay_then_live(api, system, keys, browser)
    finally:
        api.app.state.replays.stop_all()
        api.close()


def _watch_replay_then_live(api, system, keys, browser):  # noqa: F811
    page = open_signed_in(browser, api.url, keys["engineer"], "engineer")
    page.wait_for_selector("#replay-summary:text('1 recording')", timeout=10000)
    assert page.locator("#map g.uav").count() == 0  # nothing flies live
    page.fill("#replay-rate", "2")
    page.check("#replay-evaluate")
    page.click("#replay-start")
    page.wait_for_selector("#conn[data-state='replay']", timeout=15000)
    root = page.evaluate("document.body.getAttribute('data-feed-root')")
    assert root.startswith("replay/") and root.endswith("/" + system.mqtt_root)
    page.wait_for_selector("#map g.uav", timeout=20000)  # the replay's drones, from the replay root's feed
    page.wait_for_selector(f"#replay-jobs li[data-root='{root}'] button[data-action='live']", timeout=10000)
    page.click("#replay-live")
    page.wait_for_selector("#conn[data-state='live']", timeout=15000)
    page.wait_for_function("document.querySelectorAll('#map g.uav').length === 0", timeout=10000)
    assert page.evaluate("document.body.getAttribute('data-feed-root')") == ""
    page.click(f"#replay-jobs li[data-root='{root}'] button[data-action='watch']")  # and back to the replay
    page.wait_for_selector("#conn[data-state='replay']", timeout=15000)
    page.wait_for_selector("#map g.uav", timeout=20000)
    assert not page.errors, page.errors


def test_a_sensor_threshold_in_the_alert_panel(system, api, zones_geojson, keys, browser):  # noqa: F811
    _, sensors = make_fleet(zones_geojson, 0, 10, seed=17)
    register_devices(system, fleet_records([], [s for s in sensors if s.sensor_id == "W-C1"]))
    limit = next(r for r in json.loads(RULES.read_text())["rules"] if r["metric"] == "wind_gust")["above"]
    ing, runner = start_ingester(system)
    try:
        page = open_signed_in(browser, api.url, keys["viewer"], "viewer")
        pub = connect_client(system.mqtt_url, "test-clock-dash-wind")
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        pub.publish(topics.reading(system.mqtt_root, "W-C1"),
                    orjson.dumps({"ts": now, "values": {"wind_gust": limit + 2.2}}), qos=1).wait_for_publish(5)
        close_client(pub)
        row = page.wait_for_selector("#alerts li.alert-sensor_threshold[data-sensor-id='W-C1']", timeout=15000)
        text = row.inner_text()
        assert "W-C1" in text and f"wind gust {limit + 2.2:g} > {limit:g}" in text  # the metric's label in the page's language, text
        assert row.query_selector("button.ack-btn") is None
        assert not page.errors, page.errors
    finally:
        runner.close()
        cleaner = connect_client(system.mqtt_url, "test-clock-dash-clean")  # the retained corridor suspension
        cleaner.publish(topics.control_zone(system.mqtt_root, "C1"), b"", qos=1, retain=True).wait_for_publish(5)
        close_client(cleaner)
