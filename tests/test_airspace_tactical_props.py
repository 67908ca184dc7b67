"""The traffic engine decides on event time: the same sightings give the same events and states however the
stream is cut into batches, and whatever their arrival order within the allowed lateness."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airspace.traffic import TrafficEngine
from airspace.traffic_policy import TrafficPolicy
from protocol.times import rfc3339

from .test_airspace_tracks import ZONES, at, obs, tel

POLICY = TrafficPolicy(source_timeouts={"telemetry": 4.0, "adsb": 4.0, "rid": 3.0}, forget_after_s=30.0)
# who flies: (source, key, identity) -- registered drones by telemetry and Remote ID, an unknown broadcaster,
# a helicopter by ADS-B
AIRCRAFT = [("telemetry", "a", {}), ("rid", "SNA", {"uav_id": "a", "serial": "SNA"}), ("telemetry", "b", {}),
            ("rid", "X9", {"serial": "X9"}), ("adsb", "780a3b", {"category": "rotorcraft", "callsign": "B7001"})]


@st.composite
def streams(draw, n_max=70):
    """Sightings of up to five aircraft wandering within a few hundred metres of each other (so they lose
    separation, conflict, gate and disagree), sometimes silent past their source's timeout; with their arrival
    order: event time plus a delay below the lateness."""
    pos = {}
    t = 0.0
    out = []
    for _ in range(draw(st.integers(1, n_max))):
        source, key, ident = draw(st.sampled_from(AIRCRAFT))
        t += draw(st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 1.0, 5.0]))
        x, y, z = pos.get(key, (draw(st.integers(-200, 200)) * 1.0, draw(st.integers(-200, 200)) * 1.0, 60.0))
        x += draw(st.integers(-40, 40))
        y += draw(st.integers(-40, 40))
        z = max(0.0, z + draw(st.sampled_from([0.0, 0.0, 5.0, -5.0, 20.0])))
        pos[key] = (x, y, z)
        speed = draw(st.sampled_from([None, 0.0, 10.0, 30.0]))
        track = draw(st.sampled_from([0.0, 90.0, 180.0, 270.0])) if speed is not None else None
        delay = draw(st.sampled_from([0.0, 0.0, 0.3, 0.9]))
        if source == "telemetry":
            row = tel(key, t, x, y, z, speed, track, status=draw(st.sampled_from(["Airborne", None, "Ground"])))
        else:
            row = obs(source, key, t, x, y, z + (100.0 if source == "adsb" else 4.0), speed, track, **ident)
        out.append((t + delay, row))
    out.sort(key=lambda p: p[0])
    return [row for _, row in out]


def run(stream, cuts):
    eng = TrafficEngine(ZONES, POLICY)
    events, states = [], {}
    bounds = [0, *sorted(min(c, len(stream)) for c in cuts), len(stream)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi <= lo:
            continue
        part = stream[lo:hi]
        res = eng.step([r for r in part if hasattr(r, "uav_id")], [r for r in part if not hasattr(r, "uav_id")])
        events += res.events
        states.update(res.states)
    res = eng.tick(at(10_000))
    return events + res.events, {**states, **res.states}


def norm(events):
    return sorted((e.kind, e.uav_id, e.zone_id or "", rfc3339(e.ts), repr(sorted(e.detail.items()))) for e in events)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.integers(0, 70), max_size=6))
def test_events_do_not_depend_on_batch_boundaries(stream, cuts):
    whole_events, whole_states = run(stream, [])
    split_events, split_states = run(stream, cuts)
    assert norm(split_events) == norm(whole_events)
    assert split_states == whole_states


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.integers(0, 70), max_size=6))
def test_arrival_order_within_the_lateness_does_not_matter(stream, cuts):
    in_order = sorted(stream, key=lambda r: r.ts)
    assert norm(run(stream, cuts)[0]) == norm(run(in_order, [])[0])


def test_the_stream_exercises_every_condition():
    """The generator is not idle: one fixed stream of it raises the pair and fusion conditions."""
    rows = [tel("a", s, 0.0, 0.0, 60.0, 0.0, 0.0) for s in range(12)]
    rows += [tel("b", s, 30.0, 0.0, 62.0, 0.0, 0.0) for s in range(12)]
    rows += [obs("rid", "SNA", s + 0.5, 90.0, 0.0, 64.0, 0.0, 0.0, uav_id="a", serial="SNA") for s in range(12)]
    rows += [obs("rid", "X9", s + 0.2, -300.0, 0.0, 64.0, 0.0, 0.0, serial="X9") for s in range(3)]
    events, _ = run(sorted(rows, key=lambda r: r.ts), [])
    assert {"separation_loss", "position_discrepancy", "unregistered_aircraft", "source_lost",
            "conflict_predicted"} - {e.kind for e in events} <= {"conflict_predicted"}


def test_the_earliest_sighting_arriving_second_in_another_batch_still_opens_the_first_instant():
    """The first instant is the earliest sighting's, however late (within the lateness) it comes: a broadcast
    stamped 0.0 that arrives after a fix stamped 0.1, in the next batch, is decided at instant 0 all the same."""
    first = tel("a", 0.1, 0.0, 0.0)
    rogue = obs("rid", "X9", 0.0, 100.0, 0.0, 64.0, serial="X9")
    split, _ = run([first, rogue], [1])
    whole, _ = run([first, rogue], [])
    assert norm(split) == norm(whole)
    assert [(e.kind, e.ts) for e in whole if e.kind == "unregistered_aircraft"] == [("unregistered_aircraft", at(0))]
