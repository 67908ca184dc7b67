"""Flight kinematics: cycle, corridor adherence, and the deliberate misbehaviour."""
from __future__ import annotations

import dataclasses
import math

import pytest
from shapely.geometry import LineString, Point, shape

from devices.fleet import DroneSpec, corridors, stray_target
from devices.flight import FlightPlan, fix_at
from devices.geo import LocalFrame, distance_m


@pytest.fixture(scope="module")
def zones(zones_geojson) -> dict:
    return zones_geojson


def _corridor(zones: dict, cid: str):
    return next(c for c in corridors(zones) if c.corridor_id == cid)


def _spec(zones: dict, cid: str, behaviour: str = "nominal", **kw) -> DroneSpec:
    c = _corridor(zones, cid)
    spec = DroneSpec(uav_id="uav-t", corridor_id=cid, behaviour=behaviour, speed_mps=15.0, phase_s=123.4,
                     centerline=c.centerline, lower_m=c.lower_m, upper_m=c.upper_m)
    if behaviour == "stray_no_fly":
        zone_id, target = stray_target(zones, c)
        spec = dataclasses.replace(spec, stray_zone_id=zone_id, stray_target=target)
    return dataclasses.replace(spec, **kw)


def _samples(plan: FlightPlan, step: float = 2.0):
    t = 0.0
    while t < plan.cycle_s:
        yield t, plan.fix(t)
        t += step


@pytest.mark.parametrize("cid", ["C1", "C2", "C3"])
def test_nominal_drone_stays_on_the_centerline_and_in_its_band(zones, cid):
    spec = _spec(zones, cid)
    plan = FlightPlan(spec)
    frame = LocalFrame(*spec.centerline[0])
    line = LineString([frame.to_xy(*p) for p in spec.centerline])
    for _, fix in _samples(plan):
        assert line.distance(Point(frame.to_xy(fix.lon, fix.lat))) < 1.0
        assert 0.0 <= fix.alt_m <= spec.upper_m
        if fix.speed_mps > 0:  # cruising
            assert spec.lower_m <= fix.alt_m <= spec.upper_m
        assert 0.0 <= fix.battery_pct <= 100.0


def test_cycle_starts_on_the_ground_at_the_from_vertiport_and_turns_at_the_other(zones):
    spec = _spec(zones, "C1")
    plan = FlightPlan(spec)
    start = fix_at(spec, (-spec.phase_s) % plan.cycle_s)
    assert start.status == "Ground" and start.alt_m == 0.0 and start.speed_mps == 0.0
    assert distance_m((start.lon, start.lat), (121.462, 31.078)) < 5.0  # V-WJ-N
    turn = fix_at(spec, (plan.outbound.duration_s - spec.phase_s) % plan.cycle_s + 1.0)
    assert turn.status == "Ground" and turn.alt_m == 0.0
    assert distance_m((turn.lon, turn.lat), (121.522, 31.073)) < 5.0  # V-PJ-N
    statuses = {fix.status for _, fix in _samples(plan)}
    assert statuses == {"Ground", "Airborne"}


def test_climbs_to_the_band_middle_before_cruising(zones):
    spec = _spec(zones, "C3")
    cruising = [fix for _, fix in _samples(FlightPlan(spec)) if fix.speed_mps > 0]
    assert cruising and all(fix.alt_m == pytest.approx((spec.lower_m + spec.upper_m) / 2) for fix in cruising)


@pytest.mark.parametrize("cid", ["C2", "C3"])
def test_stray_enters_the_bridge_circle_below_its_ceiling(zones, cid):
    spec = _spec(zones, cid, "stray_no_fly")
    assert spec.stray_zone_id == "R-BR-MP"
    circle = shape(next(f for f in zones["features"] if f["properties"]["id"] == "R-BR-MP")["geometry"])
    inside = [fix for _, fix in _samples(FlightPlan(spec), 1.0)
              if circle.contains(Point(fix.lon, fix.lat)) and fix.status == "Airborne" and fix.alt_m < 150.0]
    assert len(inside) >= 10  # not a grazing touch: tens of seconds inside
    assert all(distance_m((f.lon, f.lat), (121.4885, 31.044)) < 350.0 for f in inside)


def test_stray_returns_to_the_centerline_on_the_way_back(zones):
    spec = _spec(zones, "C2", "stray_no_fly")
    plan = FlightPlan(spec)
    frame = LocalFrame(*spec.centerline[0])
    line = LineString([frame.to_xy(*p) for p in spec.centerline])
    tau0 = plan.outbound.duration_s
    for k in range(0, int(plan.inbound.duration_s), 5):
        fix = plan.fix(tau0 + k - spec.phase_s)
        assert line.distance(Point(frame.to_xy(fix.lon, fix.lat))) < 1.0


def test_climber_goes_above_band_and_ceiling_then_comes_back(zones):
    spec = _spec(zones, "C1", "climb_above_band", excursion_alt_m=140.0)
    fixes = [fix for _, fix in _samples(FlightPlan(spec), 1.0)]
    peak = max(fix.alt_m for fix in fixes)
    assert peak > 120.0 and peak > spec.upper_m
    assert peak == pytest.approx(140.0)
    above = [i for i, fix in enumerate(fixes) if fix.alt_m > spec.upper_m]
    assert fixes[above[-1] + 5].alt_m <= spec.upper_m  # temporary, not the new normal


def test_speed_and_vertical_speed_match_the_position_change(zones):
    spec = _spec(zones, "C2", "climb_above_band", excursion_alt_m=140.0)
    plan = FlightPlan(spec)
    checked = 0
    for t, a in _samples(plan, 3.0):
        b = plan.fix(t + 1.0)
        if a.status != "Airborne" or b.status != "Airborne":
            continue
        if a.speed_mps > 0 and b.speed_mps > 0 and a.track_deg == b.track_deg:
            assert distance_m((a.lon, a.lat), (b.lon, b.lat)) == pytest.approx(a.speed_mps, rel=0.03)
            dx, dy = LocalFrame(a.lon, a.lat).to_xy(b.lon, b.lat)
            assert (math.degrees(math.atan2(dx, dy)) - a.track_deg + 180) % 360 - 180 == pytest.approx(0, abs=1.0)
            checked += 1
        if a.vspeed_mps == b.vspeed_mps:
            assert b.alt_m - a.alt_m == pytest.approx(a.vspeed_mps, abs=0.15)
    assert checked > 50


def test_deterministic_and_periodic(zones):
    spec = _spec(zones, "C2", "stray_no_fly")
    plan = FlightPlan(spec)
    for t in (0.0, 17.5, 401.0, 999.9):
        assert fix_at(spec, t) == FlightPlan(spec).fix(t) == fix_at(spec, t, spec.centerline)
        assert plan.fix(t) == plan.fix(t + plan.cycle_s)


def test_rejects_degenerate_input(zones):
    spec = _spec(zones, "C1")
    with pytest.raises(ValueError):
        FlightPlan(spec, [(121.46, 31.07)])
    with pytest.raises(ValueError):
        FlightPlan(dataclasses.replace(spec, speed_mps=0.0))
