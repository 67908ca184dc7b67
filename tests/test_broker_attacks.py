"""Attacks through the broker, performed end to end against the real Mosquitto, PostgreSQL, ingest and API:
forged and stale retained control messages cannot replace the airspace (the store is the truth, also after a
restart), and a retained fix is not re-ingested at every restart."""
from __future__ import annotations

import queue
import time
from datetime import datetime, timezone

import httpx
import orjson
import pytest

from protocol import topics
from protocol.mqttclient import close_client, connect_client

from .api_support import bearer, make_keys
from .helpers import query, start_ingester, wait_until

pytestmark = pytest.mark.integration
INSIDE_BRIDGE_ZONE = {"lat": 31.044, "lon": 121.4885, "alt_m": 50}  # R-BR-MP (PROHIBITED), 0-150 m AGL


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _publish(system, items, name="t-attacker") -> None:
    """Publish (topic, payload, retain) with the test account: the broker's ACL is not what is tested here
    (tests/test_broker_auth.py is); what the ingester does with what gets through is."""
    c = connect_client(system.mqtt_url, f"{name}-{time.monotonic_ns()}")
    try:
        for topic, payload, retain in items:
            c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        close_client(c)


def _violation_within(system, uav: str, seconds: float) -> float:
    """Fly `uav` into the no-fly zone now; how long until its no_fly_violation is published."""
    got: queue.Queue = queue.Queue()
    watch = connect_client(system.mqtt_url, f"t-watch-{time.monotonic_ns()}",
                           subscriptions=[(topics.event(system.mqtt_root, "no_fly_violation", uav), 1)],
                           on_message=lambda _c, _u, m: got.put(m.payload))
    try:
        t0 = time.monotonic()
        _publish(system, [(topics.telemetry(system.mqtt_root, uav), orjson.dumps({**INSIDE_BRIDGE_ZONE, "ts": _now()}),
                           False)])
        event = orjson.loads(got.get(timeout=seconds))
        assert event["zone_id"] == "R-BR-MP"
        return time.monotonic() - t0
    finally:
        close_client(watch)


def test_a_forged_zone_set_and_a_restart_do_not_silence_the_no_fly_zones(system, api):
    """The issue's attack: one retained message on control/zones replaced every ingester's airspace."""
    root = system.mqtt_root
    keys = make_keys(system.database_url)
    _, ingest = start_ingester(system)
    try:
        _publish(system, [(topics.control_zones(root), b'{"type": "FeatureCollection", "features": []}', True),
                          (topics.control_zones(root), orjson.dumps({"version": 1 << 60, "issuer": "skylane-api"}),
                           True)])
        assert _violation_within(system, "T1", 5) < 1.0
    finally:
        ingest.close()
    _, ingest = start_ingester(system)  # the forged retained messages come again at subscription
    try:
        assert _violation_within(system, "T1b", 5) < 1.0
    finally:
        ingest.close()
    reasons = [r[0] for r in query(system.database_url, "SELECT reason FROM dead_letters WHERE topic = %s",
                                   topics.control_zones(root))]
    assert any("not a Skylane service" in r for r in reasons) or any("zone set refused" in r for r in reasons)
    assert any("unknown to the store" in r for r in reasons), reasons
    zones = httpx.get(api.url + "/v1/zones", headers=bearer(keys.viewer)).json()["features"]
    assert "R-BR-MP" in {f["id"] for f in zones}  # the API and the ingesters agree: the stored zones


def test_a_forged_zone_state_does_not_suspend_a_corridor_and_a_stale_one_does_not_win(system, api):
    root = system.mqtt_root
    keys = make_keys(system.database_url)
    admin = bearer(keys.admin)
    assert httpx.put(api.url + "/v1/zones/C1/state", json={"state": "suspended", "reason": "event"},
                     headers=admin).status_code == 200
    stale = httpx.get(api.url + "/v1/zones/C1", headers=admin).json()["properties"]
    assert httpx.put(api.url + "/v1/zones/C1/state", json={"state": "active", "reason": "over"},
                     headers=admin).status_code == 200
    _, ingest = start_ingester(system)
    try:
        # a forged suspension of C2 and the stale suspension of C1 (as a replay of an old retained message)
        _publish(system, [
            (topics.control_zone(root, "C2"), orjson.dumps({"state": "suspended", "reason": "forged", "by": "x",
                                                             "at": _now(), "issuer": "skylane-api"}), True),
            (topics.control_zone(root, "C1"), orjson.dumps({"state": "suspended", "reason": "event", "by": "x",
                                                             "at": stale["state_at"], "issuer": "skylane-api"}), True),
        ])
        wait_until(lambda: query(system.database_url, "SELECT 1 FROM dead_letters WHERE topic = %s",
                                 topics.control_zone(root, "C2")), 10, "the forged state was not refused")
    finally:
        ingest.close()
    [(reason,)] = query(system.database_url, "SELECT reason FROM dead_letters WHERE topic = %s",
                        topics.control_zone(root, "C2"))
    assert "C2 has no stored state" in reason
    states = {f["id"]: f["properties"]["state"] for f in
              httpx.get(api.url + "/v1/zones", headers=admin).json()["features"]}
    assert states["C1"] == "active" and states["C2"] == "active"


def test_a_control_from_a_device_identity_is_a_dead_letter(system):
    root = system.mqtt_root
    _, ingest = start_ingester(system)
    try:
        _publish(system, [(topics.control_clearance(root, "T1"), orjson.dumps(
            {"clearance_id": "00000000-0000-0000-0000-000000000001", "uav_id": "T1", "waypoints": [],
             "issuer": "T1"}), True)])
        wait_until(lambda: query(system.database_url, "SELECT reason FROM dead_letters"), 10, "no dead letter")
    finally:
        ingest.close()
    [(reason,)] = query(system.database_url, "SELECT reason FROM dead_letters")
    assert reason == "control refused: issuer 'T1' is not a Skylane service (skylane-admin, skylane-api, skylane-ingest)"


def test_a_retained_fix_is_not_reingested_at_every_restart(system):
    """A device that published its fix retained (and without a time) became a phantom current position each
    time an ingester subscribed."""
    root = system.mqtt_root
    _publish(system, [(topics.telemetry(root, "GHOST"), orjson.dumps({"lat": 31.05, "lon": 121.5, "alt_m": 40}),
                       True)])
    for _ in range(2):
        _, ingest = start_ingester(system)
        try:
            _publish(system, [(topics.telemetry(root, "LIVE"), orjson.dumps({"lat": 31.05, "lon": 121.5,
                                                                              "alt_m": 40, "ts": _now()}), True)])
            wait_until(lambda: query(system.database_url, "SELECT count(*) FROM uav_telemetry WHERE uav_id = 'LIVE'"
                                     )[0][0] >= 1, 10, "the live fix was not stored")
        finally:
            ingest.close()
    assert query(system.database_url, "SELECT count(*) FROM uav_telemetry WHERE uav_id = 'GHOST'") == [(0,)]
    # a fix published (even retained) while the ingester listens is a live report: stored once per publish
    assert query(system.database_url, "SELECT count(*) FROM uav_telemetry WHERE uav_id = 'LIVE'") == [(2,)]
