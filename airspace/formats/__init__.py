"""Zone file formats: EUROCAE ED-269 (JSON), ED-318 (GeoJSON with layers), internal GeoJSON.

`import_zones(obj, fmt=None, strict=False)` reads an already-loaded JSON document (no I/O here) feature by
feature, detecting the format when fmt is None: features it can repair unambiguously are repaired, others
skipped alone, and every problem is listed (formats.report; `report(result)` is the import report).
`parse_zones(obj, fmt=None)` is the strict form: a ZoneSet, or ZoneFormatError naming the feature (index and
id) and the field of the first problem. `export_zones(zs, fmt)` writes one back; zones imported from a format
keep their published form and export to it unchanged (lossless round trip).
"""
from __future__ import annotations

from typing import Any

from ..vertical import VerticalModel
from ..zones import ZoneFormatError, ZoneSet
from . import ed269, ed318, geojson
from .report import (FORMATS, ImportProblem, ImportRefused, ImportResult, detect_format, import_zones,
                     kept_for_skipped, report)


def parse_zones(obj: Any, fmt: str | None = None, vertical: VerticalModel = VerticalModel()) -> ZoneSet:
    """A loaded zone document in any supported format as a validated ZoneSet; any problem refuses it."""
    return import_zones(obj, fmt, strict=True, vertical=vertical).zones


def export_zones(zs: ZoneSet, fmt: str) -> Any:
    """The zones as a document in `fmt` (a dict; a list for an ED-269 set imported as a bare list)."""
    if fmt == "ed269":
        return ed269.from_zoneset(zs)
    if fmt == "ed318":
        return ed318.from_zoneset(zs)
    if fmt == "geojson":
        return geojson.from_zoneset(zs)
    raise ValueError(f"unknown zone format {fmt!r}; expected one of {FORMATS}")


__all__ = ["FORMATS", "ImportProblem", "ImportRefused", "ImportResult", "ZoneFormatError", "detect_format",
           "export_zones", "import_zones", "kept_for_skipped", "parse_zones", "report"]
