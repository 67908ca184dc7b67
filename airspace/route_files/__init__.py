"""Route files operators plan with, read into one shape: DJI WPML/KMZ, KML, GeoJSON, QGC WPL (Mission Planner).

    parse_route_file(data: bytes, fmt: str | None = None, name: str = "route") -> RouteFile
    plan_waypoints(rf, alt_ref=None, alt_m=None, departure=None, speed_mps=None) -> PlannedRoute

Pure: bytes in, data out, no I/O and no clock. One module per format (`wpml`, `kml`, `geojson_route`, `wpl`),
each a `parse(data, name) -> RouteFile`; `fmt` picks one (FORMATS), else `detect` looks at the bytes. Archives
and XML are opened defensively (`safety`: size and entry caps, no DTDs or entities). Every refusal is a
RouteFileError with a code and parameters (the i18n catalogue's `route_file.<code>` says it to people): a
placeholder coordinate, a missing or mixed height mode, a relative height without its take-off point, a polygon
instead of a path, an ambiguous order are refused, never guessed. Heights keep the reference the file states
(RouteFile.alt_ref: AGL, AMSL or WGS84); the clearance check converts them with the vertical model
(airspace.vertical). docs/flight-planning.md has the rules per format.
"""
from __future__ import annotations

from .model import FORMATS, PlannedRoute, RouteFile, RouteFileError, RoutePoint
from .parse import detect, parse_route_file
from .plan import plan_waypoints

__all__ = ["FORMATS", "PlannedRoute", "RouteFile", "RouteFileError", "RoutePoint", "detect", "parse_route_file",
           "plan_waypoints"]
