"""Zone file validation, GeoJSON round trip and vectorized classification."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from shapely.geometry import Point

from airspace import ZONE_KINDS, VerticalModel, ZoneFormatError, ZoneSet

ZONEFILE = Path(__file__).parents[1] / "airspace/data/pujiang_wujing.geojson"
RAW = json.loads(ZONEFILE.read_text())
ZONES = ZoneSet.from_geojson(RAW)


def test_real_file_loads():
    assert len(ZONES) == len(RAW["features"]) == 16
    assert [z.id for z in ZONES][:3] == ["PWZ", "C1", "C2"]
    assert {z.kind for z in ZONES} == set(ZONE_KINDS)
    mp = ZONES.get("R-BR-MP")
    assert (mp.kind, mp.lower_m, mp.upper_m, mp.alt_ref) == ("restricted", 0.0, 150.0, "AGL")
    assert mp.properties["radius_m"] == 350
    assert ZONES.get("nope") is None


def broken(index: int, mutate) -> dict:
    obj = copy.deepcopy(RAW)
    mutate(obj["features"][index])
    return obj


def set_prop(key, value):
    return lambda f: f["properties"].__setitem__(key, value)


def set_geometry(geometry):
    return lambda f: f.__setitem__("geometry", geometry)


def drop_ids(f):
    del f["properties"]["id"]
    del f["id"]


BOWTIE = {"type": "Polygon", "coordinates": [[[121.45, 31.02], [121.46, 31.03], [121.46, 31.02],
                                              [121.45, 31.03], [121.45, 31.02]]]}


@pytest.mark.parametrize("index, mutate, field, words", [
    (2, set_prop("kind", "nofly"), "kind", "nofly"),
    (3, set_prop("lower_m", 90), "upper_m", "lower_m"),
    (3, set_prop("lower_m", 120), "upper_m", "lower_m"),
    (4, set_prop("upper_m", float("nan")), "upper_m", "finite"),
    (4, set_prop("lower_m", "0"), "lower_m", "number"),
    (4, set_prop("upper_m", True), "upper_m", "number"),
    (5, set_prop("alt_ref", "MSL"), "alt_ref", "MSL"),
    (6, drop_ids, "id", "non-empty"),
    (7, set_prop("id", "V-WJ-S"), "id", "duplicate of feature 6"),
    (8, set_geometry(BOWTIE), "geometry", "Self-intersection"),
    (8, set_geometry({"type": "Point", "coordinates": [121.5, 31.05]}), "geometry", "Point"),
    (8, set_geometry({"type": "Polygon", "coordinates": [[[121.5, 31.0], [121.6, 31.0]]]}),
     "geometry", "unreadable"),
    (9, set_geometry({"type": "Polygon", "coordinates": [[[121.5, 31.0], [121.6, 31.0],
                                                          [121.6, 95.0], [121.5, 31.0]]]}),
     "geometry", "lat 95"),
    (9, set_geometry({"type": "Polygon", "coordinates": [[[181.5, 31.0], [181.6, 31.0],
                                                          [181.6, 31.1], [181.5, 31.0]]]}),
     "geometry", "lon 181"),
    (10, lambda f: f.__setitem__("properties", None), "properties", "object"),
])
def test_validation_names_feature_and_field(index, mutate, field, words):
    with pytest.raises(ZoneFormatError) as info:
        ZoneSet.from_geojson(broken(index, mutate))
    err, zid = info.value, RAW["features"][index]["properties"]["id"]
    assert (err.index, err.field) == (index, field)
    assert f"feature {index}" in str(err) and repr(field) in str(err) and words in str(err)
    if field not in ("id", "properties"):
        assert err.zone_id == zid and zid in str(err)


@pytest.mark.parametrize("obj", [[], {"type": "Feature"}, {"type": "FeatureCollection"}])
def test_not_a_feature_collection(obj):
    with pytest.raises(ZoneFormatError, match="FeatureCollection") as info:
        ZoneSet.from_geojson(obj)
    assert info.value.index is None


def test_geojson_round_trip_keeps_properties_and_metadata():
    out = ZONES.to_geojson()
    again = ZoneSet.from_geojson(json.loads(json.dumps(out)))
    assert again.zones == ZONES.zones
    assert out["note"] == RAW["note"] and out["type"] == "FeatureCollection"
    assert [f["properties"] for f in out["features"]] == [f["properties"] for f in RAW["features"]]
    assert out["features"][2]["properties"]["centerline"][0] == [121.458, 31.056]


def square(x: float, y: float) -> list:
    return [[[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]]


def test_multipolygon_zone_classifies_both_parts():
    obj = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "MultiPolygon",
                                        "coordinates": [square(121.40, 31.0), square(121.50, 31.0)]},
        "properties": {"id": "M", "name": "two parts", "kind": "restricted", "lower_m": 0,
                       "upper_m": 50, "alt_ref": "AMSL"}}]}
    zs = ZoneSet.from_geojson(obj)
    horizontal, inside = zs.classify([121.405, 121.505, 121.45], [31.005, 31.005, 31.005],
                                     [10, 60, 10])
    assert horizontal[:, 0].tolist() == [True, True, False]
    assert inside[:, 0].tolist() == [True, False, False]


def test_vertical_model_converts_zone_bands():
    zs = ZoneSet.from_geojson(RAW, vertical=VerticalModel(ground_amsl_m=50.0))
    pwz = [z.id for z in zs].index("PWZ")
    assert (zs.lower_amsl[pwz], zs.upper_amsl[pwz]) == (50.0, 170.0)
    _, inside = zs.classify([121.49], [31.07], [160.0])
    assert inside[0, pwz] and not ZONES.classify([121.49], [31.07], [160.0])[1][0, pwz]


def test_band_edges_are_inside():
    j = [z.id for z in ZONES].index("R-BR-MP")  # 0-150 m AGL -> 4-154 m AMSL
    alts = np.array([3.999, 4.0, 80.0, 154.0, 154.001])
    horizontal, inside = ZONES.classify(np.full(5, 121.4885), np.full(5, 31.044), alts)
    assert horizontal[:, j].all()
    assert inside[:, j].tolist() == [False, True, True, True, False]


def test_classify_shapes():
    h, i = ZONES.classify(np.array([]), np.array([]), np.array([]))
    assert h.shape == i.shape == (0, 16) and h.dtype == bool
    with pytest.raises(ValueError, match="lengths differ"):
        ZONES.classify([121.5, 121.5], [31.0], [0.0])


VERTICES = [xy for z in ZONES for xy in z.geometry.exterior.coords]
points = st.one_of(
    st.tuples(st.floats(121.43, 121.555), st.floats(31.005, 31.105)),  # around the whole zone
    st.tuples(st.floats(121.482, 121.495), st.floats(31.039, 31.049)),  # around R-BR-MP
    st.sampled_from(VERTICES),                                          # exactly on boundaries
)


@settings(max_examples=60, deadline=None)
@given(pts=st.lists(points, min_size=1, max_size=40),
       alts=st.lists(st.floats(-20, 400), min_size=40, max_size=40))
def test_classify_matches_shapely_scalar(pts, alts):
    lon, lat = np.array(pts).T
    alt = np.array(alts[:len(pts)])
    horizontal, inside = ZONES.classify(lon, lat, alt)
    vm = ZONES.vertical
    for j, zone in enumerate(ZONES):
        lo, hi = vm.to_amsl(zone.lower_m, zone.alt_ref), vm.to_amsl(zone.upper_m, zone.alt_ref)
        for k in range(len(pts)):
            expect_h = zone.geometry.covers(Point(lon[k], lat[k]))  # boundary counts as inside
            assert horizontal[k, j] == expect_h
            assert inside[k, j] == (expect_h and lo <= alt[k] <= hi)


# --- the zone model: restriction, schedule, UA classes, references, units ------------------------

def feature(**props) -> dict:
    base = {"id": "X", "name": "x", "kind": "restricted", "lower_m": 0, "upper_m": 100, "alt_ref": "AGL"}
    return {"type": "Feature", "properties": {**base, **props}, "geometry": {"type": "Polygon",
                                                                             "coordinates": square(121.40, 31.0)}}


def one_zone(**props) -> ZoneSet:
    return ZoneSet.from_geojson({"type": "FeatureCollection", "features": [feature(**props)]})


def test_restriction_defaults_follow_the_kind():
    assert {z.kind: z.restriction for z in ZONES} == {
        "area": "NO_RESTRICTION", "corridor": "CONDITIONAL", "vertiport": "CONDITIONAL",
        "restricted": "PROHIBITED", "authorization": "REQ_AUTHORISATION", "conditional": "CONDITIONAL"}
    assert one_zone(kind="corridor", restriction="REQ_AUTHORISATION").zones[0].restriction == "REQ_AUTHORISATION"


def test_weekly_restricted_zone_applies_only_in_its_window():
    j = ZONES.position("R-WJ-MKT")
    sat_9 = 1_795_827_600.0  # 2026-11-28T09:00:00+08:00, a Saturday
    mon_9 = sat_9 + 2 * 86400
    horizontal, inside = ZONES.classify([121.444] * 2, [31.043] * 2, [40.0] * 2, t=[sat_9, mon_9])
    assert horizontal[:, j].all() and inside[:, j].tolist() == [True, False]
    assert j in ZONES.zones_at(121.444, 31.043, 40.0, sat_9) and j not in ZONES.zones_at(121.444, 31.043, 40.0, mon_9)
    assert j in ZONES.zones_at(121.444, 31.043, 40.0)  # no time: schedules not considered


def test_ua_classes_limit_where_a_zone_applies():
    zs = one_zone(ua_classes=["medium", "large"])
    assert zs.zones[0].ua_classes == frozenset({"medium", "large"})
    assert zs.zones_at(121.405, 31.005, 10.0, ua_class="micro") == []
    assert zs.zones_at(121.405, 31.005, 10.0, ua_class="large") == [0]
    assert zs.zones_at(121.405, 31.005, 10.0) == [0]
    assert zs.classify([121.405], [31.005], [10.0], ua_class="micro")[1].tolist() == [[False]]


def test_unlimited_upper_limit_feet_and_mixed_references():
    zs = one_zone(upper_m=None, uom="FT")
    z = zs.zones[0]
    assert z.upper_m == float("inf") and z.uom == "FT" and zs.upper_amsl[0] == float("inf")
    assert zs.zones_at(121.405, 31.005, 9000.0) == [0]
    mixed = one_zone(lower_m=30, alt_ref="AGL", upper_m=100, upper_ref="AMSL")
    assert (mixed.lower_amsl[0], mixed.upper_amsl[0]) == (34.0, 100.0)
    again = ZoneSet.from_geojson(json.loads(json.dumps(mixed.to_geojson())))
    assert again.zones == mixed.zones
    assert json.loads(json.dumps(zs.to_geojson()))["features"][0]["properties"]["upper_m"] is None


def test_model_changes_are_written_back_by_to_geojson():
    import dataclasses
    from airspace.schedule import Schedule
    z = ZONES.get("R-BR-MP")
    sched = Schedule.from_dict({"periods": [{"windows": [{"days": ["MON"], "start": "22:00", "end": "02:00"}]}]})
    changed = dataclasses.replace(z, restriction="REQ_AUTHORISATION", schedule=sched,
                                  ua_classes=frozenset({"small"}), upper_m=200.0)
    props = ZoneSet([changed]).to_geojson()["features"][0]["properties"]
    assert props["restriction"] == "REQ_AUTHORISATION" and props["upper_m"] == 200.0
    assert props["ua_classes"] == ["small"] and Schedule.from_dict(props["schedule"]) == sched
    again = ZoneSet.from_geojson(ZoneSet([changed]).to_geojson()).zones[0]
    assert (again.restriction, again.schedule, again.ua_classes, again.upper_m) == (
        "REQ_AUTHORISATION", sched, frozenset({"small"}), 200.0)


@pytest.mark.parametrize("props, field, words", [
    ({"restriction": "MAYBE"}, "restriction", "MAYBE"),
    ({"ua_classes": ["tiny"]}, "ua_classes", "tiny"),
    ({"uom": "yd"}, "uom", "yd"),
    ({"upper_ref": "SFC"}, "upper_ref", "SFC"),
    ({"schedule": {"periods": [{"windows": [{"days": ["MON"], "start": "7am", "end": "09:00"}]}]}},
     "schedule.periods[0].windows[0].start", "7am"),
    ({"schedule": {"periods": [{"start": "2026-13-01"}]}}, "schedule.periods[0].start", "2026-13-01"),
    ({"lower_m": None}, "lower_m", "finite"),
])
def test_model_fields_are_validated(props, field, words):
    with pytest.raises(ZoneFormatError) as info:
        one_zone(**props)
    assert info.value.field == field and words in str(info.value) and "feature 0" in str(info.value)


def test_masks_say_what_each_zone_is_to_a_flight():
    ids = np.array([z.id for z in ZONES])
    assert ids[ZONES.prohibited].tolist() == ["R-WJ-IND", "R-BR-MP", "R-BR-N", "R-WJ-MKT"]
    assert set(ids[ZONES.needs_clearance]) == {"C1", "C2", "C3", "V-WJ-N", "V-WJ-C", "V-WJ-S", "V-PJ-N", "V-PJ-C",
                                               "V-PJ-S", "A-PJ-RES", "CND-PJ-SCH"}
    assert ids[ZONES.ceiling].tolist() == ["PWZ", "C1", "C2", "C3"]
    assert ids[ZONES.corridor].tolist() == ["C1", "C2", "C3"]
    assert ids[ZONES.scheduled].tolist() == ["R-WJ-MKT"]
    # every corridor needs a clearance, whatever its restriction
    assert one_zone(kind="corridor", restriction="NO_RESTRICTION").needs_clearance.tolist() == [True]


def test_in_force_is_schedule_and_suspension():
    j, c2 = ZONES.position("R-WJ-MKT"), ZONES.position("C2")
    sat_9 = 1_795_827_600.0  # 2026-11-28T09:00:00+08:00, a Saturday: R-WJ-MKT's market window
    mon_9 = sat_9 + 2 * 86400
    states = {"C2": {"state": "suspended", "reason": "wind"}, "C1": {"state": "active"}, "gone": {"state": "suspended"}}
    assert ZONES.suspended(states).nonzero()[0].tolist() == [c2] and not ZONES.suspended(None).any()
    now = ZONES.in_force(sat_9, states)
    assert now.shape == (len(ZONES),) and now[j] and not now[c2] and now.sum() == len(ZONES) - 1
    both = ZONES.in_force(np.array([sat_9, mon_9]))
    assert both.shape == (2, len(ZONES)) and both[:, j].tolist() == [True, False] and both[:, c2].all()
    pairs = ZONES.in_force(np.array([sat_9, mon_9, mon_9]), states, zones=np.array([j, j, c2]))
    assert pairs.tolist() == [True, False, False]
    assert ZONES.scheduled_intervals(c2, 0.0, 10.0) == [(0.0, 10.0)]
    assert ZONES.scheduled_intervals(j, mon_9, mon_9 + 3600) == []
