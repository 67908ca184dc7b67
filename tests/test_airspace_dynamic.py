"""Dynamic airspace: zone rules with hysteresis, admin states, payloads and the zone rules file."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airspace import ZoneSet
from airspace.dynamic import DynamicAirspace, ZoneState, rules_from_zones
from airspace.thresholds import RuleError, parse_rules
from ingest.pipeline import load_dynamic_rules

ROOT = Path(__file__).parents[1]
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)
RULE = {"id": "C2-wind", "zone_id": "C2", "sensor_id": "W-C2", "metric": "wind_gust", "above": 12.0,
        "clear_below": 10.0}


def at(s):
    return T0 + timedelta(seconds=s)


def zone_rules(*items):
    return parse_rules(list(items), zone_rules=True)


def suspended(dyn, zone_id):
    st = dyn.states.get(zone_id)
    return st is not None and st.state == "suspended"


def test_gust_suspends_and_calm_reactivates_with_hysteresis():
    dyn = DynamicAirspace(zone_rules(RULE))
    assert dyn.observe("W-C2", "wind_gust", 11.9, at(0)) == []
    (st,) = dyn.observe("W-C2", "wind_gust", 14.2, at(1))
    assert (st.zone_id, st.state, st.by, st.value, st.sensor_id, st.metric) == (
        "C2", "suspended", "rule:C2-wind", 14.2, "W-C2", "wind_gust")
    assert st.at == st.reading_ts == "2026-11-27T02:00:01.000Z" and "14.2 > 12" in st.reason
    assert dyn.observe("W-C2", "wind_gust", 15.0, at(2)) == []   # already suspended
    assert dyn.observe("W-C2", "wind_gust", 11.0, at(3)) == []   # between the thresholds: stays
    (back,) = dyn.observe("W-C2", "wind_gust", 9.5, at(4))
    assert back.state == "active" and not suspended(dyn, "C2")
    assert dyn.observe("W-C2", "wind_speed", 30.0, at(5)) == []  # another metric
    assert dyn.observe("W-C1", "wind_gust", 30.0, at(5)) == []   # another sensor


def test_rules_do_not_undo_an_admin_and_late_readings_are_ignored():
    dyn = DynamicAirspace(zone_rules(RULE))
    admin = ZoneState("C2", "suspended", "bridge inspection", "admin:ops", "2026-11-27T02:00:05Z")
    assert dyn.apply(admin) is True and dyn.apply(admin) is False
    assert dyn.observe("W-C2", "wind_gust", 3.0, at(10)) == []  # calm, but not the rule's suspension
    assert dyn.apply(ZoneState("C2", "active", "done", "admin:ops", "2026-11-27T02:00:20Z"))
    assert dyn.observe("W-C2", "wind_gust", 20.0, at(15)) == []  # older than the admin's decision
    assert [s.state for s in dyn.observe("W-C2", "wind_gust", 20.0, at(25))] == ["suspended"]
    assert dyn.states["C2"].state == "suspended"


def test_below_rules_clear_above_and_default_ids():
    (rule,) = zone_rules({"zone_id": "V-PJ-C", "sensor_id": "WL-1", "metric": "visibility", "below": 200.0,
                          "clear_above": 400.0})
    assert rule.id == "V-PJ-C:WL-1:visibility"
    dyn = DynamicAirspace([rule])
    decisions = [d for t, v in [(1, 150.0), (2, 300.0), (3, 500.0)]
                 for d in dyn.observe("WL-1", "visibility", v, at(t))]
    assert [(d.state, d.value, d.by) for d in decisions] == [("suspended", 150.0, "rule:V-PJ-C:WL-1:visibility"),
                                                             ("active", 500.0, "rule:V-PJ-C:WL-1:visibility")]
    assert decisions[0].reason == "WL-1 visibility 150 < 200"


NO_ZONE = {k: v for k, v in RULE.items() if k != "zone_id"}
NAMED = r"rule 1 \('C2-wind'\): "


@pytest.mark.parametrize("rule, match", [
    ({**RULE, "zone_id": ""}, NAMED + "field 'zone_id': a non-empty string"),
    (NO_ZONE, NAMED + "field 'zone_id': a zone rule names the zone"),
    ({k: v for k, v in RULE.items() if k != "above"}, NAMED + "field 'above': give exactly one of"),
    ({**RULE, "below": 3.0}, NAMED + "field 'above': give exactly one of"),
    ({**RULE, "clear_below": 13.0}, NAMED + "field 'clear_below': with 'above', 'clear_below' <= 'above'"),
    ({**RULE, "above": "12"}, NAMED + "field 'above': a finite number"),
    ({**RULE, "above": float("nan")}, NAMED + "field 'above': a finite number"),
    ({**RULE, "sensor_id": None}, NAMED + "field 'sensor_id': a non-empty string"),
    ({**RULE, "sensor_kind": "wind"}, NAMED + "field 'sensor_kind': give at most one"),
    ({k: v for k, v in RULE.items() if k != "sensor_id"} | {"sensor_ids": ["W-C2"]},
     NAMED + "field 'sensor_id': a zone rule watches one sensor"),
    ({**RULE, "reason": "gusts"}, NAMED + "field 'reason': unknown field"),
    ({**RULE, "id": "C1-wind"}, r"rule 1 \('C1-wind'\): field 'id': duplicate"),
    ("not a rule", "rule 1: not an object"),
])
def test_bad_zone_rules_name_the_rule_and_field(rule, match):
    with pytest.raises(RuleError, match=rf"^dynamic_rules.json: {match}"):
        parse_rules({"rules": [{**RULE, "id": "C1-wind"}, rule]}, "dynamic_rules.json", zone_rules=True)


def test_zone_state_payload_round_trip_and_errors():
    st = ZoneState("C2", "suspended", "gusts", "rule:C2-wind", "2026-11-27T02:00:01.000Z", "W-C2", "wind_gust",
                   14.2, "2026-11-27T02:00:01.000Z")
    assert ZoneState.from_payload("C2", json.loads(json.dumps(st.to_payload()))) == st
    minimal = ZoneState.from_payload("C1", {"state": "active", "at": "2026-11-27T10:00:00+08:00"})
    assert minimal.at == "2026-11-27T02:00:00.000Z" and minimal.reason == ""
    for bad, match in [([], "object"), ({"state": "closed", "at": "2026-11-27T02:00:00Z"}, "state"),
                       ({"state": "active"}, "'at'"), ({"state": "active", "at": "2026-11-27T02:00:00"}, "offset"),
                       ({"state": "active", "at": "yesterday"}, "RFC 3339"),
                       ({"state": "active", "at": "2026-11-27T02:00:00Z", "value": True}, "value"),
                       ({"state": "active", "at": "2026-11-27T02:00:00Z", "reason": 3}, "reason"),
                       ({"state": "active", "at": "2026-11-27T02:00:00Z", "reason": "x" * 501}, "at most 500")]:
        with pytest.raises(ValueError, match=match):
            ZoneState.from_payload("C2", bad)


def test_bundled_rules_file_names_real_zones():
    rules = load_dynamic_rules()
    zones = ZoneSet.from_geojson(json.loads((ROOT / "airspace/data/pujiang_wujing.geojson").read_text()))
    assert {r.zone_id for r in rules} == {"C1", "C2", "C3"}
    assert all(zones.get(r.zone_id).kind == "corridor" and r.sensor_id == f"W-{r.zone_id}" for r in rules)
    assert all((r.op, r.limit, r.clear) == (">", 12.0, 10.0) for r in rules)
    with pytest.raises(RuleError, match=r"^x.json: expected \{\"rules\": \[...\]\}"):
        parse_rules({"no": "rules"}, "x.json", zone_rules=True)


def test_rules_in_zone_properties():
    zones = ZoneSet.from_geojson(json.loads((ROOT / "airspace/data/pujiang_wujing.geojson").read_text()))
    feats = zones.to_geojson()
    for f in feats["features"]:
        if f["properties"]["id"] == "C3":
            f["properties"]["suspend_when"] = [{"sensor_id": "W-C3", "metric": "wind_gust", "above": 11.0}]
    (rule,) = rules_from_zones(ZoneSet.from_geojson(feats))
    assert (rule.id, rule.zone_id, rule.sensor_id, rule.op, rule.limit) == ("C3:W-C3:wind_gust", "C3", "W-C3", ">",
                                                                           11.0)
    for f in feats["features"]:
        if f["properties"]["id"] == "C3":
            f["properties"]["suspend_when"] = [{"sensor_id": "W-C3", "metric": "wind_gust", "above": 11.0,
                                                "clear_above": 12.0}]
    with pytest.raises(RuleError, match=r"^zone C3: suspend_when: rule 0: field 'clear_below'"):
        rules_from_zones(ZoneSet.from_geojson(feats))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 25), min_size=1, max_size=40))
def test_rule_state_follows_the_hysteresis(values):
    dyn = DynamicAirspace(zone_rules(RULE))
    expected = False
    for k, v in enumerate(values):
        dyn.observe("W-C2", "wind_gust", v, at(k))
        expected = (v > 12.0) or (expected and v >= 10.0)
        assert suspended(dyn, "C2") == expected
