"""Alerts (alerting/, the alerts API) and incident reports (replay/report*, the report API and CLI) take every
text from the one catalogue: no module keeps its own English dict, every key they name is in both languages,
every key of theirs in the catalogue is used, and each has a real Chinese text."""
from __future__ import annotations

import ast
from pathlib import Path

import i18n
from airspace.zones import RESTRICTIONS, ZONE_KINDS

ROOT = Path(__file__).resolve().parents[1]
FILES = [*sorted((ROOT / "alerting").glob("*.py")), ROOT / "api" / "routes_alerts.py",
         ROOT / "api" / "routes_reports.py", ROOT / "replay" / "report.py", ROOT / "replay" / "report_html.py",
         ROOT / "skylane" / "commands" / "report.py"]
PREFIXES = ("alerting.", "api.alerts.", "api.reports.", "report.")
REPORT_FAMILIES = {"report.zone_kind.": ZONE_KINDS, "report.restriction.": RESTRICTIONS}


def _calls(path: Path, names: tuple[str, ...]) -> set[str]:
    """Literal first arguments of calls to `names` (plain names or attributes, e.g. i18n.t)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in names:
                out.add(node.args[0].value)
    return out


def used_keys() -> set[str]:
    keys = set()
    for path in FILES:
        keys |= {k for k in _calls(path, ("Msg", "t")) if "." in k}
    page = ROOT / "replay" / "report_html.py"  # _t(key, lang) says report.<key>; some keys are listed in tuples
    keys |= {f"report.{k}" for k in _calls(page, ("_t",))}
    keys |= {f"report.{n.value}" for n in ast.walk(ast.parse(page.read_text())) if isinstance(n, ast.Constant)
             and isinstance(n.value, str) and n.value[:3] in ("col", "h.m", "h.p", "h.t", "h.s", "h.z", "h.f")}
    for prefix, values in REPORT_FAMILIES.items():  # said by f"{prefix}{value}" when the catalogue has it
        keys |= {prefix + v for v in values}
    return keys


def test_no_module_keeps_its_own_messages():
    assert not (ROOT / "alerting" / "i18n.py").exists()
    for path in FILES:
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            assert not any(isinstance(t, ast.Name) and t.id == "MESSAGES" for t in targets), path
        assert "alerting.i18n" not in path.read_text() and "catalogue(MESSAGES)" not in path.read_text(), path


def test_every_key_used_is_in_both_languages_and_every_key_of_theirs_is_used():
    used = used_keys()
    en, zh = i18n.texts("en"), i18n.texts("zh-CN")
    assert len(used) > 100
    assert sorted(k for k in used if k not in en or k not in zh) == []
    theirs = {k for k in en if k.startswith(PREFIXES)}
    assert sorted(theirs - used) == []  # no dead text


def test_every_text_has_a_chinese_translation():
    en, zh = i18n.texts("en"), i18n.texts("zh-CN")
    for key in (k for k in en if k.startswith(PREFIXES)):
        assert zh[key] != en[key], key  # "UTC" and the like are said in Chinese words too
