"""AirspaceMonitor conditions beyond membership: hysteresis, crossings between fixes, link loss,
clearances (uncleared flight, corridor exit, route deviation, floors), ceilings and zone states."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airspace import AirspaceMonitor, Fix, MonitorPolicy, Waypoint, ZoneSet, check_route
from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon
from airspace.separation import Tolerances
from ingest.pipeline import event_id

ZONES = ZoneSet.from_geojson(json.loads(
    (Path(__file__).parents[1] / "airspace/data/pujiang_wujing.geojson").read_text()))
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)
MP = (121.4885, 31.044)          # R-BR-MP: restricted circle r=350 m, 0-150 m AGL
NEAR_MP = (121.475, 31.044)
C2_LINE = [(121.458, 31.056), (121.478, 31.0555), (121.505, 31.053), (121.53, 31.051)]
OPEN = MonitorPolicy(require_clearance=False)
DLON = 1 / m_per_deg_lon(31.05)  # degrees of longitude per metre
DLAT = 1 / M_PER_DEG_LAT


def fixes(track, uav="u1", start=0.0, step=1.0, status=None):
    return [Fix(uav, T0 + timedelta(seconds=start + k * step), lon, lat, alt, "AGL", status)
            for k, (lon, lat, alt) in enumerate(track)]


def kinds(events, zone=True):
    return [(e.kind, e.zone_id) if zone else e.kind for e in events]


def test_riding_a_boundary_does_not_flood():
    # R-BR-MP's west edge is ~350 m west of its centre; ride it within +-3 m, then leave by 30 m
    edge = MP[0] - 350 * DLON * 0.9995
    track = [(edge + (3 if k % 2 else -3) * DLON, MP[1], 50.0) for k in range(20)]
    mon = AirspaceMonitor(ZONES, OPEN)
    events = mon.process(fixes(track + [(edge - 30 * DLON, MP[1], 50.0)]))
    mp = [k for k in kinds(events) if k[1] == "R-BR-MP"]
    assert mp == [("zone_enter", "R-BR-MP"), ("no_fly_violation", "R-BR-MP"),
                  ("zone_exit", "R-BR-MP"), ("no_fly_violation_end", "R-BR-MP")]
    assert events[-1].ts == T0 + timedelta(seconds=20)


def test_vertical_hysteresis_on_the_ceiling():
    alts = [118, 121, 119, 122, 118, 121, 112, 121]  # PWZ top 120 m AGL; margin 5 m
    events = AirspaceMonitor(ZONES, OPEN).process(fixes([(*NEAR_MP, a) for a in alts]))
    alt = [(e.kind, (e.ts - T0).seconds) for e in events if e.kind.startswith("altitude")]
    assert alt == [("altitude_violation", 1), ("altitude_violation_end", 6), ("altitude_violation", 7)]


def test_crossing_between_two_fixes_is_caught_with_entry_and_exit():
    # 2 s apart, 1.4 km: both fixes outside the 700 m wide zone
    a, b = (MP[0] - 700 * DLON, MP[1], 60.0), (MP[0] + 700 * DLON, MP[1], 100.0)
    events = AirspaceMonitor(ZONES, OPEN).process(fixes([a, b], step=2.0))
    mp = [e for e in events if e.zone_id == "R-BR-MP"]
    assert kinds(mp) == [("zone_enter", "R-BR-MP"), ("no_fly_violation", "R-BR-MP"),
                         ("zone_exit", "R-BR-MP"), ("no_fly_violation_end", "R-BR-MP")]
    v = mp[1].detail
    assert v["between_fixes"] and v["entry"]["lon"] == pytest.approx(MP[0] - 350 * DLON, abs=3e-5)
    assert v["exit"]["lon"] == pytest.approx(MP[0] + 350 * DLON, abs=3e-5)
    assert abs(mp[1].ts - (T0 + timedelta(seconds=0.5))) < timedelta(milliseconds=5)  # a 64-gon, not a circle
    assert abs(mp[3].ts - (T0 + timedelta(seconds=1.5))) < timedelta(milliseconds=5)
    assert v["entry"]["alt_amsl"] == pytest.approx(4 + 70, abs=0.1)  # altitude interpolated (AGL + 4)
    # passing over the top of the band between the fixes is no crossing
    high = AirspaceMonitor(ZONES, OPEN).process(fixes([(a[0], a[1], 152.0), (b[0], b[1], 200.0)], step=2.0))
    assert "R-BR-MP" not in [e.zone_id for e in high]


def test_entry_point_of_a_normal_no_fly_entry():
    events = AirspaceMonitor(ZONES, OPEN).process(fixes([(MP[0] - 400 * DLON, MP[1], 50), (*MP, 50)]))
    v = next(e for e in events if e.kind == "no_fly_violation").detail
    assert v["entry"]["lon"] == pytest.approx(MP[0] - 350 * DLON, abs=3e-5)


def test_link_lost_from_a_gap_equals_link_lost_from_tick():
    track = [(*NEAR_MP, 50.0)] * 3
    gap = fixes(track[:2]) + fixes(track[2:], start=30.0)
    by_gap = AirspaceMonitor(ZONES, OPEN).process(gap)
    mon = AirspaceMonitor(ZONES, OPEN)
    by_tick = mon.process(gap[:2])
    assert mon.tick(T0 + timedelta(seconds=5)) == []
    lost = mon.tick(T0 + timedelta(seconds=12))
    assert kinds(lost, False) == ["link_lost"] and mon.alerts_of("u1") == ["link_lost"]
    assert mon.tick(T0 + timedelta(seconds=20)) == []  # once
    by_tick += lost + mon.process(gap[2:])
    pick = [(event_id(e), e.kind) for e in by_gap if e.kind.startswith("link")]
    assert pick == [(event_id(e), e.kind) for e in by_tick if e.kind.startswith("link")]
    assert [k for _, k in pick] == ["link_lost", "link_restored"]
    assert by_gap[[e.kind for e in by_gap].index("link_lost")].ts == T0 + timedelta(seconds=11)
    # a UAV on the ground is not lost
    mon = AirspaceMonitor(ZONES, OPEN)
    mon.process(fixes([(*NEAR_MP, 0.0)], status="Ground"))
    assert mon.tick(T0 + timedelta(minutes=5)) == []


def c2_clearance(uav="u1", speed=15.0, tol=Tolerances(), land=False):
    wps = [Waypoint(x, y, 80.0) for x, y in C2_LINE] + ([Waypoint(*C2_LINE[-1], 30.0)] if land else [])
    res = check_route(ZONES, wps, departure=T0, speed_mps=speed)
    assert res.approved, res.reasons
    return res.clearance(f"CL-{uav}", uav, tol), res


def along(res, seconds, offset_m=0.0, alt=80.0):
    """The planned position `seconds` after departure, shifted north by offset_m (alt None: planned)."""
    pts = res.route
    t = T0.timestamp() + seconds
    for a, b in zip(pts, pts[1:]):
        if a["epoch"] <= t <= b["epoch"]:
            s = (t - a["epoch"]) / (b["epoch"] - a["epoch"])
            planned = a["alt_m"] + (b["alt_m"] - a["alt_m"]) * s
            return (a["lon"] + (b["lon"] - a["lon"]) * s, a["lat"] + (b["lat"] - a["lat"]) * s + offset_m * DLAT,
                    planned if alt is None else alt)
    raise ValueError(seconds)


def test_uncleared_flight_in_a_corridor():
    track = [along(c2_clearance()[1], s) for s in (60, 61, 62)]
    events = AirspaceMonitor(ZONES).process(fixes(track, start=60))
    assert ("uncleared_flight", "C2") in kinds(events)
    mon = AirspaceMonitor(ZONES)
    clearance, _ = c2_clearance()
    mon.set_clearance(clearance)
    assert "uncleared_flight" not in kinds(mon.process(fixes(track, start=60)), False)
    assert mon.alerts_of("u1") == []
    # outside the clearance's time window (plus tolerance) it no longer covers the flight
    late = mon.process(fixes([track[-1]], start=60 + 3600))
    assert ("uncleared_flight", "C2") in kinds(late)


def test_corridor_exit_and_return_and_route_deviation():
    clearance, res = c2_clearance()
    mon = AirspaceMonitor(ZONES)
    mon.set_clearance(clearance)
    track = [along(res, s) for s in range(60, 64)] + [along(res, s, 300) for s in range(64, 68)] + \
        [along(res, s) for s in range(68, 71)]
    events = mon.process(fixes(track, start=60))
    got = [(e.kind, e.zone_id, (e.ts - T0).seconds) for e in events
           if e.kind.startswith(("corridor", "route"))]
    assert got == [("corridor_exit", "C2", 64), ("route_deviation", None, 64),
                   ("corridor_return", "C2", 68), ("route_deviation_end", None, 68)]
    dev = next(e for e in events if e.kind == "route_deviation").detail
    assert dev["exceeded"] == ["lateral"] and dev["lateral_m"] == pytest.approx(300, abs=2)
    # leaving the corridor where the route does (descending into V-PJ-C) is no corridor_exit
    clearance, res = c2_clearance(land=True)
    assert res.corridors[-1]["exit"]["lon"] == pytest.approx(121.53, abs=2e-4)  # the leg ends near V-PJ-C
    mon = AirspaceMonitor(ZONES)
    mon.set_clearance(clearance)
    t_end = res.route[-1]["epoch"] - T0.timestamp()
    landing = [along(res, s, alt=None) for s in (t_end - 5, t_end - 4, t_end - 3, t_end - 2, t_end - 1, t_end)]
    events = mon.process(fixes(landing, start=t_end - 5))
    assert ("zone_exit", "C2") in kinds(events)
    assert not {"corridor_exit", "route_deviation"} & set(kinds(events, False))


def test_time_deviation_and_vertical_deviation():
    clearance, res = c2_clearance(tol=Tolerances(lateral_m=50, vertical_m=20, time_s=30))
    mon = AirspaceMonitor(ZONES)
    mon.set_clearance(clearance)
    early = mon.process(fixes([along(res, 200)], start=100))  # where it should be 100 s later
    dev = next(e for e in early if e.kind == "route_deviation").detail
    assert "time" in dev["exceeded"]
    mon2 = AirspaceMonitor(ZONES)
    mon2.set_clearance(clearance)
    high = mon2.process(fixes([along(res, 100, alt=80), along(res, 101, alt=101.5)], start=100))
    assert [e.detail["exceeded"] for e in high if e.kind == "route_deviation"] == [["vertical"]]
    assert ("altitude_violation", "C2") in kinds(high)


def test_below_the_floor_of_a_cleared_corridor():
    clearance, res = c2_clearance()
    mon = AirspaceMonitor(ZONES)
    mon.set_clearance(clearance)
    events = mon.process(fixes([along(res, 100), along(res, 101, alt=50.0), along(res, 102)], start=100))
    alt = [(e.kind, e.zone_id, e.detail.get("rule")) for e in events if e.kind.startswith("altitude")]
    assert alt == [("altitude_violation", "C2", "below_floor"), ("altitude_violation_end", "C2", "below_floor")]
    # without a clearance for C2 flying under it is not a floor violation
    other = AirspaceMonitor(ZONES, OPEN).process(fixes([along(res, 100, alt=50.0)]))
    assert "altitude_violation" not in kinds(other, False)


def test_true_height_ceiling_outside_every_band():
    far = (121.70, 31.20)  # outside PWZ
    events = AirspaceMonitor(ZONES, OPEN).process(fixes([(*far, 100), (*far, 130), (*far, 110)]))
    assert [(e.kind, e.zone_id, (e.ts - T0).seconds) for e in events] == [
        ("altitude_violation", None, 1), ("altitude_violation_end", None, 2)]
    assert events[0].detail["rule"] == "true_height_ceiling"
    from airspace.vertical import VerticalModel
    no_rule = ZoneSet(ZONES.zones, VerticalModel(ceiling_agl_m=None))
    assert AirspaceMonitor(no_rule, OPEN).process(fixes([(*far, 100), (*far, 130)])) == []


def test_zone_suspension_reaches_flights_inside():
    clearance, res = c2_clearance()
    mon = AirspaceMonitor(ZONES)
    mon.set_clearance(clearance)
    mon.process(fixes([along(res, 100)], start=100))
    state = {"state": "suspended", "reason": "wind", "by": "rule:C2-wind", "sensor_id": "W-C2",
             "metric": "wind_gust", "value": 14.0}
    at = T0 + timedelta(seconds=100.5)
    events = mon.set_zone_state("C2", state, at)
    assert [(e.kind, e.uav_id, e.zone_id, e.ts) for e in events] == [("zone_suspended", "u1", "C2", at)]
    assert events[0].detail["value"] == 14.0 and events[0].detail["flights"] == ["u1"]
    assert mon.set_zone_state("C2", state, at) == []  # no change, no event
    nxt = mon.process(fixes([along(res, 101)], start=101))
    assert ("uncleared_flight", "C2") in kinds(nxt)  # a suspended corridor clears no one
    back = mon.set_zone_state("C2", {"state": "active", "by": "rule:C2-wind"}, at + timedelta(seconds=60))
    assert kinds(back, False) == ["zone_activated"]
    assert ("uncleared_flight_end", "C2") in kinds(mon.process(fixes([along(res, 102)], start=102)))


def test_suspended_restricted_zone_is_not_enforced():
    mon = AirspaceMonitor(ZONES, OPEN)
    mon.set_zone_state("R-BR-MP", {"state": "suspended", "by": "admin"}, T0)
    assert "no_fly_violation" not in kinds(mon.process(fixes([(*MP, 50)])), False)


def test_replacing_the_zone_set_keeps_state_by_id():
    mon = AirspaceMonitor(ZONES, OPEN)
    mon.process(fixes([(*MP, 50)]))
    reordered = ZoneSet(list(reversed(ZONES.zones)))
    mon.replace_zones(reordered)
    assert sorted(mon.zones_of("u1")) == ["PWZ", "R-BR-MP"]
    assert mon.process(fixes([(*MP, 60)], start=1)) == []  # still inside: no new events
    without = ZoneSet([z for z in ZONES if z.id != "R-BR-MP"])
    mon.replace_zones(without)
    assert mon.zones_of("u1") == ["PWZ"] and mon.alerts_of("u1") == []
