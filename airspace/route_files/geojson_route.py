"""GeoJSON routes: one LineString, or Point features in document order (by their `index` property when every
point has one).

Heights are the coordinates' third values. Their reference is the `alt_ref` member (AGL, AMSL or WGS84) of
the FeatureCollection or of the features' properties (as in Skylane's zone files); without one, RFC 7946
says the height is above the WGS 84 ellipsoid, and the request may state another. Speeds: `speed_mps` in a
feature's properties (a LineString's for the whole path, a Point's for the leg from it). Polygons, several
lines, a line beside points, and points in different references are refused.
"""
from __future__ import annotations

import json
from typing import Any

from .model import RouteFile, RouteFileError, RoutePoint, check_count, check_geometry, number, position

REFS = ("AGL", "AMSL", "WGS84")


def _ref(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.upper() not in REFS:
        raise RouteFileError("bad_alt_ref", file=name, value=str(value)[:40])
    return value.upper()


def _coord(c: Any, name: str, k: int) -> tuple[float, float, float | None]:
    if not isinstance(c, list) or not 2 <= len(c) <= 3:
        raise RouteFileError("bad_coordinates", file=name, k=k, text=json.dumps(c)[:60])
    lon, lat = position(number(c[0], name, k, "longitude"), number(c[1], name, k, "latitude"), name, k)
    return lon, lat, number(c[2], name, k, "height") if len(c) == 3 else None


def _features(doc: Any, name: str) -> list[dict]:
    if not isinstance(doc, dict):
        raise RouteFileError("geojson_bad", file=name, detail="not a JSON object")
    kind = doc.get("type")
    if kind == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list) or not all(isinstance(f, dict) for f in feats):
            raise RouteFileError("geojson_bad", file=name, detail="features must be a list of objects")
        return feats
    if kind == "Feature":
        return [doc]
    if kind in ("LineString", "MultiLineString", "Point", "Polygon", "MultiPolygon", "MultiPoint"):
        return [{"type": "Feature", "geometry": doc, "properties": {}}]
    raise RouteFileError("geojson_bad", file=name, detail=f"type {str(kind)[:40]!r}")


def read_geojson(data: bytes, name: str) -> RouteFile:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RouteFileError("geojson_bad", file=name, detail=str(exc)[:200]) from None
    top_ref = _ref(doc.get("alt_ref"), name) if isinstance(doc, dict) else None
    lines, points, polygons, refs = [], [], 0, set()
    for f in _features(doc, name):
        geom = f.get("geometry") if isinstance(f.get("geometry"), dict) else {}
        props = f.get("properties") if isinstance(f.get("properties"), dict) else {}
        kind = geom.get("type")
        coords = geom.get("coordinates")
        if kind in ("LineString", "MultiLineString", "Point", "MultiPoint"):
            refs.add(_ref(props.get("alt_ref"), name) or top_ref)
        if kind == "LineString":
            lines.append((coords, props))
        elif kind == "MultiLineString" and isinstance(coords, list):
            lines += [(c, props) for c in coords]
        elif kind == "Point":
            points.append((coords, props))
        elif kind == "MultiPoint" and isinstance(coords, list):
            points += [(c, props) for c in coords]
        elif kind in ("Polygon", "MultiPolygon"):
            polygons += 1
    check_geometry(len(lines), len(points), polygons, name)
    if len(refs) > 1:
        raise RouteFileError("mixed_altitude_modes", file=name, modes=", ".join(sorted(str(r) for r in refs)))
    ref = refs.pop()
    out: list[RoutePoint] = []
    if lines:
        coords, props = lines[0]
        if not isinstance(coords, list):
            raise RouteFileError("geojson_bad", file=name, detail="LineString coordinates must be a list")
        speed = _speed(props, name, 0)
        out = [RoutePoint(*_coord(c, name, k), speed) for k, c in enumerate(coords)]
    else:
        if all(isinstance(p.get("index"), (int, float)) and not isinstance(p.get("index"), bool) for _, p in points):
            idx = [p["index"] for _, p in points]
            if len(set(idx)) != len(idx):
                raise RouteFileError("duplicate_index", file=name, index=next(i for i in idx if idx.count(i) > 1))
            points = sorted(points, key=lambda cp: cp[1]["index"])
        out = [RoutePoint(*_coord(c, name, k), _speed(p, name, k)) for k, (c, p) in enumerate(points)]
    check_count(out, name)
    return RouteFile("geojson", name, tuple(out), ref, f"{name} alt_ref" if ref else "", default_ref="WGS84")


def _speed(props: dict, name: str, k: int) -> float | None:
    if props.get("speed_mps") is None:
        return None
    v = number(props["speed_mps"], name, k, "speed_mps")
    if not 0.5 <= v <= 100:
        raise RouteFileError("bad_speed", file=name, k=k, value=v)
    return v
