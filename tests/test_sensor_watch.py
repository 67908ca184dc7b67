"""SensorWatch: threshold rules with hysteresis, silence and status on event time (pure; hypothesis)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airspace.dynamic import DynamicAirspace
from airspace.thresholds import Rule, RuleError, parse_rules
from ingest.pipeline import DYNAMIC_RULES_FILE, DeviceStatus, load_dynamic_rules
from ingest.sensor_watch import SENSOR_EVENT_KINDS, SensorWatch, load_rules, sensor_infos
from ingest.sensors import ReadingRow

T0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
GUST = Rule("gust", "wind_gust", ">", 12.0, 9.0, sensor_kind="wind")
REGISTRY = sensor_infos([
    {"device_id": "W-C1", "kind": "sensor", "sensor_kind": "wind", "expected_interval_s": 10,
     "properties": {"corridor_id": "C1"}},
    {"device_id": "W-C2", "kind": "sensor", "sensor_kind": "wind", "expected_interval_s": 10,
     "properties": {"corridor_id": "C2", "limits": {"wind_gust": 15.0}}},
    {"device_id": "uav-001", "kind": "uav", "expected_interval_s": 1},
])


def row(sid: str, t: float, v: float | None, metric: str = "wind_gust") -> ReadingRow:
    return ReadingRow(T0 + timedelta(seconds=t), sid, metric, v, None if v is not None else "x", "m/s", T0)


def reference(values: list[float], limit: float = 12.0, clear: float = 9.0) -> list[tuple[int, str]]:
    """The hysteresis state machine, written plainly: (index, kind) of each transition."""
    active, out = False, []
    for i, v in enumerate(values):
        if not active and v > limit:
            active = True
            out.append((i, "sensor_threshold"))
        elif active and v < clear:
            active = False
            out.append((i, "sensor_threshold_cleared"))
    return out


values_st = st.lists(st.floats(0.0, 25.0, allow_nan=False), min_size=1, max_size=60)


@given(values_st)
def test_threshold_events_follow_the_hysteresis_state_machine(values):
    watch = SensorWatch(REGISTRY, [GUST])
    events = watch.observe([row("W-C1", 10.0 * i, v) for i, v in enumerate(values)])
    got = [(int((e.ts - T0).total_seconds() // 10), e.kind) for e in events]
    assert got == reference(values)
    for e in events:
        assert e.rule_id == "gust" and e.metric == "wind_gust" and e.detail["corridor_id"] == "C1"
        assert (e.value > 12.0) if e.kind == "sensor_threshold" else (e.value < 9.0)


@given(values_st, st.lists(st.integers(1, 59), max_size=6), st.randoms(use_true_random=False))
def test_batching_and_arrival_order_within_a_batch_do_not_change_the_events(values, cuts, rnd):
    rows = [row("W-C1", 10.0 * i, v) for i, v in enumerate(values)] + \
           [row("W-C2", 10.0 * i + 3, v + 2) for i, v in enumerate(values)]
    rows.sort(key=lambda r: r.ts)
    whole = SensorWatch(REGISTRY, [GUST]).observe(rows)
    watch = SensorWatch(REGISTRY, [GUST])
    got, bounds = [], sorted({0, len(rows), *[c for c in cuts if c < len(rows)]})
    for a, b in zip(bounds, bounds[1:]):
        batch = rows[a:b]
        rnd.shuffle(batch)  # messages of one batch arrive in any order
        got += watch.observe(batch)
        got += watch.tick(batch[-1].ts if batch else T0)
    assert sorted(e.id for e in got) == sorted(e.id for e in whole)


@given(values_st)
def test_registry_limit_overrides_move_the_band(values):
    events = SensorWatch(REGISTRY, [GUST]).observe([row("W-C2", 10.0 * i, v) for i, v in enumerate(values)])
    assert [(int((e.ts - T0).total_seconds() // 10), e.kind) for e in events] == reference(values, 15.0, 12.0)


def test_rules_apply_only_to_their_sensors_and_late_readings_change_nothing():
    watch = SensorWatch(REGISTRY, [GUST, Rule("ids", "pm2_5", ">", 75, 60, sensor_ids=frozenset({"aq-1"}))])
    assert watch.observe([row("trf-1", 0, 30.0), row("aq-2", 0, 99.0, "pm2_5")]) == []  # not a wind sensor
    assert [e.kind for e in watch.observe([row("aq-1", 0, 99.0, "pm2_5")])] == ["sensor_threshold"]
    assert [e.kind for e in watch.observe([row("W-C1", 20, 13.0)])] == ["sensor_threshold"]
    assert watch.observe([row("W-C1", 10, 1.0)]) == []  # late: older than what the rule has seen
    assert watch.observe([row("W-C1", 30, None)]) == []  # text values are not compared
    assert watch.active_rules() == {("ids", "aq-1"), ("gust", "W-C1")}
    assert [e.kind for e in watch.observe([row("W-C1", 40, 8.0)])] == ["sensor_threshold_cleared"]


@given(st.lists(st.floats(0.1, 80.0), min_size=1, max_size=30), st.floats(0.5, 4.0))
def test_silent_exactly_when_the_gap_exceeds_the_allowance(gaps, factor):
    watch = SensorWatch(REGISTRY, [], silence_factor=factor)
    allowance = 10.0 * factor
    t, events = 0.0, []
    events += watch.observe([row("W-C1", t, 5.0)])
    expected = []
    for gap in gaps:
        # the watermark passes the deadline only when nothing arrived in time
        wm = t + gap
        events += watch.tick(T0 + timedelta(seconds=wm - 1e-3))
        if gap > allowance:  # found by the tick, or by the next reading itself: the same event
            expected += [("sensor_silent", t + allowance), ("sensor_resumed", t + gap)]
        t = wm
        events += watch.observe([row("W-C1", t, 5.0)])
    got = [(e.kind, (e.ts - T0).total_seconds()) for e in events if e.sensor_id == "W-C1"]
    assert [k for k, _ in got] == [k for k, _ in expected]
    assert [x for _, x in got] == pytest.approx([x for _, x in expected], abs=1e-5)  # datetimes hold microseconds
    assert not watch.is_silent("W-C1")


def test_never_heard_sensors_are_silent_from_the_first_watermark_and_drones_are_not_watched():
    watch = SensorWatch(REGISTRY, [])
    assert watch.tick(T0) == []
    events = watch.tick(T0 + timedelta(seconds=26))
    assert sorted((e.sensor_id, e.ts) for e in events) == [("W-C1", T0 + timedelta(seconds=25)),
                                                          ("W-C2", T0 + timedelta(seconds=25))]
    assert all(e.detail["last_reading"] is None for e in events)
    assert watch.tick(T0 + timedelta(seconds=3600)) == []  # reported once
    resumed = watch.observe([row("W-C2", 100, 3.0)])
    assert [(e.kind, e.detail["gap_s"]) for e in resumed] == [("sensor_resumed", 100.0)]


def test_status_changes_are_events_repeated_retained_statuses_are_not():
    watch = SensorWatch(REGISTRY, [])
    s = [DeviceStatus("W-C1", True, T0), DeviceStatus("W-C1", True, T0 + timedelta(seconds=5)),
         DeviceStatus("W-C1", False, T0 + timedelta(seconds=9)), DeviceStatus("ext-7", True, T0)]
    events = watch.observe([], s)
    assert [(e.kind, e.sensor_id) for e in events] == [("sensor_online", "W-C1"), ("sensor_online", "ext-7"),
                                                       ("sensor_offline", "W-C1")]
    assert events[0].detail["corridor_id"] == "C1" and events[1].detail == {"registered": False}
    restarted = SensorWatch(REGISTRY, [GUST])
    restarted.seed(online={"W-C1": False}, active=[("gust", "W-C1")])
    assert restarted.observe([], [DeviceStatus("W-C1", False, T0 + timedelta(seconds=60))]) == []
    assert [e.kind for e in restarted.observe([row("W-C1", 70, 5.0)])] == ["sensor_threshold_cleared"]


def test_event_ids_are_deterministic_and_kinds_known():
    rows = [row("W-C1", 0, 13.0), row("W-C1", 10, 5.0)]
    a = SensorWatch(REGISTRY, [GUST]).observe(rows)
    b = SensorWatch(REGISTRY, [GUST]).observe(list(reversed(rows)))
    assert [e.id for e in a] == [e.id for e in b] and len({e.id for e in a}) == 2
    assert {e.kind for e in a} <= set(SENSOR_EVENT_KINDS)
    d = a[0].to_dict()
    assert d["ts"] == "2026-05-01T00:00:00.000Z" and d["sensor_id"] == "W-C1" and d["kind"] == "sensor_threshold"


def test_shipped_rules_load_and_bad_rules_are_named():
    rules = {r.id: r for r in load_rules()}
    assert rules["wind-gust-limit"].limit == 12.0 and rules["wind-gust-limit"].sensor_kind == "wind"
    assert rules["traffic-slow"].op == "<"
    for bad, needle in [([{"id": "a", "metric": "m"}], "exactly one"),
                        ([{"id": "a", "metric": "m", "above": 5, "clear_below": 6}], "clear_below"),
                        ([{"id": "a", "metric": "m", "below": 5, "clear_above": 4}], "clear_above"),
                        ([{"id": "a", "metric": "m", "above": float("inf")}], "finite"),
                        ([{"id": "a", "metric": "m", "above": 1, "colour": 1}], "unknown field"),
                        ([{"id": "a", "metric": "m", "above": 1}, {"id": "a", "metric": "n", "above": 1}],
                         "duplicate"),
                        ([{"id": "a", "metric": "m", "above": 1, "sensor_kind": "wind", "sensor_ids": ["x"]}],
                         "at most one of"),
                        ({"rules": 3}, "expected")]:
        with pytest.raises(RuleError, match=needle):
            parse_rules(bad)


def test_errors_name_the_file_the_rule_and_the_field(tmp_path):
    path = tmp_path / "my_rules.json"
    path.write_text('{"rules": [{"id": "ok", "metric": "m", "above": 1}, '
                    '{"id": "pm", "metric": "pm2_5", "above": "75"}]}')
    with pytest.raises(RuleError, match=r"^my_rules.json: rule 1 \('pm'\): field 'above': a finite number$"):
        load_rules(path)
    path.write_text('{"rules": [{"id": "C1-wind", "zone_id": "C1", "sensor_id": "W-C1", "metric": "wind_gust", '
                    '"above": 12}]}')
    with pytest.raises(RuleError, match=r"^my_rules.json: rule 0 \('C1-wind'\): field 'zone_id': only zone suspension"):
        load_rules(path)  # a zone rule in the sensor rules file would silently not suspend anything


def test_one_format_for_sensor_events_and_zone_suspension():
    """The bundled zone rules and sensor rules are the same format through the same parser; a rule reads the
    same in both, a zone rule only adds the zone and its one sensor."""
    zone_rules, sensor_rules = load_dynamic_rules(), load_rules()
    assert load_rules(DYNAMIC_RULES_FILE, zone_rules=True) == zone_rules
    assert all(isinstance(r, Rule) for r in zone_rules + sensor_rules)
    c1 = next(r for r in zone_rules if r.id == "C1-wind")
    assert (c1.zone_id, c1.sensor_id, c1.metric, c1.op, c1.limit, c1.clear) == ("C1", "W-C1", "wind_gust", ">", 12.0,
                                                                                10.0)
    item = {"id": "gust", "metric": "wind_gust", "above": 12.0, "clear_below": 10.0, "sensor_id": "W-C1"}
    (as_event,) = parse_rules([item])
    (as_zone,) = parse_rules([{**item, "zone_id": "C1"}], zone_rules=True)
    assert as_zone == Rule("gust", "wind_gust", ">", 12.0, 10.0, sensor_ids=frozenset({"W-C1"}), zone_id="C1")
    assert as_event == Rule("gust", "wind_gust", ">", 12.0, 10.0, sensor_ids=frozenset({"W-C1"}))
    # the same hysteresis in both users: raised above 12, held down to 10, cleared under 10
    values = [11.0, 12.5, 11.0, 10.0, 9.9, 13.0]
    watch, dyn = SensorWatch(REGISTRY, [as_event]), DynamicAirspace([as_zone])
    events = watch.observe([row("W-C1", 10.0 * i, v) for i, v in enumerate(values)])
    states = [s for i, v in enumerate(values)
              for s in dyn.observe("W-C1", "wind_gust", v, T0 + timedelta(seconds=10 * i))]
    assert [(e.ts, e.kind == "sensor_threshold") for e in events] == \
        [(T0 + timedelta(seconds=10 * i), s.state == "suspended") for i, s in zip((1, 4, 5), states)]
    assert reference(values, 12.0, 10.0) == [(1, "sensor_threshold"), (4, "sensor_threshold_cleared"),
                                             (5, "sensor_threshold")]


def test_many_sensors_one_batch():
    """A batch of 10,000 readings over 2,000 sensors: each sensor's transitions as if alone."""
    rnd = random.Random(5)
    reg = sensor_infos([{"device_id": f"w{i}", "kind": "sensor", "sensor_kind": "wind", "expected_interval_s": 10}
                        for i in range(2000)])
    series = {f"w{i}": [rnd.uniform(0, 16) for _ in range(5)] for i in range(2000)}
    rows = [row(sid, 10.0 * k, v) for sid, vs in series.items() for k, v in enumerate(vs)]
    rnd.shuffle(rows)
    events = SensorWatch(reg, [GUST]).observe(rows)
    for sid in ("w0", "w17", "w1999"):
        got = [(int((e.ts - T0).total_seconds() // 10), e.kind) for e in events if e.sensor_id == sid]
        assert got == reference(series[sid])
    assert len(events) == sum(len(reference(v)) for v in series.values())


@settings(max_examples=50)
@given(st.lists(st.tuples(st.sampled_from(["W-C1", "W-C2", "x"]), st.floats(0, 500), st.floats(0, 30)),
                max_size=40))
def test_never_crashes_and_only_known_kinds(items):
    watch = SensorWatch(REGISTRY, load_rules())
    rows = [row(s, t, v) for s, t, v in items]
    events = watch.observe(rows) + watch.tick(T0 + timedelta(seconds=1000))
    assert {e.kind for e in events} <= set(SENSOR_EVENT_KINDS)
    assert len({e.id for e in events}) == len(events)


def test_step_keeps_its_own_watermark_from_readings_and_fixes():
    watch = SensorWatch(REGISTRY, [GUST])
    assert [e.kind for e in watch.step([row("W-C1", 0, 13.0), row("W-C2", 0, 3.0)])] == ["sensor_threshold"]
    assert watch.step([row("W-C2", 20, 3.0)]) == []  # W-C1 due at 25 s; the watermark is at 15 s
    # drone fixes move event time on too: at 31 s the watermark (26 s) is past W-C1's deadline
    silent = watch.step([], latest=T0 + timedelta(seconds=31))
    assert [(e.kind, e.sensor_id, e.ts) for e in silent] == [("sensor_silent", "W-C1", T0 + timedelta(seconds=25))]
    assert watch.step([], latest=T0 + timedelta(seconds=1)) == [] and watch.watermark == (T0.timestamp() + 26)
