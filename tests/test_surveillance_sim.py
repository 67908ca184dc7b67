"""The simulator's surveillance companion (devices/surveillance_sim.py) through the real decoders and the ingest
pipeline: its Remote ID packs decode with the Remote ID dialect (checked against real receiver vectors in
test_remoteid_decoding.py), its helicopter's frames with pyModeS and the ADS-B bridge, and the picture they make
gives the alerts the demo is meant to show: the converging pair predicted in conflict before it loses separation,
the unregistered broadcaster inside the demonstration zone, and the broadcasting fleet drones fused with their
own telemetry (never mistaken for unregistered aircraft)."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import orjson
import pyModeS as pms
import pytest

from airspace.zones import ZoneSet
from devices.fleet import make_fleet
from devices.flight import plan_for
from devices.registry import fleet_records
from devices.surveillance_sim import PAIR_IDS, RID_RECEIVER, UNREGISTERED_SERIAL, Helicopter, SurveillanceSim, \
    pair_fixes, rid_serial
from devices import payloads
from ingest.bridges.adsb import AdsbBridge, Output
from ingest.dialects import RegistryView, enabled
from ingest.pipeline import build_pipeline
from ingest.rows import RawMessage
from protocol import topics

from .helpers import ZONE_FILE

ROOT = "sky/v1"
DOC = json.loads(ZONE_FILE.read_text())
T0 = 1_795_000_000.0  # an epoch second in 2026


class FrameSink:
    """Stands in for the AVR port: keeps what the helicopter sends."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frames: list[bytes]) -> None:
        self.frames += frames


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def test_remote_id_packs_decode_with_the_dialect_to_the_fix_and_serial():
    sim = SurveillanceSim(ROOT, ["D0", "D1"])
    fix = plan_for(make_fleet(DOC, 1, 0, seed=3)[0][0]).fix(40.0)
    [(topic, body)] = sim.on_fix("D0", fix, T0)
    assert sim.on_fix("D1", fix, T0) == []  # only every fourth drone broadcasts
    assert topic == topics.remote_id(ROOT, RID_RECEIVER)
    registry = RegistryView.from_registry([{"device_id": "D0", "properties": {"rid_serial": rid_serial("D0")}}])
    out = build_pipeline(ZoneSet.from_geojson(DOC), ROOT, dialects=enabled(["remoteid"]), registry=registry,
                         traffic=None).process([RawMessage(topic, body, at(T0))])
    assert not out.dead_letters
    [obs] = out.observations
    assert obs.track_id == rid_serial("D0") and obs.identity.get("uav_id") == "D0"
    assert obs.lat == pytest.approx(fix.lat, abs=1e-7) and obs.lon == pytest.approx(fix.lon, abs=1e-7)
    assert obs.speed_mps == pytest.approx(fix.speed_mps, abs=0.25)
    assert base64.b64decode(orjson.loads(body)["data"])[0] >> 4 == 0xF  # a message pack


def test_helicopter_frames_decode_with_pymodes_as_a_rotorcraft_on_its_path():
    """pyModeS (the ADS-B bench's peer, a decoder Skylane does not use) reads the frames the AVR port serves."""
    sink, heli = FrameSink(), Helicopter()
    sim = SurveillanceSim(ROOT, [], avr=sink)
    decoder, decoded = pms.PipeDecoder(), []
    for s in range(12):  # pyModeS trusts a position after a few consistent pairs
        sim.tick(T0 + s)
        decoded += [decoder.decode(f.hex(), timestamp=T0 + s) for f in sink.frames]
        sink.frames.clear()
    assert all(d["crc_valid"] and d["icao"].lower() == heli.icao for d in decoded)
    ident = next(d for d in decoded if d["bds"] == "0,8")
    assert ident["callsign"] == heli.callsign and ident["wake_vortex"] == "Rotorcraft"  # emitter category A7
    velocity = decoded[-3]
    want_lon, want_lat, want_track = heli.at(11.0)
    assert velocity["groundspeed"] == pytest.approx(heli.speed_mps / 0.5144, abs=1)
    assert velocity["track"] == pytest.approx(want_track, abs=0.5)
    position = decoded[-1]  # the odd frame completes the pair
    assert position["latitude"] == pytest.approx(want_lat, abs=1e-4)
    assert position["longitude"] == pytest.approx(want_lon, abs=1e-4)
    assert position["altitude"] == pytest.approx(heli.alt_amsl_m / 0.3048, abs=25)


