"""The incident report of the bundled incidents: every evaluated event, every fix of the track, the zones
involved and the sensor values that mattered are in it, and it is self-contained (no external URL, no script,
nothing to fetch); from the CLI (`skylane report`) and over HTTP for engineers."""
from __future__ import annotations

import html
import json
import re
import shutil

import httpx
import orjson
import pytest

from replay.evaluate import load_zones, read_events
from replay.report import build_report
from replay.sources import FileSource
from skylane.cli import main as skylane_main
from skylane.settings import REPO_ROOT

from .api_support import make_keys
from .helpers import ApiServer

INCIDENTS = REPO_ROOT / "replay" / "incidents"
MANIFEST = json.loads((INCIDENTS / "incidents.json").read_text())["incidents"]
FETCHING = re.compile(r"https?://|<script|<link|<img|<iframe|<object|<embed|@import|url\(|srcset|xlink:href|src=",
                      re.IGNORECASE)


def fixes_of(recording) -> list[dict]:
    """The recording's fixes, read here without Skylane's parsers."""
    out = []
    for rec in FileSource(recording).records():
        if rec.topic.endswith("/telemetry"):
            doc = orjson.loads(rec.payload)
            out += doc if isinstance(doc, list) else [doc]
    return out


@pytest.mark.parametrize("inc", MANIFEST, ids=[i["name"] for i in MANIFEST])
def test_the_report_holds_every_event_every_fix_and_the_zones_and_fetches_nothing(inc):
    page = build_report(FileSource(INCIDENTS / inc["recording"]), load_zones(INCIDENTS / inc["zones"]))
    expected = read_events(INCIDENTS / inc["expected"])
    assert len(expected) == inc["events"]
    rows = re.findall(r'<tr class="(?:alert|end|info)" id="ev\d+" data-event-id="([0-9a-f-]{36})"', page)
    assert rows == [e["id"] for e in expected]  # every evaluated event, in the timeline's order
    for e in expected:
        assert f"<b>{e['kind']}</b>" in page
    fixes = fixes_of(INCIDENTS / inc["recording"])
    assert fixes
    for f in fixes:
        assert f"<td>{f['lon']:.6f}</td><td>{f['lat']:.6f}</td>" in page  # the track's points, each one
    zones = load_zones(INCIDENTS / inc["zones"])
    for zone_id in {e["zone_id"] for e in expected if e["zone_id"]}:
        assert '<path class="zone involved"' in page and f">{html.escape(zone_id)}</text>" in page
        assert f"<td>{html.escape(zone_id)}</td><td>{html.escape(zones.get(zone_id).name)}</td>" in page
    assert not FETCHING.search(page), FETCHING.search(page)
    assert "@media print" in page and "@page" in page and page.count("<svg") >= 2


def test_the_sensor_values_that_mattered_are_shown_with_the_rules_limits():
    inc = INCIDENTS / "sensor_suspension.slrec.gz"
    page = build_report(FileSource(inc), load_zones(INCIDENTS / "airspace.geojson"))
    assert "<h3>W-C1 · wind_gust</h3>" in page and "rule C1-wind: raised &gt; 12, cleared &lt; 10" in page
    gusts = [v["v"] for rec in FileSource(inc).records() if rec.topic.endswith("/reading")
             for v in orjson.loads(rec.payload) if isinstance(v, dict) and "v" in v]
    assert gusts and all(f"<td>{g:g} m/s</td>" in page for g in gusts)
    assert 'class="limit"' in page and 'class="clear"' in page


def test_skylane_report_writes_the_file_and_filters_one_drone(tmp_path, capsys):
    out = tmp_path / "link_loss.html"
    rc = skylane_main(["report", str(INCIDENTS / "link_loss.slrec.gz"), "--zones", str(INCIDENTS / "airspace.geojson"),
                       "-o", str(out), "--uav", "INC-LL2"])
    assert rc == 0
    page = out.read_text()
    expected = [e for e in read_events(INCIDENTS / "link_loss.events.jsonl") if e["uav_id"] == "INC-LL2"]
    assert re.findall(r'data-event-id="([0-9a-f-]{36})"', page) == [e["id"] for e in expected]
    assert "INC-LL1" not in page and not FETCHING.search(page)
    assert skylane_main(["report", str(tmp_path / "missing.slrec.gz"), "-o", str(out)]) == 2


@pytest.mark.integration
def test_engineers_get_a_recordings_report_over_http(system, tmp_path):
    shutil.copy(INCIDENTS / "nofly_between_fixes.slrec.gz", tmp_path / "nofly.slrec.gz")
    (tmp_path / "not-a-recording.slrec.gz").write_bytes(b"garbage")
    server = ApiServer(system.with_(recordings_dir=tmp_path))
    try:
        keys = make_keys(system.database_url)

        def get(path: str, key: str | None):
            return httpx.get(server.url + path, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=60)
        r = get("/v1/recordings/nofly.slrec.gz/report", keys.engineer)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert 'filename="nofly.report.html"' in r.headers["content-disposition"]
        expected = read_events(INCIDENTS / "nofly_between_fixes.events.jsonl")  # the stored zones are the same
        assert re.findall(r'data-event-id="([0-9a-f-]{36})"', r.text) == [e["id"] for e in expected]
        assert not FETCHING.search(r.text)
        assert get("/v1/recordings/nofly.slrec.gz/report?uav=INC-NF1", keys.admin).status_code == 200
        for role in ("viewer", "operator"):
            assert get("/v1/recordings/nofly.slrec.gz/report", keys.for_role(role)).status_code == 403
        assert get("/v1/recordings/nofly.slrec.gz/report", None).status_code == 401
        assert get("/v1/recordings/absent.slrec.gz/report", keys.engineer).status_code == 404
        assert get("/v1/recordings/not-a-recording.slrec.gz/report", keys.engineer).status_code == 422
        assert get("/v1/recordings/..%2F..%2Fetc%2Fpasswd/report", keys.engineer).status_code in (400, 404)
        assert get("/v1/recordings/nofly.slrec.gz/report?uav=bad%20id", keys.engineer).status_code == 422
    finally:
        server.close()
