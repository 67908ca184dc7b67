"""The internal GeoJSON zone file (see airspace.zones for its properties): import and export."""
from __future__ import annotations

from typing import Any

from ..vertical import VerticalModel
from ..zones import ZoneFormatError, ZoneSet
from .common import Failer
from .geometry import polygonal

FMT = "geojson"
ID_FIELD = "id"


def detect(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("type") == "FeatureCollection"


def parse(obj: Any, vertical: VerticalModel = VerticalModel()) -> ZoneSet:
    return ZoneSet.from_geojson(obj, vertical)


def split(obj: Any) -> tuple[dict, list]:
    """(the collection's members other than its features, its features)."""
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        raise ZoneFormatError(None, None, "type", "not a GeoJSON FeatureCollection object")
    feats = obj.get("features")
    if not isinstance(feats, list):
        raise ZoneFormatError(None, None, "features", "missing or not a list")
    return {k: v for k, v in obj.items() if k not in ("type", "features")}, feats


def feature_id(f: Any) -> Any:
    props = f.get("properties") if isinstance(f, dict) else None
    return (props.get("id") if isinstance(props, dict) else None) or (f.get("id") if isinstance(f, dict) else None)


def convert(f: Any, taken: set[str], fail: Failer) -> list[tuple[Any, Any]]:
    """The feature itself (airspace.zones checks it) and its outline, repaired when it had to be (None when
    it is no Polygon or MultiPolygon: airspace.zones says what is wrong)."""
    geo = f.get("geometry") if isinstance(f, dict) else None
    if isinstance(geo, dict) and geo.get("type") in ("Polygon", "MultiPolygon"):
        return [(f, polygonal(geo, "geometry", fail))]
    return [(f, None)]


def from_zoneset(zs: ZoneSet) -> dict:
    return zs.to_geojson()
