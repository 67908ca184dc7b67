"""The role matrix: every endpoint x every role (and no key, a malformed key, a revoked key).

Operators see and act on their own drones, events and clearances only (404 for others', as if absent);
viewers read; engineers also read dead letters and acknowledge alerts; admins change the airspace.
"""
from __future__ import annotations

import json
import re

import httpx
import pytest

from .api_support import (C2, CLEARANCE_ALPHA, CLEARANCE_BETA, EVENT_ALPHA, EVENT_BETA, shared_api)  # noqa: F401
from .helpers import ZONE_FILE

pytestmark = pytest.mark.integration

ROLES = ("viewer", "operator", "engineer", "admin")
TMP_ZONE = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
    [[121.40, 31.00], [121.401, 31.00], [121.401, 31.001], [121.40, 31.001], [121.40, 31.00]]]},
    "properties": {"name": "matrix test zone", "kind": "authorization", "lower_m": 0, "upper_m": 50,
                   "alt_ref": "AGL"}}
ALL = dict.fromkeys(ROLES, 200)


def only(*roles: str, ok: int = 200, **special: int) -> dict[str, int]:
    return {r: special.get(r, ok if r in (*roles, "admin") else 403) for r in ROLES}


# (method, path, json body, {role: status}); admin passes every role check
MATRIX = [
    ("GET", "/v1/me", None, ALL),
    ("GET", "/v1/zones", None, ALL),
    ("GET", "/v1/zones/R-BR-MP", None, ALL),
    ("GET", "/v1/zones/export?format=ed269", None, ALL),
    ("POST", "/v1/zones", "zone file", only("admin")),
    ("PUT", "/v1/zones/TMP-MATRIX", TMP_ZONE, only("admin")),
    ("DELETE", "/v1/zones/TMP-DEL", None, only("admin", ok=204)),
    ("PUT", "/v1/zones/R-BR-MP/state", {"state": "active", "reason": "matrix"}, only("admin")),
    ("GET", "/v1/devices", None, ALL),
    ("GET", "/v1/devices/U-ALPHA", None, ALL),
    ("GET", "/v1/devices/U-BETA", None, {**ALL, "operator": 404}),
    ("GET", "/v1/devices/S-AIR1", None, ALL),
    ("GET", "/v1/uavs", None, ALL),
    ("GET", "/v1/uavs/U-ALPHA/track", None, ALL),
    ("GET", "/v1/uavs/U-BETA/track", None, {**ALL, "operator": 404}),
    ("GET", "/v1/events", None, ALL),
    ("GET", f"/v1/events/{EVENT_ALPHA}", None, ALL),
    ("GET", f"/v1/events/{EVENT_BETA}", None, {**ALL, "operator": 404}),
    ("POST", f"/v1/events/{EVENT_ALPHA}/ack", {"note": "seen"}, only("operator", "engineer")),
    ("POST", f"/v1/events/{EVENT_BETA}/ack", None, only("operator", "engineer", operator=404)),
    ("GET", "/v1/sensors", None, ALL),
    ("GET", "/v1/sensors/S-AIR1/readings", None, ALL),
    ("GET", "/v1/clearances", None, ALL),
    ("GET", f"/v1/clearances/{CLEARANCE_ALPHA}", None, ALL),
    ("GET", f"/v1/clearances/{CLEARANCE_BETA}", None, {**ALL, "operator": 404}),
    ("POST", "/v1/clearances", {"uav_id": "U-ALPHA", "waypoints": C2}, only("operator")),
    ("POST", "/v1/clearances", {"uav_id": "U-BETA", "waypoints": C2}, only("operator", operator=403)),
    ("DELETE", f"/v1/clearances/{CLEARANCE_BETA}", None, only("operator", operator=404, admin=409)),
    ("GET", "/v1/dead-letters", None, only("engineer")),
    ("GET", "/geospatial_map/v1/status", None, ALL),
    ("POST", "/geospatial_map/v1/map/queries", {"checks": []}, ALL),
]
OPEN = [("GET", "/v1/health"), ("GET", "/")]
CASES = [pytest.param(m, p, b, who, expected[who] if who in expected else 401, id=f"{m} {p} {who}")
         for m, p, b, expected in MATRIX for who in (*ROLES, "none", "malformed", "revoked")]


def _headers(api, who: str) -> dict[str, str]:
    if who == "none":
        return {}
    key = {"malformed": "not-a-key", "revoked": api.keys.revoked}.get(who) or api.keys.for_role(who)
    return {"Authorization": f"Bearer {key}"}


