"""Route files behind POST /v1/clearances (content type per format, query parameters for what the file lacks)
and `skylane clearance request`, against a real API and database: a DJI KMZ across a restricted zone is denied
with the reason and a departure suggestion that, resubmitted, is approved; bad files are 4xx with the reason
in the caller's language."""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import psycopg
import pytest

from skylane.cli import main as skylane_main

from .api_support import Client, keys  # noqa: F401  (fixture)
from .route_support import market_kmz, market_open

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent / "data" / "routes"
KMZ = "application/vnd.google-earth.kmz"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def drone(system):
    with psycopg.connect(system.database_url) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, owner) VALUES ('OP-1', 'uav', 'op-alpha')")
    return "OP-1"


def upload(op: Client, data: bytes, ctype: str, lang: str = "en", **params):
    return op.post("/v1/clearances", content=data, params=params,
                   headers={"Content-Type": ctype, "Accept-Language": lang})


def test_kmz_across_a_restricted_zone_is_denied_then_the_suggestion_is_approved(api, keys, drone):  # noqa: F811
    op = Client(api.url, keys.operator)
    dep = market_open()
    r = upload(op, market_kmz(), KMZ, uav_id=drone, departure=dep.isoformat())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "denied" and body["source"]["format"] == "wpml"
    assert body["source"]["alt_ref"] == "WGS84" and body["source"]["alt_ref_from"] == "file"
    assert body["source"]["timed_by"] == "file speeds" and body["source"]["speeds"] == [10.0]
    reason = body["reasons"][0]
    assert reason["code"] == "restricted_zone" and reason["zone_id"] == "R-WJ-MKT"
    assert reason["entry"]["lon"] < reason["exit"]["lon"] and "(UTC+8)" in reason["message"]
    assert body["route"][0]["alt_amsl"] == pytest.approx(50.0)  # 60 m ellipsoid - 10 m geoid
    dep_s = [s for s in body["suggestions"] if s["kind"] == "departure"]
    assert dep_s and dep_s[0]["departure"] > reason["entry"]["t"] and " h " in dep_s[0]["message"], dep_s
    again = op.post("/v1/clearances", json={"uav_id": drone, "alt_ref": "WGS84", "waypoints": dep_s[0]["waypoints"]})
    assert again.status_code == 200 and again.json()["decision"] == "approved", again.text


def test_the_answer_in_chinese(api, keys, drone):  # noqa: F811
    op = Client(api.url, keys.operator)
    body = upload(op, market_kmz(flat=True), KMZ, "zh-CN,zh;q=0.9", uav_id=drone,
                  departure=market_open().isoformat()).json()
    assert body["decision"] == "denied"
    msg = body["reasons"][0]["message"]
    assert "禁飞区" in msg and "北京时间" in msg and "集市" in msg, msg  # the zone's name_zh
    assert all(CJK.search(s["message"]) for s in body["suggestions"])


def test_bad_route_files_are_refused_with_the_reason_in_the_callers_language(api, keys, drone):  # noqa: F811
    op = Client(api.url, keys.operator)
    doc = (DATA / "dji_wpml_doc_example_waylines.wpml").read_bytes()
    r = upload(op, doc, "application/vnd.google-earth.kml+xml", "zh-CN", uav_id=drone)
    assert r.status_code == 422 and CJK.search(r.json()["detail"]) and "longitude,latitude" in r.json()["detail"]
    r = upload(op, doc, "application/vnd.google-earth.kml+xml", uav_id=drone)
    assert r.json()["detail"] == ("waylines.wpml: waypoint 0: coordinates 'longitude,latitude' are not "
                                  "longitude,latitude numbers").replace("waylines.wpml", "request body")
    waygen = io.BytesIO()
    with zipfile.ZipFile(waygen, "w") as z:
        for n in ("template.kml", "waylines.wpml"):
            z.writestr(f"wpmz/{n}", (DATA / "waygen_m3m_grid_relative" / "wpmz" / n).read_bytes())
    r = upload(op, waygen.getvalue(), KMZ, uav_id=drone)
    assert r.status_code == 422 and "take-off point" in r.json()["detail"]
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("wpmz/waylines.wpml", b"<kml>" + b" " * (9 << 20) + b"</kml>")
    r = upload(op, bomb.getvalue(), KMZ, "zh-CN", uav_id=drone)
    assert r.status_code == 422 and "解压后超过" in r.json()["detail"]
    xxe = b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]><kml>&x;</kml>'
    r = upload(op, xxe, "application/vnd.google-earth.kml+xml", uav_id=drone)
    assert r.status_code == 422 and "document type declaration" in r.json()["detail"]
    r = upload(op, (DATA / "qgroundcontrol" / "PolygonGood.kml").read_bytes(), "application/vnd.google-earth.kml+xml",
               "zh-CN", uav_id=drone)
    assert r.status_code == 422 and "区域" in r.json()["detail"]
    r = upload(op, b"garbage", "image/png", "zh-CN", uav_id=drone)
    assert r.status_code == 415 and "不支持的内容类型" in r.json()["detail"]
    r = upload(op, b"\x00\x01", "application/octet-stream", uav_id=drone)
    assert r.status_code == 422 and "not a route file" in r.json()["detail"]


