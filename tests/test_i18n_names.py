"""Zone and device names in both languages: `name_zh` beside `name` in the bundled zone file and in registry
entries, and through the zone formats that carry a language (ED-318 names as [{text, lang}]; ED-269 names have
no language, the Skylane extension block carries name_zh through an export and back)."""
from __future__ import annotations

import json
import re

import pytest

from airspace.formats import ed269, ed318, import_zones
from airspace.zones import ZoneSet
from devices.registry import parse_registry
from skylane.settings import REPO_ROOT

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def bundled() -> ZoneSet:
    return ZoneSet.from_geojson(json.loads((REPO_ROOT / "airspace" / "data" / "pujiang_wujing.geojson").read_text()))


def test_every_bundled_zone_has_a_chinese_name(bundled):
    assert all(CJK.search(z.properties.get("name_zh", "")) for z in bundled), [z.id for z in bundled]


def test_ed318_names_carry_the_chinese_name_both_ways(bundled):
    doc = json.loads(json.dumps(ed318.from_zoneset(bundled)))
    assert {"text": "吴泾周末集市（周六、周日 06:00-14:00）", "lang": "zh-CN"} in next(
        f for f in doc["features"] if f["properties"]["identifier"] == "R-WJ-MKT")["properties"]["name"]
    assert import_zones(doc, "ed318").zones.get("R-WJ-MKT").properties["name_zh"].startswith("吴泾周末集市")
    published = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {
        "identifier": "BR-1", "country": "CHN", "type": "PROHIBITED", "variant": "COMMON",
        "name": [{"text": "Bridge", "lang": "en-GB"}, {"text": "大桥", "lang": "zh-Hans-CN"}]},
        "geometry": {"type": "Polygon", "coordinates": [[[121.48, 31.04], [121.49, 31.04], [121.49, 31.05],
                                                          [121.48, 31.04]]],
                     "layer": {"upper": 120, "upperReference": "AGL", "lower": 0, "lowerReference": "AGL",
                               "uom": "m"}}}]}
    zone = import_zones(published, "ed318").zones.get("BR-1")
    assert (zone.name, zone.properties["name_zh"]) == ("Bridge", "大桥")


def test_ed269_keeps_the_chinese_name_through_its_extension(bundled):
    doc = json.loads(json.dumps(ed269.from_zoneset(bundled)))
    assert import_zones(doc, "ed269").zones.get("C1").properties["name_zh"] == "1 号航路 吴泾北—浦江北"


def test_registry_entries_carry_a_chinese_name():
    rec = parse_registry([{"device_id": "W-X", "kind": "sensor", "name": "wind mast X", "name_zh": "风速桅杆 X"}])[0]
    assert rec.name_zh == "风速桅杆 X" and rec.as_row()["properties"] == {"name_zh": "风速桅杆 X"}
    with pytest.raises(ValueError, match="name_zh"):
        parse_registry([{"device_id": "W-X", "kind": "sensor", "name_zh": 5}])
