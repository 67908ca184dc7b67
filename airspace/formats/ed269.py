"""EUROCAE ED-269 UAS geographical zones (JSON): import and export.

Accepted containers: the bare list of UASZone objects, the `{formatVersion, createdAt, UASZoneList}`
wrapper, `{..., "features": [UASZone, ...]}` as some published test files have it, another wrapper whose one
list member holds the UASZone objects (EUROCONTROL's `{"uas_zones": [...]}`), and one UASZone object alone
(EUROCONTROL's UASZoneVersion examples); an export writes the container it read. A UASZone
with several `geometry` volumes (each its own band) becomes one zone per volume (id
"identifier#k"); identifiers used again get "@2", "@3". Circle `center` is [lon, lat], its radius in
`uomDimensions` (like the limits), and the circle becomes a circumscribed 64-gon. Limits: `uomDimensions` M or FT, references AGL/AMSL/WGS84, a null
upper limit is unlimited. `applicability` with `schedule` or `dailyPeriod` windows; daily times
with an offset are in that fixed offset, without one local (Asia/Shanghai): see common.schedule_from_periods.
Outlines are repaired where that is unambiguous (formats.geometry). UA classes travel in
extendedProperties.skylane (ED-269 has no field for them).
"""
from __future__ import annotations

import copy
from typing import Any

from ..schedule import Schedule
from ..zones import Zone, ZoneFormatError, ZoneSet
from .common import (Failer, check_restriction, circle, export_limit, geometry_json, groups,
                     internal_feature, limits, model_props, periods_from_schedule, ref,
                     restore_extension, schedule_from_periods, skylane_extension, source_of, uom,
                     unique_id, volume_equal)
from .geometry import polygonal

FMT = "ed269"
ID_FIELD = "identifier"


def detect(obj: Any) -> bool:
    if isinstance(obj, list):
        return True
    if not isinstance(obj, dict) or obj.get("type") == "FeatureCollection":
        return False
    return "UASZoneList" in obj or _zone_key(obj) is not None or _is_zone(obj)


def _is_zone(obj: Any) -> bool:
    return isinstance(obj, dict) and "identifier" in obj and isinstance(obj.get("geometry"), list)


def _zone_key(obj: dict) -> str | None:
    """The member holding the UASZone objects of a wrapper: `features`, else the one list of them."""
    lists = [k for k, v in obj.items() if isinstance(v, list) and v and isinstance(v[0], dict) and "identifier" in v[0]]
    return "features" if "features" in lists else (lists[0] if len(lists) == 1 else None)


def _container(obj: Any) -> tuple[str, dict, list]:
    if isinstance(obj, list):
        return "list", {}, obj
    if not isinstance(obj, dict):
        raise ZoneFormatError(None, None, "UASZoneList", "not an ED-269 zone list or wrapper object")
    if "UASZoneList" not in obj and _zone_key(obj) is None and _is_zone(obj):
        return "zone", {}, [obj]
    key = "UASZoneList" if "UASZoneList" in obj else (_zone_key(obj) or "features")
    feats = obj.get(key)
    if not isinstance(feats, list):
        raise ZoneFormatError(None, None, key, "missing or not a list")
    return key, {k: v for k, v in obj.items() if k != key}, feats


def _volume(vol: Any, path: str, fail: Failer):
    if not isinstance(vol, dict):
        fail(path, f"must be an object, got {vol!r}")
    unit = uom(vol.get("uomDimensions"), f"{path}.uomDimensions", fail)
    lo_ref = ref(vol.get("lowerVerticalReference"), f"{path}.lowerVerticalReference", fail)
    up_ref = ref(vol.get("upperVerticalReference", lo_ref), f"{path}.upperVerticalReference", fail)
    lo, hi = limits(vol.get("lowerLimit"), vol.get("upperLimit"), unit,
                    (f"{path}.lowerLimit", f"{path}.upperLimit"), fail)
    if lo_ref == up_ref and not lo < hi:
        fail(f"{path}.upperLimit", f"upper limit must exceed the lower limit ({lo} m)")
    hp = vol.get("horizontalProjection")
    where = f"{path}.horizontalProjection"
    if isinstance(hp, dict) and hp.get("type") == "Circle":
        geom = circle(hp.get("center"), hp.get("radius"), where, fail, unit)  # uomDimensions: radius too
    elif isinstance(hp, dict) and hp.get("type") == "Polygon":
        geom = polygonal(hp, where, fail)
    else:
        got = hp.get("type") if isinstance(hp, dict) else hp
        fail(f"{where}.type" if isinstance(hp, dict) else where, f"must be Polygon or Circle, got {got!r}")
    return geom, lo, hi, lo_ref, up_ref, unit


def split(obj: Any) -> tuple[dict, list]:
    """(the zone set's meta: the document's source members, its UASZone objects); ZoneFormatError when it is
    no ED-269 document."""
    container, members, feats = _container(obj)
    return {"source": {"format": FMT, "container": container, "members": members}}, feats


def feature_id(f: Any) -> Any:
    return f.get("identifier") if isinstance(f, dict) else None


