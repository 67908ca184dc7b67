"""The message catalogues: the server's gettext catalogue (i18n/locale, Babel) and the dashboard's JSON one
(api/static/i18n) have every key in both languages with the same placeholders, every key the code uses exists,
and the domain texts (clearance reasons, suggestions, event descriptions) render fully in Chinese."""
from __future__ import annotations

import ast
import json
import re
import string
from pathlib import Path

import pytest

import i18n
from airspace.events import EVENT_KINDS
from i18n import Msg, negotiate, t
from i18n.catalogue import _translations, compile_mo
from i18n.render import event_description, reason_message, suggestion_message
from ingest.sensor_watch import SENSOR_EVENT_KINDS

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "api" / "static"
CJK = re.compile(r"[\u4e00-\u9fff]")


def fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_every_key_in_both_languages_with_the_same_placeholders():
    en, zh = i18n.texts("en"), i18n.texts("zh-CN")
    assert set(en) == set(zh), (set(en) ^ set(zh))
    for key in en:
        assert en[key] and zh[key], key
        assert fields(en[key]) == fields(zh[key]), key


def test_babel_compiles_the_catalogue_as_loaded():
    """What `t` reads is Babel's compilation of the .po (no committed .mo to drift from it)."""
    import gettext
    import io
    for lang in i18n.LANGS:
        compiled = gettext.GNUTranslations(io.BytesIO(compile_mo(lang)))
        for key, text in i18n.texts(lang).items():
            assert compiled.gettext(key) == _translations(lang).gettext(key) == text


def _literal_keys(paths) -> set[str]:
    """First arguments of Msg(...), t(...) and _t(...) that are string literals."""
    out = set()
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Msg", "t") \
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.add(node.args[0].value)
    return out


def test_every_key_the_server_uses_is_in_the_catalogue():
    paths = [*(ROOT / "api").glob("*.py"), *(ROOT / "i18n").glob("*.py"), ROOT / "skylane" / "commands" / "clearance.py"]
    used = {k for k in _literal_keys(p for p in paths if p.exists()) if "." in k}
    assert used, "no catalogue keys found in the code"
    missing = sorted(k for k in used if not i18n.has(k))
    assert not missing, missing


def test_every_route_file_refusal_has_a_text():
    codes = set()
    for path in (ROOT / "airspace" / "route_files").glob("*.py"):
        codes |= set(re.findall(r'RouteFileError\("([a-z_]+)"', path.read_text()))
    assert len(codes) > 20
    assert sorted(c for c in codes if not i18n.has(f"route_file.{c}")) == []


def test_every_event_kind_has_a_label_and_a_chinese_description():
    for kind in (*EVENT_KINDS, *SENSOR_EVENT_KINDS):
        assert i18n.has(f"event.kind.{kind}"), kind
        text = event_description({"kind": kind, "uav_id": "T1", "zone_id": "R-BR-MP",
                                  "detail": {"zone_name": "Huangpu bridge"}}, "zh-CN", {"R-BR-MP": "黄浦江大桥"})
        assert CJK.search(text) and "{" not in text, (kind, text)


