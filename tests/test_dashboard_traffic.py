"""The air picture on the dashboard (Chromium, Playwright), in English and Chinese: traffic states and pair events
published on the broker as ingest would (retained `{root}/state/traffic/{track_id}`, `{root}/events/{kind}/{id}`).

- a helicopter from ADS-B is drawn with its own glyph, callsign and altitude in m and ft, and an ADS-B badge;
- a registered drone flying on its own telemetry is not drawn twice: its UAV symbol carries the fused track's
  badges (telemetry live, Remote ID lost: greyed);
- an unregistered Remote ID drone is marked;
- a separation_loss draws the line between both aircraft (at their symbols), a conflict_predicted a dashed one with
  the distance and time of closest approach; both list in the alert panel with the server's description, a click
  centres the map on the pair; each `_end` removes its line;
- the legend's toggle hides the traffic; a withdrawn retained state takes its aircraft off the map.
"""
from __future__ import annotations

import re
import shutil
import uuid
from datetime import datetime, timezone

import httpx
import orjson
import psycopg
import pytest

from protocol import topics
from protocol.mqttclient import close_client, connect_client

from .helpers import ARTIFACTS, wait_until
from .test_dashboard_browser import CHROMIUM, browser, keys  # noqa: F401 - fixtures
from .test_dashboard_i18n_and_planning import english_left, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed")]
CJK = re.compile(r"[\u4e00-\u9fff]")
HELI, DRONE, UNREG = "icao:7c1a2b", "uav:TRF-1", "rid:1596FUNREG"
AT = {HELI: (121.4800, 31.0600, 150.0), DRONE: (121.4835, 31.0585, 110.0), UNREG: (121.4870, 31.0590, 105.0)}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _source(age: float = 0.4, lost: bool = False) -> dict:
    return {"last_seen": _now(), "age_s": age, "lost": lost, "associated": "identity"}


def _state(track_id, at, ts, kind, uav_id, identity, sources, alerts, track_deg, speed) -> dict:
    """A traffic state as airspace.traffic publishes it."""
    lon, lat, alt = at
    return {"track_id": track_id, "ts": ts, "kind": kind, "uav_id": uav_id, "registered": uav_id is not None,
            "identity": identity, "sources": sources, "alerts": alerts, "lon": lon, "lat": lat, "alt_m": alt,
            "alt_ref": "AMSL", "speed_mps": speed, "track_deg": track_deg, "vspeed_mps": 0.0, "airborne": True,
            "position_source": next(iter(sources)), "position_ts": ts}


def _states(ts: str) -> dict[str, dict]:
    return {
        HELI: _state(HELI, AT[HELI], ts, "manned", None, {"callsign": "B7613", "icao24": "7c1a2b", "category": "A7",
                                                         "category_name": "rotorcraft"},
                     {"adsb": _source()}, ["separation_loss"], 90.0, 60.0),
        DRONE: _state(DRONE, AT[DRONE], ts, "drone", "TRF-1", {"serial": "1596F0001"},
                      {"telemetry": _source(), "rid": _source(7.5, lost=True)},
                      ["separation_loss", "conflict_predicted"], 270.0, 8.0),
        UNREG: _state(UNREG, AT[UNREG], ts, "drone", None, {"serial": "1596FUNREG"}, {"rid": _source()},
                      ["unregistered_aircraft", "conflict_predicted"], 250.0, 12.0),
    }


def _pair_events(kind: str, a: str, b: str, states: dict, ts: str, end: bool = False, **extra) -> list[dict]:
    """Both aircraft's events of one pair condition, as airspace.traffic raises them."""
    out = []
    for me, other in ((a, b), (b, a)):
        s, o = states[me], states[other]
        detail = {"track_id": me, "kind": s["kind"], "other": {
            "track_id": other, "kind": o["kind"], "uav_id": o["uav_id"], "registered": o["registered"],
            "callsign": o["identity"].get("callsign")},
            "pair": "drone-manned" if "manned" in (s["kind"], o["kind"]) else "drone-drone", **extra}
        if end:
            detail.update(reason="separated", since=ts, duration_s=4.0)
        else:
            detail["positions"] = {t: {"lon": states[t]["lon"], "lat": states[t]["lat"], "alt_amsl": states[t]["alt_m"]}
                                   for t in (a, b)}
        out.append({"id": str(uuid.uuid4()), "kind": kind + ("_end" if end else ""), "uav_id": s["uav_id"] or me,
                    "zone_id": other, "ts": ts, "detail": detail})
    return out