def test_the_pair_meets_head_on_at_the_cycles_50th_second():
    a, b = pair_fixes(50.0)
    assert abs(a.lon - b.lon) < 1e-6 and a.track_deg == 90.0 and b.track_deg == 270.0
    a0, b0 = pair_fixes(0.0)
    assert b0.lon - a0.lon > 0.012  # 1.2 km apart at the start of each cycle


def run_picture(seconds: int):
    """The fleet's telemetry, the companion's messages and the helicopter through the ADS-B bridge, one batch a
    second, into the pipeline with the real dialects and a registry as `skylane simulate --register` fills it."""
    drones, _ = make_fleet(DOC, 8, 0, seed=17)
    sink = FrameSink()
    sim = SurveillanceSim(ROOT, [d.uav_id for d in drones], avr=sink)
    records = sim.with_rid_serials(fleet_records(drones, [])) + sim.registry_records()
    pipe = build_pipeline(ZoneSet.from_geojson(DOC), ROOT, dialects=enabled(["remoteid"]),
                          registry=RegistryView.from_registry(records))
    obs: list[tuple[str, bytes]] = []
    bridge = AdsbBridge(Output(lambda t, p, r: obs.append((t, p)), ROOT), "rx-sim-adsb", (31.05, 121.48))
    plans = [plan_for(d) for d in drones]
    events, states = [], {}
    for s in range(seconds):
        due = T0 + s
        msgs = []
        for d, plan in zip(drones, plans):
            fix = plan.fix(float(s))
            msgs.append((topics.telemetry(ROOT, d.uav_id), payloads.encode(payloads.telemetry(fix, s, due))))
            msgs += sim.on_fix(d.uav_id, fix, due)
        msgs += sim.tick(due)
        bridge.frames([due] * len(sink.frames), sink.frames)
        sink.frames.clear()
        msgs += obs
        obs.clear()
        out = pipe.process([RawMessage(t, p, at(due + 0.2)) for t, p in msgs])
        assert not out.dead_letters, out.dead_letters[:3]
        events += [e.to_dict() for e in out.events]
        states.update(out.traffic_states)
    return drones, sim, events, states


def test_the_simulated_picture_raises_the_demos_alerts():
    drones, sim, events, states = run_picture(60)  # the demo's first minute
    pair = [(e["kind"], e["ts"]) for e in events if e["uav_id"] == PAIR_IDS[0] and e["zone_id"] == f"uav:{PAIR_IDS[1]}"]
    kinds = [k for k, _ in pair]
    assert "conflict_predicted" in kinds and "separation_loss" in kinds
    assert kinds.index("conflict_predicted") < kinds.index("separation_loss")
    unregistered = [e for e in events if e["kind"] == "unregistered_aircraft"]
    assert unregistered and all(UNREGISTERED_SERIAL in e["uav_id"] for e in unregistered)
    # every broadcasting drone's Remote ID joined its telemetry track: one track, both sources
    for uav in sorted(sim.broadcasting):
        [state] = [s for s in states.values() if s and s.get("uav_id") == uav]
        assert {"telemetry", "rid"} <= set(state["sources"]), state
    heli = [s for s in states.values() if s and s["track_id"] == f"icao:{Helicopter().icao}"]
    assert heli and heli[0]["kind"] != "uav" and heli[0]["identity"].get("callsign", "").strip() == Helicopter().callsign
