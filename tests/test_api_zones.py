"""Zone administration over the API: upload with validation naming feature and field, suspend/activate,
and the retained control messages every ingest worker reads."""
from __future__ import annotations

import copy
import json
import time

import pytest

from .api_support import Client, keys, retained  # noqa: F401  (fixture)
from .helpers import ZONE_FILE, query

pytestmark = pytest.mark.integration


@pytest.fixture
def admin(api, keys):  # noqa: F811
    return Client(api.url, keys.admin)


def _doc() -> dict:
    return json.loads(ZONE_FILE.read_text())


def _zone_set_version(system) -> int:
    import psycopg

    from storage.controls import zone_set_version
    with psycopg.connect(system.database_url) as conn:
        return zone_set_version(conn)


def _now() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def test_upload_geojson_stores_and_announces(admin, system):
    doc = _doc()
    doc["features"][0]["properties"]["name"] = "renamed by upload"
    extra = copy.deepcopy(doc["features"][0])
    extra["properties"].update(id="NEW-1", name="new zone")
    extra.pop("id", None)
    doc["features"].append(extra)
    r = admin.post("/v1/zones", json=doc)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stored"] == len(doc["features"]) and body["published"] and body["deactivated"] == []
    zones = admin.get("/v1/zones").json()
    by_id = {f["id"]: f for f in zones["features"]}
    assert by_id["NEW-1"]["properties"]["name"] == "new zone"
    assert by_id[doc["features"][0]["properties"]["id"]]["properties"]["name"] == "renamed by upload"
    announced = retained(system, f"{system.mqtt_root}/control/zones")  # an announcement: the store has the zones
    assert announced == {"version": _zone_set_version(system), "issuer": "skylane-api"}


def test_upload_replace_deactivates_missing_zones(admin, system):
    doc = _doc()
    keep = doc["features"][:3]
    r = admin.post("/v1/zones", params={"replace": "true"}, json={**doc, "features": keep})
    assert r.status_code == 200, r.text
    assert len(r.json()["deactivated"]) == len(doc["features"]) - 3
    assert len(admin.get("/v1/zones").json()["features"]) == 3
    assert query(system.database_url, "SELECT count(*) FROM zones WHERE NOT active") == [(len(doc["features"]) - 3,)]


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["features"][2]["properties"].update(upper_m=-5), "feature 2"),
    (lambda d: d["features"][1]["properties"].update(kind="volcano"), "'kind'"),
    (lambda d: d["features"][0].update(geometry={"type": "Point", "coordinates": [121.5, 31.0]}), "'geometry'"),
    (lambda d: d.update(type="Feature"), "FeatureCollection"),
])
def test_upload_validation_names_feature_and_field(admin, mutate, needle):
    doc = _doc()
    mutate(doc)
    r = admin.post("/v1/zones", params={"strict": "true"}, json=doc)  # the default skips bad features: test_api_zone_import
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]


