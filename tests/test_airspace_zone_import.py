"""Zone import feature by feature on published data nobody here wrote: what the standard allows imports, what
can be repaired unambiguously is repaired, everything else is skipped alone, and the report lists each
problem (feature index, id, field, problem, action). Outline repairs: unit cases and random invalid rings."""
from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings, strategies as st
from shapely.geometry import Point, shape

from airspace.formats import (ImportRefused, export_zones, import_zones, kept_for_skipped, parse_zones,
                              report)
from airspace.zones import ZoneFormatError

DATA = Path(__file__).parent / "data" / "zones"  # provenance: data/zones/PROVENANCE.md
PUBLIC = Path(__file__).parent / "data" / "zones_public" / "eurocontrol_geofencing_prototype"  # PROVENANCE.md there
DERIVED = DATA / "ed318_offsets_and_bowtie.json"
SAMPLES = ["cis_source_sample_ed269.json", "geo-awareness-che-1.json", "cis_source_sample_ed318.json"]
ZONE_FILE = Path(__file__).parents[1] / "airspace/data/pujiang_wujing.geojson"


def load(path: Path):
    return json.loads(path.read_text())


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def problems(result) -> list[tuple]:
    return [(p.index, p.id, p.field, p.action) for p in result.problems]


@pytest.mark.parametrize("path", [DATA / n for n in SAMPLES] + [ZONE_FILE])
def test_files_that_imported_before_import_the_same_with_nothing_to_report(path):
    raw = load(path)
    result = import_zones(raw)
    assert result.problems == () and result.zones.zones == parse_zones(raw).zones
    assert report(result)["repaired"] == report(result)["skipped"] == 0


def test_eurocontrol_uas_zones_every_zone_imports_and_each_deviation_is_reported():
    """The prototype's provisioned zones: a `uas_zones` wrapper, `applicability` an object (ED-269 and the
    prototype's own schema: a list), each period permanent YES with an end date in 2021 and a schedule. The object
    is read as a list of one and the periods as permanent (the dates are not applied); both are reported."""
    raw = load(PUBLIC / "uas_zones.json")
    result = import_zones(raw)
    assert [z.id for z in result.zones] == ["28525c8"] + [f"{k}#{v}" for k in ("c7b19b1", "593f5c5")
                                                           for v in range(1, 6)]
    assert problems(result) == [(i, ident, field, "repaired") for i, ident in enumerate(["28525c8", "c7b19b1",
                                                                                         "593f5c5"])
                                for field in ("applicability", "applicability[0].permanent")]
    assert "endDateTime" in result.problems[1].problem and "not applied" in result.problems[1].details["repair"]
    assert all(z.schedule is None for z in result.zones)  # permanent: in force at all times
    # Brussels: 4 holes, the shell and holes 0-1 counter-clockwise, holes 2-3 clockwise: valid, kept as published
    brussels = result.zones.get("28525c8")
    published = shape(raw["uas_zones"][0]["geometry"][0]["horizontalProjection"])
    assert brussels.geometry.equals_exact(published, 0.0) and len(brussels.geometry.interiors) == 4
    assert [r.is_ccw for r in (brussels.geometry.exterior, *brussels.geometry.interiors)] == [True, True, True,
                                                                                            False, False]
    for ring in brussels.geometry.interiors:  # a hole is outside the zone whatever its direction
        inside_hole = shapely.point_on_surface(shapely.Polygon(ring))
        assert not brussels.geometry.covers(inside_hole)
    assert (brussels.lower_m, brussels.upper_m, brussels.alt_ref) == (0.0, 100000.0, "AMSL")
    # Tervuren: five stacked circles (an inverted wedding cake), each its own band and radius
    tervuren = [z for z in result.zones if z.id.startswith("c7b19b1#")]
    assert [(z.lower_m, z.upper_m) for z in tervuren] == [(500.0 + 500 * k, 1000.0 + 500 * k) for k in range(5)]
    areas = [z.geometry.area for z in tervuren]
    assert areas == sorted(areas)
    centre = Point(raw["uas_zones"][1]["geometry"][0]["horizontalProjection"]["center"])
    assert all(z.geometry.covers(centre) for z in tervuren)
    assert export_zones(result.zones, "ed269") == raw  # the wrapper and every member come back as published
    with pytest.raises(ImportRefused) as err:
        import_zones(raw, strict=True)
    assert (err.value.index, err.value.field) == (0, "applicability") and len(err.value.problems) == 6


