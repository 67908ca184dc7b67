"""The pipeline on its own: every message is stored or dead-lettered, decisions follow event time."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from airspace.zones import ZoneSet
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
               {s.at for s in out.statuses}
    dead = {d.received_at for d in out.dead_letters}
    assert accepted.isdisjoint(dead)
    assert accepted | dead == {m.received_at for m in batch}
    assert all(d.reason for d in out.dead_letters)
