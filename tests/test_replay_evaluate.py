"""Deterministic evaluation: same input, same events, at any batch size and rate; --expect diffs; --zones."""
from __future__ import annotations

import copy
import json

import pytest

from replay.evaluate import diff_events, evaluate, load_zones, read_events, write_events
from replay.recordfile import Record, RecordWriter, read_records
from replay.recordset import RotatingWriter
from replay.sources import FileSource, ListSource, Selection
from devices.trace import DEFAULT_START, make_trace
from skylane.cli import main as skylane_main
from skylane.settings import DEFAULT_ZONE_FILE

ROOT = "skylane/v1"


@pytest.fixture(scope="module")
def trace(tmp_path_factory, zones_geojson):
    path = tmp_path_factory.mktemp("trace") / "session.slrec.gz"
    make_trace(path, zones_geojson, drones=30, sensors=4, seconds=240, hz=1.0, seed=3)
    return path


@pytest.fixture(scope="module")
def zones():
    return load_zones(DEFAULT_ZONE_FILE)


@pytest.fixture(scope="module")
def baseline(trace, zones):
    return evaluate(FileSource(trace), zones, batch_size=10_000)


def test_evaluation_finds_the_fleets_violations(baseline):
    kinds = {e["kind"] for e in baseline.events}
    assert {"zone_enter", "zone_exit", "no_fly_violation"} <= kinds  # the fleet has strays on purpose
    assert baseline.counts["telemetry"] == 30 * 240 and baseline.counts["dead_letters"] == 0
    assert baseline.counts["readings"] > 0


@pytest.mark.parametrize("batch_size", [1, 7, 500, 1_000_000])
def test_same_events_at_any_batch_size(trace, zones, baseline, batch_size):
    got = evaluate(FileSource(trace), zones, batch_size=batch_size)
    assert diff_events(baseline.events, got.events) == []
    assert got.events == baseline.events


def test_same_events_at_a_timed_rate(trace, zones, baseline):
    got = evaluate(FileSource(trace), zones, batch_size=64, rate=1000.0)  # 240 s of traffic in ~0.24 s
    assert got.events == baseline.events


def test_events_are_canonical_and_byte_identical(tmp_path, trace, zones, baseline):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_events(baseline.events, a)
    write_events(evaluate(FileSource(trace), zones, batch_size=333).events, b)
    assert a.read_bytes() == b.read_bytes()
    lines = a.read_text().splitlines()
    keys = [(e["ts"], e["uav_id"], e["kind"], e["zone_id"] or "", e["id"]) for e in map(json.loads, lines)]
    assert keys == sorted(keys) and read_events(a) == baseline.events


def test_a_rotated_set_and_its_directory_evaluate_like_the_single_file(tmp_path, trace, zones, baseline):
    folder = tmp_path / "parts"
    folder.mkdir()
    now = [0.0]
    w = RotatingWriter(folder / "s.slrec.gz", ROOT, [f"{ROOT}/#"], max_seconds=30, clock=lambda: now[0])
    for i, rec in enumerate(read_records(trace)):
        w.append(rec)
        if i % 500 == 499:
            now[0] += 10
            w.rotate_if_due()
    w.close()
    assert len(w.paths) > 3
    for src in (folder, folder / "s.slrec.gz", w.paths):
        assert evaluate(FileSource(src), zones).events == baseline.events


def test_other_airspace_changes_the_answer(tmp_path, trace, zones_geojson, baseline):
    """--zones: without the restricted zones nobody violates one; a new one catches who flies through."""
    violated = {e["zone_id"] for e in baseline.events if e["kind"] == "no_fly_violation"}
    doc = copy.deepcopy(zones_geojson)
    doc["features"] = [f for f in doc["features"] if f["properties"]["id"] not in violated]
    other = tmp_path / "other.geojson"
    other.write_text(json.dumps(doc))
    got = evaluate(FileSource(trace), load_zones(other))
    assert not [e for e in got.events if e["zone_id"] in violated]
    assert diff_events(baseline.events, got.events)


