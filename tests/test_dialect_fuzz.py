"""Fuzzing every adapter: the vendors' documented messages truncated, with fields deleted or replaced by junk of
every JSON type, or plain garbage; MAVLink frames corrupted byte by byte. Nothing crashes and nothing is dropped
silently: each message gives rows that hold the contract's ranges, or a dead letter with a reason (never an
'internal error'); through the real broker and database each bad message is a dead-letter row."""
from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airspace.vertical import VerticalModel
from airspace.zones import ZoneSet
from devices.flight import Fix
from devices.registry import DeviceRecord
from devices.vendor_payloads import MavlinkVehicle
from ingest.bridges.mavlink import MavlinkTranslator
from ingest.dialects import DialectContext, RegistryView
from ingest.dialects.chirpstack import ChirpStackDialect
from ingest.dialects.dji import DjiDialect
from ingest.dialects.tts import TtsDialect
from ingest.pipeline import build_pipeline
from ingest.rows import RawMessage
from ingest.validation import BadMessage

from .dialect_support import Mqtt, count, register, unique, unique_eui, wait_count
from .helpers import start_ingester

DATA = Path(__file__).parent / "data"
NOW = datetime.now(timezone.utc)
EUI = "0101010101010101"
REGISTRY = [{"device_id": "A1", "kind": "uav", "properties": {"dji_sn": "SN1"}},
            {"device_id": "DOCK", "kind": "sensor", "properties": {"dji_sn": "dock_sn"}},
            {"device_id": "GW", "kind": "sensor", "properties": {"dji_sn": "GW1"}},
            {"device_id": "S1", "kind": "sensor", "properties": {"dev_eui": EUI, "tts_device_id": "dev1"}}]


def _load(path: str) -> dict:
    return json.loads((DATA / path).read_bytes())


def _flying() -> dict:
    body = _load("dji_cloud/aircraft_osd_m30_via_dock.json")
    body["data"].update(latitude=31.05, longitude=121.5, mode_code=5)
    body["timestamp"] = int(NOW.timestamp() * 1000) - 1000
    return body


def _cs_up() -> dict:
    return {**_load("lorawan/chirpstack_v4_docs_event_up.json"), "fCnt": 3, "object": {"temperature": 21.5}}


CASES = [  # (dialect factory, topic, documented base message)
    (DjiDialect, "thing/product/SN1/osd", _flying()),
    (DjiDialect, "thing/product/dock_sn/osd", _load("dji_cloud/dock2_osd_position_environment.json")),
    (DjiDialect, "thing/product/dock_sn/state", _load("dji_cloud/generic_state_envelope.json")),
    (DjiDialect, "sys/product/GW1/status", _load("dji_cloud/sys_status_update_topo_dock2_online.json")),
    (ChirpStackDialect, f"application/x/device/{EUI}/event/up", _cs_up()),
    (ChirpStackDialect, f"application/x/device/{EUI}/event/join", _load("lorawan/chirpstack_v4_docs_event_join.json")),
    (ChirpStackDialect, f"application/x/device/{EUI}/event/status",
     _load("lorawan/chirpstack_v4_docs_event_status.json")),
    (TtsDialect, "v3/app1@tenant1/devices/dev1/up", _load("lorawan/tts_v3_docs_uplink.json")),
    (TtsDialect, "v3/app1@tenant1/devices/dev1/join", _load("lorawan/tts_v3_docs_join_accept.json")),
]

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                 st.sampled_from([1e308, -1e308, 1e-320, 2**63, -(2**63) - 1]), st.text(max_size=20),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _mutated(base: dict, path: tuple, value, delete: bool) -> bytes:
    doc = json.loads(json.dumps(base))
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(doc).encode()


@st.composite
def vendor_messages(draw):
    """(case index, payload): one documented message with one mutation, truncated, or garbage."""
    i = draw(st.integers(0, len(CASES) - 1))
    base = CASES[i][2]
    raw = json.dumps(base).encode()
    kind = draw(st.sampled_from(["field", "field", "field", "truncate", "garbage"]))
    if kind == "truncate":
        return i, raw[:draw(st.integers(0, len(raw) - 1))]
    if kind == "garbage":
        return i, draw(st.binary(max_size=200))
    path = draw(st.sampled_from(list(_paths(base))))
    return i, _mutated(base, path, draw(JUNK), draw(st.booleans()))


def _ctx() -> DialectContext:
    return DialectContext("skylane/v1", RegistryView.from_registry(REGISTRY), VerticalModel(), 65536)