class Broker:
    def __init__(self, system):
        self.root = system.mqtt_root
        self.client = connect_client(system.mqtt_url, f"test-dashboard-traffic-{uuid.uuid4().hex[:6]}")
        self.retained: set[str] = set()

    def retain(self, topic: str, body: dict | None) -> None:
        self.client.publish(topic, orjson.dumps(body) if body is not None else b"", qos=1,
                            retain=True).wait_for_publish(5)
        self.retained.add(topic)

    def picture(self, states: dict) -> None:
        for track_id, state in states.items():
            self.retain(topics.traffic_state(self.root, track_id), state)
            if "telemetry" in state["sources"]:  # a registered drone's own telemetry, as the UAV layer draws it
                self.retain(topics.uav_state(self.root, state["uav_id"]), {
                    "uav_id": state["uav_id"], "ts": state["ts"], "lon": state["lon"], "lat": state["lat"],
                    "alt_m": state["alt_m"], "alt_ref": "AMSL", "speed_mps": state["speed_mps"],
                    "track_deg": state["track_deg"], "status": "Airborne", "alerts": [], "zones": []})

    def events(self, events: list[dict]) -> None:
        for e in events:
            self.client.publish(topics.event(self.root, e["kind"], e["uav_id"]), orjson.dumps(e),
                                qos=1).wait_for_publish(5)

    def close(self) -> None:
        for topic in self.retained:
            self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        close_client(self.client)


def _xy(page, selector: str) -> tuple[float, float]:
    m = re.match(r"translate\(([-\d.]+),([-\d.]+)\)", page.locator(selector).get_attribute("transform"))
    return float(m.group(1)), float(m.group(2))


def _near(p, q, tol: float = 2.0) -> bool:
    return abs(p[0] - q[0]) <= tol and abs(p[1] - q[1]) <= tol


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_air_picture_and_separation_alerts_on_the_map(system, api, keys, browser, locale):  # noqa: F811
    zh = locale == "zh-CN"
    broker = Broker(system)
    try:
        ts = _now()
        states = _states(ts)
        if zh:  # before the page opens: the picture comes from GET /v1/traffic and the feed's snapshot
            broker.picture(states)
            wait_until(lambda: len(httpx.get(f"{api.url}/v1/traffic", headers={
                "Authorization": f"Bearer {keys['viewer']}"}).json()["items"]) == 3, 10, "states not in the API")
        page = sign_in(browser, api.url, keys["viewer"], "viewer", locale)
        page.wait_for_selector("#map path.zone", timeout=15000)
        if not zh:  # after: over the live feed
            broker.picture(states)
        _check_tracks(page, zh)
        _check_separation(page, broker, states, ts, zh)
        _check_toggle_and_withdrawal(page, broker)
        if zh:
            assert english_left(page) == []
        assert not page.errors, page.errors
    finally:
        broker.close()


def _check_tracks(page, zh: bool) -> None:
    heli = f"#layer-traffic g.tr[data-track-id='{HELI}']"
    page.wait_for_selector(heli, timeout=15000)
    assert {"tr-manned", "tr-heli"} <= set(page.locator(heli).get_attribute("class").split())
    assert page.locator(f"{heli} .tr-glyph .rotor").count() == 1
    assert page.locator(f"{heli} text.tr-label").text_content() == "B7613"
    assert page.locator(f"{heli} text.tr-alt").text_content() == "150 m · 492 ft"
    badges = page.locator(f"{heli} .track-badges g.badge")
    assert badges.count() == 1 and badges.get_attribute("data-source") == "adsb"
    assert badges.locator("text").text_content() == "ADS-B" and "lost" not in badges.get_attribute("class")
    # the registered drone on its own telemetry: the UAV symbol, decorated; never a second symbol
    uav = "#layer-uavs g.uav[data-uav-id='TRF-1']"
    page.wait_for_selector(f"{uav} .track-badges g.badge[data-source='telemetry']", timeout=15000)
    tel = page.locator(f"{uav} .track-badges g.badge[data-source='telemetry']")
    rid = page.locator(f"{uav} .track-badges g.badge[data-source='rid']")
    assert tel.locator("text").text_content() == "T" and "lost" not in tel.get_attribute("class")
    assert rid.locator("text").text_content() == "RID" and "lost" in rid.get_attribute("class").split()
    assert page.locator(f"#layer-traffic g.tr[data-track-id='{DRONE}']").count() == 0
    # the unregistered Remote ID drone: the drone glyph of other sources, marked
    unreg = page.locator(f"#layer-traffic g.tr.tr-drone.unregistered[data-track-id='{UNREG}']")
    unreg.wait_for(timeout=10000)
    assert unreg.locator("text.tr-label").text_content() == ("1596FUNREG · 未登记" if zh else "1596FUNREG · unregistered")
    assert unreg.locator("g.badge[data-source='rid']").count() == 1
    title = unreg.locator("title").last.text_content()
    assert ("未登记无人机" in title) if zh else ("Unregistered drone" in title)


