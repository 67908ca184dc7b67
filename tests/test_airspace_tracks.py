"""Fusion (airspace.tracks through airspace.traffic): one track per aircraft from every source, association by
identity and by gating, source ages and their loss on event time, the track states."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon
from airspace.tracks import track_id_for
from airspace.traffic import TrafficEngine
from airspace.traffic_policy import TrafficPolicy
from airspace.zones import ZoneSet
from ingest.rows import ObservationRow
from ingest.telemetry import TelemetryRow
from skylane.settings import DEFAULT_ZONE_FILE

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=timezone.utc)
LON0, LAT0 = 121.47, 31.05  # inside the demonstration zone (PWZ)
ZONES = ZoneSet.from_geojson(json.loads(DEFAULT_ZONE_FILE.read_text()))


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def where(east: float, north: float) -> tuple[float, float]:
    return LON0 + east / m_per_deg_lon(LAT0), LAT0 + north / M_PER_DEG_LAT


def tel(uav: str, s: float, east: float, north: float, alt: float = 60.0, speed=None, track=None,
        status: str | None = "Airborne") -> TelemetryRow:
    lon, lat = where(east, north)
    return TelemetryRow(at(s), uav, None, lon, lat, alt, "AGL", speed, track, 0.0 if speed is not None else None, None,
                        status, None, at(s))


def obs(source: str, key: str, s: float, east: float, north: float, alt: float | None = 64.0, speed=None, track=None,
        **identity) -> ObservationRow:
    lon, lat = where(east, north)
    return ObservationRow(at(s), source, key, lon, lat, alt, "AMSL" if alt is not None else None, "gnss", speed, track,
                          0.0 if speed is not None else None, "rx1", -70.0, at(s), identity)


def run(rows=(), observations=(), until: float | None = None, policy: TrafficPolicy = TrafficPolicy()):
    eng = TrafficEngine(ZONES, policy)
    res = eng.step(list(rows), list(observations))
    events, states = list(res.events), dict(res.states)
    if until is not None:
        late = eng.tick(at(until))
        events += late.events
        states.update(late.states)
    return eng, events, states


def test_registry_identity_fuses_telemetry_and_remote_id_into_one_track():
    rows = [tel("T1", s, 10.0 * s, 0.0, speed=10.0, track=90.0) for s in range(6)]
    rid = [obs("rid", "SESSION-9", s + 0.3, 10.0 * s + 3.0, 0.0, serial="1581F5FJD", uav_id="T1") for s in range(6)]
    eng, events, states = run(rows, rid, until=8)
    assert eng.tracks() == 1
    st = states["uav:T1"]
    assert st["kind"] == "drone" and st["uav_id"] == "T1" and st["registered"]
    assert set(st["sources"]) == {"telemetry", "rid"}
    assert st["sources"]["rid"]["associated"] == "identity" and st["position_source"] == "telemetry"
    assert not [e for e in events if e.kind == "position_discrepancy"]  # 3 m apart: agree


def test_same_icao_from_two_receivers_and_rid_serial_alias_are_one_track_each():
    adsb = [obs("adsb", "780A3B", s, 60.0 * s, 500.0, 300.0, 60.0, 90.0, callsign="B7001", category="rotorcraft")
            for s in range(4)]
    adsb += [obs("adsb", "780a3b", s + 0.5, 60.0 * s + 30, 500.0, 300.0, 60.0, 90.0) for s in range(4)]
    rid = [obs("rid", "sess-1", 0, 2000, 2000, serial="SN42"), obs("rid", "sess-2", 1, 2000, 2005, serial="SN42")]
    eng, _, states = run(observations=adsb + rid, until=6)
    assert eng.tracks() == 2
    heli = states["icao:780a3b"]
    assert heli["kind"] == "manned" and heli["identity"]["callsign"] == "B7001"
    assert set(states) == {"icao:780a3b", "rid:sess-1"}


def test_gating_joins_an_unknown_broadcast_to_the_drone_it_flies_with_and_splits_it_when_it_leaves():
    rows = [tel("T2", s, 10.0 * s, 0.0, speed=10.0, track=90.0) for s in range(20)]
    rid = [obs("rid", "ZZ1", s + 0.2, 10.0 * s + 5.0, 0.0, 64.0, 10.0, 90.0) for s in range(10)]
    rid += [obs("rid", "ZZ1", s + 0.2, 10.0 * s + 5.0 + 40.0 * (s - 9), 0.0, 64.0, 10.0, 90.0) for s in range(10, 14)]
    eng, events, states = run(rows, rid, until=15)
    assert "rid:ZZ1" in states and states["rid:ZZ1"]["sources"].keys() == {"rid"}
    assert states["uav:T2"]["sources"].keys() == {"telemetry"}  # the broadcast left: the track lost that source
    unreg = [e for e in events if e.kind == "unregistered_aircraft"]
    assert [e.uav_id for e in unreg] == ["rid:ZZ1"] and unreg[0].ts > at(10)  # hidden while it flew with T2


def test_gating_keeps_kinds_and_sources_apart():
    heli = [obs("adsb", "7c0001", s, 20.0 * s, 0.0, 64.0, 20.0, 90.0, category="rotorcraft") for s in range(5)]
    drone = [obs("rid", "D1", s + 0.1, 20.0 * s + 4.0, 0.0, 64.0, 20.0, 90.0) for s in range(5)]
    drone2 = [obs("rid", "D2", s + 0.2, 20.0 * s + 6.0, 0.0, 64.0, 20.0, 90.0) for s in range(5)]
    eng, _, states = run(observations=heli + drone + drone2, until=7)
    assert eng.tracks() == 3  # a drone never joins a helicopter's track; two broadcasters are two aircraft
    assert states["icao:7c0001"]["kind"] == "manned" and states["rid:D1"]["kind"] == "drone"
    uav = [obs("adsb", "7c0002", 0, 0, 3000, 100.0, category="UAV")]
    assert run(observations=uav, until=2)[2]["icao:7c0002"]["kind"] == "drone"


def test_the_registry_maps_icao_addresses_and_serials_the_sources_did_not():
    known = {("icao24", "7c0003"): "T8", ("rid_serial", "SN9"): "T9"}
    eng = TrafficEngine(ZONES)
    res = eng.step([tel("T8", 0, 0, 0), tel("T9", 0, 900, 0)],
                   [obs("adsb", "7C0003", 0.5, 5, 0, 64.0, category="B6", category_name="uav"),
                    obs("rid", "sess-77", 0.5, 905, 0, 64.0, serial="SN9")], registry=lambda k, v: known.get((k, v)))
    res.states.update(eng.tick(at(3)).states)
    assert eng.tracks() == 2 and not [e for e in res.events if e.kind == "unregistered_aircraft"]
    assert set(res.states["uav:T8"]["sources"]) == {"telemetry", "adsb"}
    assert set(res.states["uav:T9"]["sources"]) == {"telemetry", "rid"}
    uav_cat = [obs("adsb", "7c0004", 0, 0, 3000, 100.0, category="B6", category_name="uav")]
    assert run(observations=uav_cat, until=2)[2]["icao:7c0004"]["kind"] == "drone"


def test_velocity_from_recent_fixes_when_the_source_gives_none():
    rows = [tel("T3", s, 12.0 * s, 5.0 * s) for s in range(5)]
    _, _, states = run(rows, until=6)
    st = states["uav:T3"]
    assert st["speed_mps"] == pytest.approx(13.0, abs=0.05) and st["track_deg"] == pytest.approx(67.4, abs=0.1)


def test_a_position_jump_is_not_motion():
    rows = [tel("T7", 0, 0.0, 0.0), tel("T7", 1, 5.0, 0.0), tel("T7", 2, 3000.0, 0.0)]  # a glitch: 3 km in 1 s
    heli = [obs("adsb", "780a3c", 0, 0.0, 500.0, 300.0, 400.0, 90.0, category="rotorcraft")]  # reported 400 m/s
    _, _, states = run(rows, heli, until=4)
    assert states["uav:T7"]["speed_mps"] == 0.0  # unknown, not 2,995 m/s
    assert states["icao:780a3c"]["speed_mps"] == 150.0 and states["icao:780a3c"]["track_deg"] == 90.0


def test_source_lost_and_restored_on_event_time():
    adsb = [obs("adsb", "780a3b", s, 0, 0, 300.0, 0.0, 0.0) for s in (0, 1, 2, 30, 31)]
    _, events, _ = run(observations=adsb, until=40)
    kinds = [(e.kind, e.uav_id, e.zone_id, e.ts) for e in events if e.kind.startswith("source")]
    assert kinds == [("source_lost", "icao:780a3b", "adsb", at(12)), ("source_restored", "icao:780a3b", "adsb", at(30))]
    assert events[0].detail["last_seen"] == "2026-11-27T01:00:02.000Z" and events[1].detail["silent_s"] == 28.0
    # the same when event time is told by ticks instead of the next sighting
    eng = TrafficEngine(ZONES)
    got = eng.step([], adsb[:3]).events + eng.tick(at(20)).events + eng.step([], adsb[3:]).events + eng.tick(at(40)).events
    assert [(e.kind, e.ts) for e in got if e.kind.startswith("source")] == [(k[0], k[3]) for k in kinds]


def test_a_drone_seen_by_telemetry_alone_leaves_its_silence_to_the_monitor():
    rows = [tel("T4", s, 0, 0) for s in (0, 1, 30)]
    _, events, _ = run(rows, until=40)
    assert not [e for e in events if e.kind.startswith("source")]  # link_lost is the monitor's


def test_silent_tracks_are_forgotten_and_their_state_withdrawn():
    eng = TrafficEngine(ZONES, TrafficPolicy(forget_after_s=60.0))
    eng.step([], [obs("adsb", "abc123", 0, 0, 0, 300.0)])
    res = eng.tick(at(100))
    assert res.states == {"icao:abc123": None} and eng.tracks() == 0


def test_track_ids_are_topic_levels():
    assert track_id_for("adsb", "780A3B") == "icao:780a3b"
    assert track_id_for("rid", "1581F5FJD239C00DW22E") == "rid:1581F5FJD239C00DW22E"
    odd = track_id_for("rid", "sess/#1 ü")
    assert odd.startswith("rid:sess__1__-") and "/" not in odd and "#" not in odd
    assert track_id_for("rid", "sess/#1 ü") != track_id_for("rid", "sess/#1 ö")
    with pytest.raises(ValueError):
        TrafficPolicy(forget_after_s=5.0)
