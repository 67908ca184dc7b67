"""POST /v1/zones imports feature by feature and answers with the import report (the same report as `skylane zones
import`): every valid feature stored, an invalid outline repaired, a bad feature skipped alone; `strict=true`
refuses the document on any problem."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from airspace.formats import import_zones, report

from .api_support import Client, keys  # noqa: F401  (fixture)
from .helpers import query

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data" / "zones"
DERIVED = DATA / "ed318_offsets_and_bowtie.json"  # provenance: data/zones/PROVENANCE.md


@pytest.fixture
def admin(api, keys):  # noqa: F811
    return Client(api.url, keys.admin)


def test_upload_repairs_the_self_intersecting_zone_and_reports_it(admin, system):
    doc = json.loads(DERIVED.read_text())
    r = admin.post("/v1/zones", json=doc)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["report"] == report(import_zones(doc))  # the one report, as the CLI prints it
    assert (body["report"]["repaired"], body["report"]["skipped"], body["stored"]) == (1, 0, 3)
    assert body["report"]["problems"][0]["field"] == "geometry" and body["kept"] == []
    stored = {f["id"]: f for f in admin.get("/v1/zones").json()["features"]}
    assert stored["BLns058"]["geometry"]["type"] == "MultiPolygon"
    assert stored["LSZB003"]["properties"]["schedule"]["tz"] == "+01:00"
    r = admin.post("/v1/zones", params={"strict": "true"}, json=doc)
    assert r.status_code == 422 and "feature 1 (id='BLns058'): field 'geometry'" in r.json()["detail"]


def test_upload_skips_a_bad_feature_alone_and_replace_keeps_its_stored_zones(admin, system):
    good = json.loads((DATA / "geo-awareness-che-1.json").read_text())
    assert admin.post("/v1/zones", json=good).status_code == 200
    bad = copy.deepcopy(good)
    bad["features"][1]["restriction"] = "NOPE"  # Flugplatz Reichenbach: three volumes
    r = admin.post("/v1/zones", params={"replace": "true"}, json=bad)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(p["index"], p["id"], p["field"], p["action"]) for p in body["report"]["problems"]] == [
        (1, "Flugplatz Reichenbach", "restriction", "skipped")]
    assert body["kept"] == ["Flugplatz Reichenbach#1", "Flugplatz Reichenbach#2", "Flugplatz Reichenbach#3"]
    assert body["active_zones"] == 10 and len(body["deactivated"]) == 16
    assert query(system.database_url, "SELECT count(*) FROM zones WHERE active") == [(10,)]


def test_upload_with_no_importable_feature_is_422_with_the_problems(admin):
    doc = json.loads((Path(__file__).parent / "data" / "zones_public" / "eurocontrol_geofencing_prototype"
                      / "UASZoneVersion-example.json").read_text())
    r = admin.post("/v1/zones", json=doc)
    assert r.status_code == 422
    assert "no zones" in r.json()["detail"] and "feature 0 (id='NFZ6546')" in r.json()["detail"]
    assert "leap second" in r.json()["detail"]