def test_eurocontrol_uas_zones_offset_times_and_day_string_when_not_permanent():
    """The same zones with `permanent` NO: the schedule applies. Its times carry an offset ('12:00:00+00:00':
    UTC), `day` is a string ('MON', read as ['MON'], reported), the dates bound it (2020 only)."""
    raw = load(PUBLIC / "uas_zones.json")
    for zone in raw["uas_zones"]:
        zone["applicability"]["permanent"] = "NO"
    result = import_zones(raw)
    assert [p.field for p in result.problems if p.index == 0] == ["applicability", "applicability[0].schedule[0].day"]
    sched = result.zones.get("28525c8").schedule
    assert sched.tz == "UTC"
    monday = "2020-06-01"
    assert sched.active([utc(f"{monday}T11:59:59"), utc(f"{monday}T12:00:00"), utc(f"{monday}T17:59:59.5"),
                         utc(f"{monday}T18:00:00"), utc("2020-06-02T13:00:00"), utc("2021-01-04T13:00:00")]
                        ).tolist() == [False, True, True, False, False, False]
    assert export_zones(result.zones, "ed269") == raw


@pytest.mark.parametrize("name", ["UASZoneVersion-example.json", "UASZoneVersion-example-extended.json"])
def test_eurocontrol_version_examples_leap_second_skips_the_zone(name):
    """`2018-12-31T15:59:60.00Z`: second 60 is a leap second, which only 23:59:60 UTC on a day one was inserted
    can be (none was at the end of 2018). The zone is skipped, alone, and reported; with a real second it imports,
    its `16:00:00.00Z` windows in UTC."""
    raw = load(PUBLIC / name)
    result = import_zones(raw)
    assert len(result.zones) == 0 and problems(result) == [(0, "NFZ6546", "applicability[0].startDateTime",
                                                            "skipped")]
    assert "leap second" in result.problems[0].problem and "15:59:60" in result.problems[0].problem
    assert report(result) == {"format": "ed269", "features": 1, "zones": 0, "repaired": 0, "skipped": 1,
                              "problems": [result.problems[0].to_dict()]}
    fixed = json.loads(json.dumps(raw).replace(":59:60.00Z", ":59:59.00Z"))
    ok = import_zones(fixed)
    assert ok.problems == () and len(ok.zones) == (1 if name.endswith("example.json") else 2)
    sched = ok.zones.zones[0].schedule
    assert sched.tz == "UTC" and sched.active([utc("2019-06-03T16:30:00"), utc("2019-06-03T17:00:00"),
                                               utc("2019-06-09T11:00:00")]).tolist() == [True, False, True]
    assert export_zones(ok.zones, "ed269") == fixed  # one UASZone object alone comes back as one


def test_derived_ed318_imports_every_valid_zone_and_repairs_the_self_intersecting_one():
    """The Swiss ED-318 sample with offset times of day (a fixed +01:00 window, and summer/winter periods at
    +02:00/+01:00) and one ring that crosses itself (PROVENANCE.md): three zones, one report line."""
    raw = load(DERIVED)
    result = import_zones(raw)
    assert [z.id for z in result.zones] == ["LSZB003", "BLns058", "LSTB002"]
    assert problems(result) == [(1, "BLns058", "geometry", "repaired")]
    p = result.problems[0]
    assert p.problem.startswith("invalid polygon: Self-intersection[7.539")
    published = shape(raw["features"][1]["geometry"])
    bowtie = result.zones.get("BLns058").geometry
    assert bowtie.is_valid and bowtie.geom_type == "MultiPolygon"
    assert bowtie.equals(shapely.make_valid(published))
    m2_per_deg2 = 111_320 * math.cos(math.radians(bowtie.centroid.y)) * 110_940
    assert p.details["area_imported_m2"] == pytest.approx(bowtie.area * m2_per_deg2, abs=0.1)
    assert p.details["area_changed_m2"] == pytest.approx(p.details["area_imported_m2"] - p.details["area_published_m2"],
                                                         abs=0.11)
    assert "area" in str(p) and "feature 1 (id='BLns058'): field 'geometry'" in str(p)
    # the untouched outlines are the published ones
    for j in (0, 2):
        assert result.zones.zones[j].geometry.equals_exact(shape(raw["features"][j]["geometry"]), 0.0)
    # MON-FRI 00:00-06:00 at +01:00 = 23:00-05:00 UTC from the Sunday evening
    bern = result.zones.get("LSZB003").schedule
    assert bern.tz == "+01:00"
    assert bern.active([utc("2026-11-29T22:59:59"), utc("2026-11-29T23:00:00"), utc("2026-11-30T04:59:59"),
                        utc("2026-11-30T05:00:00"), utc("2026-11-27T23:30:00")]).tolist() == [False, True, True,
                                                                                             False, False]
    assert export_zones(result.zones, "ed318") == raw  # lossless, the published outline included
    with pytest.raises(ImportRefused) as err:
        import_zones(raw, strict=True)
    assert (err.value.index, err.value.zone_id, err.value.field) == (1, "BLns058", "geometry")
    assert "Self-intersection" in str(err.value)


