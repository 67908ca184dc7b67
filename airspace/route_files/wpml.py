"""DJI WPML (Pilot 2 / FlightHub 2 / Cloud API missions): `wpmz/waylines.wpml` and `wpmz/template.kml`.

waylines.wpml is what the aircraft executes, so it is read when it has waypoints; template.kml (what the
planner edited) only when it is the one file with waypoints. Heights (DJI Cloud API docs, "DJI WPML";
tests/data/routes/notes.md):

  waylines.wpml  Folder wpml:executeHeightMode, Placemark wpml:executeHeight
      WGS84                 ellipsoid height                            -> WGS84
      relativeToStartPoint  above the take-off point                   -> WGS84 = take-off ellipsoid height + h
      realTimeFollowSurface the aircraft follows the terrain live      -> refused (no fixed height to check)
  template.kml   Folder wpml:waylineCoordinateSysParam/wpml:heightMode, Placemark wpml:height, or the
                 Folder's wpml:globalHeight where the Placemark says wpml:useGlobalHeight 1
      EGM96                 above the EGM96 geoid (mean sea level)     -> AMSL
      relativeToStartPoint  as above                                   -> WGS84
      aboveGroundLevel      above the terrain                          -> AGL
      realTimeFollowSurface                                            -> refused

The take-off point is `wpml:takeOffRefPoint` "latitude,longitude,ellipsoid height" (latitude first, unlike
KML coordinates) in either file's wpml:missionConfig; without it relative heights are refused. No height
mode, several waylines in different modes, a height mode this module does not know, two waypoints with the
same wpml:index, and coordinates that are not numbers (DJI's documentation sample says "longitude,latitude")
are refused with the reason. Speeds: a Placemark's wpml:waypointSpeed (in the template only where
wpml:useGlobalSpeed is 0), else its Folder's wpml:autoFlightSpeed.
"""
from __future__ import annotations

from .model import RouteFile, RouteFileError, RoutePoint, check_count, number, position
from .safety import descendants, kid, kids, local, parse_xml, text

EXECUTE_REFS = {"WGS84": "WGS84", "EGM96": "AMSL", "aboveGroundLevel": "AGL"}  # relative: take-off + h
TEMPLATE_REFS = {"EGM96": "AMSL", "aboveGroundLevel": "AGL", "WGS84": "WGS84"}
RELATIVE = "relativeToStartPoint"
FOLLOW = "realTimeFollowSurface"


def takeoff_height(roots: list, name: str) -> float | None:
    """The take-off point's ellipsoid height from wpml:takeOffRefPoint (lat,lng,height), or None."""
    for root in roots:
        for el in descendants(root, "takeOffRefPoint"):
            raw = (el.text or "").strip()
            parts = [p.strip() for p in raw.split(",")]
            try:
                if len(parts) != 3:
                    raise ValueError
                lat, lon, h = (float(p) for p in parts)
            except ValueError:
                raise RouteFileError("bad_takeoff", file=name, text=raw[:80]) from None
            if not (-90 <= lat <= 90 and -180 <= lon <= 180) or h != h or abs(h) > 1e5:
                raise RouteFileError("bad_takeoff", file=name, text=raw[:80])
            return h
    return None


def _coords(pm, name: str, k: int) -> tuple[float, float]:
    point = kid(pm, "Point")
    raw = text(point, "coordinates") if point is not None else None
    parts = [p.strip() for p in (raw or "").replace("\n", " ").split(",")]
    try:
        if raw is None or len(parts) < 2:
            raise ValueError
        lon, lat = float(parts[0]), float(parts[1])
        if lon != lon or lat != lat:
            raise ValueError
    except ValueError:
        raise RouteFileError("bad_coordinates", file=name, k=k, text=(raw or "")[:60]) from None
    return position(lon, lat, name, k)


def _ordered(placemarks: list, name: str) -> list:
    """Placemarks in wpml:index order (document order when some have none); a repeated index is refused."""
    indexed = []
    for pm in placemarks:
        raw = text(pm, "index")
        if raw is None:
            return placemarks
        indexed.append((int(number(raw, name, len(indexed), "wpml:index")), pm))
    seen = set()
    for idx, _ in indexed:
        if idx in seen:
            raise RouteFileError("duplicate_index", file=name, index=idx)
        seen.add(idx)
    return [pm for _, pm in sorted(indexed, key=lambda x: x[0])]


def _speed(value: str | None, name: str, k: int) -> float | None:
    if value is None:
        return None
    v = number(value, name, k, "speed")
    if not 0.5 <= v <= 100:
        raise RouteFileError("bad_speed", file=name, k=k, value=v)
    return v


def _mode(mode: str | None, name: str, fld: str, known: dict) -> str:
    if mode is None:
        raise RouteFileError("no_height_mode", file=name, field=fld)
    if mode == FOLLOW:
        raise RouteFileError("unsupported_height_mode", file=name, mode=mode)
    if mode != RELATIVE and mode not in known:
        raise RouteFileError("unknown_height_mode", file=name, mode=mode)
    return mode


