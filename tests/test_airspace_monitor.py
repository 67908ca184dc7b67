"""AirspaceMonitor: transitions, violations, late fixes and batch-split determinism."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from airspace import AirspaceEvent, AirspaceMonitor, Fix, MonitorPolicy, ZoneSet

ZONES = ZoneSet.from_geojson(json.loads(
    (Path(__file__).parents[1] / "airspace/data/pujiang_wujing.geojson").read_text()))
T0 = datetime(2025, 5, 1, 2, 0, tzinfo=timezone.utc)
OPEN = MonitorPolicy(require_clearance=False, link_timeout_s=3600.0)  # zone and altitude logic alone
MP = (121.4885, 31.044)        # R-BR-MP centre: restricted, 0-150 m AGL
NEAR_MP = (121.475, 31.044)    # inside PWZ, outside every other zone
V_WJ_C, V_PJ_C = (121.458, 31.056), (121.530, 31.051)


def fixes(track, uav="u1", start=0, ref="AGL", status=None):
    """Fixes one second apart from (lon, lat, alt) triples."""
    return [Fix(uav, T0 + timedelta(seconds=start + k), lon, lat, alt, ref, status)
            for k, (lon, lat, alt) in enumerate(track)]


def kinds(events):
    return [(e.kind, e.zone_id) for e in events]


def c2_flight():
    """Take off at V-WJ-C, climb to 80 m, follow C2's centerline, land at V-PJ-C, leave east."""
    line = np.array(ZONES.get("C2").properties["centerline"])
    along = [p for a, b in zip(line[:-1], line[1:]) for p in np.linspace(a, b, 12, endpoint=False)]
    track = [(*V_WJ_C, 0.0), (*V_WJ_C, 30.0), (*V_WJ_C, 80.0)]
    track += [(lon, lat, 80.0) for lon, lat in along[1:]] + [(*V_PJ_C, 80.0)]
    track += [(*V_PJ_C, 30.0), (*V_PJ_C, 0.0), (121.535, 31.051, 30.0), (121.56, 31.051, 30.0)]
    return fixes(track)


def test_c2_flight_enters_and_exits_in_order():
    mon = AirspaceMonitor(ZONES, OPEN)
    flight = c2_flight()
    events = mon.process(flight[:20])
    assert mon.zones_of("u1") == ["PWZ", "C2"] and mon.alerts_of("u1") == []
    events += mon.process(flight[20:])
    assert kinds(events) == [
        ("zone_enter", "PWZ"), ("zone_enter", "V-WJ-C"),
        ("zone_exit", "V-WJ-C"), ("zone_enter", "C2"),
        ("zone_exit", "C2"), ("zone_enter", "V-PJ-C"),
        ("zone_exit", "V-PJ-C"), ("zone_exit", "PWZ")]
    assert events[2].ts == events[3].ts == T0 + timedelta(seconds=2)  # the climb through 60 m
    assert mon.zones_of("u1") == []


def test_no_fly_once_per_entry():
    mon = AirspaceMonitor(ZONES, OPEN)
    out = [mon.process(fixes([(*NEAR_MP, 50), (*MP, 50), (*MP, 60), (*MP, 70)]))]
    assert kinds(out[0]) == [("zone_enter", "PWZ"), ("zone_enter", "R-BR-MP"),
                             ("no_fly_violation", "R-BR-MP")]
    assert mon.alerts_of("u1") == ["no_fly_violation"]
    assert mon.process(fixes([(*MP, 40)], start=4)) == []          # staying: no repeat
    assert kinds(mon.process(fixes([(*NEAR_MP, 50)], start=5))) == [("zone_exit", "R-BR-MP"),
                                                                     ("no_fly_violation_end", "R-BR-MP")]
    assert mon.alerts_of("u1") == []
    again = mon.process(fixes([(*MP, 50)], start=6))
    assert kinds(again) == [("zone_enter", "R-BR-MP"), ("no_fly_violation", "R-BR-MP")]
    detail = again[1].detail
    assert detail["band"] == [0.0, 150.0] and detail["zone_name"].startswith("Huangpu river")
    assert (detail["lon"], detail["lat"], detail["alt_m"], detail["alt_ref"]) == (*MP, 50.0, "AGL")