def test_upload_too_large_is_413(api, keys):  # noqa: F811
    big = b'{"type": "FeatureCollection", "features": [], "pad": "' + b"x" * (17 << 20) + b'"}'
    r = Client(api.url, keys.admin).post("/v1/zones", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    r = Client(api.url, keys.admin).post("/v1/clearances", content=b"[" * (2 << 20),
                                         headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_suspend_and_activate_zone_publishes_retained_state(admin, system):
    r = admin.put("/v1/zones/C1/state", json={"state": "suspended", "reason": "wind sensor above limit"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "suspended" and r.json()["by"].startswith("key:")
    msg = retained(system, f"{system.mqtt_root}/control/zone/C1")
    assert msg["state"] == "suspended" and msg["reason"] == "wind sensor above limit" and msg["at"]
    feature = admin.get("/v1/zones/C1").json()
    assert feature["properties"]["state"] == "suspended"
    assert feature["properties"]["state_reason"] == "wind sensor above limit"
    assert admin.put("/v1/zones/C1/state", json={"state": "active"}).status_code == 200
    assert retained(system, f"{system.mqtt_root}/control/zone/C1")["state"] == "active"
    assert admin.get("/v1/zones/C1").json()["properties"]["state"] == "active"
    assert admin.put("/v1/zones/NOPE/state", json={"state": "active"}).status_code == 404
    assert admin.put("/v1/zones/C1/state", json={"state": "closed"}).status_code == 422


def test_zone_suspended_by_a_sensor_rule_shows_in_the_api(admin, system, ingester):
    """The ingest pipeline's sensor rule stores its decision; GET /v1/zones reads it from the store, while a
    zone state that only exists on the broker (forged) changes nothing there."""
    import orjson

    from protocol import topics
    from protocol.mqttclient import close_client, connect_client

    from .helpers import wait_until
    client = connect_client(system.mqtt_url, "t-sensor-rule")
    try:
        client.publish(topics.control_zone(system.mqtt_root, "C3"), orjson.dumps(
            {"state": "suspended", "reason": "forged", "by": "rule:fog", "at": "2099-01-01T00:00:00Z",
             "issuer": "skylane-api"}), qos=1, retain=True).wait_for_publish(5)
        client.publish(topics.reading(system.mqtt_root, "W-C2"), orjson.dumps(
            {"ts": _now(), "values": {"wind_gust": 15.0}}), qos=1).wait_for_publish(5)
    finally:
        close_client(client)
    wait_until(lambda: admin.get("/v1/zones/C2").json()["properties"]["state"] == "suspended", 15,
               "sensor-rule suspension not visible")
    assert admin.get("/v1/zones/C2").json()["properties"]["state_by"] == "rule:C2-wind"
    assert admin.get("/v1/zones/C3").json()["properties"]["state"] == "active"
    dead = query(system.database_url, "SELECT reason FROM dead_letters WHERE topic LIKE '%%/control/zone/C3'")
    assert dead and "zone C3 has no stored state" in dead[0][0], dead


def test_put_and_delete_one_zone(admin, system):
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[121.45, 31.02], [121.46, 31.02], [121.46, 31.03], [121.45, 31.03], [121.45, 31.02]]]},
        "properties": {"name": "event stage", "kind": "restricted", "lower_m": 0, "upper_m": 120, "alt_ref": "AGL"}}
    r = admin.put("/v1/zones/TFR-1", json=feature)
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["kind"] == "restricted" and r.json()["properties"]["state"] == "active"
    mismatched = {**feature, "properties": {**feature["properties"], "id": "OTHER"}}
    assert "does not match" in admin.put("/v1/zones/TFR-1", json=mismatched).json()["detail"]
    assert admin.delete("/v1/zones/TFR-1").status_code == 204
    assert admin.get("/v1/zones/TFR-1").status_code == 404
    assert admin.delete("/v1/zones/TFR-1").status_code == 404
    announced = retained(system, f"{system.mqtt_root}/control/zones")
    assert announced == {"version": _zone_set_version(system), "issuer": "skylane-api"}


@pytest.mark.parametrize("fmt", ["ed269", "ed318"])
def test_upload_ed269_and_ed318(admin, system, fmt):
    from airspace.formats import export_zones
    from airspace.zones import ZoneSet
    zs = ZoneSet.from_geojson(_doc())
    doc = export_zones(zs, fmt)
    for params in ({"format": fmt}, {}):  # named, then detected
        r = admin.post("/v1/zones", params=params, json=doc)
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == len(zs) and r.json()["active_zones"] == len(zs)
    stored = {f["id"]: f["properties"] for f in admin.get("/v1/zones").json()["features"]}
    assert set(stored) == {z.id for z in zs}
    for z in zs:
        assert (stored[z.id]["kind"], stored[z.id]["lower_m"], stored[z.id]["upper_m"]) == (z.kind, z.lower_m, z.upper_m)


def test_export_round_trips_through_upload(admin, api, keys):  # noqa: F811
    doc = Client(api.url, keys.viewer).get("/v1/zones/export", params={"format": "ed269"})
    assert doc.status_code == 200 and "zones.ed269.json" in doc.headers["content-disposition"]
    r = admin.post("/v1/zones", params={"format": "ed269", "replace": "true"}, json=doc.json())
    assert r.status_code == 200 and r.json()["deactivated"] == [], r.text
    assert admin.get("/v1/zones/export").json()["type"] == "FeatureCollection"


def test_upload_bad_ed269_names_the_zone_and_field(admin):
    from airspace.formats import export_zones
    from airspace.zones import ZoneSet
    doc = export_zones(ZoneSet.from_geojson(_doc()), "ed269")
    del doc["UASZoneList"][1]["geometry"]
    r = admin.post("/v1/zones", params={"format": "ed269", "strict": "true"}, json=doc)
    assert r.status_code == 422, r.text
    assert "feature 1" in r.json()["detail"] and "geometry" in r.json()["detail"]


