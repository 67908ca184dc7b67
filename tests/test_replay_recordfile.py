"""The record file format: round trip, durability, and tolerance of damage."""
from __future__ import annotations

import base64
import gzip
import shutil

import orjson
import pytest

import replay.recordfile as rf
from replay.recordfile import ReadReport, Record, RecordFormatError, RecordWriter, read_header, read_records

ROOT = "skylane/v1"
RECORDS = [
    Record(t=1000.0, topic=f"{ROOT}/uav/uav-001/telemetry", qos=1, retain=False, payload=b'{"seq":1}'),
    Record(t=1000.25, topic=f"{ROOT}/device/uav-001/status", qos=1, retain=True, payload=b"online"),
    Record(t=1000.5, topic=f"{ROOT}/sensor/s-1/reading", qos=0, retain=False, payload=bytes(range(256))),
    Record(t=1001.0, topic=f"{ROOT}/uav/uav-002/telemetry", qos=2, retain=False, payload=b""),
]


def _write(path, records=RECORDS, **kw):
    with RecordWriter(path, ROOT, [f"{ROOT}/#"], **kw) as w:
        for r in records:
            w.append(r)
    return path


@pytest.mark.parametrize("name", ["rec.slrec", "rec.slrec.gz"])
def test_round_trip(tmp_path, name):
    path = _write(tmp_path / name)
    report = ReadReport()
    assert list(read_records(path, report)) == RECORDS
    assert report.records == len(RECORDS) and report.skipped == 0 and not report.truncated
    head = read_header(path)
    assert head.root == ROOT and head.filters == (f"{ROOT}/#",) and head.version == 1
    minimal = orjson.dumps({"format": "skylane-record", "version": 1, "root": ROOT, "filters": []})
    assert rf.parse_header(minimal).root == ROOT


def test_gz_is_really_compressed_and_lines_are_documented_json(tmp_path):
    path = _write(tmp_path / "rec.slrec.gz")
    with gzip.open(path, "rb") as f:
        lines = f.read().splitlines()
    header = orjson.loads(lines[0])
    assert header["format"] == "skylane-record" and header["version"] == 1
    assert header["created"].endswith("Z") and header["root"] == ROOT and header["filters"] == [f"{ROOT}/#"]
    first = orjson.loads(lines[1])
    assert set(first) == {"t", "topic", "qos", "retain", "payload"}
    assert base64.b64decode(first["payload"]) == RECORDS[0].payload


def test_torn_last_line_is_reported_and_skipped(tmp_path):
    path = _write(tmp_path / "rec.slrec")
    with open(path, "ab") as f:
        f.write(b'{"t": 1002.0, "topic": "skylane/v1/uav/x/tel')  # crash mid-write
    report = ReadReport()
    assert list(read_records(path, report)) == RECORDS
    assert report.truncated and report.problems


def test_gzip_flushed_members_survive_a_crash(tmp_path):
    src = tmp_path / "live.slrec.gz"
    w = RecordWriter(src, ROOT, [f"{ROOT}/#"])
    for r in RECORDS:
        w.append(r)
    w.flush()
    crashed = tmp_path / "crashed.slrec.gz"
    shutil.copyfile(src, crashed)  # the file as a crash right now would leave it
    w.close()
    report = ReadReport()
    assert list(read_records(crashed, report)) == RECORDS
    assert not report.truncated  # flushed data is in complete gzip members
    with gzip.open(crashed, "rb") as f:  # standard gzip readers join the members
        assert len(f.read().splitlines()) == 1 + len(RECORDS)