def test_selection_by_uav_window_and_offset(trace, zones, baseline):
    uav = next(e["uav_id"] for e in baseline.events if e["kind"] == "no_fly_violation")
    only = evaluate(FileSource(trace), zones, selection=Selection(uavs=frozenset({uav})))
    # a drone's own events depend on its fixes only; pair events (separation) on the other aircraft's too
    pairs = ("separation_loss", "separation_loss_end", "conflict_predicted", "conflict_predicted_end")
    assert only.events == [e for e in baseline.events if e["uav_id"] == uav and e["kind"] not in pairs]
    late = evaluate(FileSource(trace), zones, selection=Selection(offset_s=120))
    assert late.counts["telemetry"] == 30 * 120
    windowed = evaluate(FileSource(trace), zones, selection=Selection(start=DEFAULT_START + 120))
    assert windowed.events == late.events


def test_bad_messages_are_counted_not_fatal(zones):
    recs = [Record(DEFAULT_START, f"{ROOT}/uav/u1/telemetry", 1, False, b"{not json"),
            Record(DEFAULT_START + 1, f"{ROOT}/uav/u1/telemetry", 1, False,
                   b'{"lon": 121.47, "lat": 31.05, "alt_m": 50}'),
            Record(DEFAULT_START + 2, f"{ROOT}/weird/topic", 1, False, b"x")]
    got = evaluate(ListSource(recs, ROOT), zones)
    assert got.counts["dead_letters"] == 2 and got.counts["telemetry"] == 1


def test_cli_evaluate_expect_and_readable_diff(tmp_path, trace, capsys):
    events = tmp_path / "expected.jsonl"
    assert skylane_main(["replay", str(trace), "--evaluate", "-o", str(events), "--no-progress"]) == 0
    assert skylane_main(["replay", str(trace), "--evaluate", "--batch-size", "99", "--expect", str(events),
                         "--no-progress"]) == 0
    assert "identical" in capsys.readouterr().out
    lines = events.read_text().splitlines()
    changed = json.loads(lines[3])
    changed["zone_id"] = "SOMEWHERE_ELSE"
    lines[3] = json.dumps(changed)
    del lines[7]
    events.write_text("\n".join(lines) + "\n")
    assert skylane_main(["replay", str(trace), "--evaluate", "--expect", str(events), "--no-progress"]) == 1
    out = capsys.readouterr().out
    # expected has the altered event (missing from the replay); the replay has the original and the deleted one
    assert "SOMEWHERE_ELSE" in out and out.count("\n-{") == 1 and out.count("\n+{") == 2


def test_cli_refuses_bad_arguments(tmp_path, trace, capsys):
    assert skylane_main(["replay", str(trace), "--rate", "5000", "--evaluate"]) == 2
    assert skylane_main(["replay", str(tmp_path / "missing.slrec.gz"), "--evaluate"]) == 2
    assert skylane_main(["replay", "--from-db", "--evaluate"]) == 2
    assert "rate" in capsys.readouterr().err


def test_writer_header_extra_fields_are_ignored_by_readers(tmp_path):
    path = tmp_path / "x.slrec"
    with RecordWriter(path, ROOT, [], extra={"source": "database", "start": "2026-01-01T00:00:00Z"}) as w:
        w.append(Record(1.0, f"{ROOT}/uav/a/telemetry", 1, False, b"{}"))
    assert FileSource(path).header.root == ROOT and len(list(read_records(path))) == 1


@pytest.mark.parametrize("fmt", ["ed269", "ed318"])
def test_zones_in_another_format(tmp_path, trace, zones, baseline, fmt):
    """--zones reads whatever airspace.formats reads: the same airspace as ED-269/ED-318 decides alike."""
    formats = pytest.importorskip("airspace.formats")
    other = tmp_path / f"zones.{fmt}.json"
    other.write_text(json.dumps(formats.export_zones(zones, fmt)))
    got = evaluate(FileSource(trace), load_zones(other))
    assert [(e["kind"], e["uav_id"], e["zone_id"], e["ts"]) for e in got.events] == \
        [(e["kind"], e["uav_id"], e["zone_id"], e["ts"]) for e in baseline.events]


def test_synthetic_traces_are_reproducible(tmp_path, zones_geojson):
    a, b = tmp_path / "a.slrec.gz", tmp_path / "b.slrec.gz"
    for p in (a, b):
        make_trace(p, zones_geojson, drones=3, sensors=2, seconds=20, seed=5)
    assert a.read_bytes() == b.read_bytes()
    recs = list(read_records(a))
    assert sum(r.topic.endswith("/telemetry") for r in recs) == 60 and any("/sensor/" in r.topic for r in recs)