def test_a_skipped_feature_is_alone_and_takes_no_id_from_the_next():
    raw = load(DATA / "geo-awareness-che-1.json")
    raw["features"][4]["geometry"][0]["lowerVerticalReference"] = "SFC"  # the first Gantrisch Nature Park
    result = import_zones(raw)
    assert problems(result) == [(4, "Gantrisch Nature Park", "geometry[0].lowerVerticalReference", "skipped")]
    assert "Gantrisch Nature Park" in [z.id for z in result.zones]  # the second one, not "@2"
    assert len(result.zones) == len(parse_zones(load(DATA / "geo-awareness-che-1.json"))) - 1


def test_kept_for_skipped_finds_the_stored_zones_of_a_skipped_feature():
    stored = import_zones(load(DATA / "geo-awareness-che-1.json")).zones.to_geojson()
    raw = load(DATA / "geo-awareness-che-1.json")
    raw["features"][1]["restriction"] = "NOPE"  # Flugplatz Reichenbach: three volumes
    result = import_zones(raw)
    kept = kept_for_skipped(result, stored)
    assert [f["id"] for f in kept] == ["Flugplatz Reichenbach#1", "Flugplatz Reichenbach#2",
                                       "Flugplatz Reichenbach#3"]
    assert kept_for_skipped(import_zones(load(DATA / "geo-awareness-che-1.json")), stored) == []


# --- outlines ----------------------------------------------------------------------------------------------

def feature(coords, kind="Polygon", zid="Z"):
    return {"type": "Feature", "properties": {"id": zid, "kind": "restricted", "lower_m": 0, "upper_m": 120,
                                              "alt_ref": "AGL"},
            "geometry": {"type": kind, "coordinates": coords}}


def one(coords, kind="Polygon"):
    return import_zones({"type": "FeatureCollection", "features": [feature(coords, kind)]})


SQUARE = [[121.40, 31.00], [121.41, 31.00], [121.41, 31.01], [121.40, 31.01], [121.40, 31.00]]


def test_wrong_winding_and_repeated_positions_import_exactly_as_published():
    clockwise = SQUARE[::-1]
    hole_ccw = [[121.402, 31.002], [121.404, 31.002], [121.404, 31.004], [121.402, 31.004], [121.402, 31.002]]
    for coords in ([clockwise], [SQUARE, hole_ccw], [SQUARE[:2] + [SQUARE[1]] + SQUARE[2:]]):
        result = one(coords)
        assert result.problems == ()
        assert result.zones.zones[0].geometry.equals_exact(shape({"type": "Polygon", "coordinates": coords}), 0.0)


def test_an_unclosed_ring_is_closed_and_reported():
    result = one([SQUARE[:-1]])
    assert problems(result) == [(0, "Z", "geometry", "repaired")]
    assert result.problems[0].problem == "shell not closed" and result.problems[0].details["area_changed_m2"] == 0
    assert result.zones.zones[0].geometry.equals(shape({"type": "Polygon", "coordinates": [SQUARE]}))
    with pytest.raises(ZoneFormatError, match="not closed"):
        import_zones({"type": "FeatureCollection", "features": [feature([SQUARE[:-1]])]}, strict=True)


@pytest.mark.parametrize("coords, kind, parts, area_m2", [
    # a bow tie: two lobes, each a triangle
    ([[[121.40, 31.00], [121.41, 31.01], [121.41, 31.00], [121.40, 31.01], [121.40, 31.00]]], "Polygon", 2, None),
    # a ring that touches itself at a vertex (a duplicate point that is not consecutive)
    ([[[121.40, 31.00], [121.42, 31.00], [121.41, 31.01], [121.42, 31.02], [121.40, 31.02], [121.41, 31.01],
       [121.40, 31.00]]], "Polygon", 2, None),
    # two parts of a MultiPolygon that overlap: united
    ([[SQUARE], [[[121.405, 31.005], [121.415, 31.005], [121.415, 31.015], [121.405, 31.015], [121.405, 31.005]]]],
     "MultiPolygon", 1, None),
])
def test_invalid_outlines_with_one_reading_are_repaired(coords, kind, parts, area_m2):
    result = one(coords, kind)
    assert [(p.field, p.action) for p in result.problems] == [("geometry", "repaired")]
    geom = result.zones.zones[0].geometry
    assert geom.is_valid and len(shapely.get_parts(geom)) == parts
    assert result.problems[0].details["area_imported_m2"] > 0


