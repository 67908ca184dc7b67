"""Dynamic airspace: sensor rules with hysteresis, admin states, payloads and the rules file."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airspace import ZoneSet
from airspace.dynamic import DynamicAirspace, ZoneState, load_rules, parse_rules, rules_from_zones

ROOT = Path(__file__).parents[1]
T0 = datetime(2026, 11, 27, 2, 0, tzinfo=timezone.utc)
RULE = {"id": "C2-wind", "zone_id": "C2", "sensor_id": "W-C2", "metric": "wind_gust", "above": 12.0,
        "clear_below": 10.0}


def at(s):
    return T0 + timedelta(seconds=s)


def test_gust_suspends_and_calm_reactivates_with_hysteresis():
    dyn = DynamicAirspace(parse_rules([RULE]))
    assert dyn.observe("W-C2", "wind_gust", 11.9, at(0)) == []
    (st,) = dyn.observe("W-C2", "wind_gust", 14.2, at(1))
    assert (st.zone_id, st.state, st.by, st.value, st.sensor_id, st.metric) == (
        "C2", "suspended", "rule:C2-wind", 14.2, "W-C2", "wind_gust")
    assert st.at == st.reading_ts == "2026-11-27T02:00:01.000Z" and "14.2 > 12" in st.reason
    assert dyn.observe("W-C2", "wind_gust", 15.0, at(2)) == []   # already suspended
    assert dyn.observe("W-C2", "wind_gust", 11.0, at(3)) == []   # between the thresholds: stays
    (back,) = dyn.observe("W-C2", "wind_gust", 9.5, at(4))
    assert back.state == "active" and not dyn.suspended("C2")
    assert dyn.observe("W-C2", "wind_speed", 30.0, at(5)) == []  # another metric
    assert dyn.observe("W-C1", "wind_gust", 30.0, at(5)) == []   # another sensor


def test_rules_do_not_undo_an_admin_and_late_readings_are_ignored():
    dyn = DynamicAirspace(parse_rules([RULE]))
    admin = ZoneState("C2", "suspended", "bridge inspection", "admin:ops", "2026-11-27T02:00:05Z")
    assert dyn.apply(admin) is True and dyn.apply(admin) is False
    assert dyn.observe("W-C2", "wind_gust", 3.0, at(10)) == []  # calm, but not the rule's suspension
    assert dyn.apply(ZoneState("C2", "active", "done", "admin:ops", "2026-11-27T02:00:20Z"))
    assert dyn.observe("W-C2", "wind_gust", 20.0, at(15)) == []  # older than the admin's decision
    assert [s.state for s in dyn.observe("W-C2", "wind_gust", 20.0, at(25))] == ["suspended"]
    assert dyn.zone_states()["C2"]["state"] == "suspended"


def test_below_rules_and_observe_many_in_event_time_order():
    dyn = DynamicAirspace(parse_rules([{"zone_id": "V-PJ-C", "sensor_id": "WL-1", "metric": "visibility",
                                        "below": 200.0, "clear_above": 400.0}]))
    decisions = dyn.observe_many([("WL-1", "visibility", 500.0, at(3)), ("WL-1", "visibility", 150.0, at(1)),
                                  ("WL-1", "visibility", 300.0, at(2))])
    assert [(d.state, d.value) for d in decisions] == [("suspended", 150.0), ("active", 500.0)]


@pytest.mark.parametrize("rule, match", [
    ({**RULE, "zone_id": ""}, r"rules\[0\].zone_id"),
    ({**RULE, "above": None}, "exactly one of"),
    ({**RULE, "below": 3.0}, "exactly one of"),
    ({**RULE, "clear_below": 13.0}, "clear_below"),
    ({**RULE, "above": "12"}, r"rules\[0\].above"),
    ({**RULE, "above": float("nan")}, "finite"),
    ("not a rule", r"rules\[0\]: must be an object"),
])
def test_bad_rules_name_the_field(rule, match):
    with pytest.raises(ValueError, match=match):
        parse_rules([rule])


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
                       ({"state": "active", "at": "2026-11-27T02:00:00Z", "reason": 3}, "reason")]:
        with pytest.raises(ValueError, match=match):
            ZoneState.from_payload("C2", bad)


def test_bundled_rules_file_names_real_zones():
    rules = load_rules(json.loads((ROOT / "airspace/data/dynamic_rules.json").read_text()))
    zones = ZoneSet.from_geojson(json.loads((ROOT / "airspace/data/pujiang_wujing.geojson").read_text()))
    assert {r.zone_id for r in rules} == {"C1", "C2", "C3"}
    assert all(zones.get(r.zone_id).kind == "corridor" and r.sensor_id == f"W-{r.zone_id}" for r in rules)
    with pytest.raises(ValueError, match="rules"):
        load_rules({"no": "rules"})


def test_rules_in_zone_properties():
    zones = ZoneSet.from_geojson(json.loads((ROOT / "airspace/data/pujiang_wujing.geojson").read_text()))
    feats = zones.to_geojson()
    for f in feats["features"]:
        if f["properties"]["id"] == "C3":
            f["properties"]["suspend_when"] = [{"sensor_id": "W-C3", "metric": "wind_gust", "above": 11.0}]
    (rule,) = rules_from_zones(ZoneSet.from_geojson(feats))
    assert (rule.zone_id, rule.sensor_id, rule.above) == ("C3", "W-C3", 11.0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 25), min_size=1, max_size=40))
def test_rule_state_follows_the_hysteresis(values):
    dyn = DynamicAirspace(parse_rules([RULE]))
    suspended = False
    for k, v in enumerate(values):
        dyn.observe("W-C2", "wind_gust", v, at(k))
        suspended = (v > 12.0) or (suspended and v >= 10.0)
        assert dyn.suspended("C2") == suspended
