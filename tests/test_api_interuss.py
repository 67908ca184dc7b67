"""InterUSS geospatial_map v1: volumes4d (circle/polygon, W84/SFC altitudes, time ranges) and positions
classified against the zones, Present/Absent per check; real-shaped requests over HTTP too."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from airspace.coords import m_per_deg_lon
from airspace.zones import ZoneSet
from api.interuss import QueryRequest, circle_outline, evaluate

from .api_support import Client, keys  # noqa: F401  (fixture)
from .helpers import ZONE_FILE

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc).timestamp()
BRIDGE = {"lat": 31.044, "lng": 121.4885}  # R-BR-MP: restricted, radius 350 m, 0-150 m AGL


@pytest.fixture(scope="module")
def zones() -> ZoneSet:
    return ZoneSet.from_geojson(json.loads(ZONE_FILE.read_text()))


def alt(value: float, ref: str = "W84") -> dict:
    return {"value": value, "reference": ref, "units": "M"}


def circle(center: dict, radius: float, lo: dict | None = None, hi: dict | None = None, **times) -> dict:
    vol = {"outline_circle": {"center": center, "radius": {"value": radius, "units": "M"}}}
    vol.update({k: v for k, v in (("altitude_lower", lo), ("altitude_upper", hi)) if v is not None})
    return {"volume": vol, **{k: {"value": v, "format": "RFC3339"} for k, v in times.items()}}


def ask(zones: ZoneSet, *filter_sets: dict, now: float = NOW) -> str:
    reply = evaluate(zones, QueryRequest.model_validate({"checks": [{"filter_sets": list(filter_sets)}]}), now)
    return reply.results[0].features_selection_outcome


def blocking(*volumes: dict) -> dict:
    return {"volumes4d": list(volumes), "resulting_operational_impact": "Block"}


def test_circle_over_the_restricted_zone_is_present(zones):
    assert ask(zones, blocking(circle(BRIDGE, 100, alt(20), alt(60)))) == "Present"
    assert ask(zones, blocking(circle({"lat": 31.20, "lng": 121.30}, 100, alt(20), alt(60)))) == "Absent"
    # a circle whose edge reaches into the zone: 350 m zone radius + 200 m circle radius > 500 m apart
    east = {"lat": 31.044, "lng": 121.4885 + 500 / m_per_deg_lon(31.044)}
    assert ask(zones, blocking(circle(east, 200))) == "Present"
    assert ask(zones, blocking(circle(east, 100))) == "Absent"


def test_altitude_references_are_converted_before_comparing(zones):
    # band 0-150 m AGL = 4-154 m AMSL = 14-164 m above the ellipsoid (ground 4 m, undulation 10 m)
    assert ask(zones, blocking(circle(BRIDGE, 50, alt(160), alt(170)))) == "Present"          # W84 150-160 AMSL
    assert ask(zones, blocking(circle(BRIDGE, 50, alt(160, "SFC"), alt(170, "SFC")))) == "Absent"  # 164-174 AMSL
    assert ask(zones, blocking(circle(BRIDGE, 50, alt(140, "SFC"), alt(149, "SFC")))) == "Present"
    assert ask(zones, blocking(circle(BRIDGE, 50, None, alt(5)))) == "Absent"   # below: up to -5 m AMSL
    assert ask(zones, blocking(circle(BRIDGE, 50, alt(150, "SFC"), None))) == "Present"  # open above


def test_polygon_outline(zones):
    square = {"outline_polygon": {"vertices": [{"lat": 31.043, "lng": 121.487}, {"lat": 31.043, "lng": 121.490},
                                                {"lat": 31.045, "lng": 121.490}, {"lat": 31.045, "lng": 121.487}]}}
    assert ask(zones, blocking({"volume": square})) == "Present"
    far = {"outline_polygon": {"vertices": [{"lat": 31.2, "lng": 121.2}, {"lat": 31.2, "lng": 121.21},
                                             {"lat": 31.21, "lng": 121.21}]}}
    assert ask(zones, blocking({"volume": far})) == "Absent"
    bowtie = {"outline_polygon": {"vertices": [{"lat": 31.0, "lng": 121.4}, {"lat": 31.01, "lng": 121.41},
                                                {"lat": 31.0, "lng": 121.41}, {"lat": 31.01, "lng": 121.4}]}}
    reply = evaluate(zones, QueryRequest.model_validate({"checks": [{"filter_sets": [{"volumes4d": [
        {"volume": bowtie}]}]}]}), NOW)
    assert reply.results[0].features_selection_outcome == "Error" and "outline_polygon" in reply.results[0].message


def test_time_ranges_against_zone_schedules():
    doc = json.loads(ZONE_FILE.read_text())
    [bridge] = [f for f in doc["features"] if f["properties"]["id"] == "R-BR-MP"]
    bridge["properties"]["schedule"] = {"tz": "Asia/Shanghai", "periods": [
        {"start": "2027-01-01T08:00:00", "end": "2027-01-01T18:00:00"}]}
    zs = ZoneSet.from_geojson({"type": "FeatureCollection", "features": [bridge]})
    v = circle(BRIDGE, 50, alt(20), alt(60))
    assert ask(zs, blocking(circle(BRIDGE, 50, alt(20), alt(60), time_start="2027-01-01T01:00:00Z",
                                   time_end="2027-01-01T02:00:00Z"))) == "Present"  # 09:00-10:00 local
    assert ask(zs, blocking(circle(BRIDGE, 50, alt(20), alt(60), time_start="2027-01-01T11:00:00Z",
                                   time_end="2027-01-01T12:00:00Z"))) == "Absent"   # 19:00-20:00 local
    assert ask(zs, blocking(v)) == "Present"  # open range from now reaches 2027-01-01
    assert ask(zs, {"after": "2027-01-02T00:00:00Z"}) == "Absent"
    assert ask(zs, {"after": "2026-12-31T00:00:00Z", "before": "2027-01-01T01:00:00Z"}) == "Present"


def test_position_impact_ed269_and_unsupported_filters(zones):
    assert ask(zones, {"position": {"location": BRIDGE, "altitude": alt(30)}, "resulting_operational_impact": "Block"}
               ) == "Present"
    far_out = {"lat": 31.0, "lng": 121.0}
    assert ask(zones, {"position": {"location": far_out}, "resulting_operational_impact": "BlockOrAdvise"}) == "Absent"
    assert ask(zones, {"position": {"location": BRIDGE}, "ed269": {"acceptable_restrictions": ["PROHIBITED"]}}
               ) == "Present"
    assert ask(zones, {"position": {"location": BRIDGE}, "ed269": {"acceptable_restrictions": ["NO_RESTRICTION"]}}
               ) == "Present"  # the operating area covers the bridge
    reply = evaluate(zones, QueryRequest.model_validate({"checks": [
        {"filter_sets": [{"restriction_source": "FAA_LAANC"}]},
        {"filter_sets": [blocking(circle(BRIDGE, 10))]},
        {"filter_sets": []}]}), NOW)
    assert [r.features_selection_outcome for r in reply.results] == ["UnsupportedFilter", "Present", "Absent"]
    assert "restriction_source" in reply.results[0].message


def test_circle_outline_radius_is_metres():
    import shapely
    c = circle_outline(31.0, 121.5, 1000)
    x0, y0, x1, y1 = c.bounds
    assert (y1 - y0) * 111_195 / 2 == pytest.approx(1000, rel=0.01)
    assert shapely.is_valid(c)


@pytest.mark.integration
def test_http_status_and_queries(api, keys):  # noqa: F811
    client = Client(api.url, keys.viewer)
    status = client.get("/geospatial_map/v1/status").json()
    assert status["status"] == "Ready" and status["api_name"] == "Geospatial Map Provider Automated Testing Interface"
    body = {"checks": [
        {"filter_sets": [{"volumes4d": [circle(BRIDGE, 100, alt(20), alt(60), time_start="2026-11-27T00:00:00Z",
                                               time_end="2030-01-01T00:00:00Z")],
                          "resulting_operational_impact": "Block"}]},
        {"filterSets": [{"volumes4d": [circle({"lat": 31.3, "lng": 121.1}, 100)]}]},
    ]}
    r = client.post("/geospatial_map/v1/map/queries", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"results": [{"features_selection_outcome": "Present"},
                                    {"features_selection_outcome": "Absent"}]}
    # a suspended zone is not in force
    admin = Client(api.url, keys.admin)
    assert admin.put("/v1/zones/R-BR-MP/state", json={"state": "suspended"}).status_code == 200
    assert client.post("/geospatial_map/v1/map/queries", json=body).json()["results"][0] == {
        "features_selection_outcome": "Absent"}
    bad = client.post("/geospatial_map/v1/map/queries", json={"checks": [{"filter_sets": [{"volumes4d": [
        circle(BRIDGE, -5)]}]}]})
    assert bad.status_code == 422
    assert Client(api.url, None).get("/geospatial_map/v1/status").status_code == 401


def test_an_instant_and_open_ended_before_filters():
    """A volume whose time_start equals time_end asks about one instant: a scheduled zone in force then is
    Present. `before` alone selects features in force at some time at or before it (a permanent zone always)."""
    doc = json.loads(ZONE_FILE.read_text())
    [bridge] = [f for f in doc["features"] if f["properties"]["id"] == "R-BR-MP"]
    bridge["properties"]["schedule"] = {"tz": "Asia/Shanghai", "periods": [
        {"start": "2027-01-01T08:00:00", "end": "2027-01-01T18:00:00"}]}
    zs = ZoneSet.from_geojson({"type": "FeatureCollection", "features": [bridge]})
    at = "2027-01-01T01:30:00Z"  # 09:30 local
    assert ask(zs, blocking(circle(BRIDGE, 50, alt(20), alt(60), time_start=at, time_end=at))) == "Present"
    night = "2027-01-01T12:00:00Z"  # 20:00 local
    assert ask(zs, blocking(circle(BRIDGE, 50, alt(20), alt(60), time_start=night, time_end=night))) == "Absent"
    assert ask(zs, {"after": at, "before": at}) == "Present"
    permanent = ZoneSet.from_geojson(json.loads(ZONE_FILE.read_text()))
    assert ask(permanent, {"before": "2020-01-01T00:00:00Z"}, now=NOW) == "Present"


def test_u_space_class_of_imported_ed269_zones():
    """The ED-269 filter `u_space_class` is matched against the zone's own `uSpaceClass` (a string or a list in
    real files), as imported from ED-269."""
    from pathlib import Path

    from airspace.formats import parse_zones
    sample = Path(__file__).parent / "data" / "zones" / "geo-awareness-che-1.json"  # see its PROVENANCE.md
    zs = parse_zones(json.loads(sample.read_text()))
    inside = {"position": {"location": {"lat": 46.77, "lng": 7.40}}}
    assert ask(zs, inside) == "Present"
    for cls, outcome in (("OPEN", "Present"), ("SPECIFIC", "Present"), ("CERTIFIED", "Present"),
                         ("EUROCONTROL", "Absent")):
        assert ask(zs, {**inside, "ed269": {"u_space_class": cls}}) == outcome, cls
    assert ask(zs, {**inside, "ed269": {"u_space_class": "SPECIFIC", "acceptable_restrictions": ["NO_RESTRICTION"]}}
               ) == "Absent"  # the SPECIFIC/CERTIFIED zone requires authorisation


def test_the_interuss_client_types_in_feet_are_answered_and_the_replies_parse(api, keys):  # noqa: F811
    """What the InterUSS test driver sends and reads (PyPI uas-standards): altitudes in feet are valid there, and
    every reply must parse with its types."""
    from implicitdict import ImplicitDict
    from uas_standards.interuss.automated_testing.geospatial_map.v1 import api as gm

    def volume(center: dict, radius_m: float, lo_ft: float, hi_ft: float) -> gm.Volume4D:
        return gm.Volume4D(volume=gm.Volume3D(
            outline_circle=gm.Circle(center=gm.LatLngPoint(**center), radius=gm.Radius(value=radius_m, units="M")),
            altitude_lower=gm.Altitude(value=lo_ft, reference="SFC", units="FT"),
            altitude_upper=gm.Altitude(value=hi_ft, reference="SFC", units="FT")))

    # R-BR-MP's band is 0-150 m AGL = 0-492 ft: 400-450 ft is inside, 500-600 ft above it
    request = gm.GeospatialMapQueryRequest(checks=[
        gm.GeospatialMapCheck(filter_sets=[gm.GeospatialFeatureFilterSet(
            volumes4d=[volume(BRIDGE, 100, 400, 450)], resulting_operational_impact="Block")]),
        gm.GeospatialMapCheck(filter_sets=[gm.GeospatialFeatureFilterSet(
            volumes4d=[volume(BRIDGE, 100, 500, 600)], resulting_operational_impact="Block")]),
    ])
    client = Client(api.url, keys.viewer)
    r = client.post("/geospatial_map/v1/map/queries", json=json.loads(json.dumps(request)))
    assert r.status_code == 200, r.text
    reply = ImplicitDict.parse(r.json(), gm.GeospatialMapQueryReply)
    assert [res.features_selection_outcome for res in reply.results] == [
        gm.GeospatialMapCheckResultFeaturesSelectionOutcome.Present,
        gm.GeospatialMapCheckResultFeaturesSelectionOutcome.Absent]
    status = ImplicitDict.parse(client.get("/geospatial_map/v1/status").json(), gm.StatusResponse)
    assert status.status == gm.StatusResponseStatus.Ready
    # a radius in feet (accepted too): 500 m east of the zone's centre (radius 350 m), 656 ft = 200 m reaches in,
    # 328 ft = 100 m does not (were feet read as metres, both would)
    east = {"lat": 31.044, "lng": 121.4885 + 500 / m_per_deg_lon(31.044)}
    for radius_ft, outcome in ((656, "Present"), (328, "Absent")):
        vol = circle(east, 1)
        vol["volume"]["outline_circle"]["radius"] = {"value": radius_ft, "units": "FT"}
        body = client.post("/geospatial_map/v1/map/queries", json={"checks": [{"filter_sets": [blocking(vol)]}]})
        assert body.status_code == 200, body.text
        ImplicitDict.parse(body.json(), gm.GeospatialMapQueryReply)
        assert body.json()["results"][0]["features_selection_outcome"] == outcome, radius_ft


def test_request_fields_follow_the_schema_as_uas_standards_types_it(zones):
    """Optional where uas-standards (the InterUSS client's types) has them optional or defaulted: `Time.format`
    (default RFC3339), a circle's center/radius and a check's filter_sets (those checks answer Error with the
    reason); times need an offset and go through parse_rfc3339."""
    from pydantic import ValidationError
    no_format = circle(BRIDGE, 100, alt(20), alt(60))
    no_format["time_start"] = {"value": "2026-11-27T00:00:00Z"}
    no_format["time_end"] = {"value": "2030-01-01T00:00:00.123456789Z"}
    assert ask(zones, blocking(no_format)) == "Present"
    no_centre = {"volume": {"outline_circle": {"radius": {"value": 100}}}}
    reply = evaluate(zones, QueryRequest.model_validate({"checks": [
        {"filter_sets": [blocking(no_centre)]}, {}, {"filter_sets": []}]}), NOW)
    assert [(r.features_selection_outcome, r.message) for r in reply.results] == [
        ("Error", "outline_circle needs both a center and a radius"),
        ("Error", "the check has no filter_sets: nothing to select features by"),
        ("Absent", None)]
    for naive in ("2026-11-27T00:00:00", "2026-11-27", 1_800_000_000):
        with pytest.raises(ValidationError, match="RFC 3339"):
            QueryRequest.model_validate({"checks": [{"filter_sets": [{"after": naive}]}]})
    assert ask(zones, {"before": "2026-11-27T08:00:00+08:00", "resulting_operational_impact": "Block"}) == "Present"


def test_a_body_built_with_uas_standards_types_and_one_without_format_are_answered(api, keys):  # noqa: F811
    """Every request field of uas-standards' geospatial_map types, serialized as its client does (json of the
    ImplicitDicts: defaults filled, enums and StringBasedDateTime as strings), is accepted; the same body with
    `Time.format` left out (it has a default) answers 200 with the same results."""
    from implicitdict import ImplicitDict, StringBasedDateTime
    from uas_standards.interuss.automated_testing.geospatial_map.v1 import api as gm

    def when(text: str) -> gm.Time:
        return gm.Time(value=StringBasedDateTime(text))

    bridge = gm.LatLngPoint(**BRIDGE)
    band = dict(altitude_lower=gm.Altitude(value=20, reference=gm.AltitudeReference.W84, units=gm.AltitudeUnits.M),
                altitude_upper=gm.Altitude(value=60, reference=gm.AltitudeReference.W84, units=gm.AltitudeUnits.M))
    square = gm.Polygon(vertices=[gm.LatLngPoint(lat=31.043, lng=121.487), gm.LatLngPoint(lat=31.043, lng=121.490),
                                  gm.LatLngPoint(lat=31.045, lng=121.490), gm.LatLngPoint(lat=31.045, lng=121.487)])
    request = gm.GeospatialMapQueryRequest(checks=[
        gm.GeospatialMapCheck(filter_sets=[gm.GeospatialFeatureFilterSet(
            volumes4d=[gm.Volume4D(volume=gm.Volume3D(outline_circle=gm.Circle(center=bridge, radius=gm.Radius(
                value=100)), **band), time_start=when("2026-11-27T00:00:00Z"), time_end=when("2030-01-01T00:00:00Z"))],
            after=StringBasedDateTime("2026-11-27T00:00:00Z"), before=StringBasedDateTime("2030-01-01T00:00:00Z"),
            resulting_operational_impact=gm.GeospatialFeatureFilterSetResultingOperationalImpact.Block,
            ed269=gm.ED269Filters(acceptable_restrictions=[gm.Restriction.PROHIBITED, gm.Restriction.REQ_AUTHORISATION]),
        )]),
        gm.GeospatialMapCheck(filter_sets=[gm.GeospatialFeatureFilterSet(
            volumes4d=[gm.Volume4D(volume=gm.Volume3D(outline_polygon=square))],
            position=gm.Position(location=bridge, altitude=gm.Altitude(
                value=50, reference=gm.AltitudeReference.SFC, units=gm.AltitudeUnits.M)),
            resulting_operational_impact=gm.GeospatialFeatureFilterSetResultingOperationalImpact.BlockOrAdvise)]),
        gm.GeospatialMapCheck(filter_sets=[gm.GeospatialFeatureFilterSet(
            position=gm.Position(location=gm.LatLngPoint(lat=31.3, lng=121.1)),
            ed269=gm.ED269Filters(u_space_class="OPEN"))]),
    ])
    body = json.loads(json.dumps(request))
    assert body["checks"][0]["filter_sets"][0]["volumes4d"][0]["time_start"]["format"] == "RFC3339"
    client = Client(api.url, keys.viewer)
    r = client.post("/geospatial_map/v1/map/queries", json=body)
    assert r.status_code == 200, r.text
    reply = ImplicitDict.parse(r.json(), gm.GeospatialMapQueryReply)
    outcomes = [res.features_selection_outcome.value for res in reply.results]
    assert outcomes == ["Present", "Present", "Absent"]
    for key in ("time_start", "time_end"):
        del body["checks"][0]["filter_sets"][0]["volumes4d"][0][key]["format"]
    r = client.post("/geospatial_map/v1/map/queries", json=body)
    assert r.status_code == 200, r.text
    assert [res["features_selection_outcome"] for res in r.json()["results"]] == outcomes
