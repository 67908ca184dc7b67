"""The shape every route-file parser returns, and the error they raise."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("kmz", "wpml", "kml", "geojson", "wpl")
MAX_FILE_BYTES = 1 << 20  # what the API accepts as a request body
MAX_POINTS = 200  # a clearance's waypoint limit (api.models.MAX_WAYPOINTS)


class RouteFileError(ValueError):
    """A route file refused: `code` (the catalogue's `route_file.<code>`) and its parameters."""

    def __init__(self, code: str, **params: Any):
        self.code, self.params = code, params
        super().__init__(f"{code}: " + ", ".join(f"{k}={v!r}" for k, v in params.items()))


@dataclass(frozen=True)
class RoutePoint:
    lon: float
    lat: float
    alt: float | None = None  # metres in RouteFile.alt_ref; None: the file gives no height
    speed_mps: float | None = None  # ground speed from this waypoint to the next; None: not given


@dataclass(frozen=True)
class RouteFile:
    format: str  # one of FORMATS
    file: str  # the file (or archive member) the waypoints were read from
    points: tuple[RoutePoint, ...]
    alt_ref: str | None  # the heights' reference as the file states it; None: not stated
    height_source: str = ""  # where the reference comes from, e.g. "waylines.wpml executeHeightMode=WGS84"
    default_ref: str | None = None  # what the format's specification assumes when the file says nothing
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> dict:
        return {"format": self.format, "file": self.file, "waypoints": len(self.points), "alt_ref": self.alt_ref,
                "height_source": self.height_source,
                "speeds": sorted({p.speed_mps for p in self.points if p.speed_mps is not None})}


@dataclass(frozen=True)
class PlannedRoute:
    """Waypoints ready for a clearance request: (lon, lat, alt) in `alt_ref`, timed (t epoch seconds) when the
    file gave speeds, else to be timed by departure and `speed_mps`."""

    waypoints: tuple[tuple[float, float, float], ...]
    alt_ref: str
    alt_ref_from: str  # "file", "request", or the specification's default ("RFC 7946")
    times: tuple[float, ...] | None
    speed_mps: float | None


def number(text: Any, file: str, k: int, fld: str) -> float:
    """A finite float from an XML text or JSON value, else RouteFileError(bad_number)."""
    try:
        if isinstance(text, bool):
            raise ValueError
        v = float(text.strip() if isinstance(text, str) else text)
    except (TypeError, ValueError):
        raise RouteFileError("bad_number", file=file, k=k, field=fld, text=str(text)[:60]) from None
    if not math.isfinite(v):
        raise RouteFileError("bad_number", file=file, k=k, field=fld, text=str(text)[:60])
    return v


def position(lon: float, lat: float, file: str, k: int) -> tuple[float, float]:
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise RouteFileError("bad_position", file=file, k=k, lon=lon, lat=lat)
    return lon, lat


def check_geometry(lines: int, points: int, polygons: int, file: str) -> None:
    """A route file's geometry is one line or a set of points (KML, GeoJSON): how many of each it holds."""
    if lines > 1:
        raise RouteFileError("several_lines", file=file, n=lines)
    if lines and points:
        raise RouteFileError("mixed_geometry", file=file)
    if not lines and not points:
        raise RouteFileError("polygon" if polygons else "no_waypoints", file=file)


def check_count(points: list, file: str) -> None:
    if not points:
        raise RouteFileError("no_waypoints", file=file)
    if len(points) < 2:
        raise RouteFileError("too_few", file=file, n=len(points))
    if len(points) > MAX_POINTS:
        raise RouteFileError("too_many", file=file, n=len(points), limit=MAX_POINTS)