def test_kml_and_geojson_with_query_parameters(api, keys, drone):  # noqa: F811
    op = Client(api.url, keys.operator)
    dep = market_open().replace(hour=15).isoformat()  # the market zone is not in force
    kml = (b'<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><LineString><coordinates>'
           b"121.4395,31.0430 121.4540,31.0433</coordinates></LineString></Placemark></kml>")
    r = upload(op, kml, "application/vnd.google-earth.kml+xml", uav_id=drone, departure=dep)
    assert r.status_code == 422 and "alt_m" in r.json()["detail"]  # clampToGround: no heights
    r = upload(op, kml, "application/vnd.google-earth.kml+xml", uav_id=drone, departure=dep, alt_m=50, speed_mps=8)
    body = r.json()
    assert body["decision"] == "approved", body
    assert body["source"]["alt_ref"] == "AGL" and body["source"]["timed_by"] == "speed_mps"
    line = {"type": "Feature", "properties": {"alt_ref": "AGL"},
            "geometry": {"type": "LineString", "coordinates": [[121.4395, 31.043, 50], [121.454, 31.0433, 50]]}}
    r = upload(op, json.dumps(line).encode(), "application/geo+json", uav_id=drone, departure=dep, alt_ref="AMSL")
    assert r.status_code == 422 and "ambiguous" in r.json()["detail"]
    r = upload(op, json.dumps(line).encode(), "application/geo+json", uav_id=drone,
               departure=market_open().replace(hour=16).isoformat())
    assert r.json()["decision"] == "approved"


def test_cli_submits_through_the_api(api, keys, drone, tmp_path, capsys, monkeypatch):  # noqa: F811
    path = tmp_path / "market.kmz"
    path.write_bytes(market_kmz())
    dep = market_open().strftime("%Y-%m-%dT%H:%M")  # no offset: Asia/Shanghai
    monkeypatch.setenv("SKYLANE_API_KEY", keys.operator)
    code = skylane_main(["clearance", "request", str(path), "--uav", drone, "--departure", dep,
                         "--api-url", api.url, "--lang", "zh-CN"])
    out = capsys.readouterr().out
    assert code == 1 and "未批准" in out and "R-WJ-MKT" in out and "建议" in out, out
    code = skylane_main(["clearance", "request", str(path), "--uav", drone, "--departure", dep,
                         "--api-url", api.url, "--json"])
    assert code == 1 and json.loads(capsys.readouterr().out)["source"]["format"] == "wpml"
    monkeypatch.delenv("SKYLANE_API_KEY")
    assert skylane_main(["clearance", "request", str(path), "--api-url", api.url]) == 2


def test_a_json_body_that_is_not_utf8_is_a_422_not_a_server_error(api, keys, drone):  # noqa: F811
    """Schemathesis sent bytes that are not UTF-8 as application/json: the validation error's echo of the body
    could not be encoded and the answer was a 500."""
    op = Client(api.url, keys.operator)
    r = upload(op, b"\xff\x1d\xc4\x85", "application/json", alt_ref="AMSL", ua_class="large")
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