def test_negotiation():
    assert negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert negotiate("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert negotiate("fr-FR, zh-TW;q=0.5") == "zh-CN"
    assert negotiate("de, *;q=0.1") == "en"
    assert negotiate("zh;q=0") == "en" and negotiate(None) == "en" and negotiate("garbage;;q=x") == "en"
    assert i18n.normalize("zh_CN") == i18n.normalize("zh-Hans-CN") == "zh-CN"


def test_msg_is_english_and_says_itself_in_chinese():
    m = Msg("api.clearance.not_yours", uav_id="T1")
    assert m == "'T1' is not one of your drones" and isinstance(m, str)
    assert m.render("zh-CN") == "'T1' 不是您的无人机"
    nested = Msg("api.clearance.route_file", detail=Msg("route_file.polygon", file="a.kml"))
    assert CJK.search(nested.render("zh-CN")) and "Polygon" in nested.render("zh-CN")
    assert "area (Polygon)" in str(nested)
    assert t("no.such.key", "zh-CN") == "no.such.key"
    assert t("api.key_invalid", "zh-CN", unused=1) == "API 密钥无效或已吊销"


REASONS = [
    {"code": "restricted_zone", "zone_id": "R-BR-MP", "zone_name": "Huangpu river bridge exclusion (south)",
     "segment": 1, "entry": {"lon": 121.4885, "lat": 31.044, "alt_m": 50.0, "t": "2026-11-27T08:00:00.000Z"},
     "exit": {"lon": 121.49, "lat": 31.045, "alt_m": 50.0, "t": "2026-11-27T08:00:30.000Z"},
     "altitude": {"route_m": [50, 50], "route_alt_ref": "AGL", "zone_m": [0, 150], "zone_alt_ref": "AGL"}},
    {"code": "above_ceiling", "zone_id": None, "zone_name": None, "segment": 0, "segments": [0, 2],
     "rule": "true_height_ceiling", "upper_m": 120, "entry": {"lon": 121.5, "lat": 31.05, "alt_m": 130, "t": None},
     "exit": {"lon": 121.51, "lat": 31.05, "alt_m": 130, "t": None}, "altitude": {"route_m": [130, 130]}},
    {"code": "zone_suspended", "zone_id": "C2", "zone_name": "Corridor 2", "segment": 0,
     "state": {"reason": "wind", "sensor_id": "W-C2", "metric": "wind_gust", "value": 14.2,
               "reading_ts": "2026-11-27T08:00:00Z"},
     "entry": {"lon": 121.5, "lat": 31.05, "alt_m": 80, "t": "2026-11-27T08:00:00Z"},
     "exit": {"lon": 121.51, "lat": 31.05, "alt_m": 80, "t": "2026-11-27T08:01:00Z"}, "altitude": {}},
    {"code": "separation_conflict", "segment": 3, "entry": {"lon": 121.5, "lat": 31.05, "alt_m": 80, "t": None},
     "conflict": {"clearance_id": None, "uav_id": None, "horizontal_m": 20.5, "vertical_m": 3, "time_s": 4}},
    {"code": "corridor_capacity", "zone_id": "C1", "zone_name": "Corridor 1", "capacity": {"limit": 2, "approved": 2},
     "entry": {"t": "2026-11-27T08:00:00Z"}, "exit": {"t": "2026-11-27T08:05:00Z"}},
    {"code": "outside_area", "segment": 4, "entry": {"lon": 121.6, "lat": 31.05, "alt_m": 80, "t": None},
     "exit": {"lon": 121.61, "lat": 31.05, "alt_m": 80, "t": None}},
]


@pytest.mark.parametrize("reason", REASONS, ids=[r["code"] for r in REASONS])
def test_reasons_render_in_both_languages(reason):
    zh = reason_message(reason, "zh-CN", {"R-BR-MP": "黄浦江大桥南侧禁飞区", "C2": "2 号航路", "C1": "1 号航路"})
    en = reason_message(reason, "en")
    assert CJK.search(zh) and "{" not in zh and "{" not in en, (zh, en)
    assert "segment" not in zh and ("segment" in en or "corridor" in en)
    if reason.get("entry", {}).get("t") == "2026-11-27T08:00:00.000Z":  # times in Asia/Shanghai
        assert "2026-11-27 16:00:00" in zh and "北京时间" in zh and "(UTC+8)" in en


def test_suggestions_render_in_both_languages():
    alt = {"kind": "altitude", "alt_m": 160, "alt_ref": "AGL", "band": [150, 170]}
    dep = {"kind": "departure", "departure": "2026-11-27T06:00:01.000Z", "delay_s": 3600}
    assert suggestion_message(alt, "zh-CN") == "在 160 米（真高）飞行（无冲突高度范围 150-170 米）"
    assert suggestion_message(alt, "en") == "fly at 160 m AGL (clear band 150-170 m)"
    assert "2026-11-27 14:00:01" in suggestion_message(dep, "zh-CN")


# ------------------------------------------------------------------ the dashboard's catalogue
def page_catalogues() -> dict[str, dict[str, str]]:
    return {lang: json.loads((STATIC / "i18n" / f"{lang}.json").read_text()) for lang in ("en", "zh-CN")}


def test_page_catalogue_has_every_key_in_both_languages():
    cats = page_catalogues()
    assert set(cats["en"]) == set(cats["zh-CN"]), set(cats["en"]) ^ set(cats["zh-CN"])
    ph = re.compile(r"\{(\w+)\}")
    for key, text in cats["en"].items():
        assert text and cats["zh-CN"][key], key
        assert set(ph.findall(text)) == set(ph.findall(cats["zh-CN"][key])), key


def test_every_key_the_page_uses_is_in_its_catalogue():
    en = page_catalogues()["en"]
    used = set()
    for path in STATIC.glob("*.html"):
        used |= set(re.findall(r'data-i18n(?:-title|-placeholder|-aria)?="([^"]+)"', path.read_text()))
    for path in STATIC.glob("*.js"):
        used |= set(re.findall(r"\b(?:I18N\.t|T)\('([a-z0-9_.]+)'", path.read_text()))
    assert len(used) > 50
    prefixes = {k for k in used if k.endswith((".", "_"))}  # 'kind.' + kind and the like
    assert sorted(k for k in used - prefixes if k not in en) == []
    assert sorted(p for p in prefixes if not any(k.startswith(p) for k in en)) == []