def _check_separation(page, broker: Broker, states: dict, ts: str, zh: bool) -> None:
    broker.events(_pair_events("separation_loss", DRONE, HELI, states, ts, horizontal_m=373.2, vertical_m=40.0,
                               min_horizontal_m=609.6, min_vertical_m=76.2))
    loss = "#layer-separation g.sep-pair.sep-loss[data-kind='separation_loss']"
    page.wait_for_selector(loss, timeout=15000)
    assert page.locator(loss).count() == 1  # two events (one per aircraft), one pair
    line = page.locator(f"{loss} line.sep-line")
    ends = [(float(line.get_attribute("x1")), float(line.get_attribute("y1"))),
            (float(line.get_attribute("x2")), float(line.get_attribute("y2")))]
    at = {page.locator(loss).get_attribute("data-a"): None, page.locator(loss).get_attribute("data-b"): None}
    assert set(at) == {DRONE, HELI}
    symbols = [_xy(page, "#layer-uavs g.uav[data-uav-id='TRF-1']"), _xy(page, f"#layer-traffic g.tr[data-track-id='{HELI}']")]
    assert all(any(_near(e, s) for e in ends) for s in symbols), (ends, symbols)  # from one aircraft to the other
    label = page.locator(f"{loss} text.sep-label").text_content()
    assert "373 m" in label and "40 m" in label and (("水平" in label) if zh else ("apart" in label))
    rows = page.locator("#alerts li.alert-separation_loss.pair-alert")
    rows.nth(1).wait_for(timeout=10000)
    assert "violation" in rows.first.get_attribute("class").split()
    title = rows.first.get_attribute("title")
    assert ("间隔丧失" in title) if zh else ("Loss of separation" in title)  # the server's localized description
    assert rows.first.locator(".a-zone").text_content().startswith("与 " if zh else "with ")

    broker.events(_pair_events("conflict_predicted", DRONE, UNREG, states, ts, horizontal_m=370.0, vertical_m=5.0,
                               min_horizontal_m=50.0, min_vertical_m=15.0, look_ahead_s=30.0, loss_in_s=14.0,
                               cpa_s=18.0, cpa_at=ts, cpa_horizontal_m=21.5, cpa_vertical_m=5.0)[:1])
    conflict = "#layer-separation g.sep-pair.sep-conflict[data-kind='conflict_predicted']"
    page.wait_for_selector(conflict, timeout=15000)
    label = page.locator(f"{conflict} text.sep-label").text_content()
    assert re.search(r"最接近 22 m" if zh else r"CPA 22 m in \d+ s", label), label
    page.locator("#alerts li.alert-conflict_predicted.pair-alert").wait_for(timeout=10000)

    # a click on the loss's row centres the map on the pair
    page.click("#zoom-out")
    page.click("#zoom-out")
    rows.first.click()
    page.wait_for_function(
        """() => { const l = document.querySelector("#layer-separation g.sep-loss line");
                   const r = document.getElementById('map').getBoundingClientRect();
                   const mx = (+l.getAttribute('x1') + +l.getAttribute('x2')) / 2,
                         my = (+l.getAttribute('y1') + +l.getAttribute('y2')) / 2;
                   return Math.abs(mx - r.width / 2) < 3 && Math.abs(my - r.height / 2) < 3; }""", timeout=5000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-traffic-{'zh-CN' if zh else 'en'}.png"))

    broker.events(_pair_events("separation_loss", DRONE, HELI, states, _now(), end=True)[:1])
    page.wait_for_selector(loss, state="detached", timeout=10000)
    assert page.locator(conflict).count() == 1  # another condition: still drawn
    page.locator("#alerts li.alert-separation_loss_end.pair-alert").wait_for(timeout=10000)
    broker.events(_pair_events("conflict_predicted", DRONE, UNREG, states, _now(), end=True))
    page.wait_for_selector(conflict, state="detached", timeout=10000)


def _check_toggle_and_withdrawal(page, broker: Broker) -> None:
    heli = f"#layer-traffic g.tr[data-track-id='{HELI}']"
    page.uncheck("#traffic-toggle")
    assert page.locator("#layer-traffic").is_hidden()
    assert page.locator("#layer-uavs g.uav[data-uav-id='TRF-1'] .track-badges").is_hidden()
    assert page.evaluate("localStorage.getItem('skylane.traffic')") == "0"
    page.check("#traffic-toggle")
    assert page.locator(heli).is_visible()
    # a withdrawn retained state: the track, stale by then, is gone once the REST picture no longer has it
    page.evaluate("Object.assign(TrafficLayer.cfg, {staleMs: 500, reconcileMs: 500})")
    broker.retain(topics.traffic_state(broker.root, HELI), None)
    page.wait_for_selector(heli, state="detached", timeout=10000)
    assert page.locator(f"#layer-traffic g.tr[data-track-id='{UNREG}']").count() == 1


@pytest.fixture
def rival_drones(system) -> None:
    """OWN-7 belongs to the operator key's owner (acme), RIVAL-7 to another operator; registered before the API
    starts, so its feeds know whose they are from the first message."""
    from storage import catalog
    with psycopg.connect(system.database_url) as conn:
        catalog.register_devices(conn, [
            dict(device_id=d, kind="uav", name=d, owner=o, sensor_kind=None, lon=None, lat=None, units={},
                 expected_interval_s=1.0) for d, o in (("OWN-7", "acme"), ("RIVAL-7", "rival"))])


def test_an_operator_sees_the_other_drone_and_the_pair_without_who_it_is(  # noqa: F811
        system, rival_drones, api, keys, browser):  # noqa: F811
    ts = _now()
    states = {t: _state(t, at, ts, "drone", uav, {"serial": uav + "-SN"}, {"telemetry": _source()}, ["separation_loss"],
                        90.0, 6.0)
              for t, uav, at in (("uav:OWN-7", "OWN-7", (121.4700, 31.0500, 80.0)),
                                 ("uav:RIVAL-7", "RIVAL-7", (121.4703, 31.0501, 84.0)))}
    broker = Broker(system)
    try:
        page = sign_in(browser, api.url, keys["operator"], "operator", "en-US")
        page.wait_for_selector("#map path.zone", timeout=15000)
        broker.picture(states)
        broker.events(_pair_events("separation_loss", "uav:OWN-7", "uav:RIVAL-7", states, ts, horizontal_m=30.5,
                                   vertical_m=4.0, min_horizontal_m=50.0, min_vertical_m=15.0))
        own = "#layer-uavs g.uav[data-uav-id='OWN-7']"
        page.wait_for_selector(f"{own} .track-badges g.badge[data-source='telemetry']", timeout=15000)
        other = page.locator("#layer-traffic g.tr.tr-drone")
        other.wait_for(timeout=10000)
        assert other.count() == 1 and other.get_attribute("data-track-id").startswith("drone-")
        assert other.locator("text.tr-label").text_content() == "other operator's drone"
        assert "unregistered" not in other.get_attribute("class").split()  # registered, only not theirs to know
        pair = page.locator("#layer-separation g.sep-pair.sep-loss")
        pair.wait_for(timeout=10000)
        assert {pair.get_attribute("data-a"), pair.get_attribute("data-b")} == {
            "uav:OWN-7", other.get_attribute("data-track-id")}
        page.locator("#alerts li.alert-separation_loss.pair-alert").wait_for(timeout=10000)
        assert page.locator("#alerts li.alert-separation_loss").count() == 1  # their copy is not the operator's
        assert page.locator("#alerts li.alert-separation_loss .a-zone").text_content() == \
            "with other operator's drone · 31 m"
        assert "RIVAL" not in page.locator("#map").inner_html() + page.locator("#alerts").inner_html()
        page.screenshot(path=str(ARTIFACTS / "dashboard-traffic-operator.png"))
        assert not page.errors, page.errors
    finally:
        broker.close()
