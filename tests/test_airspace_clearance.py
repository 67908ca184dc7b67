"""Pre-flight route clearance against the real zone file."""
import json
from pathlib import Path

import pytest

from airspace import Waypoint, ZoneSet, check_route

ZONES = ZoneSet.from_geojson(json.loads(
    (Path(__file__).parents[1] / "airspace/data/pujiang_wujing.geojson").read_text()))
C2_LINE = ZONES.get("C2").properties["centerline"]
# west to east along lat 31.044; segment 1 runs straight through R-BR-MP (centre 121.4885)
THROUGH_MP = [(121.47, 31.06), (121.475, 31.044), (121.50, 31.044), (121.51, 31.06)]


def route(points, alts):
    alts = alts if isinstance(alts, list) else [alts] * len(points)
    return [Waypoint(lon, lat, alt) for (lon, lat), alt in zip(points, alts)]


def codes(result):
    return [(r["code"], r["zone_id"], r["segment"], r["waypoint"]) for r in result.reasons]


def test_c2_centerline_at_80m_is_approved():
    assert C2_LINE[0] == [121.458, 31.056] and C2_LINE[-1] == [121.53, 31.051]  # V-WJ-C -> V-PJ-C
    result = check_route(ZONES, route(C2_LINE, 80.0))
    assert (result.decision, result.reasons) == ("approved", [])


def test_route_through_restricted_zone_is_denied_with_segment():
    result = check_route(ZONES, route(THROUGH_MP, 80.0))
    assert result.decision == "denied"
    assert codes(result) == [("restricted_zone", "R-BR-MP", 1, None)]
    reason = result.reasons[0]
    assert set(reason) == {"code", "message", "zone_id", "zone_name", "segment", "waypoint"}
    assert reason["zone_name"] == "Huangpu river bridge exclusion (south)"
    assert "R-BR-MP" in reason["message"] and "segment 1" in reason["message"]


def test_restricted_band_uses_segment_altitude_range():
    # flying over the zone's 150 m AGL top is not a restricted-zone crossing (154 m AMSL)...
    assert "restricted_zone" not in [c[0] for c in codes(check_route(
        ZONES, route(THROUGH_MP, 160.0), alt_ref="AMSL"))]
    # ...but a segment that climbs from inside the band to above it still overlaps the band
    climbing = check_route(ZONES, route(THROUGH_MP, [80.0, 130.0, 200.0, 200.0]))
    assert ("restricted_zone", "R-BR-MP", 1, None) in codes(climbing)


def test_above_area_ceiling():
    result = check_route(ZONES, route(THROUGH_MP, 160.0), alt_ref="AMSL")  # PWZ top: 124 AMSL
    assert result.decision == "denied"
    assert codes(result) == [("above_ceiling", "PWZ", None, k) for k in range(4)]
    assert "120 m AGL ceiling of PWZ" in result.reasons[0]["message"]


def test_above_corridor_ceiling_only_where_in_corridor():
    mid = [(121.468, 31.05575), (121.49, 31.0543), (121.51, 31.0526)]  # on C2, top 100 m
    result = check_route(ZONES, route(mid + [(121.49, 31.07)], 110.0))
    assert codes(result) == [("above_ceiling", "C2", None, k) for k in range(3)]


def test_outside_area():
    result = check_route(ZONES, route([(121.53, 31.051), (121.60, 31.051)], 50.0))
    assert codes(result) == [("outside_area", "PWZ", None, 1)]
    without_area = ZoneSet(z for z in ZONES if z.kind != "area")
    assert check_route(without_area, route([(121.53, 31.051), (121.60, 31.051)], 50.0)).reasons == []


@pytest.mark.parametrize("waypoints, alt_ref, match", [
    ([], "AGL", "at least 2"),
    ([Waypoint(121.5, 31.05, 50)], "AGL", "at least 2"),
    ([Waypoint(121.5, 31.05, 50), Waypoint(float("nan"), 31.05, 50)], "AGL", "waypoint 1: lon"),
    ([Waypoint(121.5, 95.0, 50), Waypoint(121.5, 31.05, 50)], "AGL", "waypoint 0: lat"),
    ([Waypoint(121.5, 31.05, 50), Waypoint(200.0, 31.05, 50)], "AGL", "lon 200"),
    ([Waypoint(121.5, 31.05, 50), Waypoint(121.5, 31.05, float("inf"))], "AGL", "alt"),
    ([Waypoint(121.5, 31.05, 50), Waypoint(121.51, 31.05, 50)], "QNH", "altitude reference"),
])
def test_malformed_requests_raise(waypoints, alt_ref, match):
    with pytest.raises(ValueError, match=match):
        check_route(ZONES, waypoints, alt_ref)
