"""One policy everywhere: a session recorded while live ingest ran gives exactly the stored events when it is
evaluated (`skylane replay --evaluate`) under the same settings, whatever SKYLANE_REQUIRE_CLEARANCE is; the
recording's header says what it was made under, and an evaluation under another policy says so."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import orjson
import pytest

from devices.fleet import make_fleet
from devices.simulator import Simulator
from protocol.times import rfc3339
from replay.recorder import record
from replay.recordfile import read_header
from skylane.wiring import recording_context

from .helpers import Running, query, start_ingester, wait_until

pytestmark = pytest.mark.integration


def _stored_events(settings) -> list[dict]:
    rows = query(settings.database_url, "SELECT id, kind, uav_id, zone_id, ts, detail FROM airspace_events")
    return sorted(({"id": str(i), "kind": k, "uav_id": u, "zone_id": z, "ts": rfc3339(ts), "detail": d}
                   for i, k, u, z, ts, d in rows), key=lambda e: (e["ts"], e["uav_id"], e["kind"], e["zone_id"] or "",
                                                                 e["id"]))


@pytest.mark.parametrize("require_clearance", [False, True])
def test_evaluation_gives_the_stored_events_under_the_live_policy(new_system, zones_geojson, tmp_path,
                                                                  require_clearance):
    live = new_system().with_(require_clearance=require_clearance)
    path = tmp_path / "session.slrec.gz"
    _, ingest = start_ingester(live)
    subscribed = threading.Event()
    recorder = Running(lambda stop: record(live.mqtt_url, path, live.mqtt_root, stop=stop, ready=subscribed,
                                           context=recording_context(live)))
    assert subscribed.wait(10)
    drones, sensors = make_fleet(zones_geojson, 6, 3, seed=5, rate_scale=20)
    stats = Simulator(live.mqtt_url, live.mqtt_root, drones, sensors, hz=5).run(threading.Event(), duration_s=6)
    wait_until(lambda: query(live.database_url, "SELECT count(*) FROM uav_telemetry")[0][0] == stats.telemetry, 20,
               "live ingest did not store the session")
    recorder.close()
    ingest.close()
    stored = _stored_events(live)
    assert stored and any(e["kind"] == "uncleared_flight" for e in stored) == require_clearance
    assert read_header(path).context["policy"]["require_clearance"] is require_clearance

    env = {**os.environ, "SKYLANE_REQUIRE_CLEARANCE": "1" if require_clearance else "0",
           "SKYLANE_STATE_DIR": str(live.state_dir), "SKYLANE_DATABASE_URL": live.database_url}
    out = subprocess.run([sys.executable, "-m", "skylane", "replay", str(path), "--evaluate", "-o", "-",
                          "--no-progress", "--no-keys"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    evaluated = [orjson.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert evaluated == stored  # same ids, times, details: byte-identical as canonical JSON
    assert "this evaluation uses" not in out.stderr

    env["SKYLANE_REQUIRE_CLEARANCE"] = "0" if require_clearance else "1"
    other = subprocess.run([sys.executable, "-m", "skylane", "replay", str(path), "--evaluate", "-o", "-",
                            "--no-progress", "--no-keys"], env=env, capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    assert f"made with require_clearance={require_clearance!r}; this evaluation uses {not require_clearance!r}" \
        in other.stderr