def test_ground_status_does_not_exempt():
    events = AirspaceMonitor(ZONES, OPEN).process(fixes([(*MP, 0.0)], status="Ground"))
    assert ("no_fly_violation", "R-BR-MP") in kinds(events)


def test_above_restricted_band_is_altitude_violation_of_area():
    mon = AirspaceMonitor(ZONES, OPEN)
    events = mon.process(fixes([(*MP, 160), (*MP, 170)]))
    assert kinds(events) == [("altitude_violation", "PWZ")]
    assert events[0].detail["upper_m"] == 120.0 and events[0].detail["alt_amsl"] == 164.0
    assert mon.alerts_of("u1") == ["altitude_violation"] and mon.zones_of("u1") == []
    events = mon.process(fixes([(*NEAR_MP, 100), (*NEAR_MP, 130)], start=2))  # clears, re-arms
    assert kinds(events) == [("altitude_violation_end", "PWZ"), ("zone_enter", "PWZ"),
                             ("zone_exit", "PWZ"), ("altitude_violation", "PWZ")]


def test_corridor_ceiling_but_not_floor():
    mid_c2 = (121.478, 31.0555)
    events = AirspaceMonitor(ZONES, OPEN).process(fixes([(*mid_c2, 30), (*mid_c2, 80), (*mid_c2, 110)]))
    assert kinds(events) == [("zone_enter", "PWZ"), ("zone_enter", "C2"),
                             ("zone_exit", "C2"), ("altitude_violation", "C2")]
    assert events[-1].detail["upper_m"] == 100.0 and events[-1].detail["alt_m"] == 110.0


def test_fix_alt_ref_is_applied():
    # 150 m AGL = 154 m AMSL is the top of R-BR-MP; 158 m AMSL is above it, 160 m WGS84 = 150 AMSL
    events = AirspaceMonitor(ZONES, OPEN).process(
        fixes([(*MP, 158)], "a", ref="AMSL") + fixes([(*MP, 160)], "b", ref="wgs84"))
    assert ("no_fly_violation", "R-BR-MP") in kinds(e for e in events if e.uav_id == "b")
    assert "R-BR-MP" not in [e.zone_id for e in events if e.uav_id == "a"]


def test_late_fixes_are_ignored_across_batches_but_reordered_within():
    mon = AirspaceMonitor(ZONES, OPEN)
    mon.process(fixes([(*NEAR_MP, 50), (*MP, 50)]))
    assert mon.process(fixes([(*NEAR_MP, 50)], start=0)) == []  # older than the last fix
    assert mon.zones_of("u1") == ["PWZ", "R-BR-MP"]
    late_batch = fixes([(*NEAR_MP, 50)], start=5) + fixes([(*MP, 60)], start=3)
    events = mon.process(late_batch)  # in ts order: t3 still inside, t5 outside
    assert [(e.kind, e.zone_id, (e.ts - T0).seconds) for e in events] == [
        ("zone_exit", "R-BR-MP", 5), ("no_fly_violation_end", "R-BR-MP", 5)]
    assert mon.zones_of("u1") == ["PWZ"]


def test_batch_reorders_by_event_time():
    batch = fixes([(*NEAR_MP, 50)], start=5) + fixes([(*MP, 50)], start=3)
    events = AirspaceMonitor(ZONES, OPEN).process(batch)
    assert [(e.kind, e.zone_id, (e.ts - T0).seconds) for e in events] == [
        ("zone_enter", "PWZ", 3), ("zone_enter", "R-BR-MP", 3), ("no_fly_violation", "R-BR-MP", 3),
        ("zone_exit", "R-BR-MP", 5), ("no_fly_violation_end", "R-BR-MP", 5)]


def test_output_sorted_by_time_then_uav():
    batch = fixes([(*MP, 50), (*NEAR_MP, 50)], "zz") + fixes([(*MP, 50)], "aa", start=1)
    events = AirspaceMonitor(ZONES, OPEN).process(batch)
    assert [(e.ts, e.uav_id) for e in events] == sorted((e.ts, e.uav_id) for e in events)
    assert [e.uav_id for e in events if e.ts == T0 + timedelta(seconds=1)][:2] == ["aa", "aa"]


