"""Live separation events of the traffic engine: losses, predicted conflicts, discrepancies, unregistered drones;
both aircraft named, one event per involved aircraft, stable distinct ids."""
from __future__ import annotations

import pytest

from airspace.events import END_OF, EVENT_KINDS
from airspace.traffic import TrafficEngine
from airspace.traffic_policy import TrafficPolicy
from ingest.pipeline import event_id

from .test_airspace_tracks import ZONES, at, obs, run, tel


def converging(n: int = 60) -> list:
    """T1 and T2 head-on along the same line at 10 m/s each, 60 m AGL (2 m apart vertically), from 1,000 m."""
    return ([tel("T1", s, -500.0 + 10.0 * s, 0.0, 60.0, 10.0, 90.0) for s in range(n)]
            + [tel("T2", s, 500.0 - 10.0 * s, 0.0, 62.0, 10.0, 270.0) for s in range(n)])


def test_kinds_have_ends():
    for start in ("separation_loss", "conflict_predicted", "position_discrepancy", "unregistered_aircraft",
                  "source_lost"):
        assert start in END_OF and END_OF[start] in EVENT_KINDS


def test_converging_drones_get_conflict_then_loss_then_end():
    _, events, _ = run(converging(), until=70)
    mine = [(e.kind, e.ts) for e in events if e.uav_id == "T1"]
    # loss at 47.5 m apart... closing 20 m/s from 1,000 m: inside 50 m at t = 47.5 s (instant 48); predicted 30 s ahead
    assert mine[:3] == [("conflict_predicted", at(18)), ("conflict_predicted_end", at(48)), ("separation_loss", at(48))]
    # they pass each other; the loss ends once 10 % beyond the minima (55 m): at t = 52.75 s -> instant 53
    assert mine[3] == ("separation_loss_end", at(53))
    conflict = next(e for e in events if e.kind == "conflict_predicted" and e.uav_id == "T1")
    d = conflict.detail
    assert d["loss_in_s"] == pytest.approx(29.5) and d["cpa_s"] == pytest.approx(30.0)  # CPA clamped to look-ahead
    assert d["other"] == {"track_id": "uav:T2", "kind": "drone", "uav_id": "T2", "callsign": None, "registered": True}
    assert d["track_id"] == "uav:T1" and d["pair"] == "drone-drone" and d["min_horizontal_m"] == 50.0
    assert conflict.zone_id == "uav:T2" and set(d["positions"]) == {"uav:T1", "uav:T2"}
    both = [e for e in events if e.kind == "separation_loss"]
    assert sorted(e.uav_id for e in both) == ["T1", "T2"] and both[0].detail["horizontal_m"] <= 50.0
    end = next(e for e in events if e.kind == "conflict_predicted_end" and e.uav_id == "T1")
    assert end.detail["reason"] == "separation_loss" and end.detail["duration_s"] == 30.0


def test_drone_near_a_helicopter_uses_the_well_clear_minima_and_names_it():
    rows = [tel("T5", s, 0.0, 0.0, 80.0, 0.0, 0.0) for s in range(16)]  # 84 m AMSL, hovering
    heli = [obs("adsb", "780A3B", s, -1200.0 + 60.0 * s, 300.0, 130.0, 60.0, 90.0, callsign="B7001",
                category="rotorcraft") for s in range(16)]  # 46 m above, passing 300 m north
    _, events, _ = run(rows, heli, until=18)
    loss = [e for e in events if e.kind == "separation_loss"]
    assert {e.uav_id for e in loss} == {"T5", "icao:780a3b"}
    drone_side = next(e for e in loss if e.uav_id == "T5")
    assert drone_side.zone_id == "icao:780a3b" and drone_side.detail["other"]["callsign"] == "B7001"
    assert drone_side.detail["pair"] == "drone-manned" and drone_side.detail["min_horizontal_m"] == 609.6
    # and two helicopters are never a pair of ours
    heli2 = [obs("adsb", "780A3C", s, -1200.0 + 60.0 * s, 320.0, 130.0, 60.0, 90.0, category="rotorcraft")
             for s in range(16)]
    _, events, _ = run([], heli + heli2, until=18)
    assert not [e for e in events if e.kind in ("separation_loss", "conflict_predicted")]


