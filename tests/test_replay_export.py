"""Stored windows: `skylane export` and `replay --from-db` rebuild the messages and give the same events."""
from __future__ import annotations

import pytest

from replay.dbexport import DbSource, db_records, export
from replay.evaluate import evaluate, load_zones, read_events
from replay.recordfile import read_header, read_records
from replay.sources import FileSource
from devices.trace import DEFAULT_START
from skylane.cli import main as skylane_main
from skylane.settings import DEFAULT_ZONE_FILE

from .helpers import query
from .replay_support import small_trace, store_trace

pytestmark = pytest.mark.integration
KEY = ("id", "kind", "uav_id", "zone_id", "ts")


def _keys(events):
    return [tuple(e[k] for k in KEY) for e in events]


@pytest.fixture(scope="module")
def zones():
    return load_zones(DEFAULT_ZONE_FILE)


@pytest.fixture
def stored(system, zones_geojson, tmp_path):
    path = small_trace(tmp_path / "orig.slrec.gz", zones_geojson, root=system.mqtt_root)
    assert store_trace(system, path) == 8 * 120
    return system, path


def test_export_rebuilds_the_messages_and_the_events(stored, zones, tmp_path):
    system, orig = stored
    out = tmp_path / "export.slrec.gz"
    n = export(system.database_url, out, DEFAULT_START, DEFAULT_START + 3600, root=system.mqtt_root)
    head = read_header(out)
    assert head.root == system.mqtt_root
    recs = list(read_records(out))
    assert n == len(recs) and sum(r.topic.endswith("/telemetry") for r in recs) == 8 * 120
    assert [r.t for r in recs] == sorted(r.t for r in recs)  # receive order
    want = evaluate(FileSource(orig), zones)
    got = evaluate(FileSource(out), zones)
    assert got.counts["dead_letters"] == 0
    assert got.counts["readings"] == want.counts["readings"] > 0
    assert _keys(got.events) == _keys(want.events) and want.events
    stored_ids = {str(r[0]) for r in query(system.database_url, "SELECT id FROM airspace_events")}
    assert stored_ids == {e["id"] for e in got.events}  # what the live pipeline stored, decided again


def test_filters_and_window(stored):
    system, _ = stored
    uavs = sorted({r.topic.split("/")[-2] for r in db_records(system.database_url, DEFAULT_START, DEFAULT_START + 10,
                                                                root=system.mqtt_root) if "/uav/" in r.topic})
    one = list(db_records(system.database_url, DEFAULT_START + 30, DEFAULT_START + 60, root=system.mqtt_root,
                          uavs=[uavs[0]], sensors=[]))
    tel = [r for r in one if "/uav/" in r.topic]
    assert len(tel) == 30 and all(f"/uav/{uavs[0]}/" in r.topic for r in tel)
    assert any("/sensor/" in r.topic for r in one)  # a UAV filter leaves the readings alone
    src = DbSource(system.database_url, DEFAULT_START, DEFAULT_START + 60, root=system.mqtt_root,
                   uavs=uavs[:2], sensors=["nope"])
    assert sum(1 for _ in src.records()) == 120 and src.fraction() == 1.0
    with pytest.raises(ValueError):
        list(db_records(system.database_url, DEFAULT_START, DEFAULT_START, root=system.mqtt_root))


def test_cli_export_and_replay_from_db_agree(stored, tmp_path, monkeypatch, capsys):
    system, orig = stored
    monkeypatch.setenv("SKYLANE_DATABASE_URL", system.database_url)
    monkeypatch.setenv("SKYLANE_MQTT_ROOT", system.mqtt_root)
    out, ev_file, ev_db = tmp_path / "cli.slrec.gz", tmp_path / "file.jsonl", tmp_path / "db.jsonl"
    window = ["--start", "2026-01-01T08:00:00Z", "--end", "2026-01-01T09:00:00Z"]
    assert skylane_main(["export", *window, "-o", str(out)]) == 0
    assert skylane_main(["replay", str(out), "--evaluate", "-o", str(ev_file), "--no-progress"]) == 0
    assert skylane_main(["replay", "--from-db", *window, "--evaluate", "-o", str(ev_db), "--no-progress"]) == 0
    assert read_events(ev_file) == read_events(ev_db) and read_events(ev_db)
    assert skylane_main(["export", "--start", "2026-01-01T09:00:00Z", "--end", "2026-01-01T08:00:00Z",
                         "-o", str(out)]) == 2
