"""The incident report of the bundled incidents: every evaluated event, every fix of the track, the zones
involved and the sensor values that mattered are in it, and it is self-contained (no external URL, no script,
nothing to fetch); from the CLI (`skylane report`) and over HTTP for engineers; in English or Chinese (the
catalogue's `report.*` texts, `<html lang>` following)."""
from __future__ import annotations

import html
import json
import re
import shutil

import httpx
import orjson
import pytest

import i18n
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
    kinds = re.findall(r'data-event-id="[0-9a-f-]{36}" data-kind="([a-z_]+)"', page)
    assert kinds == [e["kind"] for e in expected]
    for e in expected:
        assert f"<b>{html.escape(i18n.t('event.kind.' + e['kind'], 'en'))}</b><br><small>{e['kind']}</small>" in page
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
    assert "<h3>W-C1 · wind gust</h3>" in page and "rule C1-wind: raised &gt; 12, cleared &lt; 10" in page
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


def _recordings_server(system, folder):
    """An API whose recordings directory holds the no-fly incident as nofly.slrec.gz and a file that is not one."""
    shutil.copy(INCIDENTS / "nofly_between_fixes.slrec.gz", folder / "nofly.slrec.gz")
    (folder / "not-a-recording.slrec.gz").write_bytes(b"garbage")
    return ApiServer(system.with_(recordings_dir=folder))


@pytest.mark.integration
def test_engineers_get_a_recordings_report_over_http(system, tmp_path):
    server = _recordings_server(system, tmp_path)
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
        assert "nofly.slrec.gz" in r.text and str(tmp_path) not in r.text  # named as asked, not where it is kept
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


REPORT_HEADINGS = ("report.h.map", "report.h.profile", "report.h.timeline", "report.h.sensors", "report.h.zones",
                   "report.h.fixes")
CJK = re.compile(r"[\u4e00-\u9fff]")


def page_text(page: str) -> str:
    """What a reader sees: the page without its style, tags and the recording's own data (paths, ids)."""
    body = page.split("</style>", 1)[1]
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def test_the_report_in_chinese_has_chinese_headings_and_no_english_catalogue_text():
    inc = INCIDENTS / "sensor_suspension.slrec.gz"
    zones = load_zones(INCIDENTS / "airspace.geojson")
    page = build_report(FileSource(inc), zones, language="zh-CN")
    en_page = build_report(FileSource(inc), zones)
    assert page.startswith('<!DOCTYPE html><html lang="zh-CN">') and '<html lang="en">' in en_page
    assert "<title>事件报告：" in page and "<h1>事件报告：" in page
    for key in REPORT_HEADINGS:
        assert f"<h2>{i18n.t(key, 'zh-CN')}</h2>" in page and f"<h2>{i18n.t(key, 'en')}</h2>" in en_page
    assert ["地图", "高度剖面", "事件时间线", "相关传感器数据", "涉及的空域", "航迹点"] == \
        [i18n.t(k, "zh-CN") for k in REPORT_HEADINGS]
    text = page_text(page)
    for key, english in i18n.texts("en").items():  # no English text of the page's own catalogue in it (single
        # words aside: the recording's own data says "corridor" in a suspension's reason)
        if key.startswith("report.") and "{" not in english and re.search(r"[A-Za-z]+ [A-Za-z]+", english):
            assert english not in text, (key, english)
    for english in ("Incident report", "Timeline", "Zone entered", "Time (Asia/Shanghai)", "Drone at that moment"):
        assert english not in text
    assert "时间（北京时间）" in text and "空域暂停" in text and "阵风" in text and "规则 C1-wind：&gt; 12 时触发" in page
    # the same events in the same order, whatever the language
    ids = re.compile(r'data-event-id="([0-9a-f-]{36})" data-kind="([a-z_]+)"')
    assert ids.findall(page) == ids.findall(en_page) and ids.findall(page)


def test_zones_are_named_in_chinese_from_their_name_zh():
    from .helpers import ZONE_FILE
    zones = load_zones(ZONE_FILE)  # the bundled airspace: every zone has its name_zh
    page = build_report(FileSource(INCIDENTS / "nofly_between_fixes.slrec.gz"), zones, language="zh")
    assert '<html lang="zh-CN">' in page
    assert "<td>R-BR-MP</td><td>黄浦江大桥禁飞区（南）</td><td>禁飞区</td>" in page
    assert "禁止飞行（事件" in page and "Huangpu river bridge exclusion (south)</td>" not in page


def test_skylane_report_takes_the_language(tmp_path):
    out = tmp_path / "zh.html"
    args = ["report", str(INCIDENTS / "link_loss.slrec.gz"), "--zones", str(INCIDENTS / "airspace.geojson")]
    assert skylane_main([*args, "-o", str(out), "--lang", "zh-CN"]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith('<!DOCTYPE html><html lang="zh-CN">') and "<h2>事件时间线</h2>" in page and "链路中断" in page
    assert skylane_main([*args, "-o", str(out)]) == 0  # English unless asked
    assert '<html lang="en">' in out.read_text() and "<h2>Timeline of events</h2>" in out.read_text()
    with pytest.raises(SystemExit):
        skylane_main([*args, "-o", str(out), "--lang", "fr"])


@pytest.mark.integration
def test_the_reports_language_follows_accept_language_or_lang(system, tmp_path):
    server = _recordings_server(system, tmp_path)
    try:
        key = make_keys(system.database_url).engineer

        def get(path: str, lang: str | None = None):
            headers = {"Authorization": f"Bearer {key}", **({"Accept-Language": lang} if lang else {})}
            return httpx.get(server.url + path, headers=headers, timeout=60)
        zh = get("/v1/recordings/nofly.slrec.gz/report", "zh-CN,zh;q=0.9,en;q=0.5")
        assert zh.status_code == 200 and '<html lang="zh-CN">' in zh.text and "<h2>事件时间线</h2>" in zh.text
        assert zh.headers["content-language"] == "zh-CN"
        assert "黄浦江大桥禁飞区（南）" in zh.text  # the stored zones' name_zh
        en = get("/v1/recordings/nofly.slrec.gz/report?lang=en", "zh-CN")
        assert en.status_code == 200 and '<html lang="en">' in en.text and "<h2>Timeline of events</h2>" in en.text
        assert '<html lang="zh-CN">' in get("/v1/recordings/nofly.slrec.gz/report?lang=zh-CN").text
        assert '<html lang="en">' in get("/v1/recordings/nofly.slrec.gz/report").text
        missing = get("/v1/recordings/absent.slrec.gz/report", "zh-CN")
        assert missing.status_code == 404 and missing.json()["detail"] == "没有录制文件 'absent.slrec.gz'"
        assert get("/v1/recordings/absent.slrec.gz/report").json()["detail"] == "no recording 'absent.slrec.gz'"
        bad = get("/v1/recordings/not-a-recording.slrec.gz/report", "zh-CN")
        assert bad.status_code == 422 and bad.json()["detail"].startswith("'not-a-recording.slrec.gz' 不是可读取的录制文件：")
    finally:
        server.close()
