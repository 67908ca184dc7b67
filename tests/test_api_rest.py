"""The REST API on a real database: clearances, history windows, health, zones, input limits."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from airspace.zones import ZONE_KINDS

from .api_support import C2, Client, keys  # noqa: F401  (fixture)
from .helpers import query

pytestmark = pytest.mark.integration

ACROSS_BRIDGE_ZONE = [{"lon": 121.47, "lat": 31.044, "alt_m": 80}, {"lon": 121.51, "lat": 31.044, "alt_m": 80}]


@pytest.fixture
def admin(api, keys):  # noqa: F811
    return Client(api.url, keys.admin)


def test_health_and_zones(api, admin, system):
    assert httpx.get(api.url + "/v1/health").json() == {"status": "ok", "database": "ok", "mqtt": "connected"}
    zones = admin.get("/v1/zones").json()
    assert zones["type"] == "FeatureCollection"
    kinds = {f["properties"]["kind"] for f in zones["features"]}
    assert {"area", "corridor", "vertiport", "restricted", "authorization"} <= kinds <= set(ZONE_KINDS)
    assert {f["properties"]["state"] for f in zones["features"]} <= {"active", "inactive"}
    corridors = [f for f in zones["features"] if f["properties"]["kind"] == "corridor"]
    assert len(corridors) >= 3 and all({"lower_m", "upper_m", "alt_ref"} <= set(f["properties"]) for f in corridors)


def test_clearance_approved_and_stored(admin, system):
    r = admin.post("/v1/clearances", json={"uav_id": "D7", "waypoints": C2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["decision"], body["reasons"]) == ("approved", [])
    stored = admin.get(f"/v1/clearances/{body['clearance_id']}").json()
    assert stored["decision"] == "approved" and stored["uav_id"] == "D7" and len(stored["route"]) == 3
    assert query(system.database_url, "SELECT count(*) FROM clearances") == [(1,)]


def test_clearance_denied_with_reasons(admin):
    body = admin.post("/v1/clearances", json={"waypoints": ACROSS_BRIDGE_ZONE}).json()
    assert body["decision"] == "denied"
    [reason] = body["reasons"]
    assert (reason["code"], reason["zone_id"], reason["segment"]) == ("restricted_zone", "R-BR-MP", 0)
    high = admin.post("/v1/clearances", json={"waypoints": [{**w, "alt_m": 200} for w in C2]}).json()
    assert high["decision"] == "denied" and {r["code"] for r in high["reasons"]} == {"above_ceiling"}


@pytest.mark.parametrize("body, needle", [
    ({"waypoints": C2[:1]}, "at least 2"),
    ({"waypoints": [{"lon": 121.5, "lat": 95, "alt_m": 10}, C2[0]]}, "less than or equal to 90"),
    ({"waypoints": [{"lon": 121.5, "lat": 31}, C2[0]]}, "Field required"),
    ({"waypoints": C2, "alt_ref": "QNH"}, "'AGL', 'AMSL' or 'WGS84'"),
    ({"waypoints": C2 * 100}, "at most 200"),
    ({}, "Field required"),
    # a crawl would put the flight's times beyond any calendar: refused up front, never a 500
    ({"waypoints": [{**C2[0], "alt_m": -500}, {**C2[0], "alt_m": 10000}], "speed_mps": 1e-300}, "speed_mps"),
    ({"waypoints": [{**C2[0], "t": datetime.now(timezone.utc).isoformat()},
                    {**C2[1], "t": "9999-12-31T23:59:59-14:00"}]}, "waypoint 1: t"),
])
def test_clearance_bad_input_is_422_with_reason(admin, body, needle):
    r = admin.post("/v1/clearances", json=body)
    assert r.status_code == 422
    assert needle in r.text


def test_history_windows(admin, system):
    now = datetime.now(timezone.utc)
    with __import__("psycopg").connect(system.database_url) as conn:
        conn.execute("INSERT INTO uav_telemetry (ts, uav_id, lon, lat, alt_m, alt_ref, received_at) "
                     "SELECT %s - make_interval(secs => g), 'H1', 121.5, 31.05, g, 'AGL', now() "
                     "FROM generate_series(0, 9) g", (now,))
    track = admin.get("/v1/uavs/H1/track",
                      params={"start": (now - timedelta(seconds=5.5)).isoformat(), "end": now.isoformat()}).json()
    assert [p["alt_m"] for p in track["points"]] == [5, 4, 3, 2, 1]
    assert admin.get("/v1/uavs/H1/track", params={"start": now.isoformat(),
                                                  "end": (now - timedelta(hours=1)).isoformat()}).status_code == 422
    assert admin.get("/v1/uavs/H1/track", params={"start": "2026-01-01T00:00:00",
                                                  "end": "2026-01-01T01:00:00"}).status_code == 422
    assert admin.get("/v1/events", params={"limit": 5000}).status_code == 422
    assert admin.get("/v1/clearances/not-a-uuid").status_code == 422
    assert admin.get("/v1/clearances/00000000-0000-0000-0000-000000000000").status_code == 404


def test_metrics_exposed(api, admin):
    r = admin.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "skylane_feed_clients" in text


@pytest.mark.parametrize("path, params", [
    ("/v1/events", {"end": "0001-01-01T00:00:00Z"}),
    ("/v1/uavs/T1/track", {"end": "0001-01-01T00:00:00Z"}),
    ("/v1/events", {"kind": "zone\x00enter"}),
    ("/v1/events", {"uav_id": "T\x001"}),
    ("/v1/uavs/T%001/track", {}),
    ("/v1/events", {"start": "yesterday"}),
    ("/v1/dead-letters", {"limit": "0"}),
])
def test_odd_queries_are_4xx_not_5xx(admin, path, params):
    r = admin.get(path, params=params)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)


def test_clearance_with_odd_uav_id_is_422(admin):
    r = admin.post("/v1/clearances", json={"uav_id": "a\x00b", "waypoints": C2})
    assert r.status_code == 422 and "uav_id" in r.text


def test_database_down_is_503_not_500(system):
    from api.app import ApiConfig, create_app
    from fastapi.testclient import TestClient
    token = "t" * 32
    app = create_app(ApiConfig("postgresql://skylane:skylane@127.0.0.1:1/nowhere", system.service_url("api"),
                               system.mqtt_root, metrics_token=token))
    with TestClient(app) as client:
        r = client.get("/v1/events", headers={"Authorization": "Bearer sky_000000000000_" + "x" * 43})
        assert r.status_code == 503 and "database unavailable" in r.json()["detail"]
        assert client.get("/v1/health").json()["database"] == "unavailable"
        # Prometheus's scrape token needs no database: the scrape still works and says the database is down
        assert "skylane_db_up 0.0" in client.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