@settings(max_examples=600, deadline=None)
@given(msg=vendor_messages())
def test_every_adapter_gives_valid_rows_or_a_reason(msg):
    i, payload = msg
    factory, topic, _ = CASES[i]
    try:
        res = factory().parse(topic, payload, NOW, _ctx())
    except BadMessage as exc:
        assert str(exc)
        return
    for row in res.telemetry:
        assert -90 <= row.lat <= 90 and -180 <= row.lon <= 180 and -500 <= row.alt_m <= 20000
        assert row.alt_ref in ("AGL", "AMSL", "WGS84") and row.status in (None, "Ground", "Airborne", "Emergency")
        assert row.speed_mps is None or 0 <= row.speed_mps <= 500
        assert row.track_deg is None or 0 <= row.track_deg <= 360
    for r in res.readings:
        assert (r.value is None) != (r.vtext is None) and (r.value is None or math.isfinite(r.value))
        assert 0 < len(r.metric) <= 64 and r.metric.isprintable() and r.ts.tzinfo is not None


@pytest.fixture(scope="module")
def pipeline(zones_geojson):
    return build_pipeline(ZoneSet.from_geojson(zones_geojson), "skylane/v1",
                          dialects=[DjiDialect(), ChirpStackDialect(), TtsDialect()],
                          registry=RegistryView.from_registry(REGISTRY))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(vendor_messages(), min_size=1, max_size=8))
def test_the_pipeline_never_fails_on_vendor_input(pipeline, batch):
    out = pipeline.process([RawMessage(CASES[i][1], p, NOW) for i, p in batch])
    assert not [d.reason for d in out.dead_letters if d.reason.startswith("internal error")]
    assert len(out.dead_letters) <= len(batch)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_corrupted_mavlink_is_counted_never_fatal(data):
    from pymavlink.dialects.v20 import common
    now = time.time()
    v = MavlinkVehicle(3, now - 10)
    stream = b"".join(v.frames(Fix(121.5, 31.05, 50, 5, 90, 0, "Airborne", 60), now))
    buf = bytearray(stream)
    for _ in range(data.draw(st.integers(0, 6))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    buf += data.draw(st.binary(max_size=64))
    parser = common.MAVLink(None)
    parser.robust_parsing = True
    t = MavlinkTranslator("r/v1", "udp:1", {"udp:1/3": "M3"}.get, max_hz=0)
    for msg in parser.parse_buffer(bytes(buf)) or []:
        for out in t.handle(msg, now):
            body = json.loads(out.payload) if out.topic.endswith("/telemetry") else None
            assert body is None or (-90 <= body["lat"] <= 90 and -180 <= body["lon"] <= 180)


@pytest.mark.integration
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(vendor_messages(), min_size=3, max_size=6))
def test_fuzzed_vendor_traffic_through_the_broker_is_stored_or_dead_lettered(new_system, batch):
    """Each example its own system: every message lands as rows or as one dead letter, the ingester lives on."""
    system = new_system()
    sn, dock, gw, eui, app = unique("SN"), unique("DK"), unique("GW"), unique_eui(), unique("app").lower()
    records = [DeviceRecord("A1", "uav", properties={"dji_sn": sn}),
               DeviceRecord("DOCK", "sensor", properties={"dji_sn": dock}),
               DeviceRecord("GW", "sensor", properties={"dji_sn": gw}),
               DeviceRecord("S1", "sensor", properties={"dev_eui": eui, "tts_device_id": f"{app}/dev1"})]
    register(system, *records)
    ctx = DialectContext(system.mqtt_root, RegistryView.from_registry(records), VerticalModel(), 65536)
    ing, runner = start_ingester(system.with_(dialects=("all",)))
    mqtt = Mqtt(system)
    expected_dead = 0
    try:
        for i, payload in batch:
            factory, topic, _ = CASES[i]
            topic = (topic.replace("SN1", sn).replace("dock_sn", dock).replace("GW1", gw).replace(EUI, eui)
                     .replace("app1@tenant1", app))
            try:
                factory().parse(topic, payload, datetime.now(timezone.utc), ctx)
            except BadMessage:
                expected_dead += 1
            mqtt.publish(topic, payload)
        if expected_dead:
            wait_count(system.database_url, "SELECT count(*) FROM dead_letters", at_least=expected_dead)
        assert runner.thread.is_alive()
        assert count(system.database_url, "SELECT count(*) FROM dead_letters WHERE reason LIKE 'internal error%%'") == 0
    finally:
        mqtt.close()
        runner.close()
