"""EUROCAE ED-318 geographical zones (GeoJSON with a vertical `layer`): import and export.

A feature's geometry is a Polygon, MultiPolygon, a Point with extent {subType: Circle, radius}
(radius in metres; the circle becomes a circumscribed 64-gon), or a GeometryCollection of those
(one zone per member, id "identifier#k"). Its `layer` gives upper/lower limits, their references
and `uom` (m or ft, default m). Zone `type` is the restriction (REQ_AUTHORIZATION spelled with a z;
USPACE is read as CONDITIONAL); `limitedApplicability` periods with daily `schedule` windows give
the schedule (times of day with an offset are in that fixed offset: common.schedule_from_periods). Names
may be plain strings or [{text, lang}] lists (en-GB preferred). Outlines are repaired where that is
unambiguous (formats.geometry).
"""
from __future__ import annotations

import copy
from typing import Any

from ..zones import Zone, ZoneFormatError, ZoneSet
from .common import (Failer, check_restriction, circle, export_limit, geometry_json, groups,
                     internal_feature, limits, model_props, periods_from_schedule, ref,
                     restore_extension, schedule_from_periods, skylane_extension, source_of, uom,
                     unique_id, volume_equal)
from .geometry import polygonal

FMT = "ed318"
ID_FIELD = "properties.identifier"
ALIASES = {"REQ_AUTHORIZATION": "REQ_AUTHORISATION", "USPACE": "CONDITIONAL"}
TYPE_OF = {"REQ_AUTHORISATION": "REQ_AUTHORIZATION"}


def detect(obj: Any) -> bool:
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        return False
    for f in obj.get("features") or []:
        if isinstance(f, dict):
            props, geo = f.get("properties"), f.get("geometry")
            if (isinstance(geo, dict) and "layer" in geo) or (
                    isinstance(props, dict) and ("identifier" in props or "zoneAuthority" in props)):
                return True
    return False


def name_text(name: Any) -> str | None:
    """A plain name, or the en-GB (else first) text of a [{text, lang}] list."""
    if isinstance(name, str):
        return name
    if isinstance(name, list) and name and all(isinstance(n, dict) for n in name):
        english = [n for n in name if str(n.get("lang", "")).lower().startswith("en")]
        text = (english or name)[0].get("text")
        return text if isinstance(text, str) else None
    return None


def chinese_text(name: Any) -> str | None:
    """The Chinese text (lang zh, zh-CN, zh-Hans, ...) of a [{text, lang}] name list, if it has one."""
    if isinstance(name, list):
        for n in name:
            if isinstance(n, dict) and str(n.get("lang", "")).lower().startswith("zh") and isinstance(n.get("text"), str):
                return n["text"]
    return None


def _layer(layer: Any, path: str, fail: Failer):
    if not isinstance(layer, dict):
        fail(path, "missing vertical layer {upper, upperReference, lower, lowerReference, uom}")
    unit = uom(layer.get("uom", "m"), f"{path}.uom", fail)
    lo_ref = ref(layer.get("lowerReference"), f"{path}.lowerReference", fail)
    up_ref = ref(layer.get("upperReference", lo_ref), f"{path}.upperReference", fail)
    lo, hi = limits(layer.get("lower"), layer.get("upper"), unit, (f"{path}.lower", f"{path}.upper"), fail)
    if lo_ref == up_ref and not lo < hi:
        fail(f"{path}.upper", f"upper limit must exceed the lower limit ({lo} m)")
    return lo, hi, lo_ref, up_ref, unit


def _shape(geo: Any, path: str, fail: Failer):
    if isinstance(geo, dict) and geo.get("type") == "Point" and isinstance(geo.get("extent"), dict):
        ext = geo["extent"]
        if ext.get("subType") != "Circle":
            fail(f"{path}.extent.subType", f"must be Circle, got {ext.get('subType')!r}")
        return circle(geo.get("coordinates"), ext.get("radius"), path, fail)
    if isinstance(geo, dict) and geo.get("type") in ("Polygon", "MultiPolygon"):
        return polygonal({"type": geo["type"], "coordinates": geo.get("coordinates")}, path, fail)
    got = geo.get("type") if isinstance(geo, dict) else geo
    fail(path, f"must be Polygon, MultiPolygon, Point with a Circle extent or a GeometryCollection, got {got!r}")


