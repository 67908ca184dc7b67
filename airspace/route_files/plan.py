"""From a route file to the waypoints of a clearance request: heights and their reference settled, times
from the file's speeds.

Heights: the file's own; a file without heights (KML clampToGround, 2D coordinates) takes the request's
`alt_m`; some with and some without, or `alt_m` beside the file's heights, is refused. Reference: the one the
file states; the request's `alt_ref` only where the file states none (a different one is refused); else the
format's default (GeoJSON: RFC 7946's ellipsoid), else AGL for heights the request gave.
Times: a request's `speed_mps` times the whole route by departure and that speed; otherwise, when the file
gives speeds, each leg takes its 3D length / the speed of the waypoint it starts from (a waypoint without one
takes the last given), from `departure`; otherwise the request's default speed applies.
"""
from __future__ import annotations

import numpy as np

from ..coords import to_local
from ..vertical import normalize_ref
from .model import PlannedRoute, RouteFile, RouteFileError


def plan_waypoints(rf: RouteFile, *, alt_ref: str | None = None, alt_m: float | None = None,
                   departure: float | None = None, speed_mps: float | None = None) -> PlannedRoute:
    """The waypoints of `rf` for a clearance (see the module docstring); `departure` in epoch seconds
    (needed only to time a route by the file's speeds)."""
    alts = [p.alt for p in rf.points]
    given = [a is not None for a in alts]
    if all(given):
        if alt_m is not None:
            raise RouteFileError("alt_m_conflict", file=rf.file)
    elif any(given):
        raise RouteFileError("partial_heights", file=rf.file)
    elif alt_m is None:
        raise RouteFileError("no_heights", file=rf.file)
    else:
        alts = [float(alt_m)] * len(rf.points)
    asked = normalize_ref(alt_ref) if alt_ref is not None else None
    if rf.alt_ref is not None and asked is not None and asked != rf.alt_ref and all(given):
        raise RouteFileError("alt_ref_conflict", file=rf.file, file_ref=rf.alt_ref, given=asked)
    if rf.alt_ref is not None and all(given):
        ref, source = rf.alt_ref, "file"
    elif asked is not None:
        ref, source = asked, "request"
    elif rf.default_ref is not None and all(given):
        ref, source = rf.default_ref, "RFC 7946" if rf.format == "geojson" else "format"
    else:
        ref, source = "AGL", "request"
    wps = tuple((p.lon, p.lat, float(a)) for p, a in zip(rf.points, alts))
    speeds = [p.speed_mps for p in rf.points]
    if speed_mps is not None or departure is None or not any(s is not None for s in speeds):
        return PlannedRoute(wps, ref, source, None, speed_mps)
    last = next(s for s in speeds if s is not None)
    per_leg = []
    for s in speeds[:-1]:
        last = s if s is not None else last
        per_leg.append(last)
    arr = np.array(wps, float)
    x, y = to_local(arr[:, 0], arr[:, 1], arr[0, 0], arr[0, 1])
    d = np.sqrt(np.diff(x) ** 2 + np.diff(y) ** 2 + np.diff(arr[:, 2]) ** 2)
    t = departure + np.concatenate([[0.0], np.cumsum(d / np.array(per_leg))])
    return PlannedRoute(wps, ref, source, tuple(float(v) for v in t), None)