@pytest.mark.parametrize("coords, words", [
    # a ring wound twice over its middle: even-odd says hole, non-zero says inside
    ([[[121.40, 31.00], [121.44, 31.00], [121.44, 31.04], [121.41, 31.04], [121.41, 31.01], [121.43, 31.01],
       [121.43, 31.03], [121.40, 31.03], [121.40, 31.00]]], "two different areas"),
    ([SQUARE, [[121.42, 31.02], [121.43, 31.02], [121.43, 31.03], [121.42, 31.03], [121.42, 31.02]]],
     "outside its shell"),
    ([[[121.40, 31.00], [121.41, 31.00], [121.42, 31.00], [121.41, 31.00], [121.40, 31.00]]], "no area"),
])
def test_invalid_outlines_without_one_reading_skip_their_feature(coords, words):
    result = one(coords)
    assert len(result.zones) == 0 and [(p.field, p.action) for p in result.problems] == [("geometry", "skipped")]
    assert words in result.problems[0].problem and "invalid polygon" in result.problems[0].problem


ring_points = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=3, max_size=9)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shell=ring_points, hole=st.none() | ring_points, other=st.none() | ring_points, close=st.booleans())
def test_random_rings_are_repaired_or_refused_never_crash(shell, hole, other, close):
    """Random rings on a small grid (crossing, touching, collapsing, doubling back, unclosed; a second polygon of
    a MultiPolygon overlapping the first): each feature is imported (valid, as published or repaired with its
    areas reported) or skipped naming its geometry."""
    def ring(pts):
        coords = [[121.40 + x * 0.001, 31.00 + y * 0.001] for x, y in pts]
        return coords + coords[:1] if close else coords
    coords = [ring(shell)] + ([ring(hole)] if hole else [])
    kind = "Polygon" if other is None else "MultiPolygon"
    if other is not None:
        coords = [coords, [ring(other)]]
    result = one(coords, kind)
    assert len(result.zones) + len(result.indices("skipped")) == 1
    if len(result.zones):
        geom = result.zones.zones[0].geometry
        assert geom.is_valid and not geom.is_empty and geom.geom_type in ("Polygon", "MultiPolygon")
        for p in result.problems:
            assert p.action == "repaired" and p.field == "geometry" and p.details["area_imported_m2"] >= 0
        if not result.problems:
            assert geom.equals_exact(shape({"type": kind, "coordinates": coords}), 0.0)
    else:
        assert [p.field for p in result.problems] == ["geometry"]
    try:
        strict = import_zones({"type": "FeatureCollection", "features": [feature(coords, kind)]}, strict=True)
        assert result.problems == () and strict.zones.zones == result.zones.zones
    except ZoneFormatError as exc:
        assert result.problems and exc.index == 0


def test_report_format():
    raw = load(DERIVED)
    bad = copy.deepcopy(raw)
    bad["features"][2]["properties"]["type"] = "NO_FLY"
    out = report(import_zones(bad))
    assert {k: out[k] for k in ("format", "features", "zones", "repaired", "skipped")} == {
        "format": "ed318", "features": 3, "zones": 2, "repaired": 1, "skipped": 1}
    assert [set(p) for p in out["problems"]] == [
        {"index", "id", "field", "problem", "action", "repair", "area_published_m2", "area_imported_m2",
         "area_changed_m2"}, {"index", "id", "field", "problem", "action"}]
    assert out["problems"][1] == {"index": 2, "id": "LSTB002", "field": "properties.type",
                                  "problem": "'NO_FLY' is not one of ('PROHIBITED', 'REQ_AUTHORISATION', "
                                             "'CONDITIONAL', 'NO_RESTRICTION')", "action": "skipped"}
    assert json.loads(json.dumps(out)) == out
    assert np.isfinite([out["problems"][0][k] for k in ("area_published_m2", "area_imported_m2")]).all()


def test_rings_geos_cannot_node_skip_their_feature_alone(monkeypatch):
    """Near-coincident segments can make GEOS itself fail (TopologyException) while repairing, even on its fine
    grid (hypothesis found such rings): that feature is skipped with the reason, the others are imported."""
    import shapely

    from airspace.formats import geometry

    def cannot_node(*_a, **_k):
        raise shapely.errors.GEOSException("TopologyException: found non-noded intersection between ...")
    bowtie = [[121.40, 31.00], [121.41, 31.01], [121.41, 31.00], [121.40, 31.01], [121.40, 31.00]]
    monkeypatch.setattr(geometry.shapely, "make_valid", cannot_node)
    result = import_zones({"type": "FeatureCollection",
                           "features": [feature([bowtie], zid="Z-BAD"), feature([SQUARE], zid="Z-OK")]})
    assert [z.id for z in result.zones] == ["Z-OK"]
    [problem] = result.problems
    assert problem.field == "geometry" and "cannot be noded" in problem.problem and "TopologyException" in problem.problem