def _volumes(geo: Any, fail: Failer) -> list[tuple[dict, Any, tuple]]:
    """(raw member, shapely geometry, limits) per volume of a feature's geometry."""
    if isinstance(geo, dict) and geo.get("type") == "GeometryCollection":
        members = geo.get("geometries")
        if not isinstance(members, list) or not members:
            fail("geometry.geometries", "must be a non-empty list")
        out = []
        for k, m in enumerate(members):
            layer = m.get("layer", geo.get("layer")) if isinstance(m, dict) else None
            out.append((m, _shape(m, f"geometry.geometries[{k}]", fail),
                        _layer(layer, f"geometry.geometries[{k}].layer", fail)))
        return out
    layer = geo.get("layer") if isinstance(geo, dict) else None
    return [(geo, _shape(geo, "geometry", fail), _layer(layer, "geometry.layer", fail))]


def split(obj: Any) -> tuple[dict, list]:
    """(the zone set's meta: the collection's source members, its features); ZoneFormatError when it is no
    FeatureCollection."""
    if not isinstance(obj, dict) or obj.get("type") != "FeatureCollection":
        raise ZoneFormatError(None, None, "type", "not a GeoJSON FeatureCollection object")
    feats = obj.get("features")
    if not isinstance(feats, list):
        raise ZoneFormatError(None, None, "features", "missing or not a list")
    return {"source": {"format": FMT, "members": {k: v for k, v in obj.items() if k not in ("type", "features")}}}, feats


def feature_id(f: Any) -> Any:
    props = f.get("properties") if isinstance(f, dict) else None
    ident = props.get("identifier") if isinstance(props, dict) else None
    return ident if ident is not None else (f.get("id") if isinstance(f, dict) else None)


def convert(f: Any, taken: set[str], fail: Failer) -> list[tuple[dict, Any]]:
    """One ED-318 feature as internal features and outlines, one per volume (ZoneFormatError when invalid)."""
    props = f.get("properties") if isinstance(f, dict) else None
    if not isinstance(f, dict) or f.get("type") != "Feature":
        fail("type", "not a GeoJSON Feature object")
    if not isinstance(props, dict):
        fail("properties", "missing or not an object")
    ident = props.get("identifier")
    if not isinstance(ident, str) or not ident.strip():
        fail("properties.identifier", f"must be a non-empty string, got {ident!r}")
    name = name_text(props.get("name", ident))
    if name is None:
        fail("properties.name", f"must be a string or a list of {{text, lang}}, got {props.get('name')!r}")
    restriction = check_restriction(props.get("type"), "properties.type", fail, ALIASES)
    schedule = schedule_from_periods(props.get("limitedApplicability"), "properties.limitedApplicability",
                                     fail, daily_keys=("schedule",), permanent_key=None)
    ext = props.get("extendedProperties")
    sky = ext.get("skylane") if isinstance(ext, dict) else None
    geo = f.get("geometry")
    vols = _volumes(geo, fail)
    extra = {k: v for k, v in f.items() if k not in ("type", "properties", "geometry")}
    out = []
    for k, (raw_geo, geom, (lo, hi, lo_ref, up_ref, unit)) in enumerate(vols):
        iprops = restore_extension(sky, name, restriction, lo, hi, lo_ref, up_ref, unit, schedule)
        if iprops is not None and len(vols) == 1:
            iprops["id"] = unique_id(str(sky.get("id", ident)), taken)
        else:
            zid = unique_id(ident if len(vols) == 1 else f"{ident}#{k + 1}", taken)
            src = {"format": FMT, "volume": k, "properties": props, "feature_members": extra,
                   "geometry": raw_geo}
            if len(vols) > 1:
                src["collection"] = {kk: vv for kk, vv in geo.items() if kk != "geometries"}
            iprops = model_props(zid, name, restriction, lo, hi, lo_ref, up_ref, unit, schedule, None, src)
        if zh := chinese_text(props.get("name")):
            iprops["name_zh"] = zh  # the published Chinese name (zones.md: name_zh beside name)
        out.append(internal_feature(iprops, geom))
    return out