def _body(body):
    return json.loads(ZONE_FILE.read_text()) if body == "zone file" else body


@pytest.mark.parametrize("method, path, body, who, status", CASES)
def test_role_matrix(shared_api, method, path, body, who, status):  # noqa: F811
    if path == "/v1/zones/TMP-DEL":  # a zone to delete, made afresh for each role
        made = shared_api.client("admin").put(path, json=TMP_ZONE)
        assert made.status_code == 200, made.text
    r = httpx.request(method, shared_api.url + path, json=_body(body), headers=_headers(shared_api, who), timeout=30)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.headers.get("www-authenticate") == "Bearer"


@pytest.mark.parametrize("method, path", OPEN)
def test_open_endpoints_need_no_key(shared_api, method, path):  # noqa: F811
    assert httpx.request(method, shared_api.url + path, timeout=30).status_code == 200


def test_every_documented_operation_refuses_a_request_without_key(shared_api):  # noqa: F811
    """Whatever routers are mounted, nothing documented is open but health."""
    doc = httpx.get(shared_api.url + "/openapi.json").json()
    checked = 0
    for path, ops in doc["paths"].items():
        if path == "/v1/health":
            continue
        concrete = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)
        for method in ops:
            r = httpx.request(method.upper(), shared_api.url + concrete, timeout=30)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            checked += 1
    assert checked >= len({(m, p.split("/")[2]) for m, p, _b, _e in MATRIX})


def test_matrix_covers_every_rest_operation_of_this_api(shared_api):  # noqa: F811
    doc = httpx.get(shared_api.url + "/openapi.json").json()
    covered = {(m, re.sub(r"/(U-|S-|R-|TMP-)[A-Z0-9-]+|/[0-9a-f-]{36}", "/X", p.split("?")[0]))
               for m, p, _b, _e in MATRIX}
    mine = ("/v1/me", "/v1/zones", "/v1/devices", "/v1/uavs", "/v1/events", "/v1/sensors", "/v1/clearances",
            "/v1/dead-letters", "/geospatial_map/")
    for path, ops in doc["paths"].items():
        if not path.startswith(mine):
            continue  # routers with their own role tests (live feeds, replays)
        for method in ops:
            assert (method.upper(), re.sub(r"\{[^}]+\}", "X", path)) in covered, (method, path)


def test_operators_lists_hold_their_own_only(shared_api):  # noqa: F811
    op = shared_api.client("operator")
    assert {u["uav_id"] for u in op.get("/v1/uavs").json()} == {"U-ALPHA"}
    assert {e["uav_id"] for e in op.get("/v1/events").json()["items"]} == {"U-ALPHA"}
    assert {c["uav_id"] for c in op.get("/v1/clearances").json()} == {"U-ALPHA"}
    devices = {d["device_id"] for d in op.get("/v1/devices").json()}
    assert "U-ALPHA" in devices and "S-AIR1" in devices and "U-BETA" not in devices
    viewer = shared_api.client("viewer")
    assert {u["uav_id"] for u in viewer.get("/v1/uavs").json()} >= {"U-ALPHA", "U-BETA"}
    assert {e["uav_id"] for e in viewer.get("/v1/events").json()["items"]} == {"U-ALPHA", "U-BETA"}
    other = shared_api.client("other_operator")
    assert other.get("/v1/uavs").json() == [] or {u["uav_id"] for u in other.get("/v1/uavs").json()} == {"U-BETA"}


def test_metrics_count_requests_by_route_template_and_refusals(shared_api):  # noqa: F811
    shared_api.client("viewer").get("/v1/uavs/U-ALPHA/track")
    httpx.get(shared_api.url + "/v1/me", timeout=30)
    text = shared_api.client("engineer").get("/metrics").text
    assert 'skylane_api_requests_total{method="GET",route="/v1/uavs/{uav_id}/track",status="200"}' in text
    assert 'skylane_api_requests_total{method="GET",route="/v1/me",status="401"}' in text
    assert 'skylane_api_auth_failures_total{reason="missing"}' in text
    assert "skylane_api_request_seconds_bucket" in text and "U-ALPHA" not in text
    assert "skylane_db_up 1.0" in text  # the seeded events: one violation each for two drones
    assert 'skylane_db_events_last_hour{kind="no_fly_violation"} 2.0' in text
