"""Through the real broker and ingester: 1x, 10x and max give the stored events evaluation predicts."""
from __future__ import annotations

import pytest

from replay.evaluate import evaluate, load_zones
from replay.player import replay
from replay.sources import FileSource
from skylane.settings import DEFAULT_ZONE_FILE

from .helpers import query, start_ingester, wait_until
from .replay_support import small_trace

pytestmark = pytest.mark.integration
EVENTS = "SELECT id::text, kind, uav_id, zone_id FROM airspace_events ORDER BY ts, uav_id, kind, zone_id, id"


def test_rates_give_identical_stored_events(new_system, zones_geojson, tmp_path):
    trace = small_trace(tmp_path / "t.slrec.gz", zones_geojson, drones=10, sensors=2, seconds=20, hz=2.0, seed=11)
    predicted = evaluate(FileSource(trace), load_zones(DEFAULT_ZONE_FILE))
    assert predicted.events
    n_tel = predicted.counts["telemetry"]
    stored = {}
    for rate in (10.0, "max", 1.0):  # 1x last: it is the slow one (20 s of traffic)
        system = new_system()
        ing, runner = start_ingester(system)
        try:
            published = replay(trace, system.mqtt_url, rate=rate, root_to=system.mqtt_root)
            assert published == predicted.counts["messages"]
            wait_until(lambda s=system: query(s.database_url, "SELECT count(*) FROM uav_telemetry")[0][0] == n_tel,
                       60, f"rate {rate}: telemetry not all stored")
        finally:
            runner.close()
        stored[rate] = query(system.database_url, EVENTS)
    want = sorted((e["id"], e["kind"], e["uav_id"], e["zone_id"]) for e in predicted.events)
    for rate, rows in stored.items():
        assert sorted(rows) == want, f"rate {rate}: stored events differ from the evaluation"
    assert stored[1.0] == stored[10.0] == stored["max"]
