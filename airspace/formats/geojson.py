"""The internal GeoJSON zone file (see airspace.zones for its properties): import and export."""
from __future__ import annotations

from typing import Any

from ..vertical import VerticalModel
from ..zones import ZoneSet

FMT = "geojson"


def detect(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("type") == "FeatureCollection"


def parse(obj: Any, vertical: VerticalModel = VerticalModel()) -> ZoneSet:
    return ZoneSet.from_geojson(obj, vertical)


def from_zoneset(zs: ZoneSet) -> dict:
    return zs.to_geojson()