def test_gzip_member_cut_short_keeps_what_came_before(tmp_path):
    path = _write(tmp_path / "rec.slrec.gz", RECORDS)
    tail = gzip.compress(b"".join(rf.encode_record(r.t + 10, r.topic, r.qos, r.retain, r.payload) for r in RECORDS))
    with open(path, "ab") as f:
        f.write(tail[: len(tail) // 2])  # a member a crash cut short
    report = ReadReport()
    got = list(read_records(path, report))
    assert got[: len(RECORDS)] == RECORDS and report.truncated


def test_gzip_chopped_mid_stream_does_not_raise(tmp_path):
    path = _write(tmp_path / "rec.slrec.gz", RECORDS * 200)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    report = ReadReport()
    got = list(read_records(path, report))
    assert 0 < len(got) < len(RECORDS) * 200 and report.truncated
    assert got == (RECORDS * 200)[: len(got)]


def test_bad_lines_are_skipped_and_counted(tmp_path):
    path = _write(tmp_path / "rec.slrec", RECORDS[:1])
    good = rf.encode_record(2000.0, f"{ROOT}/uav/u/telemetry", 1, False, b"ok")
    with open(path, "ab") as f:
        f.write(b'{"t": 1.0, "topic": "a/b", "qos": 1, "retain": false, "payload": "!!not base64!!"}\n')
        f.write(b"this is not json\n")
        f.write(b'{"t": "soon", "topic": "a/b", "qos": 1, "retain": false, "payload": ""}\n')
        f.write(b'{"t": 1.0, "topic": "a/b", "qos": 7, "retain": false, "payload": ""}\n')
        f.write(b"[1, 2]\n\n")
        f.write(good)
    report = ReadReport()
    got = list(read_records(path, report))
    assert [r.payload for r in got] == [RECORDS[0].payload, b"ok"]
    assert report.bad_base64 == 1 and report.bad_lines == 4 and not report.truncated


@pytest.mark.parametrize("first_line", [
    b"",
    b"not json\n",
    b'{"t": 1.0, "topic": "a", "qos": 0, "retain": false, "payload": ""}\n',
    b'{"format": "skylane-record", "version": 2, "root": "r", "filters": []}\n',
    b'{"format": "skylane-record", "version": 1, "root": "", "filters": []}\n',
    b'{"format": "skylane-record", "version": 1, "root": "r", "filters": "r/#"}\n',
])
def test_header_is_validated(tmp_path, first_line):
    path = tmp_path / "bad.slrec"
    path.write_bytes(first_line)
    with pytest.raises(RecordFormatError):
        read_header(path)
    with pytest.raises(RecordFormatError):
        list(read_records(path))


def test_plain_file_named_gz_is_a_format_error(tmp_path):
    path = _write(tmp_path / "rec.slrec")
    wrong = tmp_path / "wrong.slrec.gz"
    shutil.copyfile(path, wrong)
    with pytest.raises(RecordFormatError):
        read_header(wrong)


def test_writer_flushes_within_a_second_without_closing(tmp_path, monkeypatch):
    path = tmp_path / "rec.slrec"
    now = [100.0]
    monkeypatch.setattr(rf.time, "monotonic", lambda: now[0])
    w = RecordWriter(path, ROOT, [f"{ROOT}/#"])
    w.append(RECORDS[0])
    now[0] += 1.5
    w.append(RECORDS[1])  # a second has passed: this write flushes
    assert list(read_records(path)) == RECORDS[:2]
    w.append(RECORDS[2])
    now[0] += 1.5
    w.flush_if_due()  # the recorder's timer covers a quiet topic
    assert list(read_records(path)) == RECORDS[:3]
    w.close()
    with pytest.raises(ValueError):
        w.append(RECORDS[3])


@pytest.mark.parametrize("name", ["rec.slrec", "rec.slrec.gz"])
def test_append_continues_a_recording_of_the_same_root(tmp_path, name):
    path = _write(tmp_path / name, RECORDS[:2])
    _write(path, RECORDS[2:], append=True)
    assert list(read_records(path)) == RECORDS
    with pytest.raises(RecordFormatError):
        RecordWriter(path, "other/root", ["other/root/#"], append=True)
    _write(path, RECORDS[:1])  # without append: a fresh file
    assert list(read_records(path)) == RECORDS[:1]


def test_parallel_reading_gives_the_same_records_and_report(tmp_path):
    from replay.recordset import read_set
    damaged = _write(tmp_path / "a.slrec.gz", RECORDS * 3000)
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) * 3 // 4])  # cut mid-member
    bad = _write(tmp_path / "b.slrec", RECORDS[:2])
    with open(bad, "ab") as f:
        f.write(b"not json\n" + rf.encode_record(5.0, f"{ROOT}/uav/x/telemetry", 1, False, b"z") + b'{"t": 1')
    for paths in ([damaged], [bad], [bad, bad]):
        serial, parallel = ReadReport(), ReadReport()
        want = list(read_set(paths, serial)[1])
        got = list(read_set(paths, parallel, parallel=True)[1])
        assert got == want and want
        assert (parallel.records, parallel.bad_lines, parallel.truncated, parallel.bytes_done) == \
            (serial.records, serial.bad_lines, serial.truncated, serial.bytes_done)
    stopped = read_set([damaged], ReadReport(), parallel=True)[1]
    assert next(stopped) == RECORDS[0]
    stopped.close()  # the reader process is ended, not left behind


def test_an_abandoned_parallel_read_leaves_no_process_behind(tmp_path):
    """Even when this process ignores SIGTERM (a CLI's stop handler), the reader child goes away."""
    import signal

    from replay.recordset import read_set
    path = _write(tmp_path / "big.slrec.gz", RECORDS * 20000)
    old = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        recs = read_set([path], ReadReport(), parallel=True)[1]
        assert next(recs) == RECORDS[0]
        import multiprocessing
        children = multiprocessing.active_children()
        assert children
        recs.close()
        assert not any(c.is_alive() for c in children)
    finally:
        signal.signal(signal.SIGTERM, old)
