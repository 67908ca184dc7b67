"""Live-style batching: the pipeline fed the bundled incidents in arbitrary batches (cut anywhere, no
replay-side cutting) decides exactly the expected events, because it applies controls and rule-watched
readings in receive order itself."""
from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import pytest

from ingest.pipeline import Pipeline, RawMessage
from replay.evaluate import canonical, diff_events, load_zones, read_events
from replay.sources import FileSource
from skylane.settings import REPO_ROOT

INCIDENTS = REPO_ROOT / "replay" / "incidents"
MANIFEST = json.loads((INCIDENTS / "incidents.json").read_text())["incidents"]


def live_events(inc: dict, cuts: list[int]) -> list[dict]:
    """The recording through one Pipeline in batches ending at `cuts` (like a consumer's batches)."""
    source = FileSource(INCIDENTS / inc["recording"])
    msgs = [RawMessage(r.topic, r.payload, datetime.fromtimestamp(r.t, timezone.utc), qos=r.qos)
            for r in source.records()]
    pipe = Pipeline(load_zones(INCIDENTS / inc["zones"]), source.root)
    events, start = [], 0
    for end in [*sorted(cuts), len(msgs)]:
        if end > start:
            events += [e.to_dict() for e in pipe.process(msgs[start:end]).events]
            start = end
    return canonical(events)


@pytest.mark.parametrize("inc", MANIFEST, ids=[i["name"] for i in MANIFEST])
def test_arbitrary_batches_decide_the_expected_events(inc):
    expected = read_events(INCIDENTS / inc["expected"])
    n = sum(1 for _ in FileSource(INCIDENTS / inc["recording"]).records())
    rng = random.Random(inc["name"])
    layouts = [[], list(range(1, n)), list(range(2, n, 3))]  # one batch, one message each, threes
    layouts += [rng.sample(range(1, n), k=min(n - 1, k)) for k in (1, 2, 5, 17) for _ in range(3)]
    for cuts in layouts:
        got = live_events(inc, cuts)
        assert not diff_events(expected, got), f"cuts {sorted(cuts)[:20]}:\n" + "\n".join(diff_events(expected, got))


def test_a_reading_received_after_later_fixes_lands_the_same_in_any_batches():
    """The wind gust of the sensor-suspension incident arrives behind fixes stamped after it (a slow
    sensor link): each layout of batches must still decide the same events as one batch."""
    inc = next(i for i in MANIFEST if i["name"] == "sensor_suspension")
    source = FileSource(INCIDENTS / inc["recording"])
    records = list(source.records())
    k = next(i for i, r in enumerate(records) if r.topic.endswith("/reading") and b"wind" in r.payload
             and i + 8 < len(records) and any(x.topic.endswith("/telemetry") for x in records[i + 1:i + 8]))
    moved = records[:k] + records[k + 1:k + 8] + [records[k]] + records[k + 8:]
    msgs = [RawMessage(r.topic, r.payload, datetime.fromtimestamp(r.t, timezone.utc), qos=r.qos) for r in moved]

    def run(cuts: list[int]) -> list[dict]:
        pipe, events, start = Pipeline(load_zones(INCIDENTS / inc["zones"]), source.root), [], 0
        for end in [*sorted(cuts), len(msgs)]:
            if end > start:
                events += [e.to_dict() for e in pipe.process(msgs[start:end]).events]
                start = end
        return canonical(events)

    whole = run([])
    assert any(e["kind"] == "zone_suspended" for e in whole)
    rng = random.Random(5)
    for cuts in [[k + 7], [k + 3], [k + 8], list(range(1, len(msgs)))] + [rng.sample(range(k - 5, k + 12), 3)
                                                                          for _ in range(10)]:
        assert not diff_events(whole, run(cuts)), f"cuts {cuts}"
