"""The pipeline on its own: every message is stored or dead-lettered, decisions follow event time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airspace.events import rfc3339
from airspace.zones import ZoneSet
from ingest.outputs import batch_messages
from ingest.pipeline import Pipeline, RawMessage, event_id
from protocol import topics

ROOT = "skylane/v1"
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)


def msg(topic: str, body, at: datetime = T0) -> RawMessage:
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    return RawMessage(topic, payload, at)


def test_batch_routes_each_message(zones_geojson):
    p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT)
    out = p.process([
        msg(topics.telemetry(ROOT, "D1"), {"ts": "2026-11-27T07:59:58Z", "lat": 31.044, "lon": 121.4885, "alt_m": 40}),
        msg(topics.reading(ROOT, "AQ1"), {"values": {"pm2_5": 35.0}}),
        msg(topics.status(ROOT, "AQ1"), b"offline"),
        msg(topics.telemetry(ROOT, "D1"), b"not json"),
        msg(f"{ROOT}/uav/bad id/telemetry", {}),
        msg("elsewhere/x", b"{}"),
    ])
    assert [r.uav_id for r in out.telemetry] == ["D1"]
    assert [(r.sensor_id, r.metric, r.value) for r in out.readings] == [("AQ1", "pm2_5", 35.0)]
    assert [(s.device_id, s.online) for s in out.statuses] == [("AQ1", False)]
    assert [d.reason.split(":")[0] for d in out.dead_letters] == ["malformed JSON", "bad topic", "bad topic"]
    kinds = {(e.event.kind, e.event.zone_id) for e in out.events}
    assert ("no_fly_violation", "R-BR-MP") in kinds
    assert out.uav_states["D1"]["alerts"] == ["no_fly_violation"]
    assert out.sensor_states["AQ1"]["values"] == {"pm2_5": 35.0}


def test_late_fix_is_stored_but_does_not_move_the_live_position(zones_geojson):
    p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT)
    p.process([msg(topics.telemetry(ROOT, "D1"), {"ts": "2026-11-27T07:59:58Z", "lat": 31.05, "lon": 121.5,
                                                  "alt_m": 70})])
    out = p.process([msg(topics.telemetry(ROOT, "D1"), {"ts": "2026-11-27T07:59:50Z", "lat": 31.044,
                                                        "lon": 121.4885, "alt_m": 40})])
    assert len(out.telemetry) == 1 and not out.events and out.uav_states == {}


def test_topic_ids_must_match_whole(zones_geojson):
    p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT)
    out = p.process([msg(f"{ROOT}/uav/T1\n/telemetry", {"lat": 31, "lon": 121, "alt_m": 1})])
    assert [d.reason for d in out.dead_letters] == [
        "bad topic: invalid device id 'T1\\n' (1-64 of A-Z a-z 0-9 _ . : -, starting with a letter or digit)"]


def test_event_ids_are_deterministic(zones_geojson):
    batch = [msg(topics.telemetry(ROOT, "D1"), {"ts": "2026-11-27T07:59:58Z", "lat": 31.044, "lon": 121.4885,
                                                "alt_m": 40})]
    a = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT).process(batch)
    b = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT).process(batch)
    assert [e.id for e in a.events] == [e.id for e in b.events] == [event_id(e.event) for e in b.events]
    assert len({e.id for e in a.events}) == len(a.events)


topic_st = st.one_of(
    st.sampled_from(["uav", "sensor", "device"]).flatmap(
        lambda fam: st.tuples(st.just(fam), st.from_regex(r"[A-Za-z0-9 _#+/.-]{0,12}", fullmatch=True),
                              st.sampled_from(["telemetry", "reading", "status", ""]))
    ).map(lambda t: f"{ROOT}/{t[0]}/{t[1]}/{t[2]}"),
    st.sampled_from(["control/zones", "control/zone/C2", "control/zone/x y", "control/clearance/D1",
                     "control/other"]).map(lambda t: f"{ROOT}/{t}"),
    st.text(max_size=30))
payload_st = st.one_of(
    st.binary(max_size=64),
    st.fixed_dictionaries({"lat": st.floats(-100, 100), "lon": st.floats(-200, 200),
                           "alt_m": st.floats(-1000, 1000)}).map(orjson.dumps),
    st.just(b"online"), st.just(b'{"values": {"pm2_5": 3}}'))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(topic_st, payload_st), max_size=30))
def test_nothing_is_lost(zones_geojson, messages):
    p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT)
    batch = [RawMessage(t, b, T0 + timedelta(seconds=i)) for i, (t, b) in enumerate(messages)]
    out = p.process(batch)
    accepted = {r.received_at for r in out.telemetry} | {r.received_at for r in out.readings} | \
               {s.at for s in out.statuses} | {at for _, at in out.applied_controls}
    dead = {d.received_at for d in out.dead_letters}
    assert accepted.isdisjoint(dead)
    assert accepted | dead == {m.received_at for m in batch}
    assert all(d.reason for d in out.dead_letters)


# ------------------------------------------------------------------------------------ control topics
def _fix(uav, lon, lat, alt, ts):
    return msg(topics.telemetry(ROOT, uav), {"ts": ts, "lon": lon, "lat": lat, "alt_m": alt})


MID_C2 = (121.478, 31.0555)  # on corridor C2 (60-100 m AGL), wind mast W-C2


def test_sensor_rule_suspends_corridor_publishes_control_and_reaches_flights(zones_geojson):
    p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT)
    p.process([_fix("D1", *MID_C2, 80, "2026-11-27T07:59:50Z")])
    out = p.process([msg(topics.reading(ROOT, "W-C2"), {"ts": "2026-11-27T07:59:55Z", "values": {"wind_gust": 14.5}})])
    (decision,), = [out.zone_decisions]
    (topic, payload, _, retain, _), = [m for m in batch_messages(out, ROOT, "skylane-ingest")
                                       if "/control/" in m.topic]
    assert topic == topics.control_zone(ROOT, "C2") and retain and decision.zone_id == "C2"
    body = orjson.loads(payload)
    assert body["issuer"] == "skylane-ingest"
    assert body["state"] == "suspended" and body["sensor_id"] == "W-C2" and body["value"] == 14.5
    assert body["by"] == "rule:C2-wind" and body["reading_ts"] == "2026-11-27T07:59:55.000Z"
    ev = [e.event for e in out.events]
    assert [(e.kind, e.uav_id, e.zone_id) for e in ev] == [("zone_suspended", "D1", "C2")]
    assert ev[0].detail["value"] == 14.5
    # the retained control comes back to every worker, this one included: nothing new
    echo = p.process([msg(topic, payload)])
    assert echo.events == [] and echo.zone_decisions == [] and echo.dead_letters == []
    assert echo.applied_controls == [(topic, T0)]
    # (without a clearance it was uncleared there already; a suspended corridor clears no one)
    nxt = p.process([_fix("D1", *MID_C2, 80, "2026-11-27T07:59:56Z")])
    assert "uncleared_flight" in nxt.uav_states["D1"]["alerts"]
    calm = p.process([msg(topics.reading(ROOT, "W-C2"), {"ts": "2026-11-27T08:00:30Z", "values": {"wind_gust": 8.0}})])
    assert calm.zone_decisions[0].state == "active"
    assert [e.event.kind for e in calm.events] == ["zone_activated"]


def test_admin_zone_control_and_bad_control_payloads(zones_geojson):
    p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT, rules=[])
    p.process([_fix("D1", 121.4885, 31.044, 40, "2026-11-27T07:59:50Z")])
    out = p.process([
        msg(topics.control_zone(ROOT, "R-BR-MP"), {"state": "suspended", "reason": "bridge works done", "by": "admin",
                                                   "at": "2026-11-27T07:59:52Z"}),
        msg(topics.control_zone(ROOT, "C2"), {"state": "closed", "at": "2026-11-27T07:59:52Z"}),
        msg(topics.control_zone(ROOT, "C2"), b"not json"),
        msg(f"{ROOT}/control/zone/bad\tid", {"state": "active", "at": "2026-11-27T07:59:52Z"}),
        msg(f"{ROOT}/control/unknown", b"{}"),
        msg(topics.control_clearance(ROOT, "D1"), {"clearance_id": "x"}),
        msg(topics.control_zones(ROOT), {"type": "FeatureCollection", "features": [{"type": "Feature"}]}),
    ])
    assert [(e.event.kind, e.event.zone_id) for e in out.events] == [("zone_suspended", "R-BR-MP")]
    reasons = [d.reason for d in out.dead_letters]
    assert reasons[0].startswith("zone state refused: field 'state'")
    assert reasons[1].startswith("zone state refused: malformed JSON")
    assert reasons[2].startswith("bad topic: invalid zone id") and reasons[3].startswith("bad topic: expected")
    assert reasons[4].startswith("clearance refused") and reasons[5].startswith("zone set refused: feature 0")
    nxt = p.process([_fix("D1", 121.4885, 31.044, 45, "2026-11-27T07:59:53Z")])
    assert ("no_fly_violation_end", "R-BR-MP") in {(e.event.kind, e.event.zone_id) for e in nxt.events}


def test_clearance_control_clears_the_flight(zones_geojson):
    from airspace import Waypoint, check_route
    zs = ZoneSet.from_geojson(zones_geojson)
    line = zs.get("C2").properties["centerline"]
    res = check_route(zs, [Waypoint(x, y, 80.0) for x, y in line], departure=T0 - timedelta(seconds=30),
                      speed_mps=15.0)
    clearance = res.clearance("CL-1", "D1")
    p = Pipeline(zs, ROOT, rules=[])
    ok = p.process([msg(topics.control_clearance(ROOT, "D1"), clearance.to_dict()),
                    msg(topics.control_clearance(ROOT, "D2"), clearance.to_dict())])
    assert [d.reason for d in ok.dead_letters] == [
        "clearance refused: uav_id 'D1' does not match the topic's 'D2'"]
    pos = res.route[1]
    fix = _fix("D1", pos["lon"], pos["lat"], 80, pos["t"])
    out = p.process([fix])
    assert "uncleared_flight" not in {e.event.kind for e in out.events}
    assert out.uav_states["D1"]["alerts"] == []
    p.process([msg(topics.control_clearance(ROOT, "D1"), b"")])  # withdrawn
    assert p.monitor.clearance_of("D1") is None


def test_zone_set_replacement_keeps_flights(zones_geojson):
    p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT, rules=[])
    p.process([_fix("D1", 121.4885, 31.044, 40, "2026-11-27T07:59:50Z")])
    smaller = dict(zones_geojson, features=[f for f in zones_geojson["features"]
                                            if f["properties"]["id"] != "R-BR-MP"])
    out = p.process([msg(topics.control_zones(ROOT), smaller)])
    assert out.dead_letters == [] and p.monitor.zones.get("R-BR-MP") is None
    assert p.monitor.zones_of("D1") == ["PWZ"]


def test_link_lost_on_the_batch_watermark(zones_geojson):
    p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT, rules=[])
    p.process([_fix("A", 121.475, 31.044, 50, "2026-11-27T07:59:00Z"), _fix("B", 121.476, 31.044, 50,
                                                                             "2026-11-27T07:59:00Z")])
    out = p.process([_fix("B", 121.476, 31.044, 50, "2026-11-27T07:59:30Z")])
    link = sorted((e.event.uav_id, e.event.kind, rfc3339(e.event.ts)) for e in out.events
                  if e.event.kind.startswith("link"))
    assert link == [("A", "link_lost", "2026-11-27T07:59:10.000Z"),  # noticed on B's fix (the watermark)
                    ("B", "link_lost", "2026-11-27T07:59:10.000Z"),  # B's own 30 s gap
                    ("B", "link_restored", "2026-11-27T07:59:30.000Z")]
    assert p.tick(datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)).events[0].event.uav_id == "B"


def test_protocol_control_topics():
    assert topics.control_filters(ROOT) == [f"{ROOT}/control/zones", f"{ROOT}/control/zone/+",
                                            f"{ROOT}/control/clearance/+", f"{ROOT}/control/registry"]
    assert topics.parse_control(ROOT, f"{ROOT}/control/registry") == topics.ControlRef("registry", None)
    assert topics.parse_control(ROOT, f"{ROOT}/uav/D1/telemetry") is None
    assert topics.parse_control(ROOT, f"{ROOT}/control/zones") == topics.ControlRef("zones", None)
    assert topics.parse_control(ROOT, f"{ROOT}/control/zone/C2") == topics.ControlRef("zone", "C2")
    assert topics.parse_control(ROOT, f"{ROOT}/control/clearance/D-1") == topics.ControlRef("clearance", "D-1")
    for bad in ("control/zone/a/b", "control/zone/", "control/clearance/#", "control/zones/x"):
        with pytest.raises(topics.TopicError):
            topics.parse_control(ROOT, f"{ROOT}/{bad}")


def test_zone_changes_take_effect_in_receive_order_whatever_the_batching(zones_geojson):
    gust = msg(topics.reading(ROOT, "W-C2"), {"ts": "2026-11-27T07:59:55Z", "values": {"wind_gust": 14.5}})
    d1 = _fix("D1", *MID_C2, 80, "2026-11-27T07:59:50Z")
    d2_out = _fix("D2", 121.478, 31.0400, 80, "2026-11-27T07:59:50Z")   # south of C2
    d2_in = _fix("D2", *MID_C2, 80, "2026-11-27T07:59:57Z")

    def suspended(batches):
        p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT)
        events = [e.event for b in batches for e in p.process(b).events]
        return sorted((e.uav_id, e.kind) for e in events if e.kind == "zone_suspended")

    def every_cut(arrival):
        return [[arrival[:i], arrival[i:j], arrival[j:]] for i in range(len(arrival) + 1)
                for j in range(i, len(arrival) + 1)]

    in_order = [d1, d2_out, gust, d2_in]
    assert suspended([in_order]) == [("D1", "zone_suspended")]  # D2 entered C2 after the gust
    assert all(suspended(b) == [("D1", "zone_suspended")] for b in every_cut(in_order))
    # D2's fix stamped after the gust but received before it is decided first (receive order, like a
    # batch cut there); D1's fix received after the gust but stamped before it still goes first (event time)
    scrambled = [d2_in, gust, d1, d2_out]
    assert suspended([scrambled]) == [("D1", "zone_suspended"), ("D2", "zone_suspended")]
    assert suspended([[d2_in], [gust, d1, d2_out]]) == suspended([scrambled])  # = the batch cut at the gust


def test_sensor_watch_is_fed_by_the_batch(zones_geojson):
    from airspace.thresholds import parse_rules
    from ingest.sensor_watch import SensorWatch
    watch = SensorWatch({}, parse_rules({"rules": [{"id": "gust", "metric": "wind_gust", "above": 12.0,
                                                     "clear_below": 10.0}]}))
    p = Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT, rules=[], sensor_watch=watch)
    out = p.process([msg(topics.reading(ROOT, "W-C9"), {"ts": "2026-11-27T07:59:55Z", "values": {"wind_gust": 14.5}})])
    assert [(e.sensor_id, e.kind) for e in out.sensor_events] == [("W-C9", "sensor_threshold")]
    assert Pipeline(ZoneSet.from_geojson(zones_geojson), ROOT, rules=[]).process([]).sensor_events == []


def test_tick_raises_link_lost_and_sensor_silent_on_event_time(zones_geojson):
    """The consumer's idle clock: with no messages at all, silent drones and sensors are still noticed."""
    from ingest.sensor_watch import SensorWatch, sensor_infos
    watch = SensorWatch(sensor_infos([{"device_id": "W-C1", "kind": "sensor", "sensor_kind": "wind",
                                       "expected_interval_s": 10}]))
    pipe = Pipeline(ZoneSet.from_geojson(zones_geojson), sensor_watch=watch)
    pipe.process([msg(topics.telemetry(topics.DEFAULT_ROOT, "U1"),
                      {"lon": 121.40, "lat": 31.00, "alt_m": 30, "ts": rfc3339(T0)}),
                  msg(topics.reading(topics.DEFAULT_ROOT, "W-C1"), {"wind_gust": 5.0, "ts": rfc3339(T0)})])
    early = pipe.tick(T0 + timedelta(seconds=5))
    assert not early.events and not early.sensor_events
    late = pipe.tick(T0 + timedelta(minutes=2))
    assert [(e.event.kind, e.event.uav_id) for e in late.events] == [("link_lost", "U1")]
    assert [(e.kind, e.sensor_id) for e in late.sensor_events] == [("sensor_silent", "W-C1")]


def test_zone_ids_travel_as_one_topic_level():
    for zid in ("C1", "Flugplatz Reichenbach#1", "a/b+c", "100% sure", "Zürich LSZH"):
        topic = topics.control_zone(ROOT, zid)
        assert topic.count("/") == ROOT.count("/") + 3 and "+" not in topic and "#" not in topic
        assert topics.parse_control(ROOT, topic) == topics.ControlRef("zone", zid)