def _resolve(mode: str, known: dict, takeoff: float | None, name: str) -> tuple[str, float]:
    """(reference, offset to add to each height) for a height mode."""
    if mode == RELATIVE:
        if takeoff is None:
            raise RouteFileError("relative_needs_takeoff", file=name, mode=mode)
        return "WGS84", takeoff
    return known[mode], 0.0


def read_waylines(root, name: str, takeoff: float | None) -> RouteFile | None:
    """The waypoints of waylines.wpml (every wayline, in order), or None when it has none."""
    folders = [f for f in descendants(root, "Folder") if kids(f, "Placemark")]
    if not folders:
        return None
    modes = [_mode(text(f, "executeHeightMode"), name, "wpml:executeHeightMode", EXECUTE_REFS) for f in folders]
    if len(set(modes)) > 1:
        raise RouteFileError("mixed_height_modes", file=name, modes=", ".join(sorted(set(modes))))
    ref, offset = _resolve(modes[0], EXECUTE_REFS, takeoff, name)
    points: list[RoutePoint] = []
    for folder in folders:
        default_speed = _speed(text(folder, "autoFlightSpeed"), name, len(points))
        for pm in _ordered(kids(folder, "Placemark"), name):
            k = len(points)
            lon, lat = _coords(pm, name, k)
            raw = text(pm, "executeHeight")
            if raw is None:
                raise RouteFileError("no_height", file=name, k=k, field="wpml:executeHeight")
            speed = _speed(text(pm, "waypointSpeed"), name, k)
            points.append(RoutePoint(lon, lat, number(raw, name, k, "wpml:executeHeight") + offset,
                                     speed if speed is not None else default_speed))
    check_count(points, name)
    return RouteFile("wpml", name, tuple(points), ref, f"{name} wpml:executeHeightMode={modes[0]}")


def read_template(root, name: str, takeoff: float | None) -> RouteFile | None:
    """The waypoints of template.kml (waypoint templates), or None when it has none."""
    folders = [f for f in descendants(root, "Folder") if kids(f, "Placemark")]
    if not folders:
        return None
    modes = []
    for f in folders:
        sys_param = kid(f, "waylineCoordinateSysParam")
        modes.append(_mode(text(sys_param, "heightMode") if sys_param is not None else None, name,
                           "wpml:waylineCoordinateSysParam/wpml:heightMode", TEMPLATE_REFS))
    if len(set(modes)) > 1:
        raise RouteFileError("mixed_height_modes", file=name, modes=", ".join(sorted(set(modes))))
    ref, offset = _resolve(modes[0], TEMPLATE_REFS, takeoff, name)
    points: list[RoutePoint] = []
    for folder in folders:
        global_h = text(folder, "globalHeight")
        default_speed = _speed(text(folder, "autoFlightSpeed"), name, len(points))
        for pm in _ordered(kids(folder, "Placemark"), name):
            k = len(points)
            lon, lat = _coords(pm, name, k)
            raw = global_h if text(pm, "useGlobalHeight") == "1" and global_h is not None else text(pm, "height")
            if raw is None:
                raise RouteFileError("no_height", file=name, k=k, field="wpml:height")
            own = _speed(text(pm, "waypointSpeed"), name, k) if text(pm, "useGlobalSpeed") == "0" else None
            points.append(RoutePoint(lon, lat, number(raw, name, k, "wpml:height") + offset,
                                     own if own is not None else default_speed))
    check_count(points, name)
    return RouteFile("wpml", name, tuple(points), ref, f"{name} wpml:heightMode={modes[0]}")


def read_wpml(waylines: bytes | None, template: bytes | None, names: tuple[str, str]) -> RouteFile:
    """A DJI mission from its two files (either may be None): waylines.wpml when it has waypoints, else
    template.kml."""
    w_root = parse_xml(waylines, names[0]) if waylines is not None else None
    t_root = parse_xml(template, names[1]) if template is not None else None
    for root, nm in ((w_root, names[0]), (t_root, names[1])):
        if root is not None and local(root) != "kml":
            raise RouteFileError("not_kml", file=nm, root=local(root))
    takeoff = takeoff_height([r for r in (t_root, w_root) if r is not None], names[1] if t_root is not None
                             else names[0])
    found = read_waylines(w_root, names[0], takeoff) if w_root is not None else None
    if found is None and t_root is not None:
        found = read_template(t_root, names[1], takeoff)
    if found is None:
        raise RouteFileError("no_waypoints", file=names[0] if w_root is not None else names[1])
    return found


def is_wpml(root) -> bool:
    """Whether a KML document is a DJI WPML file (it uses the wpml namespace)."""
    return any(isinstance(el.tag, str) and el.tag.startswith("{http://www.dji.com/wpmz/") for el in root.iter())
