"""The recorder killed with SIGKILL loses at most the last second; rotation splits a recording into parts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from protocol.mqttclient import close_client, connect_client
from replay.recordfile import FLUSH_EVERY_S, ReadReport, Record, read_records
from replay.recordset import RotatingWriter, expand, parts_of
from replay.sources import FileSource
from skylane.commands.recording import parse_duration, parse_size
from skylane.settings import REPO_ROOT

from .helpers import wait_until

ROOT = "skylane/v1"


def _read(path):
    report = ReadReport()
    try:
        return list(read_records(path, report)), report
    except Exception:  # the header itself may not be flushed yet
        return [], report


@pytest.mark.integration
def test_sigkilled_recorder_loses_at_most_a_second(services, tmp_path):
    root = f"t{uuid.uuid4().hex[:8]}/v1"
    path = tmp_path / "crash.slrec.gz"
    env = {**os.environ, "SKYLANE_MQTT_URL": services.mqtt_url, "SKYLANE_MQTT_ROOT": root}
    proc = subprocess.Popen([sys.executable, "-m", "skylane", "record", str(path)], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = connect_client(services.mqtt_url, f"crash-pub-{uuid.uuid4().hex[:6]}")
    try:
        probe = f"{root}/device/probe/status"

        def probe_recorded():
            client.publish(probe, b"online", qos=1)
            return any(r.topic == probe for r in _read(path)[0])
        wait_until(probe_recorded, 20, "the recorder never recorded the probe", interval=0.3)
        sent = [0]
        done = threading.Event()

        def publish():  # keeps publishing through the kill: the crash happens mid-stream
            while not done.is_set():
                client.publish(f"{root}/uav/u1/telemetry", str(sent[0]).encode(), qos=1)
                sent[0] += 1
                time.sleep(0.004)
        th = threading.Thread(target=publish, daemon=True)
        th.start()
        time.sleep(3.0)
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        done.set()
        th.join(5)
    finally:
        close_client(client)
        if proc.poll() is None:
            proc.kill()
    recs, report = _read(path)
    seqs = [int(r.payload) for r in recs if r.topic.endswith("/telemetry")]
    assert seqs == list(range(len(seqs))), "records are a gap-free prefix of what was sent"
    assert report.skipped == 0
    lost_s = killed_at - recs[-1].t
    print(f"SIGKILL: {len(seqs)}/{sent[0]} messages kept; newest record {lost_s:.3f} s before the kill "
          f"(flush every {FLUSH_EVERY_S} s)")
    assert lost_s <= 1.0, f"the crash lost {lost_s:.2f} s of traffic"


def test_rotation_by_size_keeps_every_record_in_order(tmp_path):
    base = tmp_path / "big.slrec.gz"
    recs = [Record(1000.0 + i, f"{ROOT}/uav/u{i % 7}/telemetry", 1, False, os.urandom(300)) for i in range(3000)]
    with RotatingWriter(base, ROOT, [f"{ROOT}/#"], max_bytes=64 * 1024) as w:
        for i, r in enumerate(recs):
            w.append(r)
            if i % 50 == 0:
                w.flush()
                w.rotate_if_due()
    assert len(w.paths) >= 5 and w.count == len(recs)
    assert parts_of(base) == w.paths == expand(base) == expand(tmp_path)
    assert list(FileSource(base).records()) == recs
    heads = [FileSource(p).header for p in w.paths]
    assert [h.part for h in heads] == list(range(1, len(w.paths) + 1)) and len({h.session for h in heads}) == 1
    # a restarted recorder continues the numbering instead of overwriting
    with RotatingWriter(base, ROOT, [f"{ROOT}/#"], max_bytes=64 * 1024) as w2:
        w2.append(recs[0])
    assert w2.paths[0].name == f"big.{len(w.paths) + 1:05d}.slrec.gz"


def test_rotation_by_duration(tmp_path):
    now = [0.0]
    with RotatingWriter(tmp_path / "d.slrec", ROOT, [], max_seconds=60, clock=lambda: now[0]) as w:
        for i in range(10):
            w.append(Record(float(i), f"{ROOT}/uav/u/telemetry", 0, False, b"{}"))
            now[0] += 25
            w.flush_if_due()
    assert [p.name for p in w.paths] == ["d.00001.slrec", "d.00002.slrec", "d.00003.slrec", "d.00004.slrec"]
    assert [r.t for r in FileSource(tmp_path).records()] == [float(i) for i in range(10)]


def test_append_after_a_crash_cuts_the_torn_member(tmp_path):
    from replay.recordfile import RecordWriter
    path = tmp_path / "a.slrec.gz"
    recs = [Record(float(i), f"{ROOT}/uav/u/telemetry", 1, False, b"%d" % i) for i in range(10)]
    with RecordWriter(path, ROOT, []) as w:
        for r in recs[:5]:
            w.append(r)
    with open(path, "ab") as f:
        f.write(b"\x1f\x8b\x08\x00garbage of a member the crash cut")
    with RecordWriter(path, ROOT, [], append=True) as w:
        for r in recs[5:]:
            w.append(r)
    report = ReadReport()
    assert list(read_records(path, report)) == recs and not report.truncated


def test_cli_sizes_and_durations():
    assert parse_size("100M") == 100 * 1024 ** 2 and parse_size("2048") == 2048 and parse_size("1.5k") == 1536
    assert parse_duration("1h") == 3600 and parse_duration("90") == 90 and parse_duration("15m") == 900
    for bad in ("", "ten", "5x"):
        with pytest.raises(ValueError):
            parse_size(bad)
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.integration
def test_recorder_rotates_by_duration_on_the_real_broker(services, tmp_path):
    from replay.recorder import record

    from .helpers import Running
    root = f"t{uuid.uuid4().hex[:8]}/v1"
    base = tmp_path / "rot.slrec.gz"
    ready = threading.Event()
    rec = Running(lambda stop: record(services.mqtt_url, base, root, stop=stop, ready=ready, rotate_seconds=1.0))
    assert ready.wait(15), "recorder did not subscribe"
    client = connect_client(services.mqtt_url, f"rot-pub-{uuid.uuid4().hex[:6]}")
    try:
        for i in range(300):
            client.publish(f"{root}/uav/u1/telemetry", b"%d" % i, qos=1)
            time.sleep(0.01)
        wait_until(lambda: sum(1 for _ in FileSource(parts_of(base)).records()) == 300, 15,
                   "not every message was recorded")
    finally:
        close_client(client)
        rec.close()
    parts = parts_of(base)
    assert len(parts) >= 3
    assert [int(r.payload) for r in FileSource(base).records()] == list(range(300))
