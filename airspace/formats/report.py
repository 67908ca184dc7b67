"""Importing a zone document feature by feature, and the one report of what did not import as published.

`import_zones(obj, fmt=None, strict=False)` reads each feature on its own. A feature with a problem the import
repairs unambiguously (an invalid or unclosed outline: formats.geometry; a permanent period that also gives
dates) is imported repaired; a feature with any other problem is skipped, alone. Each problem is one
ImportProblem: feature index, id, field, problem, action ("repaired" or "skipped") and details (how it was
repaired, areas in m²). Every feature not imported exactly as published is listed; nothing is dropped
silently. With strict=True any problem refuses the whole document (ImportRefused, a ZoneFormatError naming
the first problem, with all of them in `.problems`): what `parse_zones` does.

`report(result)` is the report `skylane zones import` prints and `POST /v1/zones` answers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..vertical import VerticalModel
from ..zones import ZoneFormatError, ZoneSet, _parse_feature
from . import ed269, ed318, geojson
from .common import Failer

MODULES = {"ed269": ed269, "ed318": ed318, "geojson": geojson}
FORMATS = tuple(MODULES)


def detect_format(obj: Any) -> str:
    """ed269, ed318 or geojson, from the document's shape (ZoneFormatError when none fits)."""
    for fmt, module in MODULES.items():
        if module.detect(obj):
            return fmt
    raise ZoneFormatError(None, None, "type", "not an ED-269 zone list, an ED-318 or a GeoJSON FeatureCollection")


@dataclass(frozen=True)
class ImportProblem:
    """One problem of one feature, and what the import did about it."""

    index: int
    id: Any
    field: str
    problem: str
    action: str  # "repaired" (imported, changed as `details["repair"]` says) or "skipped" (not imported)
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"index": self.index, "id": self.id, "field": self.field, "problem": self.problem,
                "action": self.action, **self.details}

    def __str__(self) -> str:
        text = f"feature {self.index} (id={self.id!r}): field {self.field!r}: {self.problem}: {self.action}"
        if "repair" in self.details:
            text += f", {self.details['repair']}"
        if "area_imported_m2" in self.details:
            d = self.details
            text += (f" (area {d['area_published_m2']:.1f} m² as published, {d['area_imported_m2']:.1f} m² "
                     f"imported, {d['area_changed_m2']:+.1f} m²)")
        return text


@dataclass(frozen=True)
class ImportResult:
    """The zones imported from a document of `features` features, and the problems met."""

    zones: ZoneSet
    problems: tuple[ImportProblem, ...]
    format: str
    features: int

    def indices(self, action: str) -> list[int]:
        """The features with a problem of this action (each once, in order)."""
        return sorted({p.index for p in self.problems if p.action == action})


class ImportRefused(ZoneFormatError):
    """A strict import met problems: the first names feature and field, `problems` lists them all."""

    def __init__(self, problems: tuple[ImportProblem, ...]) -> None:
        first, more = problems[0], len(problems) - 1
        super().__init__(first.index, first.id, first.field,
                         first.problem + (f" (and {more} more problem{'s' * (more > 1)})" if more else ""))
        self.problems = problems


def import_zones(obj: Any, fmt: str | None = None, *, strict: bool = False,
                 vertical: VerticalModel = VerticalModel()) -> ImportResult:
    """A loaded zone document (any supported format) imported feature by feature; ZoneFormatError when the
    document itself cannot be read (or, with strict, has any problem)."""
    fmt = fmt or detect_format(obj)
    if fmt not in MODULES:
        raise ValueError(f"unknown zone format {fmt!r}; expected one of {FORMATS}")
    module = MODULES[fmt]
    meta, feats = module.split(obj)
    taken: set[str] = set()  # zone ids given so far (identifiers used again get @2, @3)
    first_of: dict[str, int] = {}
    zones, problems = [], []
    for i, f in enumerate(feats):
        fid = module.feature_id(f)
        fail = Failer(i, fid, repairs=[])
        converted: list = []
        try:
            converted = module.convert(f, taken, fail)
            parsed = [_parse_feature(i, feat, geom) for feat, geom in converted]
            for z in parsed:
                if z.id in first_of:
                    fail(module.ID_FIELD, f"zone id {z.id!r} is already taken by feature {first_of[z.id]}")
        except ZoneFormatError as exc:
            if module is not geojson:  # a skipped feature takes no id from those after it
                taken.difference_update(feat["id"] for feat, _ in converted)
            problems.append(ImportProblem(i, fid, exc.field, exc.problem, "skipped"))
            continue
        first_of.update((z.id, i) for z in parsed)
        zones.extend(parsed)
        problems.extend(ImportProblem(i, fid, fld, problem, "repaired", details)
                        for fld, problem, details in fail.repairs)
    if strict and problems:
        raise ImportRefused(tuple(problems))
    return ImportResult(ZoneSet(zones, vertical, meta), tuple(problems), fmt, len(feats))


def report(result: ImportResult) -> dict:
    """The import report: counts, then one entry per problem (index, id, field, problem, action[, repair,
    area_published_m2, area_imported_m2, area_changed_m2])."""
    return {"format": result.format, "features": result.features, "zones": len(result.zones),
            "repaired": len(result.indices("repaired")), "skipped": len(result.indices("skipped")),
            "problems": [p.to_dict() for p in result.problems]}


def kept_for_skipped(result: ImportResult, stored: dict) -> list[dict]:
    """The stored features (internal GeoJSON, active) of the zones whose published feature this import skipped.

    A replacing import deactivates the stored zones missing from the document; a feature that could not be
    read is not a withdrawn zone, so its stored zones are stored again as they are instead (matched by the
    published identifier they were imported from, else by zone id)."""
    skipped = {str(p.id) for p in result.problems if p.action == "skipped" and p.id is not None}
    imported = {z.id for z in result.zones}
    out = []
    for f in stored.get("features") or []:
        props = f.get("properties") or {}
        zid = props.get("id") or f.get("id")
        if zid not in imported and (zid in skipped or _published_id(props) in skipped):
            out.append(f)
    return out


def _published_id(props: dict) -> str | None:
    src = props.get("source")
    if not isinstance(src, dict):
        return None
    published = src.get("zone") if src.get("format") == "ed269" else src.get("properties")
    ident = published.get("identifier") if isinstance(published, dict) else None
    return None if ident is None else str(ident)