def convert(f: Any, taken: set[str], fail: Failer) -> list[tuple[dict, Any]]:
    """One UASZone object as internal features and outlines, one per volume (ZoneFormatError when invalid)."""
    if not isinstance(f, dict):
        fail("UASZone", f"must be an object, got {type(f).__name__}")
    ident = f.get("identifier")
    if not isinstance(ident, str) or not ident.strip():
        fail("identifier", f"must be a non-empty string, got {ident!r}")
    name = f.get("name", ident)
    if not isinstance(name, str):
        fail("name", f"must be a string, got {name!r}")
    restriction = check_restriction(f.get("restriction"), "restriction", fail)
    schedule = schedule_from_periods(f.get("applicability"), "applicability", fail)
    vols = f.get("geometry")
    if not isinstance(vols, list) or not vols:
        fail("geometry", "must be a non-empty list of volumes")
    ext = f.get("extendedProperties")
    sky = ext.get("skylane") if isinstance(ext, dict) else None
    raw = {k: v for k, v in f.items() if k != "geometry"}
    parsed = [_volume(v, f"geometry[{k}]", fail) for k, v in enumerate(vols)]
    if isinstance(sky, dict) and sky.get("geometry") == "MultiPolygon" and len(parsed) > 1:
        from shapely.ops import unary_union  # parts of one exported MultiPolygon zone
        merged = unary_union([p[0] for p in parsed])
        parsed = [(merged, *parsed[0][1:])]
    out = []
    for k, (geom, lo, hi, lo_ref, up_ref, unit) in enumerate(parsed):
        props = restore_extension(sky, name, restriction, lo, hi, lo_ref, up_ref, unit, schedule)
        if props is not None and len(parsed) == 1:
            props["id"] = unique_id(str(sky.get("id", ident)), taken)
        else:
            zid = unique_id(ident if len(parsed) == 1 else f"{ident}#{k + 1}", taken)
            props = model_props(zid, name, restriction, lo, hi, lo_ref, up_ref, unit, schedule, None,
                                {"format": FMT, "volume": k, "zone": raw, "geometry": vols[k]})
        out.append(internal_feature(props, geom))
    return out


def _gen_volume(z: Zone, geometry: dict) -> dict:
    return {"uomDimensions": z.uom, "lowerLimit": export_limit(z.lower_m, z.uom),
            "lowerVerticalReference": z.alt_ref, "upperLimit": export_limit(z.upper_m, z.uom),
            "upperVerticalReference": z.upper_ref or z.alt_ref, "horizontalProjection": geometry}


def _gen_zone(z: Zone) -> dict:
    parts = [z.geometry] if z.geometry.geom_type == "Polygon" else list(z.geometry.geoms)
    ext = skylane_extension(z)
    ext["geometry"] = z.geometry.geom_type
    return {"identifier": z.id, "country": "CHN", "name": z.name, "type": "COMMON",
            "restriction": z.restriction, "reason": ["OTHER"],
            "message": str(z.properties.get("reason") or z.properties.get("description") or z.name),
            "applicability": periods_from_schedule(z.schedule, "schedule", permanent=True),
            "zoneAuthority": [{"name": "Minhang low-altitude operations centre (Skylane)",
                               "purpose": "AUTHORIZATION"}],
            "geometry": [_gen_volume(z, geometry_json(p)) for p in parts],
            "extendedProperties": {"skylane": ext}}


def _from_source(members: list[Zone], src: dict) -> dict:
    z0 = members[0]
    out = copy.deepcopy(src["zone"])
    fail = Failer(None, out.get("identifier"), repairs=[])  # repaired as on import, to compare
    if out.get("name", out.get("identifier")) != z0.name:
        out["name"] = z0.name
    if out.get("restriction") != z0.restriction:
        out["restriction"] = z0.restriction
    try:
        same = schedule_from_periods(out.get("applicability"), "applicability", fail) == z0.schedule
    except ZoneFormatError:
        same = False
    if not same:
        out["applicability"] = periods_from_schedule(z0.schedule, "schedule", permanent=True)
    vols = []
    for z in members:
        raw = (z.properties.get("source") or {}).get("geometry")
        try:
            keep = volume_equal(z, *_volume(raw, "geometry", fail))
        except ZoneFormatError:
            keep = False
        vols.append(copy.deepcopy(raw) if keep else _gen_volume(z, geometry_json(z.geometry)))
    out["geometry"] = vols
    return out


def from_zoneset(zs: ZoneSet) -> dict | list:
    """The zones as an ED-269 document (in the container they were imported in, else the wrapper)."""
    feats = []
    for members in groups(zs.zones, FMT):
        src = source_of(members[0], FMT)
        feats.append(_from_source(members, src) if src is not None else _gen_zone(members[0]))
    meta = zs.meta.get("source") if isinstance(zs.meta.get("source"), dict) else {}
    if meta.get("format") == FMT:
        if meta.get("container") == "list":
            return feats
        if meta.get("container") == "zone" and len(feats) == 1:
            return feats[0]
        return {**meta.get("members", {}), meta.get("container", "UASZoneList"): feats}
    return {"formatVersion": "1.0", "UASZoneList": feats}


def schedule_of(feature: dict) -> Schedule | None:
    """The Schedule of one ED-269 UASZone object (for tests and tools)."""
    return schedule_from_periods(feature.get("applicability"), "applicability", Failer(None, None))
