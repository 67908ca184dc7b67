"""4D route clearance against the real zone file and small hand-made airspaces."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from shapely.geometry import Point, mapping

from airspace import ApprovedIndex, SeparationMinima, Waypoint, ZoneSet, check_route
from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon

ZONES = ZoneSet.from_geojson(json.loads(
    (Path(__file__).parents[1] / "airspace/data/pujiang_wujing.geojson").read_text()))
C2_LINE = ZONES.get("C2").properties["centerline"]
# west to east along lat 31.044; segment 1 runs straight through R-BR-MP (centre 121.4885)
THROUGH_MP = [(121.47, 31.06), (121.475, 31.044), (121.50, 31.044), (121.51, 31.06)]
DEP = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)  # 10:00 Shanghai, a Friday


def route(points, alts, times=None):
    alts = alts if isinstance(alts, list) else [alts] * len(points)
    times = times or [None] * len(points)
    return [Waypoint(lon, lat, alt, t) for (lon, lat), alt, t in zip(points, alts, times)]


def codes(result):
    return [(r["code"], r["zone_id"], r["segment"]) for r in result.reasons]


def resubmit(suggestion, alt_ref="AGL", **kw):
    wps = [Waypoint(w["lon"], w["lat"], w["alt_m"],
                    datetime.fromisoformat(w["t"].replace("Z", "+00:00")) if "t" in w else None)
           for w in suggestion["waypoints"]]
    return wps


def circle(zid, kind, lon, lat, radius_m, lower, upper, **props):
    geom = Point(0, 0).buffer(radius_m, quad_segs=16)
    import shapely
    geom = shapely.transform(geom, lambda xy: xy / [m_per_deg_lon(lat), M_PER_DEG_LAT] + [lon, lat])
    return {"type": "Feature", "properties": {"id": zid, "name": f"zone {zid}", "kind": kind, "lower_m": lower,
                                              "upper_m": upper, "alt_ref": "AGL", **props},
            "geometry": mapping(geom)}


def zoneset(*features):
    return ZoneSet.from_geojson({"type": "FeatureCollection", "features": list(features)})


def test_c2_centerline_at_80m_is_approved_and_records_the_corridor():
    assert C2_LINE[0] == [121.458, 31.056] and C2_LINE[-1] == [121.53, 31.051]  # V-WJ-C -> V-PJ-C
    result = check_route(ZONES, route(C2_LINE, 80.0), departure=DEP, speed_mps=15.0)
    assert (result.decision, result.reasons, result.suggestions) == ("approved", [], [])
    assert [leg["zone_id"] for leg in result.corridors] == ["C2"]
    assert "C2" in result.zones and result.route[0]["t"] == "2026-11-27T02:00:00.000Z"
    clearance = result.clearance("CL1", "D1")
    assert clearance.corridors[0]["zone_id"] == "C2" and clearance.start == DEP.timestamp()


def test_route_through_restricted_zone_names_zone_segment_entry_and_exit():
    result = check_route(ZONES, route(THROUGH_MP, 80.0), departure=DEP, speed_mps=10.0)
    assert result.decision == "denied"
    assert codes(result) == [("restricted_zone", "R-BR-MP", 1)]
    reason = result.reasons[0]
    assert reason["zone_name"] == "Huangpu river bridge exclusion (south)"
    assert "R-BR-MP" in reason["message"] and "segment 1" in reason["message"]
    entry, exit_ = reason["entry"], reason["exit"]
    # the 350 m circle (a 64-gon) is crossed along its diameter at lat 31.044
    half = 350 / m_per_deg_lon(31.044)
    assert entry["lon"] == pytest.approx(121.4885 - half, abs=2e-5) and entry["lat"] == pytest.approx(31.044)
    assert exit_["lon"] == pytest.approx(121.4885 + half, abs=2e-5)
    assert entry["alt_m"] == exit_["alt_m"] == 80.0 and entry["t"] < exit_["t"]
    assert reason["altitude"] == {"route_m": [80.0, 80.0], "route_alt_ref": "AGL", "zone_m": [0.0, 150.0],
                                  "zone_alt_ref": "AGL"}
    assert result.suggestions == []  # over it would be above the 120 m ceiling: nothing clears


def test_altitude_is_interpolated_along_the_segment():
    # flying over the zone's 150 m AGL top is not a crossing (160 AMSL = 156 AGL)...
    assert "restricted_zone" not in [c[0] for c in codes(check_route(ZONES, route(THROUGH_MP, 160.0), "AMSL"))]
    # ...a climb from 130 to 200 m passes 150 m before reaching the zone (exactly: no crossing)...
    assert "restricted_zone" not in [c[0] for c in codes(check_route(
        ZONES, route(THROUGH_MP, [80.0, 130.0, 200.0, 200.0])))]
    # ...but a climb from 100 m is still inside the band at the zone edge and leaves it through the top
    climbing = check_route(ZONES, route(THROUGH_MP, [80.0, 100.0, 200.0, 200.0]))
    reason = next(r for r in climbing.reasons if r["code"] == "restricted_zone")
    assert reason["segment"] == 1 and reason["exit"]["alt_m"] == pytest.approx(150.0)
    assert reason["entry"]["alt_m"] == pytest.approx(100 + 100 * (121.4885 - 350 / m_per_deg_lon(31.044) - 121.475)
                                                     / 0.025, abs=0.2)


def test_above_area_ceiling_per_segment():
    result = check_route(ZONES, route(THROUGH_MP, 160.0), alt_ref="AMSL")  # PWZ top: 124 AMSL
    assert result.decision == "denied"
    assert [c for c in codes(result) if c[1] == "PWZ"] == [("above_ceiling", "PWZ", 0)]
    assert result.reasons[0]["segments"] == [0, 2]  # one run over all three segments
    assert "120 m AGL ceiling of PWZ" in result.reasons[0]["message"]


def test_above_corridor_ceiling_only_where_in_corridor():
    mid = [(121.468, 31.05575), (121.49, 31.0543), (121.51, 31.0526)]  # on C2, top 100 m
    result = check_route(ZONES, route(mid + [(121.49, 31.07)], 110.0))
    c2 = [r for r in result.reasons if r["zone_id"] == "C2"]
    assert [(r["code"], r["segment"], r["segments"]) for r in c2] == [("above_ceiling", 0, [0, 2])]
    assert c2[0]["entry"]["lon"] == pytest.approx(121.468)
    assert 121.49 < c2[0]["exit"]["lon"] < 121.51  # leaves the corridor's outline on the way north


def test_outside_area_from_the_exact_exit_point():
    result = check_route(ZONES, route([(121.53, 31.051), (121.60, 31.051)], 50.0))
    assert codes(result) == [("outside_area", "PWZ", 0)]
    assert 121.53 < result.reasons[0]["entry"]["lon"] < 121.60 and result.reasons[0]["exit"]["lon"] == 121.60
    without_area = ZoneSet(z for z in ZONES if z.kind != "area")
    assert check_route(without_area, route([(121.53, 31.051), (121.60, 31.051)], 50.0)).reasons == []


def test_true_height_ceiling_where_no_band_sets_one():
    without_area = ZoneSet(z for z in ZONES if z.kind != "area")
    result = check_route(without_area, route([(121.53, 31.040), (121.60, 31.040)], [100.0, 140.0]))
    assert codes(result) == [("above_ceiling", None, 0)]
    assert result.reasons[0]["rule"] == "true_height_ceiling"
    assert result.reasons[0]["entry"]["alt_m"] == pytest.approx(120.0)


def test_altitude_suggestion_is_approved_when_resubmitted():
    zs = zoneset(circle("LOW", "restricted", 121.50, 31.05, 300, 0, 60))
    path = [(121.49, 31.05), (121.51, 31.05)]
    result = check_route(zs, route(path, 40.0), departure=DEP, speed_mps=12.0)
    assert codes(result) == [("restricted_zone", "LOW", 0)]
    (sug,) = [s for s in result.suggestions if s["kind"] == "altitude"]
    assert sug["band"][0] >= 60.0 and sug["band"][0] < sug["alt_m"] < sug["band"][1] <= 120.0
    again = check_route(zs, resubmit(sug))
    assert again.approved, again.reasons


def test_scheduled_zone_only_blocks_while_in_force_and_departure_suggestion():
    sched = {"tz": "Asia/Shanghai", "periods": [{"windows": [{"days": ["FRI"], "start": "09:00", "end": "11:00"}]}]}
    zs = zoneset(circle("TFR", "restricted", 121.50, 31.05, 300, 0, 300, schedule=sched))
    path = [(121.49, 31.05), (121.51, 31.05)]
    in_force = check_route(zs, route(path, 40.0), departure=DEP, speed_mps=12.0)  # 10:00 local
    assert codes(in_force) == [("restricted_zone", "TFR", 0)]
    later = check_route(zs, route(path, 40.0), departure=DEP + timedelta(hours=2), speed_mps=12.0)
    assert later.approved
    dep = [s for s in in_force.suggestions if s["kind"] == "departure"]
    assert dep and check_route(zs, resubmit(dep[0])).approved
    # 11:00 local minus the time to reach the zone edge: not much before
    assert DEP + timedelta(seconds=dep[0]["delay_s"]) > DEP + timedelta(minutes=55)
    untimed = check_route(zs, route(path, 40.0))  # no times: schedules count as in force
    assert not untimed.approved


def test_separation_conflict_and_earliest_departure():
    zs = zoneset(circle("FAR", "authorization", 121.60, 31.20, 100, 0, 100))
    path = [(121.49, 31.05), (121.51, 31.05)]
    first = check_route(zs, route(path, 50.0), departure=DEP, speed_mps=10.0)
    assert first.approved
    index = ApprovedIndex([first.clearance("A1", "U1")])
    crossing = [(121.50, 31.04), (121.50, 31.06)]  # crosses the first at its middle, same time
    result = check_route(zs, route(crossing, 55.0), departure=DEP, speed_mps=10.0, approved=index)
    assert codes(result) == [("separation_conflict", None, 0)]
    conflict = result.reasons[0]["conflict"]
    assert conflict["clearance_id"] == "A1" and conflict["horizontal_m"] <= 100 and conflict["vertical_m"] == 5.0
    # above the vertical minimum there is no conflict
    assert check_route(zs, route(crossing, 85.0), departure=DEP, speed_mps=10.0, approved=index).approved
    # the same UAV does not conflict with its own clearance
    assert check_route(zs, route(crossing, 55.0), departure=DEP, speed_mps=10.0, approved=index,
                       uav_id="U1").approved
    dep = [s for s in result.suggestions if s["kind"] == "departure"]
    assert dep and check_route(zs, resubmit(dep[0]), approved=index).approved
    delay = dep[0]["delay_s"]
    assert not check_route(zs, route(crossing, 55.0), departure=DEP + timedelta(seconds=delay - 2),
                           speed_mps=10.0, approved=index).approved
    minima = SeparationMinima(horizontal_m=10.0, vertical_m=1.0, time_s=1.0)
    assert check_route(zs, route(crossing, 55.0), departure=DEP, speed_mps=10.0, approved=index,
                       minima=minima).approved


def test_corridor_capacity():
    c2 = [z for z in ZONES if z.id in ("C2", "PWZ")]
    zs = ZoneSet(c2)
    flights = [check_route(zs, route(C2_LINE, 80.0), departure=DEP + timedelta(seconds=30 * k), speed_mps=15.0)
               for k in range(3)]
    index = ApprovedIndex([f.clearance(f"F{k}", f"U{k}") for k, f in enumerate(flights)])
    minima = SeparationMinima(horizontal_m=10.0, vertical_m=1.0, time_s=1.0)
    late = check_route(zs, route(C2_LINE, 80.0), departure=DEP + timedelta(seconds=45), speed_mps=15.0,
                       approved=index, capacity=3, minima=minima)
    assert codes(late) == [("corridor_capacity", "C2", None)]
    assert late.reasons[0]["capacity"] == {"limit": 3, "approved": 3}
    assert check_route(zs, route(C2_LINE, 80.0), departure=DEP + timedelta(seconds=45), speed_mps=15.0,
                       approved=index, capacity=4, minima=minima).approved
    dep = [s for s in late.suggestions if s["kind"] == "departure"]
    assert dep and check_route(zs, resubmit(dep[0]), approved=index, capacity=3, minima=minima).approved


def test_suspended_corridor_refused_with_sensor_reading():
    state = {"state": "suspended", "reason": "wind gusts above 12 m/s", "by": "rule:C2-wind",
             "sensor_id": "W-C2", "metric": "wind_gust", "value": 14.2, "reading_ts": "2026-11-27T01:59:00Z"}
    result = check_route(ZONES, route(C2_LINE, 80.0), departure=DEP, speed_mps=15.0, zone_states={"C2": state})
    assert codes(result)[0] == ("zone_suspended", "C2", 0)
    reason = result.reasons[0]
    assert reason["state"]["value"] == 14.2 and "W-C2 wind_gust=14.2" in reason["message"]
    active = check_route(ZONES, route(C2_LINE, 80.0), zone_states={"C2": {**state, "state": "active"}})
    assert active.approved


def test_times_given_per_waypoint():
    times = [DEP + timedelta(seconds=60 * k) for k in range(len(C2_LINE))]
    result = check_route(ZONES, route(C2_LINE, 80.0, times))
    assert result.approved and result.route[-1]["t"] == (times[-1]).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with pytest.raises(ValueError, match="after the previous"):
        check_route(ZONES, route(C2_LINE, 80.0, times[::-1]))
    with pytest.raises(ValueError, match="every waypoint or for none"):
        check_route(ZONES, route(C2_LINE, 80.0, times[:1] + [None] * (len(C2_LINE) - 1)))


@pytest.mark.parametrize("waypoints, alt_ref, match", [
    ([], "AGL", "at least 2"),
    ([Waypoint(121.5, 31.05, 50)], "AGL", "at least 2"),
    ([Waypoint(121.5, 31.05, 50), Waypoint(float("nan"), 31.05, 50)], "AGL", "waypoint 1: lon"),
    ([Waypoint(121.5, 95.0, 50), Waypoint(121.5, 31.05, 50)], "AGL", "waypoint 0: lat"),
    ([Waypoint(121.5, 31.05, 50), Waypoint(200.0, 31.05, 50)], "AGL", "lon 200"),
    ([Waypoint(121.5, 31.05, 50), Waypoint(121.5, 31.05, float("inf"))], "AGL", "alt"),
    ([Waypoint(121.5, 31.05, 50), Waypoint(121.5, 31.05, True)], "AGL", "alt"),
    ([Waypoint(121.5, 31.05, 50), Waypoint(121.51, 31.05, 50)], "QNH", "altitude reference"),
])
def test_malformed_requests_raise(waypoints, alt_ref, match):
    with pytest.raises(ValueError, match=match):
        check_route(ZONES, waypoints, alt_ref)


def test_speed_needs_departure():
    with pytest.raises(ValueError, match="together"):
        check_route(ZONES, route(C2_LINE, 80.0), speed_mps=10.0)
    with pytest.raises(ValueError, match="repeats"):
        check_route(ZONES, route([C2_LINE[0], C2_LINE[0]], 80.0), departure=DEP, speed_mps=10.0)


def test_vertical_segments_on_and_inside_a_boundary():
    import shapely
    x, y = shapely.get_coordinates(ZONES.get("R-BR-MP").geometry)[3]  # a vertex of the outline
    on_edge = check_route(ZONES, route([(x, y), (x, y), (x + 0.01, y)], [10.0, 100.0, 100.0]))
    assert ("restricted_zone", "R-BR-MP", 0) in codes(on_edge)  # the outline counts as inside
    climb = check_route(ZONES, route([(121.50, 31.06), (121.50, 31.06)], [10.0, 200.0]))
    assert [(r["code"], r["entry"]["alt_m"]) for r in climb.reasons if r["zone_id"] == "PWZ"] == [
        ("above_ceiling", 120.0)]
