"""ED-269, ED-318 and internal GeoJSON: the real samples import and export losslessly, the values
mean what the standard says, and invalid files are refused naming the feature and the field."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pytest
from shapely.geometry import Point

from airspace.formats import detect_format, export_zones, parse_zones
from airspace.formats.ed269 import schedule_of
from airspace.zones import ZoneFormatError, ZoneSet
from bench.airspace_zones import make_zones

DATA = Path(__file__).parent / "data" / "zones"  # provenance: data/zones/PROVENANCE.md
SAMPLES = {"cis_source_sample_ed269.json": "ed269", "geo-awareness-che-1.json": "ed269",
           "cis_source_sample_ed318.json": "ed318"}
ZONE_FILE = Path(__file__).parents[1] / "airspace/data/pujiang_wujing.geojson"


def load(name: str):
    return json.loads((DATA / name).read_text())


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def json_trip(obj):
    return json.loads(json.dumps(obj))


@pytest.mark.parametrize("name, fmt", SAMPLES.items())
def test_samples_round_trip_losslessly(name, fmt):
    raw = load(name)
    assert detect_format(raw) == fmt
    zs = parse_zones(raw)
    exported = json_trip(export_zones(zs, fmt))
    assert exported == raw  # the published document, member for member
    again = parse_zones(exported, fmt)
    assert again.zones == zs.zones
    internal = json_trip(zs.to_geojson())  # and through the store's format
    assert ZoneSet.from_geojson(internal).zones == zs.zones
    assert export_zones(ZoneSet.from_geojson(internal), fmt) == exported


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("via", ["ed269", "ed318", "geojson"])
def test_samples_survive_every_format(name, via):
    zs = parse_zones(load(name))
    again = parse_zones(json_trip(export_zones(zs, via)), via)
    assert again.zones == zs.zones


@pytest.mark.parametrize("via", ["ed269", "ed318", "geojson"])
def test_internal_zones_survive_every_format(via):
    for zs in (ZoneSet.from_geojson(json.loads(ZONE_FILE.read_text())), make_zones(80, seed=4)):
        again = parse_zones(json_trip(export_zones(zs, via)), via)
        assert again.zones == zs.zones


def test_ed269_values_mean_what_the_standard_says():
    zs = parse_zones(load("geo-awareness-che-1.json"))
    concert = zs.get("Montreux Concert Area")
    assert (concert.kind, concert.restriction) == ("restricted", "PROHIBITED")
    assert (concert.lower_m, concert.alt_ref, concert.upper_m, concert.upper_ref) == (0.0, "AGL", 6259.0, "AMSL")
    # Circle center is [lon, lat]; the 3 km circle is wholly inside its polygon, and not much more
    centre = Point(6.913146, 46.430758)
    assert concert.geometry.covers(centre)
    phi = math.radians(46.430758)  # east-west metres per degree on the WGS84 ellipsoid
    deg_per_m_lon = 1 / (math.pi / 180 * 6_378_137 * math.cos(phi) / math.sqrt(1 - 0.00669438 * math.sin(phi) ** 2))
    assert concert.geometry.covers(Point(centre.x + 2995 * deg_per_m_lon, centre.y))
    assert concert.geometry.covers(Point(centre.x - 2995 * deg_per_m_lon, centre.y))
    assert not concert.geometry.covers(Point(centre.x + 3030 * deg_per_m_lon, centre.y))
    # SAT/SUN 17:00-23:59:59 UTC within 2022-06-15..2023-06-15
    sched = concert.schedule
    assert sched.tz == "UTC"
    assert sched.active([utc("2022-06-18T17:00:00"), utc("2022-06-18T16:59:59"), utc("2022-06-20T18:00:00"),
                         utc("2023-06-17T18:00:00")]).tolist() == [True, False, False, False]
    reich = [z for z in zs if z.id.startswith("Flugplatz Reichenbach")]
    assert [(z.id, z.lower_m) for z in reich] == [("Flugplatz Reichenbach#1", 0.0), ("Flugplatz Reichenbach#2", 50.0),
                                                  ("Flugplatz Reichenbach#3", 100.0)]
    assert reich[0].schedule.active([utc("2022-07-01T03:00:00"), utc("2024-01-01T00:00:00")]).tolist() == [True, False]
    gantrisch = [z for z in zs if z.id.startswith("Gantrisch")]
    assert [z.id for z in gantrisch] == ["Gantrisch Nature Park", "Gantrisch Nature Park@2"]
    assert gantrisch[0].upper_m == pytest.approx(76.2) and gantrisch[0].uom == "FT"
    assert [z.restriction for z in gantrisch] == ["NO_RESTRICTION", "REQ_AUTHORISATION"]
    assert zs.get("Lausanne Airport#1").schedule is None
    lsxx = parse_zones(load("cis_source_sample_ed269.json")).get("LSXX")
    assert lsxx.upper_m == math.inf and lsxx.lower_m == 0.0 and lsxx.schedule is None


def test_ed318_values():
    zs = parse_zones(load("cis_source_sample_ed318.json"))
    assert [z.id for z in zs] == ["LSZB003", "BLns058", "LSTB002"]
    z = zs.get("LSZB003")
    assert (z.name, z.restriction, z.kind, z.lower_m, z.upper_m, z.alt_ref) == (
        "LSZB Bern-Belp 2", "REQ_AUTHORISATION", "authorization", 60.0, 99999.0, "AGL")


def test_edited_zone_exports_its_new_values_and_keeps_the_rest():
    raw = load("geo-awareness-che-1.json")
    zs = parse_zones(raw)
    j = zs.position("MONTREUX Wildlife Preserve")
    edited = ZoneSet([dataclasses.replace(z, restriction="PROHIBITED", upper_m=90.0) if i == j else z
                      for i, z in enumerate(zs)], meta=zs.meta)
    out = export_zones(edited, "ed269")
    feat = out["features"][3]
    assert feat["restriction"] == "PROHIBITED" and feat["geometry"][0]["upperLimit"] == 90
    assert feat["zoneAuthority"] == raw["features"][3]["zoneAuthority"]
    assert out["features"][0] == raw["features"][0]
    again = parse_zones(json_trip(out))
    assert again.get("MONTREUX Wildlife Preserve").restriction == "PROHIBITED"


def test_foreign_zones_get_complete_documents():
    zs = ZoneSet.from_geojson(json.loads(ZONE_FILE.read_text()))
    ed269 = export_zones(zs, "ed269")
    market = next(f for f in ed269["UASZoneList"] if f["identifier"] == "R-WJ-MKT")
    assert market["restriction"] == "PROHIBITED"
    assert market["applicability"] == [{"permanent": "NO", "schedule": [
        {"day": ["SAT", "SUN"], "startTime": "06:00", "endTime": "14:00"}]}]
    assert schedule_of(market) == zs.get("R-WJ-MKT").schedule
    vol = market["geometry"][0]
    assert (vol["lowerLimit"], vol["upperLimit"], vol["lowerVerticalReference"], vol["uomDimensions"]) == (
        0, 120, "AGL", "M")
    ed318 = export_zones(zs, "ed318")
    f = next(f for f in ed318["features"] if f["id"] == "A-PJ-RES")
    assert f["properties"]["type"] == "REQ_AUTHORIZATION" and f["geometry"]["layer"]["upper"] == 120


def ed269_case(mutate):
    raw = load("geo-awareness-che-1.json")
    mutate(raw["features"])
    return raw


def ed318_case(mutate):
    raw = load("cis_source_sample_ed318.json")
    mutate(raw["features"])
    return raw


def put(path, value):
    """Set features[i] ... path to value."""
    def mutate(feats):
        obj = feats
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value
    return mutate


def drop(path):
    def mutate(feats):
        obj = feats
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]
    return mutate


INVALID = [
    (ed269_case, put([0, "restriction"], "FORBIDDEN"), 0, "restriction", "FORBIDDEN"),
    (ed269_case, drop([2, "identifier"]), 2, "identifier", "non-empty"),
    (ed269_case, put([1, "geometry", 2, "uomDimensions"], "YD"), 1, "geometry[2].uomDimensions", "YD"),
    (ed269_case, put([1, "geometry", 0, "lowerVerticalReference"], "SFC"), 1,
     "geometry[0].lowerVerticalReference", "SFC"),
    (ed269_case, put([3, "geometry", 0, "upperLimit"], "high"), 3, "geometry[0].upperLimit", "high"),
    (ed269_case, put([3, "geometry", 0, "lowerLimit"], 500), 3, "geometry[0].upperLimit", "exceed"),
    (ed269_case, put([0, "geometry", 0, "horizontalProjection", "center"], [46.43, 206.9]), 0,
     "geometry[0].horizontalProjection.center", "[lon, lat]"),
    (ed269_case, put([0, "geometry", 0, "horizontalProjection", "radius"], -3), 0,
     "geometry[0].horizontalProjection.radius", "positive"),
    (ed269_case, put([0, "geometry", 0, "horizontalProjection", "type"], "Ellipse"), 0,
     "geometry[0].horizontalProjection.type", "Ellipse"),
    (ed269_case, put([2, "geometry", 0, "horizontalProjection", "coordinates"], [[[6.6, 46.5], [6.7, 46.5]]]), 2,
     "geometry[0].horizontalProjection", "unreadable"),
    (ed269_case, put([0, "applicability", 0, "schedule", 0, "startTime"], "25:00:00.00Z"), 0,
     "applicability[0].schedule[0].startTime", "25:00"),
    (ed269_case, put([0, "applicability", 0, "schedule", 0, "day"], ["FUNDAY"]), 0,
     "applicability[0].schedule[0].day", "FUNDAY"),
    (ed269_case, put([0, "applicability", 0, "endDateTime"], "2021-01-01T00:00:00Z"), 0,
     "applicability[0].endDateTime", "after"),
    (ed269_case, put([0, "applicability", 0, "permanent"], "SOMETIMES"), 0, "applicability[0].permanent",
     "SOMETIMES"),
    (ed269_case, put([4, "geometry"], []), 4, "geometry", "non-empty"),
    (ed318_case, drop([1, "geometry", "layer"]), 1, "geometry.layer", "layer"),
    (ed318_case, put([0, "properties", "type"], "NO_FLY"), 0, "properties.type", "NO_FLY"),
    (ed318_case, put([2, "geometry", "layer", "uom"], "km"), 2, "geometry.layer.uom", "km"),
    (ed318_case, put([2, "geometry", "layer", "lowerReference"], "GND"), 2, "geometry.layer.lowerReference",
     "GND"),
    (ed318_case, put([0, "properties", "limitedApplicability"], [{"startDateTime": "soon"}]), 0,
     "properties.limitedApplicability[0].startDateTime", "soon"),
    (ed318_case, put([1, "geometry", "type"], "LineString"), 1, "geometry", "LineString"),
    (ed318_case, put([1, "properties", "name"], 42), 1, "properties.name", "42"),
]


@pytest.mark.parametrize("case, mutate, index, field, words", INVALID)
def test_invalid_files_name_feature_and_field(case, mutate, index, field, words):
    doc = case(mutate)
    with pytest.raises(ZoneFormatError) as info:
        parse_zones(doc)
    err = info.value
    assert (err.index, err.field) == (index, field), str(err)
    assert f"feature {index}" in str(err) and repr(field) in str(err) and words in str(err)
    feats = doc["features"]
    ident = feats[index].get("identifier") if "identifier" in feats[index] else \
        (feats[index].get("properties") or {}).get("identifier")
    if ident is not None:
        assert err.zone_id == ident and repr(ident) in str(err)


@pytest.mark.parametrize("obj", [42, "zones", {"type": "Topology"}, {"UASZoneList": {"a": 1}}])
def test_unknown_documents_are_refused(obj):
    with pytest.raises(ZoneFormatError):
        parse_zones(obj)


def test_explicit_format_and_bare_list():
    raw = load("geo-awareness-che-1.json")["features"][:2]
    zs = parse_zones(copy.deepcopy(raw), "ed269")
    assert len(zs) == 4 and export_zones(zs, "ed269") == raw
    with pytest.raises(ValueError, match="unknown zone format"):
        parse_zones(raw, "kml")
    with pytest.raises(ZoneFormatError):
        parse_zones(load("cis_source_sample_ed318.json"), "ed269")


def test_ed269_circle_radius_is_in_the_volumes_unit():
    """`uomDimensions` is the unit of every dimension of the volume, the Circle radius included (as InterUSS's
    mock_uss reads it): a 1000 ft circle is 304.8 m wide in radius, and round-trips unchanged."""
    doc = load("geo-awareness-che-1.json")
    concert = next(f for f in doc["features"] if f["identifier"] == "Montreux Concert Area")
    vol = concert["geometry"][0]
    vol.update(uomDimensions="FT", lowerLimit=0, upperLimit=400, upperVerticalReference="AGL")
    vol["horizontalProjection"]["radius"] = 1000
    zs = parse_zones({"UASZoneList": [concert]}, "ed269")
    z = zs.get("Montreux Concert Area")
    centre = Point(6.913146, 46.430758)
    phi = math.radians(centre.y)
    deg_per_m_lon = 1 / (math.pi / 180 * 6_378_137 * math.cos(phi) / math.sqrt(1 - 0.00669438 * math.sin(phi) ** 2))
    assert z.geometry.covers(Point(centre.x + 303 * deg_per_m_lon, centre.y))
    assert not z.geometry.covers(Point(centre.x + 320 * deg_per_m_lon, centre.y))
    assert z.upper_m == pytest.approx(121.92)
    assert export_zones(zs, "ed269")["UASZoneList"][0]["geometry"][0] == vol
