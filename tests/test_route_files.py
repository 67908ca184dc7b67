"""Route-file parsers on real samples (tests/data/routes, PROVENANCE.md) and on hostile input: DJI WPML/KMZ,
KML, GeoJSON, QGC WPL; heights by their stated mode, ambiguity refused with the reason, archives and XML
opened within caps and without entities."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from airspace.route_files import RouteFileError, parse_route_file, plan_waypoints
from airspace.route_files.safety import MAX_ENTRIES, MAX_MEMBER_BYTES

DATA = Path(__file__).parent / "data" / "routes"


def read(path: str) -> bytes:
    return (DATA / path).read_bytes()


def kmz(files: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def refused(data: bytes, fmt: str | None = None, name: str = "route", **plan) -> RouteFileError:
    with pytest.raises(RouteFileError) as exc:
        rf = parse_route_file(data, fmt, name)
        plan_waypoints(rf, **plan)
    return exc.value


def test_dji_documentation_samples_fail_cleanly_on_their_placeholder_coordinates():
    for name in ("dji_wpml_doc_example_template.kml", "dji_wpml_doc_example_waylines.wpml"):
        err = refused(read(name), name=name)
        assert err.code == "bad_coordinates" and err.params["text"] == "longitude,latitude" and err.params["k"] == 0
    both = kmz({"wpmz/template.kml": read("dji_wpml_doc_example_template.kml"),
                "wpmz/waylines.wpml": read("dji_wpml_doc_example_waylines.wpml")})
    assert refused(both).code == "bad_coordinates"


def test_pilot2_kmz_reads_the_executed_wgs84_heights_and_speeds():
    data = kmz({f"wpmz/{n}": read(f"tum_makeathon_m3td_agl/wpmz/{n}") for n in ("template.kml", "waylines.wpml")})
    rf = parse_route_file(data)
    assert rf.format == "wpml" and rf.file == "wpmz/waylines.wpml" and rf.alt_ref == "WGS84"
    assert [p.alt for p in rf.points] == [568.341006767964, 568.356057037309, 561.372723704309, 470.75]
    assert {p.speed_mps for p in rf.points} == {10.0}
    assert (rf.points[0].lon, rf.points[0].lat) == (11.499854202, 48.189925743)
    assert (rf.points[3].lon, rf.points[3].lat) == (12.1810242, 49.0994348)  # the scripted far-away waypoint


def test_flat_kmz_layout_is_read_too():
    data = kmz({n: read(f"tum_makeathon_m3td_agl/wpmz/{n}") for n in ("template.kml", "waylines.wpml")})
    assert parse_route_file(data).file == "waylines.wpml"


def test_template_alone_reads_its_agl_heights():
    rf = parse_route_file(read("tum_makeathon_m3td_agl/wpmz/template.kml"), "kml", "template.kml")
    assert rf.alt_ref == "AGL" and rf.height_source.endswith("heightMode=aboveGroundLevel")
    assert [p.alt for p in rf.points][:2] == [20.0, 20.0]


def test_single_waypoint_mission_and_duplicate_indexes_are_refused():
    data = kmz({f"wpmz/{n}": read(f"tum_makeathon_single_wp_agl/wpmz/{n}") for n in ("template.kml", "waylines.wpml")})
    err = refused(data)
    assert err.code == "too_few" and err.params["n"] == 1
    err = refused(read("tum_makeathon_single_wp_agl/wpmz/template.kml"), "kml", "template.kml")
    assert err.code == "duplicate_index" and err.params["index"] == 0


def test_relative_heights_need_the_take_off_point():
    data = kmz({f"wpmz/{n}": read(f"waygen_m3m_grid_relative/wpmz/{n}") for n in ("template.kml", "waylines.wpml")})
    err = refused(data)
    assert err.code == "relative_needs_takeoff" and err.params["mode"] == "relativeToStartPoint"
    # with a take-off point (lat,lng,ellipsoid height) the heights become ellipsoid heights
    template = read("waygen_m3m_grid_relative/wpmz/template.kml").replace(
        b"<wpml:missionConfig>", b"<wpml:missionConfig><wpml:takeOffRefPoint>34.98,-106.61,1520.5</wpml:takeOffRefPoint>")
    rf = parse_route_file(kmz({"wpmz/template.kml": template,
                               "wpmz/waylines.wpml": read("waygen_m3m_grid_relative/wpmz/waylines.wpml")}))
    assert rf.alt_ref == "WGS84" and len(rf.points) == 12 and {p.alt for p in rf.points} == {1570.5}


def _waylines(mode: str | None, folders: int = 1, modes: list[str] | None = None) -> bytes:
    def folder(m):
        tag = f"<wpml:executeHeightMode>{m}</wpml:executeHeightMode>" if m else ""
        pms = "".join(f"<Placemark><Point><coordinates>121.48{k},31.05</coordinates></Point><wpml:index>{k}</wpml:index>"
                      f"<wpml:executeHeight>{50 + k}</wpml:executeHeight></Placemark>" for k in range(2))
        return f"<Folder>{tag}<wpml:autoFlightSpeed>8</wpml:autoFlightSpeed>{pms}</Folder>"
    body = "".join(folder(m) for m in (modes or [mode] * folders))
    return (f'<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2" xmlns:wpml="http://www.dji.com/wpmz/1.0.6">'
            f"<Document>{body}</Document></kml>").encode()


def test_height_modes_missing_mixed_or_following_the_terrain_are_refused():
    assert refused(_waylines(None), "kml").code == "no_height_mode"
    err = refused(_waylines(None, modes=["WGS84", "relativeToStartPoint"]), "kml")
    assert err.code == "mixed_height_modes" and "relativeToStartPoint" in err.params["modes"]
    assert refused(_waylines("realTimeFollowSurface"), "kml").code == "unsupported_height_mode"
    assert refused(_waylines("sideways"), "kml").code == "unknown_height_mode"
    rf = parse_route_file(_waylines("WGS84", folders=2), "kml")  # two waylines in one mode: flown in turn
    assert len(rf.points) == 4 and rf.alt_ref == "WGS84" and rf.points[0].speed_mps == 8


def test_qgroundcontrol_kml_samples():
    rf = parse_route_file(read("qgroundcontrol/polyline.kml"), name="polyline.kml")
    assert rf.format == "kml" and len(rf.points) == 9 and rf.alt_ref is None  # clampToGround: no heights
    assert refused(read("qgroundcontrol/polyline.kml")).code == "no_heights"
    planned = plan_waypoints(rf, alt_m=60)
    assert planned.alt_ref == "AGL" and planned.alt_ref_from == "request" and planned.waypoints[0][2] == 60
    assert refused(read("qgroundcontrol/PolygonGood.kml")).code == "polygon"
    assert refused(read("qgroundcontrol/PolygonBadCoordinatesNode.kml")).code == "xml_bad"


def test_kml_altitude_modes():
    def doc(*placemarks):
        return ('<kml xmlns="http://www.opengis.net/kml/2.2"><Document>' + "".join(placemarks)
                + "</Document></kml>").encode()
    line = "<Placemark><LineString><altitudeMode>{}</altitudeMode><coordinates>121.48,31.05,60 121.49,31.05,70" \
           "</coordinates></LineString></Placemark>"
    rf = parse_route_file(doc(line.format("relativeToGround")))
    assert rf.alt_ref == "AGL" and [p.alt for p in rf.points] == [60, 70]
    assert parse_route_file(doc(line.format("absolute"))).alt_ref == "AMSL"
    assert refused(doc(line.format("relativeToSeaFloor"))).code == "unsupported_altitude_mode"
    assert refused(doc(line.format("absolute"), line.format("absolute"))).code == "several_lines"
    point = "<Placemark><Point><altitudeMode>{}</altitudeMode><coordinates>121.4{},31.05,60</coordinates></Point>" \
            "</Placemark>"
    rf = parse_route_file(doc(point.format("absolute", 8), point.format("absolute", 9)))
    assert [p.lon for p in rf.points] == [121.48, 121.49]
    assert refused(doc(point.format("absolute", 8), point.format("relativeToGround", 9))).code == "mixed_altitude_modes"
    assert refused(doc(line.format("absolute"), point.format("absolute", 8))).code == "mixed_geometry"
    err = refused(doc(line.format("absolute")), alt_ref="AGL")
    assert err.code == "alt_ref_conflict" and err.params["file_ref"] == "AMSL"


def test_mission_planner_waypoints_relative_to_home():
    rf = parse_route_file(read("qgroundcontrol/MissionPlanner.waypoints"))
    assert rf.format == "wpl" and rf.alt_ref == "AMSL" and len(rf.points) == 5
    assert {p.alt for p in rf.points} == {105.21}  # home 5.21 m + 100 m relative


def test_geojson_routes():
    line = {"type": "Feature", "properties": {"alt_ref": "AGL", "speed_mps": 12},
            "geometry": {"type": "LineString", "coordinates": [[121.48, 31.05, 60], [121.49, 31.05, 60]]}}
    rf = parse_route_file(json.dumps(line).encode())
    assert rf.alt_ref == "AGL" and rf.points[0].speed_mps == 12
    bare = {"type": "LineString", "coordinates": [[121.48, 31.05, 60], [121.49, 31.05, 60]]}
    planned = plan_waypoints(parse_route_file(json.dumps(bare).encode()))
    assert planned.alt_ref == "WGS84" and planned.alt_ref_from == "RFC 7946"
    assert plan_waypoints(parse_route_file(json.dumps(bare).encode()), alt_ref="AMSL").alt_ref == "AMSL"
    pts = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"index": i}, "geometry": {"type": "Point", "coordinates": [121.48 + i / 100, 31.05, 50]}}
        for i in (2, 0, 1)]}
    assert [p.lon for p in parse_route_file(json.dumps(pts).encode()).points] == pytest.approx([121.48, 121.49, 121.50])
    poly = {"type": "Polygon", "coordinates": [[[121.48, 31.05], [121.49, 31.05], [121.49, 31.06], [121.48, 31.05]]]}
    assert refused(json.dumps(poly).encode()).code == "polygon"
    assert refused(b'{"type": "LineString", "coordinates": [[121.48, "x"], [1, 2]]}').code == "bad_number"
    assert refused(b'{"type": "LineString", "coordinates": [[200, 31], [1, 2]]}').code == "bad_position"
    assert refused(b'{"type": ').code == "geojson_bad"


def test_file_speeds_time_each_leg():
    line = {"type": "LineString", "coordinates": [[121.48, 31.05, 60], [121.49, 31.05, 60], [121.50, 31.05, 60]]}
    rf = parse_route_file(json.dumps({"type": "Feature", "properties": {"speed_mps": 10}, "geometry": line}).encode())
    planned = plan_waypoints(rf, departure=1_800_000_000.0)
    legs = [b - a for a, b in zip(planned.times, planned.times[1:])]
    assert planned.times[0] == 1_800_000_000.0 and all(90 < leg < 100 for leg in legs)  # ~953 m at 10 m/s
    assert plan_waypoints(rf, departure=1_800_000_000.0, speed_mps=5).times is None  # the request's speed wins


def test_hostile_input_is_refused_with_a_reason():
    assert refused(b"").code == "empty"
    assert refused(b"\x00\x01garbage").code == "not_recognised"
    assert refused(b"x" * ((1 << 20) + 1)).code == "too_large"
    assert refused(b"PK\x03\x04 not really a zip").code == "zip_bad"
    xxe = b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]><kml>&x;</kml>'
    assert refused(xxe).code == "xml_doctype"
    laughs = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><kml>&b;</kml>'
    assert refused(laughs).code == "xml_doctype"
    bomb = kmz({"wpmz/waylines.wpml": b"<kml>" + b" " * (MAX_MEMBER_BYTES + 10) + b"</kml>"})
    assert len(bomb) < 64 << 10
    err = refused(bomb)
    assert err.code == "zip_too_big" and err.params["file"] == "wpmz/waylines.wpml"
    many = kmz({f"f{i}.txt": b"" for i in range(MAX_ENTRIES + 1)})
    assert refused(many).code == "zip_too_many"
    assert refused(kmz({"readme.txt": b"hello"})).code == "zip_no_route"
    assert refused(b"<notkml/>", "kml").code == "not_kml"
    assert refused(b"QGC WPL 110\n0\t1\t0\t16\n").code == "wpl_line"
    assert refused(b"hello", "shapefile").code == "unknown_format"

