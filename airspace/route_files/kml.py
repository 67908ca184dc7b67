"""KML routes (Google Earth, QGroundControl, planning tools): one path (LineString) or waypoints (Point
placemarks, in document order).

Heights follow the geometry's `altitudeMode` (or `gx:altitudeMode`): relativeToGround -> AGL, absolute -> AMSL
(KML: "relative to sea level"). KML's default, clampToGround, ignores the heights, so such a route has none
(the request then gives alt_m); the sea-floor modes are refused. A Polygon is an area, not a route: refused.
Several paths, a path beside separate points, or placemarks in different altitude modes are refused as
ambiguous. KML carries no speeds.
"""
from __future__ import annotations

from .model import RouteFile, RouteFileError, RoutePoint, check_count, check_geometry, position
from .safety import descendants, kid, local, text

MODES = {"relativeToGround": "AGL", "absolute": "AMSL", "clampToGround": None}


def _mode(geom, name: str) -> str:
    mode = text(geom, "altitudeMode") or "clampToGround"
    if mode not in MODES:
        raise RouteFileError("unsupported_altitude_mode", file=name, mode=mode)
    return mode


def _tuples(geom, name: str, first: int) -> list[tuple[float, float, float | None]]:
    raw = text(geom, "coordinates") or ""
    out = []
    for k, tup in enumerate(raw.split(), start=first):
        parts = tup.split(",")
        try:
            if not 2 <= len(parts) <= 3:
                raise ValueError
            vals = [float(p) for p in parts]
            if any(v != v or v in (float("inf"), float("-inf")) for v in vals):
                raise ValueError
        except ValueError:
            raise RouteFileError("bad_coordinates", file=name, k=k, text=tup[:60]) from None
        lon, lat = position(vals[0], vals[1], name, k)
        out.append((lon, lat, vals[2] if len(vals) == 3 else None))
    return out


def read_kml(root, name: str) -> RouteFile:
    if local(root) != "kml":
        raise RouteFileError("not_kml", file=name, root=local(root))
    lines, points, polygons = [], [], 0
    for pm in descendants(root, "Placemark"):
        for geom in pm.iter():
            kind = local(geom)
            if kind == "LineString":
                lines.append(geom)
            elif kind == "Point":
                points.append(geom)
            elif kind == "Polygon":
                polygons += 1
    check_geometry(len(lines), len(points), polygons, name)
    geoms = lines or points
    modes = sorted({_mode(g, name) for g in geoms})
    if len(modes) > 1:
        raise RouteFileError("mixed_altitude_modes", file=name, modes=", ".join(modes))
    ref = MODES[modes[0]]
    tuples = []
    for g in geoms:
        if local(g) == "Point" and kid(g, "coordinates") is None:
            raise RouteFileError("bad_coordinates", file=name, k=len(tuples), text="")
        tuples += _tuples(g, name, len(tuples))
    check_count(tuples, name)
    pts = tuple(RoutePoint(lon, lat, alt if ref is not None else None) for lon, lat, alt in tuples)
    return RouteFile("kml", name, pts, ref, f"{name} altitudeMode={modes[0]}",
                     notes=("clampToGround: KML ignores the heights",) if ref is None else ())
