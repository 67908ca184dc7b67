"""`skylane bench feeds` runs end to end on the test services, then its Mosquitto WebSocket peer, and ends with its
JSON line (no timing asserted)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skylane.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def test_feed_bench_prints_its_figures(services):
    r = subprocess.run([sys.executable, "-m", "skylane", "bench", "feeds", "--clients", "6", "--rate", "100",
                        "--duration", "2", "--warmup", "0.5", "--uavs", "10", "--client-procs", "2",
                        "--mqtt-url", services.mqtt_url, "--database-url", services.database_url],
                       capture_output=True, text=True, cwd=REPO_ROOT, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["clients"] == 6 and result["failed_clients"] == 0
    assert result["published"] > 0 and 0 < result["delivered"] <= result["published"] * 6
    assert result["delivery_p99_ms"] is not None and result["updates_per_s"] > 0
    # the peer: the same clients on Mosquitto's WebSocket listener
    assert result["mosquitto_ws_failed_clients"] == 0 and result["mosquitto_ws_published"] > 0
    assert 0 < result["mosquitto_ws_delivered"] <= result["mosquitto_ws_published"] * 6
    assert result["mosquitto_ws_delivery_p99_ms"] is not None and result["feeds_p99_vs_mosquitto_ws"] > 0