def _layer_of(z: Zone) -> dict:
    unit = "ft" if z.uom == "FT" else "m"
    return {"upper": export_limit(z.upper_m, z.uom), "upperReference": z.upper_ref or z.alt_ref,
            "lower": export_limit(z.lower_m, z.uom), "lowerReference": z.alt_ref, "uom": unit}


def _gen_geometry(z: Zone) -> dict:
    return {**geometry_json(z.geometry), "layer": _layer_of(z)}


def _gen_feature(z: Zone) -> dict:
    zh = z.properties.get("name_zh")
    name: Any = [{"text": z.name, "lang": "en-GB"}, {"text": zh, "lang": "zh-CN"}] if isinstance(zh, str) else z.name
    props = {"identifier": z.id, "country": "CHN", "name": name,
             "type": TYPE_OF.get(z.restriction, z.restriction), "variant": "COMMON",
             "zoneAuthority": [{"name": "Minhang low-altitude operations centre (Skylane)",
                                "purpose": "AUTHORIZATION"}],
             "extendedProperties": {"skylane": skylane_extension(z)}}
    if z.schedule is not None:
        props["limitedApplicability"] = periods_from_schedule(z.schedule, "schedule", permanent=False)
    return {"type": "Feature", "id": z.id, "properties": props, "geometry": _gen_geometry(z)}


def _from_source(members: list[Zone], src: dict) -> dict:
    z0 = members[0]
    props = copy.deepcopy(src["properties"])
    fail = Failer(None, props.get("identifier"), repairs=[])  # repaired as on import, to compare
    if name_text(props.get("name", props.get("identifier"))) != z0.name:
        props["name"] = z0.name
    if ALIASES.get(props.get("type"), props.get("type")) != z0.restriction:
        props["type"] = TYPE_OF.get(z0.restriction, z0.restriction)
    try:
        same = schedule_from_periods(props.get("limitedApplicability"), "limitedApplicability", fail,
                                     daily_keys=("schedule",), permanent_key=None) == z0.schedule
    except ZoneFormatError:
        same = False
    if not same:
        if z0.schedule is None:
            props.pop("limitedApplicability", None)
        else:
            props["limitedApplicability"] = periods_from_schedule(z0.schedule, "schedule", permanent=False)
    geoms = []
    for z in members:
        s = z.properties.get("source") or {}
        raw = s.get("geometry")
        layer = raw.get("layer", (s.get("collection") or {}).get("layer")) if isinstance(raw, dict) else None
        try:
            keep = volume_equal(z, _shape(raw, "geometry", fail), *_layer(layer, "geometry.layer", fail))
        except ZoneFormatError:
            keep = False
        geoms.append(copy.deepcopy(raw) if keep else _gen_geometry(z))
    if "collection" in (z0.properties.get("source") or {}):
        geometry = {**copy.deepcopy(z0.properties["source"]["collection"]), "geometries": geoms}
    else:
        geometry = geoms[0]
    return {**copy.deepcopy(src.get("feature_members") or {}), "type": "Feature", "properties": props,
            "geometry": geometry}


def from_zoneset(zs: ZoneSet) -> dict:
    """The zones as an ED-318 FeatureCollection."""
    feats = []
    for members in groups(zs.zones, FMT):
        src = source_of(members[0], FMT)
        feats.append(_from_source(members, src) if src is not None else _gen_feature(members[0]))
    meta = zs.meta.get("source") if isinstance(zs.meta.get("source"), dict) else {}
    members = meta.get("members", {}) if meta.get("format") == FMT else {}
    return {"type": "FeatureCollection", **members, "features": feats}
