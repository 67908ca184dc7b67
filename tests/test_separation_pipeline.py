"""The traffic engine inside the ingest pipeline: telemetry and observations of a batch become separation events
(with deterministic ids) and track states published on {root}/state/traffic/{track_id}; batches cut anywhere
and the idle clock decide the same."""
from __future__ import annotations

import random
from datetime import datetime, timedelta

import orjson

from airspace.traffic_policy import TrafficPolicy
from ingest.dialects.base import DialectContext, DialectResult, RegistryView
from ingest.outputs import batch_messages
from ingest.pipeline import Pipeline, RawMessage, build_pipeline
from ingest.rows import ObservationRow
from protocol import topics
from protocol.times import parse_rfc3339, rfc3339

from .test_airspace_tracks import ZONES, at, where

ROOT = "skylane/v1"


class Surveillance:
    """A stand-in input dialect: JSON sightings on test/surv/{source} as observations (the contract's shape)."""

    name = "test-surveillance"

    def filters(self, root: str) -> list[str]:
        return ["test/surv/+"]

    def matches(self, topic: str, root: str) -> bool:
        return topic.startswith("test/surv/")

    def parse(self, topic: str, payload: bytes, received_at: datetime, ctx: DialectContext) -> DialectResult:
        d = orjson.loads(payload)
        row = ObservationRow(parse_rfc3339(d["ts"]), topic.rsplit("/", 1)[1], d["id"], d["lon"], d["lat"], d["alt"],
                             "AMSL", "baro", d.get("speed"), d.get("track"), 0.0, "rx", None, received_at,
                             d.get("identity", {}))
        return DialectResult(observations=[row])


def messages(seconds: int = 60) -> list[RawMessage]:
    """Two drones head-on (telemetry), a helicopter by ADS-B passing near one of them, one message a second each."""
    out = []
    for s in range(seconds):
        for uav, east, track, alt in (("P1", -500.0 + 10.0 * s, 90.0, 60.0), ("P2", 500.0 - 10.0 * s, 270.0, 62.0)):
            lon, lat = where(east, 0.0)
            out.append(RawMessage(topics.telemetry(ROOT, uav), orjson.dumps({
                "ts": rfc3339(at(s)), "lon": lon, "lat": lat, "alt_m": alt, "speed_mps": 10.0, "track_deg": track,
                "status": "Airborne"}), at(s) + timedelta(milliseconds=300)))
        lon, lat = where(-3000.0 + 60.0 * s, 400.0)
        out.append(RawMessage("test/surv/adsb", orjson.dumps({
            "ts": rfc3339(at(s + 0.5)), "id": "780A3B", "lon": lon, "lat": lat, "alt": 140.0, "speed": 60.0,
            "track": 90.0, "identity": {"callsign": "B7001", "category": "rotorcraft"}}), at(s + 0.7)))
    return out


def run(msgs: list[RawMessage], cuts: list[int], idle: bool = False):
    pipe = build_pipeline(ZONES, ROOT, dialects=[Surveillance()])
    events, states = [], {}
    bounds = [0, *sorted(cuts), len(msgs)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi > lo:
            out = pipe.process(msgs[lo:hi])
            if idle:  # the consumer's idle clock between batches: at most the newest receive time
                tick = pipe.tick(msgs[hi - 1].received_at - timedelta(seconds=5))
                out.events += tick.events
                out.traffic_states.update(tick.traffic_states)
            events += [e.to_dict() for e in out.events]
            states.update(out.traffic_states)
    end = pipe.tick(at(10_000))
    return events + [e.to_dict() for e in end.events], {**states, **end.traffic_states}, end


def test_separation_events_and_states_come_out_of_the_pipeline():
    events, states, end = run(messages(), [])
    kinds = {(e["kind"], e["uav_id"], e["zone_id"]) for e in events}
    assert {("conflict_predicted", "P1", "uav:P2"), ("separation_loss", "P1", "uav:P2"),
            ("separation_loss", "P2", "uav:P1"), ("conflict_predicted", "icao:780a3b", "uav:P1"),
            ("separation_loss", "icao:780a3b", "uav:P1")} <= kinds
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids))
    assert {"uav:P1", "uav:P2", "icao:780a3b"} <= set(states)
    # the end: silent for longer than forget_after_s, every track withdrawn (an empty retained payload)
    assert end.traffic_states == {"uav:P1": None, "uav:P2": None, "icao:780a3b": None}
    msgs = batch_messages(end, ROOT, "skylane-ingest")
    assert {(m.topic, m.payload, m.retain) for m in msgs if "/state/traffic/" in m.topic} == {
        (topics.traffic_state(ROOT, t), b"", True) for t in ("uav:P1", "uav:P2", "icao:780a3b")}


def test_states_are_published_retained_and_coalesced():
    pipe = build_pipeline(ZONES, ROOT, dialects=[Surveillance()])
    out = pipe.process(messages(10))
    msgs = [m for m in batch_messages(out, ROOT, "skylane-ingest") if "/state/traffic/" in m.topic]
    assert {m.topic for m in msgs} == {f"{ROOT}/state/traffic/{t}" for t in ("uav:P1", "uav:P2", "icao:780a3b")}
    heli = orjson.loads(next(m.payload for m in msgs if m.topic.endswith("icao:780a3b")))
    assert heli["kind"] == "manned" and heli["identity"]["callsign"] == "B7001" and heli["alt_m"] == 140.0
    assert all(m.qos == 0 and m.retain and m.coalesce for m in msgs)


def test_batch_cuts_and_idle_ticks_decide_the_same():
    msgs = messages()
    whole, whole_states, _ = run(msgs, [])
    rng = random.Random(13)
    for cuts in ([1], list(range(1, len(msgs))), rng.sample(range(1, len(msgs)), 7), rng.sample(range(1, len(msgs)), 30)):
        for idle in (False, True):
            got, states, _ = run(msgs, cuts, idle)
            assert sorted(got, key=lambda e: (e["ts"], e["kind"], e["uav_id"], e["zone_id"] or "")) == \
                sorted(whole, key=lambda e: (e["ts"], e["kind"], e["uav_id"], e["zone_id"] or "")), (cuts[:10], idle)
            assert states == whole_states


def test_a_plain_pipeline_has_no_traffic_engine_unless_given_a_policy():
    assert Pipeline(ZONES, ROOT).traffic is None
    assert build_pipeline(ZONES, ROOT, traffic=None).traffic is None
    p = build_pipeline(ZONES, ROOT, traffic=TrafficPolicy(look_ahead_s=60.0))
    assert p.traffic is not None and p.traffic.policy.look_ahead_s == 60.0


def test_the_pipeline_lends_the_engine_its_registry():
    pipe = build_pipeline(ZONES, ROOT, dialects=[Surveillance()],
                          registry=RegistryView({("icao24", "780a3b"): "P9"}))
    out = pipe.process(messages(5))
    assert "uav:P9" in out.traffic_states and "icao:780a3b" not in out.traffic_states
    assert out.traffic_states["uav:P9"]["sources"]["adsb"]["key"] == "780A3B"
