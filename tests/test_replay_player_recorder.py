"""Recorder and player logic against fake clients (the live-broker tests are integration tests)."""
from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest

import replay.sinks as player_mod
import replay.recorder as recorder_mod
from .memclient import MemoryClient
from replay.player import output_prefixes, replay
from replay.recordfile import Record, RecordFormatError, RecordWriter, read_header, read_records

ROOT = "skylane/v1"


class MemPublisher:
    """replay.mqttpub.FastPublisher's interface over the in-memory client."""

    def __init__(self, client: MemoryClient) -> None:
        self.client = client

    def publish(self, topic, payload, qos=1, retain=False, timeout=None) -> bool:
        self.client.publish(topic, payload, qos=qos, retain=retain)
        return True

    def flush(self) -> None:
        pass

    def pending(self) -> int:
        return 0

    def drain(self, timeout=None) -> bool:
        return True

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture()
def fake(monkeypatch):
    client = MemoryClient()
    monkeypatch.setattr(player_mod, "FastPublisher", lambda *a, **k: MemPublisher(client))
    return client


def _recording(path, records, root=ROOT):
    with RecordWriter(path, root, [f"{root}/#"]) as w:
        for r in records:
            w.append(r)
    return path


RECS = [
    Record(0.00, f"{ROOT}/device/uav-001/status", 1, True, b"online"),
    Record(0.01, f"{ROOT}/uav/uav-001/telemetry", 1, False, b'{"seq":1}'),
    Record(0.02, f"{ROOT}/events/zone_enter/uav-001", 1, False, b"{}"),
    Record(0.03, f"{ROOT}/state/uav/uav-001", 1, True, b"{}"),
    Record(0.04, f"{ROOT}/sensor/aq-1/reading", 0, False, b"[]"),
    Record(0.05, "elsewhere/uav/x/telemetry", 1, False, b"{}"),
]


def test_default_replay_goes_under_a_replay_prefix_skips_outputs_keeps_qos_retain_order(tmp_path, fake):
    path = _recording(tmp_path / "r.slrec", RECS)
    n = replay(path, "mqtt://127.0.0.1:1", rate="max")
    kept = [r for r in RECS if r not in (RECS[2], RECS[3]) and r.topic.startswith(ROOT + "/")]
    expected = [("replay/" + r.topic, r.payload, r.qos, r.retain) for r in kept]
    assert [(m.topic, m.payload, m.qos, m.retain) for m in fake.published] == expected
    assert n == len(expected) and fake.closed
    assert not any(m.topic.startswith(ROOT + "/") for m in fake.published)  # never the live topics


def test_replay_onto_the_recorded_root_only_when_asked(tmp_path, fake):
    path = _recording(tmp_path / "r.slrec", RECS)
    n = replay(path, "mqtt://127.0.0.1:1", rate=0, root_to=ROOT)
    expected = [(r.topic, r.payload, r.qos, r.retain) for r in RECS if r not in (RECS[2], RECS[3])]
    assert [(m.topic, m.payload, m.qos, m.retain) for m in fake.published] == expected
    assert n == len(expected)


def test_remapped_replay_never_touches_live_topics(tmp_path, fake):
    path = _recording(tmp_path / "r.slrec.gz", RECS)
    n = replay(path, "mqtt://127.0.0.1:1", rate=0, root_to="replay/t1")
    assert [m.topic for m in fake.published] == ["replay/t1/device/uav-001/status", "replay/t1/uav/uav-001/telemetry",
                                               "replay/t1/sensor/aq-1/reading"]
    assert n == 3


def test_include_outputs_and_explicit_root_from(tmp_path, fake):
    path = _recording(tmp_path / "r.slrec", RECS)
    n = replay(path, "mqtt://127.0.0.1:1", rate="max", root_from=ROOT, root_to="sandbox", include_outputs=True)
    assert n == 5 and "sandbox/events/zone_enter/uav-001" in [m.topic for m in fake.published]


