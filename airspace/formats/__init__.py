"""Zone file formats: EUROCAE ED-269 (JSON), ED-318 (GeoJSON with layers), internal GeoJSON.

`parse_zones(obj, fmt=None)` reads an already-loaded JSON document (no I/O here) into a ZoneSet,
detecting the format when fmt is None; invalid documents raise airspace.zones.ZoneFormatError
naming the feature (index and id) and the field. `export_zones(zs, fmt)` writes one back; zones
imported from a format keep their published form and export to it unchanged (lossless round trip).
"""
from __future__ import annotations

from typing import Any

from ..vertical import VerticalModel
from ..zones import ZoneFormatError, ZoneSet
from . import ed269, ed318, geojson

FORMATS = ("ed269", "ed318", "geojson")


def detect_format(obj: Any) -> str:
    """ed269, ed318 or geojson, from the document's shape (ZoneFormatError when none fits)."""
    if ed269.detect(obj):
        return "ed269"
    if ed318.detect(obj):
        return "ed318"
    if geojson.detect(obj):
        return "geojson"
    raise ZoneFormatError(None, None, "type", "not an ED-269 zone list, an ED-318 or a GeoJSON FeatureCollection")


def to_internal(obj: Any, fmt: str | None = None) -> dict:
    """The document as an internal GeoJSON FeatureCollection (validated by parse_zones)."""
    fmt = fmt or detect_format(obj)
    if fmt == "ed269":
        return ed269.to_internal(obj)
    if fmt == "ed318":
        return ed318.to_internal(obj)
    if fmt == "geojson":
        return obj
    raise ValueError(f"unknown zone format {fmt!r}; expected one of {FORMATS}")


def parse_zones(obj: Any, fmt: str | None = None, vertical: VerticalModel = VerticalModel()) -> ZoneSet:
    """A loaded zone document in any supported format as a validated ZoneSet."""
    return ZoneSet.from_geojson(to_internal(obj, fmt), vertical)


def export_zones(zs: ZoneSet, fmt: str) -> Any:
    """The zones as a document in `fmt` (a dict; a list for an ED-269 set imported as a bare list)."""
    if fmt == "ed269":
        return ed269.from_zoneset(zs)
    if fmt == "ed318":
        return ed318.from_zoneset(zs)
    if fmt == "geojson":
        return geojson.from_zoneset(zs)
    raise ValueError(f"unknown zone format {fmt!r}; expected one of {FORMATS}")


__all__ = ["FORMATS", "ZoneFormatError", "detect_format", "export_zones", "parse_zones", "to_internal"]