def test_upload_bare_ed269_list_and_real_samples(admin):
    """ED-269 files come as the bare UASZone list too (issue 3 item 2); the API takes them like the wrapper.
    The Swiss samples: a bare `features` wrapper with Circle centres [lon, lat], AGL/AMSL, FT and dailyPeriod."""
    from airspace.formats import export_zones
    from airspace.zones import ZoneSet
    zs = ZoneSet.from_geojson(_doc())
    bare = export_zones(zs, "ed269")["UASZoneList"]
    for params in ({"format": "ed269"}, {}):
        r = admin.post("/v1/zones", params=params, json=bare)
        assert r.status_code == 200, r.text[:300]
        assert r.json()["stored"] == len(zs)
    bad = copy.deepcopy(bare)
    bad[2]["geometry"][0]["horizontalProjection"] = {"type": "Circle", "center": [31.05, 121.5], "radius": 100}
    r = admin.post("/v1/zones", params={"strict": "true"}, json=bad)
    assert r.status_code == 422 and "feature 2" in r.json()["detail"] and "center" in r.json()["detail"], r.text[:300]


def test_unlimited_upper_limit_reads_back_as_null(admin):
    """ED-269/ED-318 zones may have no upper limit (null): stored, listed, read one by one and exported."""
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[121.40, 31.00], [121.401, 31.00], [121.401, 31.001], [121.40, 31.001], [121.40, 31.00]]]},
        "properties": {"name": "no ceiling", "kind": "restricted", "lower_m": 0, "upper_m": None, "alt_ref": "AGL"}}
    put = admin.put("/v1/zones/UNLIM", json=feature)
    assert put.status_code == 200, put.text[:300]
    assert put.json()["properties"]["upper_m"] is None
    one = admin.get("/v1/zones/UNLIM")
    assert one.status_code == 200 and one.json()["properties"]["upper_m"] is None
    listed = {f["id"]: f for f in admin.get("/v1/zones").json()["features"]}
    assert listed["UNLIM"]["properties"]["upper_m"] is None
    for fmt in ("geojson", "ed269", "ed318"):
        assert admin.get("/v1/zones/export", params={"format": fmt}).status_code == 200
    schema = admin.get("/openapi.json").json()["components"]["schemas"]["ZoneProperties"]["properties"]["upper_m"]
    assert {"type": "null"} in schema.get("anyOf", []), schema  # the document says what the API sends


@pytest.mark.parametrize("bad_id", ["tab\there", "x" * 101, " "])
def test_an_unusable_zone_id_is_refused(admin, bad_id):
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[121.45, 31.02], [121.46, 31.02], [121.46, 31.03], [121.45, 31.03], [121.45, 31.02]]]},
        "properties": {"id": bad_id, "name": "x", "kind": "restricted", "lower_m": 0, "upper_m": 120}}
    r = admin.post("/v1/zones", json={"type": "FeatureCollection", "features": [feature]})
    assert r.status_code == 422 and "field 'id'" in r.json()["detail"], r.text


def test_a_zone_id_with_topic_wildcards_is_suspended_through_ingest(admin, system, ingester):
    """An admin-uploaded id with '+' once crash-looped ingest when its control topic was built; real files
    name zones 'Flugplatz Reichenbach#1'. The id travels percent-encoded as one topic level."""
    from .helpers import wait_until
    zid = "Pad+1 #2/north 100%"
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[121.45, 31.02], [121.46, 31.02], [121.46, 31.03], [121.45, 31.03], [121.45, 31.02]]]},
        "properties": {"id": zid, "name": "pad", "kind": "corridor", "lower_m": 0, "upper_m": 120, "alt_ref": "AGL"}}
    r = admin.post("/v1/zones", json={"type": "FeatureCollection", "features": [feature]})
    assert r.status_code == 200, r.text
    from urllib.parse import quote
    path = f"/v1/zones/{quote(zid, safe='')}/state"
    r = admin.put(path, json={"state": "suspended", "reason": "test"})
    assert r.status_code == 200, r.text
    topic = f"{system.mqtt_root}/control/zone/Pad%2B1 %232%2Fnorth 100%25"
    assert retained(system, topic)["state"] == "suspended"
    wait_until(lambda: query(system.database_url, "SELECT count(*) FROM dead_letters") == [(0,)] and
               ingester.connected.is_set(), 5, "ingest refused or fell over")
    time.sleep(1.0)  # ingest has taken the control message (retained, QoS 1) by now
    assert query(system.database_url, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert ingester.connected.is_set()