def test_scheduled_replay_publishes_everything(tmp_path, fake):
    path = _recording(tmp_path / "r.slrec", RECS)
    assert replay(path, "mqtt://127.0.0.1:1", rate=10.0) == 3


def test_bad_records_and_bad_topics_are_skipped(tmp_path, fake):
    path = _recording(tmp_path / "r.slrec", RECS[:2] + [Record(0.1, f"{ROOT}/uav/#/telemetry", 1, False, b"")])
    with open(path, "ab") as f:
        f.write(b'{"t": 0.2, "topic": "skylane/v1/uav/u/telemetry", "qos": 1, "retain": false, "payload": "%%"}\n')
    assert replay(path, "mqtt://127.0.0.1:1", rate=0, root_to=ROOT) == 2


def test_stop_ends_the_replay(tmp_path, fake):
    path = _recording(tmp_path / "r.slrec", RECS)
    stop = threading.Event()
    stop.set()
    assert replay(path, "mqtt://127.0.0.1:1", rate=1.0, stop=stop) == 0


def test_bad_arguments_fail_before_connecting(tmp_path, monkeypatch):
    def no_connect(*_a, **_k):
        raise AssertionError("must not connect")

    monkeypatch.setattr(player_mod, "FastPublisher", no_connect)
    path = _recording(tmp_path / "r.slrec", RECS)
    for bad_rate in (-1, 0.05, 1001, "fast", float("nan")):
        with pytest.raises(ValueError):
            replay(path, "mqtt://127.0.0.1:1", rate=bad_rate)
    not_a_recording = tmp_path / "x.slrec"
    not_a_recording.write_text("hello\n")
    with pytest.raises(RecordFormatError):
        replay(not_a_recording, "mqtt://127.0.0.1:1")


def test_output_prefixes():
    assert output_prefixes("a", "b", "a") == ("a/events/", "a/state/", "b/events/", "b/state/")


def _message(topic: str, payload: bytes, qos: int, retain: bool) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(mid=1, topic=topic.encode())
    msg.payload, msg.qos, msg.retain = payload, qos, retain
    return msg


def test_recorder_writes_every_message_with_its_flags(tmp_path, monkeypatch):
    stop = threading.Event()
    seen = {}

    def connect(url, client_id, stop_evt, **kwargs):
        seen.update(kwargs)
        on_message = kwargs["on_message"]
        on_message(None, None, _message(f"{ROOT}/device/s-1/status", b"online", 1, True))
        on_message(None, None, _message(f"{ROOT}/sensor/s-1/reading", bytes([0, 255]), 0, False))
        bad = mqtt.MQTTMessage(mid=2, topic=b"\xff\xfe")  # not UTF-8: counted, not fatal
        on_message(None, None, bad)
        stop_evt.set()
        return MemoryClient()

    monkeypatch.setattr(recorder_mod, "connect_with_retry", connect)
    path = tmp_path / "rec.slrec.gz"
    n = recorder_mod.record("mqtt://127.0.0.1:1", path, ROOT, stop=stop)
    assert n == 2
    assert seen["subscriptions"] == [(f"{ROOT}/#", 1)]
    assert read_header(path).filters == (f"{ROOT}/#",)
    got = list(read_records(path))
    assert [(r.topic, r.payload, r.qos, r.retain) for r in got] == [
        (f"{ROOT}/device/s-1/status", b"online", 1, True),
        (f"{ROOT}/sensor/s-1/reading", bytes([0, 255]), 0, False),
    ]
    assert all(r.t > 1e9 for r in got)  # receive time, epoch seconds


def test_recorder_with_custom_filters_and_no_connection(tmp_path, monkeypatch):
    monkeypatch.setattr(recorder_mod, "connect_with_retry", lambda *a, **k: None)
    path = tmp_path / "rec.slrec"
    assert recorder_mod.record("mqtt://127.0.0.1:1", path, ROOT, [f"{ROOT}/uav/+/telemetry"],
                               stop=threading.Event()) == 0
    assert read_header(path).filters == (f"{ROOT}/uav/+/telemetry",)
