"""The replay CLI's safety rules and the interactive console (keys, progress bar), without a broker."""
from __future__ import annotations

import io

import pytest

from replay.console import ProgressBar, handle_key
from replay.recordfile import Record, RecordWriter
from replay.timing import MAX, PlaybackControl
from skylane.cli import main as skylane_main

ROOT = "skylane/v1"


@pytest.fixture
def rec(tmp_path):
    path = tmp_path / "r.slrec"
    with RecordWriter(path, ROOT, [f"{ROOT}/#"]) as w:
        w.append(Record(1.0, f"{ROOT}/uav/u1/telemetry", 1, False, b"{}"))
    return path


def test_replay_onto_the_live_root_needs_live(rec, monkeypatch, capsys):
    monkeypatch.setenv("SKYLANE_MQTT_ROOT", ROOT)
    monkeypatch.setenv("SKYLANE_MQTT_URL", "mqtt://127.0.0.1:1")  # never reached: refused first
    assert skylane_main(["replay", str(rec), "--to-root", ROOT, "--no-progress"]) == 2
    assert "--live" in capsys.readouterr().err
    assert skylane_main(["replay", str(rec), "--rate", "0.01"]) == 2
    assert skylane_main(["replay", str(rec), "--from-db", "--start", "0", "--end", "1"]) == 2


def test_replay_under_the_live_root_or_outputs_onto_it_are_refused(rec, monkeypatch, capsys):
    monkeypatch.setenv("SKYLANE_MQTT_ROOT", ROOT)
    monkeypatch.setenv("SKYLANE_MQTT_URL", "mqtt://127.0.0.1:1")  # never reached: refused first
    for argv in (["--to-root", f"{ROOT}/sub"], ["--to-root", "skylane"], ["--to-root", ROOT, "--include-outputs"]):
        assert skylane_main(["replay", str(rec), *argv, "--no-progress"]) == 2, argv
        assert "--live" in capsys.readouterr().err
    assert skylane_main(["replay", str(rec), "--live", "--include-outputs", "--no-progress"]) == 2
    assert "cannot go onto the live root" in capsys.readouterr().err


def test_a_live_replay_skips_recorded_controls():
    from replay.sources import Selection
    live = Selection(controls=False)
    assert live.keeps_topic(f"{ROOT}/control/zones", ROOT) == "skipped_controls"
    assert live.keeps_topic(f"{ROOT}/control/zone/C1", ROOT) == "skipped_controls"
    assert live.keeps_topic(f"{ROOT}/uav/u1/telemetry", ROOT) is None
    assert Selection().keeps_topic(f"{ROOT}/control/zone/C1", ROOT) is None  # under a replay root they are kept


def test_keys_drive_the_control():
    c = PlaybackControl(1.0)
    assert handle_key(" ", c) and c.paused
    assert handle_key("p", c) and not c.paused
    assert handle_key("n", c) and c.paused and c.take_step() and not c.take_step()
    assert handle_key("+", c) and c.rate == 2.0
    assert handle_key("-", c) and handle_key("-", c) and c.rate == 0.5
    assert not handle_key("x", c)
    assert handle_key("q", c) and c.stopped
    c2 = PlaybackControl("max")
    handle_key("-", c2)
    assert c2.rate == 1000.0 and c2.faster() == 1000.0 and c2.set_rate("max") == MAX


def test_progress_bar_lines():
    out = io.StringIO()
    bar = ProgressBar("replay", stream=out, width=10, period_s=0)
    status = {"counters": {"sent": 42}, "fraction": 0.5, "t": 1767254400.25,
              "control": {"paused": True, "stopped": False, "rate": 10.0}}
    bar.update(status)
    line = out.getvalue()
    assert "[#####.....]" in line and " 50%" in line and "42 msgs" in line and "08:00:00.250Z" in line
    assert "rate 10x" in line and "PAUSED" in line
    assert "rate max" in bar.line({**status, "fraction": None, "control": {"rate": "max"}})


def test_watching_in_process_prints_the_incidents_events(capsys, monkeypatch):
    """--target pipeline: the recording through the pipeline at a rate, events printed as decided."""
    import json

    from replay.evaluate import read_events
    from skylane.settings import REPO_ROOT
    inc = REPO_ROOT / "replay" / "incidents"
    monkeypatch.setenv("SKYLANE_ZONE_FILE", str(inc / "airspace.geojson"))
    assert skylane_main(["replay", str(inc / "nofly_between_fixes.slrec.gz"), "--target", "pipeline",
                         "--rate", "1000", "--no-progress", "--no-keys"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    expected = read_events(inc / "nofly_between_fixes.events.jsonl")
    assert sorted(e["id"] for e in printed) == sorted(e["id"] for e in expected)


def test_unreachable_broker_is_a_clean_error(rec, monkeypatch, capsys):
    """What BrokerSink.open raises once its connect timeout has passed becomes one line and exit 1."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SKYLANE_MQTT_URL", f"mqtt://127.0.0.1:{port}")
    from replay import sinks
    monkeypatch.setattr(sinks.BrokerSink, "open", lambda self, stop: (_ for _ in ()).throw(
        sinks.MqttError(f"MQTT broker mqtt://127.0.0.1:{port} unreachable")))
    assert skylane_main(["replay", str(rec), "--no-progress", "--no-keys"]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
