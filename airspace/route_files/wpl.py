"""QGroundControl / Mission Planner plain-text missions ("QGC WPL 110"): one item per line, tab-separated
index, current, frame, command, param1-4, latitude, longitude, altitude, autocontinue.

Item 0 is the home position. Navigation items with a position (waypoint, spline waypoint, loiters, take-off,
land) become waypoints, others are skipped except DO_CHANGE_SPEED (its param2 is the ground speed from then
on). Heights by MAVLink frame: 0/5 global (mean sea level) -> AMSL; 3/6 relative to home -> AMSL = home
altitude + altitude; 10/11 above terrain -> AGL. Different frames among the waypoints are refused.
"""
from __future__ import annotations

from .model import RouteFile, RouteFileError, RoutePoint, check_count, number, position

NAV_WITH_POSITION = {16, 17, 18, 19, 21, 22, 82}
CHANGE_SPEED = 178
FRAMES = {0: "global", 5: "global", 3: "relative", 6: "relative", 10: "terrain", 11: "terrain"}


def is_wpl(data: bytes) -> bool:
    return data.lstrip()[:8].upper() == b"QGC WPL "


def read_wpl(data: bytes, name: str) -> RouteFile:
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise RouteFileError("encoding", file=name) from None
    home_alt, frames, raw, speed = None, set(), [], None
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) != 12:
            raise RouteFileError("wpl_line", file=name, line=n)
        k = len(raw)
        index, frame, command = (int(number(f[i], name, k, fld)) for i, fld in ((0, "index"), (2, "frame"),
                                                                               (3, "command")))
        lat, lon, alt = (number(f[i], name, k, fld) for i, fld in ((8, "latitude"), (9, "longitude"),
                                                                  (10, "altitude")))
        if index == 0:
            home_alt = alt
            continue
        if command == CHANGE_SPEED:
            s = number(f[5], name, k, "speed")
            if s > 0:
                if not 0.5 <= s <= 100:
                    raise RouteFileError("bad_speed", file=name, k=k, value=s)
                speed = s
            continue
        if command not in NAV_WITH_POSITION or (lat == 0 and lon == 0):
            continue
        if frame not in FRAMES:
            raise RouteFileError("wpl_frame", file=name, line=n, frame=frame)
        frames.add(FRAMES[frame])
        lon, lat = position(lon, lat, name, k)
        raw.append((lon, lat, alt, speed))
    check_count(raw, name)
    if len(frames) > 1:
        raise RouteFileError("mixed_frames", file=name, modes=", ".join(sorted(frames)))
    frame = frames.pop()
    offset = 0.0
    if frame == "relative":
        if home_alt is None:
            raise RouteFileError("wpl_no_home", file=name)
        offset = home_alt
    ref = "AGL" if frame == "terrain" else "AMSL"
    return RouteFile("wpl", name, tuple(RoutePoint(lon, lat, alt + offset, s) for lon, lat, alt, s in raw), ref,
                     f"{name} MAVLink frame {frame}")
