"""The bundled incidents as regression tests: each replays to exactly its expected events (--expect),
whatever the batch size, and each still contains the event that makes it an incident."""
from __future__ import annotations

import json
import sys

import pytest

from replay.evaluate import diff_events, evaluate, load_zones, read_events
from replay.sources import FileSource
from skylane.cli import main as skylane_main
from skylane.settings import REPO_ROOT

INCIDENTS = REPO_ROOT / "replay" / "incidents"
MANIFEST = json.loads((INCIDENTS / "incidents.json").read_text())["incidents"]
sys.path.insert(0, str(REPO_ROOT / "tools"))
from make_incidents import CATALOGUE, key_event  # noqa: E402


def test_every_incident_of_the_issue_is_bundled():
    assert {i["name"] for i in MANIFEST} == {c.name for c in CATALOGUE} == {
        "corridor_incursion", "link_loss", "nofly_between_fixes", "sensor_suspension"}
    for inc in MANIFEST:
        assert (INCIDENTS / inc["recording"]).stat().st_size < 64 * 1024  # small files


@pytest.mark.parametrize("inc", MANIFEST, ids=[i["name"] for i in MANIFEST])
def test_incident_passes_its_expect_check(inc, capsys):
    rc = skylane_main(["replay", str(INCIDENTS / inc["recording"]), "--evaluate", "--no-progress",
                       "--zones", str(INCIDENTS / inc["zones"]), "--expect", str(INCIDENTS / inc["expected"])])
    out = capsys.readouterr().out
    assert rc == 0, f"{inc['name']}: the replay no longer decides what it did:\n{out}"


@pytest.mark.parametrize("inc", MANIFEST, ids=[i["name"] for i in MANIFEST])
def test_incident_has_its_key_event(inc):
    expected = read_events(INCIDENTS / inc["expected"])
    ev = key_event(expected, inc["key"])
    assert ev is not None, f"{inc['name']}: expected file lacks its key event {inc['key']}"
    if inc["name"] == "nofly_between_fixes":  # caught although no fix was inside the zone
        assert ev["detail"]["between_fixes"] is True and ev["detail"]["from_fix"] < ev["ts"] < ev["detail"]["to_fix"]
    if inc["name"] == "link_loss":  # stamped last fix + timeout, then restored
        assert any(e["kind"] == "link_restored" and e["uav_id"] == "INC-LL1" for e in expected)
    if inc["name"] == "sensor_suspension":  # suspended by the gust, re-activated when it dropped
        assert ev["detail"]["value"] > 12 and any(e["kind"] == "zone_activated" for e in expected)


@pytest.mark.parametrize("inc", MANIFEST, ids=[i["name"] for i in MANIFEST])
def test_incident_events_do_not_depend_on_the_batch_size(inc):
    zones = load_zones(INCIDENTS / inc["zones"])
    expected = read_events(INCIDENTS / inc["expected"])
    for batch in (1, 7, 64, 100_000):
        got = evaluate(FileSource(INCIDENTS / inc["recording"]), zones, batch_size=batch).events
        assert not diff_events(expected, got), f"batch size {batch}:\n" + "\n".join(diff_events(expected, got))


def test_generator_is_deterministic_and_matches_the_bundle():
    from make_incidents import main as make_main
    assert make_main(["--check"]) == 0
