"""The LoRaWAN dialects on the network servers' documented messages (tests/data/lorawan, see PROVENANCE.md):
ChirpStack v4 and The Things Stack v3 uplinks to readings through the registry's metric_map, frame counters for
dedupe and gaps, join and status events to presence, and the reason for every refusal."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from airspace.vertical import VerticalModel
from ingest.dialects import DialectContext, RegistryView
from ingest.dialects.chirpstack import ChirpStackDialect
from ingest.dialects.lorawan import FrameCounters
from ingest.dialects.tts import TtsDialect
from ingest.dialects.vendor import FRAMES_LOST
from ingest.validation import BadMessage

DATA = Path(__file__).parent / "data" / "lorawan"
NOW = datetime.now(timezone.utc)
LINK_RSSI = "link.rssi"  # the strongest reception's rssi, stored where metric_map asks for it
CS_UP = "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/up"
REGISTRY = [
    {"device_id": "LS-1", "kind": "sensor", "properties": {
        "dev_eui": "0101010101010101", "metric_map": {"temperature": ["air_temperature", "Cel"],
                                                      "humidity": ["humidity", "%RH"], LINK_RSSI: ["lorawan_rssi", None],
                                                      "link.snr": ["lorawan_snr", "dB"]}}},
    {"device_id": "AT101", "kind": "sensor", "properties": {"dev_eui": "1000000000000001"}},
    {"device_id": "UNO-1", "kind": "sensor", "properties": {
        "tts_device_id": "app1/dev1", "metric_map": {"temperature": ["temperature", "Cel"],
                                                     LINK_RSSI: ["lorawan_rssi", "dBm"], "link.snr": ["lorawan_snr", None]}}},
    {"device_id": "EUI-ONLY", "kind": "sensor", "properties": {"dev_eui": "4200000000000000",
                                                               "metric_map": {LINK_RSSI: ["rssi", None]}}},
]


def doc(name: str) -> dict:
    return json.loads((DATA / name).read_bytes())


@pytest.fixture
def ctx() -> DialectContext:
    return DialectContext("skylane/v1", RegistryView.from_registry(REGISTRY), VerticalModel(), 65536)


def cs_up(fcnt: int | None, obj: dict | None, base: str = "chirpstack_v4_docs_event_up.json") -> bytes:
    body = doc(base)
    if fcnt:
        body["fCnt"] = fcnt
    if obj is not None:
        body["object"] = obj
    return orjson.dumps(body)


def test_the_documented_chirpstack_uplink_has_no_decoded_object_and_is_a_dead_letter_saying_so(ctx):
    with pytest.raises(BadMessage, match=r"no decoded payload \('object'\).*codec"):
        ChirpStackDialect().parse(CS_UP, (DATA / "chirpstack_v4_docs_event_up.json").read_bytes(), NOW, ctx)
    tracker = "application/ca739e26/device/1000000000000001/event/up"
    with pytest.raises(BadMessage, match=r"frame 4\) of AT101 has no decoded payload"):
        ChirpStackDialect().parse(tracker, (DATA / "chirpstack_v4_up_milesight_at101_tracker.json").read_bytes(), NOW,
                                  ctx)


def test_a_chirpstack_uplink_with_its_object_becomes_readings_renamed_by_the_registry(ctx):
    res = ChirpStackDialect().parse(CS_UP, cs_up(None, {"temperature": 21.5, "humidity": 60, "door_open": True,
                                                        "gps": {"lat": 31.0}, "label": "ok", "none": None}), NOW, ctx)
    got = {r.metric: (r.value, r.vtext, r.unit) for r in res.readings}
    assert got == {"air_temperature": (21.5, None, "Cel"), "humidity": (60.0, None, "%RH"),
                   "door_open": (1.0, None, None), "gps.lat": (31.0, None, None), "label": (None, "ok", None),
                   "lorawan_rssi": (-36.0, None, "dBm"), "lorawan_snr": (10.5, None, "dB")}
    ts = datetime(2022, 7, 18, 9, 34, 15, 775023, tzinfo=timezone.utc)  # the event's `time` (ns cut to us)
    assert {r.ts for r in res.readings} == {ts} and {r.sensor_id for r in res.readings} == {"LS-1"}


def test_the_same_frame_again_keeps_its_time_and_a_gap_is_counted(ctx):
    d = ChirpStackDialect()
    body = doc("chirpstack_v4_docs_event_up.json")
    del body["time"]  # even without the network server's time, a re-delivery is stored at the first one's
    body.update(fCnt=4, object={"temperature": 20.0})
    first = d.parse(CS_UP, orjson.dumps(body), NOW, ctx)
    again = d.parse(CS_UP, orjson.dumps(body), datetime.now(timezone.utc), ctx)
    assert [(r.ts, r.metric, r.value) for r in again.readings] == [(r.ts, r.metric, r.value) for r in first.readings]
    lost_before = FRAMES_LOST.labels("chirpstack")._value.get()
    body.update(fCnt=8, object={"temperature": 20.5})
    res = d.parse(CS_UP, orjson.dumps(body), NOW, ctx)
    assert {r.metric: r.value for r in res.readings}["lorawan_frames_lost"] == 3.0
    assert FRAMES_LOST.labels("chirpstack")._value.get() == lost_before + 3
    body.update(fCnt=7, object={"temperature": 20.4})  # late: stored, not a gap, nothing undone
    assert "lorawan_frames_lost" not in {r.metric for r in d.parse(CS_UP, orjson.dumps(body), NOW, ctx).readings}


def test_frame_counters_restart_on_join_and_after_a_device_reset():
    fc = FrameCounters()
    for n in (1, 2, 3):
        assert fc.see("S", n, bytes([n]), NOW)[1:] == (0, False)
    assert fc.see("S", 3, bytes([3]), NOW)[1:] == (0, True)  # re-delivery
    assert fc.see("S", 3, b"other", NOW)[1:] == (0, False)  # the same counter with new bytes: a new frame
    assert fc.see("S", 40000, b"x", NOW)[1] == 0  # a jump beyond MAX_FCNT_GAP is a new session, not lost frames
    assert fc.see("S", 0, b"y", NOW)[1] == 0 and fc.see("S", 2, b"z", NOW)[1] == 1  # ABP reset: counting again
    fc.reset("S")
    assert fc.see("S", 7, b"w", NOW)[1] == 0


def test_chirpstack_join_and_status_events_update_the_device(ctx):
    d = ChirpStackDialect()
    d.parse(CS_UP, cs_up(10, {"temperature": 1}), NOW, ctx)
    res = d.parse(CS_UP.replace("/up", "/join"), (DATA / "chirpstack_v4_docs_event_join.json").read_bytes(), NOW, ctx)
    assert [(s.device_id, s.online) for s in res.statuses] == [("LS-1", True)]
    assert d.counters.last == {}  # a new session: fCnt restarts
    res = d.parse(CS_UP.replace("/up", "/status"), (DATA / "chirpstack_v4_docs_event_status.json").read_bytes(), NOW,
                  ctx)
    assert {r.metric: (r.value, r.unit) for r in res.readings} == {"batteryLevel": (88.3, "%"), "margin": (10.0, "dB")}
    assert [s.online for s in res.statuses] == [True]


def test_chirpstack_refusals_name_the_problem(ctx):
    d = ChirpStackDialect()
    with pytest.raises(BadMessage, match="unregistered LoRaWAN device EUI 0202020202020202"):
        d.parse(CS_UP.replace("0101010101010101", "0202020202020202"),
                cs_up(1, {"t": 1}).replace(b"0101010101010101", b"0202020202020202"), NOW, ctx)
    with pytest.raises(BadMessage, match="differs from the topic"):
        d.parse(CS_UP.replace("0101010101010101", "1000000000000001"), cs_up(1, {"t": 1}), NOW, ctx)
    with pytest.raises(BadMessage, match="16 hex digits"):
        d.parse(CS_UP.replace("0101010101010101", "nothex"), cs_up(1, {"t": 1}), NOW, ctx)
    with pytest.raises(BadMessage, match="fCnt"):
        d.parse(CS_UP, orjson.dumps({**doc("chirpstack_v4_docs_event_up.json"), "fCnt": -1, "object": {}}), NOW, ctx)
    with pytest.raises(BadMessage, match="'object' must be an object"):
        d.parse(CS_UP, cs_up(2, [1, 2]), NOW, ctx)  # type: ignore[arg-type]
    with pytest.raises(BadMessage, match="metric names"):
        d.parse(CS_UP, cs_up(3, {"x" * 70: 1}), NOW, ctx)


def test_the_documented_tts_uplink_becomes_readings(ctx):
    d = TtsDialect()
    res = d.parse("v3/app1@tenant1/devices/dev1/up", (DATA / "tts_v3_docs_uplink.json").read_bytes(), NOW, ctx)
    assert {r.metric: (r.value, r.unit) for r in res.readings} == {
        "temperature": (1.0, "Cel"), "luminosity": (0.64, None), "lorawan_rssi": (-35.0, "dBm"),
        "lorawan_snr": (5.0, "dB")}
    assert {r.ts for r in res.readings} == {datetime(2020, 2, 12, 15, 15, 46, 14773, tzinfo=timezone.utc)}
    assert {r.sensor_id for r in res.readings} == {"UNO-1"}  # "app1/dev1" (the device id alone works too)
    res = d.parse("v3/app1@tenant1/devices/dev1/join", (DATA / "tts_v3_docs_join_accept.json").read_bytes(), NOW, ctx)
    assert [(s.device_id, s.online) for s in res.statuses] == [("UNO-1", True)]


def test_tts_refusals_name_the_problem(ctx):
    d = TtsDialect()
    with pytest.raises(BadMessage, match="malformed JSON"):  # the docs' example as published (a comma missing)
        d.parse("v3/app1@tenant1/devices/dev1/up",
                (DATA / "tts_v3_docs_uplink_as_published_INVALID.json.txt").read_bytes(), NOW, ctx)
    with pytest.raises(BadMessage, match=r"frame 0\) of UNO-1 has no decoded payload \('decoded_payload'\)"):
        d.parse("v3/app1@tenant1/devices/dev1/up", (DATA / "tts_v3_mqtt_docs_uplink_no_fcnt.json").read_bytes(),
                NOW, ctx)
    with pytest.raises(BadMessage, match="unregistered LoRaWAN device app9/dev9"):
        d.parse("v3/app9/devices/dev9/up", (DATA / "tts_v3_docs_uplink.json").read_bytes().replace(b'"dev1"',
                                                                                                      b'"dev9"'),
                NOW, ctx)
    with pytest.raises(BadMessage, match="differs from the topic"):
        d.parse("v3/app1/devices/other/up", (DATA / "tts_v3_docs_uplink.json").read_bytes(), NOW, ctx)


def test_link_quality_is_stored_only_where_the_registry_asks_for_it(ctx):
    res = ChirpStackDialect().parse(CS_UP.replace("0101010101010101", "1000000000000001"),
                                    cs_up(5, {"t": 1}).replace(b"0101010101010101", b"1000000000000001"), NOW, ctx)
    assert [r.metric for r in res.readings] == ["t"]  # AT101's entry names no link.* field


def test_tts_maps_by_dev_eui_and_takes_the_strongest_reception_of_a_doubled_one(ctx):
    body = doc("tts_v3_uplink_tti_milesight_at101_packetbroker.json")
    body["end_device_ids"]["dev_eui"] = "4200000000000000"
    body["uplink_message"]["decoded_payload"] = {"battery": 91}
    device = body["end_device_ids"]["device_id"]
    app = body["end_device_ids"]["application_ids"]["application_id"]
    res = TtsDialect().parse(f"v3/{app}@ttn/devices/{device}/up", orjson.dumps(body), NOW, ctx)
    got = {r.metric: r.value for r in res.readings}
    rssis = [rx.get("rssi", rx.get("channel_rssi")) for rx in body["uplink_message"]["rx_metadata"]]
    assert got["battery"] == 91.0 and got["rssi"] == max(float(r) for r in rssis if r is not None)
    assert {r.sensor_id for r in res.readings} == {"EUI-ONLY"}


def test_a_missing_counter_is_frame_zero(ctx):
    """Both stacks leave out zero values: an uplink without fCnt is frame 0, and frame 1 after it is no gap."""
    d = ChirpStackDialect()
    d.parse(CS_UP, cs_up(None, {"temperature": 1}), NOW, ctx)
    assert d.counters.last["LS-1"].fcnt == 0
    assert "lorawan_frames_lost" not in {r.metric for r in d.parse(CS_UP, cs_up(1, {"temperature": 2}), NOW,
                                                                   ctx).readings}
