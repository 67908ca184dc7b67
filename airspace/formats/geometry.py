"""Zone outlines as published, repaired on import where the repair is unambiguous.

A valid Polygon or MultiPolygon is kept exactly as published, whatever the direction of its rings (RFC 7946
§3.1.6: parsers should not reject a ring for its winding; which points are inside does not depend on it) and
with its repeated consecutive positions (harmless). What is not:

- a ring that is not closed is closed (its first position repeated), area unchanged;
- an invalid polygon (a ring crossing or touching itself, a hole touching its shell along an edge...) is made
  valid with `shapely.make_valid` (linework), keeping its polygonal parts, when that reading is the only one:
  the structure reading (shells united, holes taken away) covers the same area and every hole lies inside its
  shell. A ring wound twice over the same area, a hole (partly) outside its shell, or an outline with no area
  left is not repaired: its feature is refused;
- a MultiPolygon whose parts overlap or touch along an edge is repaired part by part and united.

Each repair is noted on the feature's Failer with the area as published (shoelace: |shell| - |holes|) and as
imported, in square metres.
"""
from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from ..coords import M_PER_DEG_LAT, m_per_deg_lon
from ..zones import read_geometry
from .common import Failer

_SAME_AREA = 1e-9  # relative: two readings of an outline agree when they differ by less than this
_GRID_DEG = 1e-10  # about 0.01 mm: the precision of the overlays' fallback


def polygonal(geo: Any, path: str, fail: Failer) -> BaseGeometry:
    """A published GeoJSON Polygon/MultiPolygon (at `path`) as a valid shapely geometry."""
    geom = read_geometry(geo, lambda _field, problem: fail(path, problem))
    unclosed = _unclosed_rings(geo)
    if unclosed:
        fail.repaired(path, f"{', '.join(unclosed)} not closed", "closed by repeating the first position",
                      **_areas(geom, geom))
    if geom.is_valid:
        return geom
    reason = f"invalid polygon: {shapely.is_valid_reason(geom)}"
    fixed, why_not = repair(geom)
    if fixed is None:
        fail(path, f"{reason}; not repaired: {why_not}")
    fail.repaired(path, reason, "made valid (shapely.make_valid, polygonal parts kept)", **_areas(geom, fixed))
    return fixed


def repair(geom: BaseGeometry) -> tuple[BaseGeometry | None, str]:
    """(the valid Polygon/MultiPolygon, "") or (None, why the repair would be a guess). Rings GEOS cannot node
    even on a fine grid (near-coincident segments) are not repaired either: their feature alone is refused."""
    try:
        return _repair(geom)
    except shapely.errors.GEOSException as exc:
        return None, f"its rings cannot be noded into areas ({str(exc).split(':')[0]})"


def _repair(geom: BaseGeometry) -> tuple[BaseGeometry | None, str]:
    parts = [geom] if geom.geom_type == "Polygon" else list(geom.geoms)
    fixed = []
    for k, part in enumerate(parts):
        what = "the polygon" if len(parts) == 1 else f"polygon {k}"
        if part.is_valid:
            fixed.append(part)
            continue
        linework = _polygons(shapely.make_valid(part, method="linework"))
        if linework.is_empty:
            return None, f"{what} has no area left (its rings collapse to lines or points)"
        structure = _polygons(shapely.make_valid(part, method="structure", keep_collapsed=False))
        if not _same(linework, structure):
            return None, (f"{what} can be read as two different areas ({_km2(linework)} or {_km2(structure)}): "
                          f"a ring winds twice over some ground, or a hole crosses its shell")
        shell = _polygons(shapely.make_valid(Polygon(part.exterior)))
        for h, ring in enumerate(part.interiors):
            hole = _polygons(shapely.make_valid(Polygon(ring)))
            if _overlay(shapely.difference, hole, shell).area > _SAME_AREA * max(shell.area, hole.area):
                return None, f"hole {h} of {what} lies (partly) outside its shell"
        fixed.append(linework)
    out = _polygons(_overlay(shapely.union_all, fixed)) if len(fixed) > 1 else fixed[0]
    if out.is_empty or not out.is_valid:
        return None, "no valid polygon results"
    return out, ""


def _polygons(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal parts of a geometry: a Polygon, a MultiPolygon, or an empty Polygon."""
    polys = []
    for g in shapely.get_parts(geom):
        if g.geom_type == "Polygon" and not g.is_empty:
            polys.append(g)
        elif g.geom_type == "MultiPolygon":
            polys.extend(g.geoms)
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def _same(a: BaseGeometry, b: BaseGeometry) -> bool:
    return _overlay(shapely.symmetric_difference, a, b).area <= _SAME_AREA * max(a.area, b.area)


def _overlay(op, *args):
    """A GEOS overlay; when floating-point noding fails (TopologyException) the same on a 1e-10° grid."""
    try:
        return op(*args)
    except shapely.errors.GEOSException:
        return op(*args, grid_size=_GRID_DEG)


def _unclosed_rings(geo: Any) -> list[str]:
    """The published rings whose last position is not their first (shapely closes them silently)."""
    polys = [geo.get("coordinates")] if geo.get("type") == "Polygon" else list(geo.get("coordinates") or [])
    out = []
    for p, rings in enumerate(polys):
        for r, ring in enumerate(rings or []):
            if ring and list(ring[0]) != list(ring[-1]):
                name = "shell" if r == 0 else f"hole {r - 1}"
                out.append(name if len(polys) == 1 else f"{name} of polygon {p}")
    return out


def _m2_per_deg2(geom: BaseGeometry) -> float:
    lat = (geom.bounds[1] + geom.bounds[3]) / 2
    return m_per_deg_lon(lat) * M_PER_DEG_LAT


def _shoelace(geom: BaseGeometry) -> float:
    """The area of the published rings in square degrees (|shell| - |holes| per polygon, valid or not)."""
    parts = [geom] if geom.geom_type == "Polygon" else list(geom.geoms)
    return sum(abs(Polygon(p.exterior).area) - sum(abs(Polygon(h).area) for h in p.interiors) for p in parts)


def _areas(published: BaseGeometry, imported: BaseGeometry) -> dict:
    k = _m2_per_deg2(imported)
    before, after = _shoelace(published) * k, imported.area * k
    return {"area_published_m2": round(before, 1), "area_imported_m2": round(after, 1),
            "area_changed_m2": round(after - before, 1)}


def _km2(geom: BaseGeometry) -> str:
    if geom.is_empty:
        return "0 km²"
    return f"{geom.area * _m2_per_deg2(geom) / 1e6:.6g} km²"