def test_two_conflicts_of_one_drone_at_one_instant_have_two_ids():
    rows = [tel("A", s, 0.0, 0.0, 60.0, 0.0, 0.0) for s in range(4)]
    rows += [tel("B", s, 30.0, 0.0, 60.0, 0.0, 0.0) for s in range(4)]
    rows += [tel("C", s, -30.0, 0.0, 60.0, 0.0, 0.0) for s in range(4)]
    _, events, _ = run(rows, until=6)
    a = [e for e in events if e.uav_id == "A" and e.kind == "separation_loss"]
    assert len(a) == 2 and len({event_id(e) for e in a}) == 2 and a[0].ts == a[1].ts


def test_telemetry_and_remote_id_disagreeing_is_a_position_discrepancy():
    rows = [tel("T6", s, 0.0, 0.0, 60.0, 0.0, 0.0) for s in range(20)]
    off = [obs("rid", "SN6", s + 0.2, 120.0 if 5 <= s < 12 else 2.0, 0.0, 64.0, 0.0, 0.0, uav_id="T6")
           for s in range(20)]
    _, events, states = run(rows, off, until=22)
    disc = [(e.kind, e.ts) for e in events if e.kind.startswith("position_discrepancy")]
    assert disc == [("position_discrepancy", at(6)), ("position_discrepancy_end", at(13))]
    start = next(e for e in events if e.kind == "position_discrepancy")
    assert start.uav_id == "T6" and start.detail["horizontal_m"] == pytest.approx(120.0, abs=0.5)
    assert start.detail["rid"]["key"] == "SN6" and start.detail["telemetry"]["key"] == "T6"
    assert not [e for e in events if e.kind == "unregistered_aircraft"]  # registered through its serial


def test_unregistered_remote_id_drone_inside_the_zone_until_it_leaves():
    # PWZ spans about 121.435-121.545 E; fly east out of it at 50 m/s
    rid = [obs("rid", "ROGUE1", s, 6500.0 + 50.0 * s, 0.0, 80.0, 50.0, 90.0, serial="ROGUE1",
               operator_id="CHN-OP-1") for s in range(60)]
    _, events, _ = run([], rid, until=62)
    kinds = [e.kind for e in events if e.kind.startswith("unregistered")]
    assert kinds == ["unregistered_aircraft", "unregistered_aircraft_end"]
    start, end = (e for e in events if e.kind.startswith("unregistered"))
    assert start.uav_id == "rid:ROGUE1" and start.zone_id == "PWZ" and start.detail["identity"]["serial"] == "ROGUE1"
    assert end.detail["reason"] == "left_area"


def test_states_carry_alerts_and_sources():
    eng = TrafficEngine(ZONES, TrafficPolicy())
    res = eng.step(converging(51), [])
    st = res.states["uav:T1"]
    assert st["alerts"] == ["separation_loss"] and st["sources"]["telemetry"]["age_s"] >= 0.0
    assert st["alt_ref"] == "AMSL" and st["alt_m"] == pytest.approx(64.0)


def test_landing_ends_a_loss():
    rows = [tel("L1", s, 0.0, 0.0, 30.0, 0.0, 0.0) for s in range(10)]
    rows += [tel("L2", s, 20.0, 0.0, 30.0, 0.0, 0.0, status="Airborne" if s < 5 else "Ground") for s in range(10)]
    _, events, _ = run(rows, until=12)
    end = next(e for e in events if e.kind == "separation_loss_end" and e.uav_id == "L1")
    assert end.ts == at(5) and end.detail["reason"] == "landed"