def test_forget_restarts_the_uav():
    mon = AirspaceMonitor(ZONES, OPEN)
    mon.process(fixes([(*MP, 50)]))
    mon.forget("u1")
    mon.forget("never-seen")
    assert mon.zones_of("u1") == [] and mon.alerts_of("u1") == []
    assert ("no_fly_violation", "R-BR-MP") in kinds(mon.process(fixes([(*MP, 50)], start=1)))


def test_fix_validation_and_utc():
    fix = Fix("u", datetime(2025, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=8))), 121.5, 31.0, 5,
              "amsl")
    assert fix.ts == datetime(2025, 5, 1, 2, 0, tzinfo=timezone.utc) and fix.alt_ref == "AMSL"
    for bad in [dict(ts=datetime(2025, 5, 1)), dict(lon=float("nan")), dict(lat=91.0),
                dict(alt_m=float("inf")), dict(alt_ref="MSL"), dict(uav_id="")]:
        args = dict(uav_id="u", ts=T0, lon=121.5, lat=31.0, alt_m=5.0) | bad
        with pytest.raises(ValueError):
            Fix(**args)


def test_event_to_dict():
    ts = datetime(2025, 5, 1, 10, 3, 4, 567890, tzinfo=timezone(timedelta(hours=8)))
    event = AirspaceEvent("zone_enter", "u1", "C2", ts, {"lon": 121.5})
    assert event.to_dict() == {"kind": "zone_enter", "uav_id": "u1", "zone_id": "C2",
                               "ts": "2025-05-01T02:03:04.567Z", "detail": {"lon": 121.5}}
    with pytest.raises(ValueError):
        AirspaceEvent("zone_wander", "u1", None, T0, {})
    with pytest.raises(ValueError):
        AirspaceEvent("zone_exit", "u1", None, datetime(2025, 5, 1), {})


def test_real_events_are_json_serialisable():
    events = AirspaceMonitor(ZONES, OPEN).process(c2_flight() + fixes([(*MP, 50), (*MP, 200)], "u2"))
    assert {e.kind for e in events} >= {"zone_enter", "zone_exit", "no_fly_violation",
                                        "altitude_violation"}
    assert json.loads(json.dumps([e.to_dict() for e in events]))[0]["ts"].endswith("Z")


PLACES = [MP, NEAR_MP, V_WJ_C, V_PJ_C, (121.478, 31.0555), (121.56, 31.05), (121.49, 31.07)]


@st.composite
def fix_streams(draw):
    """Interleaved fixes of a few UAVs, each UAV's event times non-decreasing."""
    n = draw(st.integers(1, 40))
    clock = {}
    out = []
    for _ in range(n):
        uav = draw(st.sampled_from(["a", "b", "c"]))
        clock[uav] = clock.get(uav, 0) + draw(st.integers(0, 3))
        lon, lat = draw(st.sampled_from(PLACES))
        alt = draw(st.sampled_from([0.0, 50.0, 80.0, 110.0, 130.0, 160.0]))
        out.append(Fix(uav, T0 + timedelta(seconds=clock[uav]), lon, lat, alt))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return out, cuts


@settings(max_examples=150, deadline=None)
@given(fix_streams())
def test_batch_split_does_not_change_events(stream):
    seq, cuts = stream
    whole = AirspaceMonitor(ZONES, OPEN)
    expected = whole.process(seq)
    split = AirspaceMonitor(ZONES, OPEN)
    got = []
    for lo, hi in zip([0, *cuts], [*cuts, len(seq)]):
        got += split.process(seq[lo:hi])
    # batches are emitted one after another, so compare in the documented (ts, uav) order
    assert sorted(got, key=lambda e: (e.ts, e.uav_id)) == expected
    for uav in "abc":
        assert split.zones_of(uav) == whole.zones_of(uav)
        assert split.alerts_of(uav) == whole.alerts_of(uav)
