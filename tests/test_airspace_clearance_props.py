"""Route clearance held to a naive shapely reference; suggestions that clear when resubmitted;
the exact 4D separation test held to brute-force sampling."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import shapely
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, mapping

from airspace import ApprovedClearance, ApprovedIndex, SeparationMinima, Waypoint, ZoneSet, check_route
from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon
from airspace.segments import band_interval, line_pieces
from airspace.separation import closest_approach
from bench.airspace_zones import make_zone_features

T0 = datetime(2026, 11, 27, 0, 58, tzinfo=timezone.utc)  # 08:58 Shanghai, Friday


def _zones() -> ZoneSet:
    c = Point(121.47, 31.04)
    donut = c.buffer(0.004).difference(c.buffer(0.0015))
    multi = shapely.MultiPolygon([Point(121.50, 31.06).buffer(0.002), Point(121.506, 31.06).buffer(0.002)])
    sched = {"tz": "Asia/Shanghai", "periods": [{"windows": [{"days": ["FRI"], "start": "09:00", "end": "09:03"}]}]}
    extra = [{"type": "Feature", "properties": {"id": "DONUT", "name": "donut", "kind": "restricted", "lower_m": 0,
                                                "upper_m": 90, "alt_ref": "AGL"}, "geometry": mapping(donut)},
             {"type": "Feature", "properties": {"id": "TFR", "name": "scheduled islands", "kind": "restricted",
                                                "lower_m": 20, "upper_m": 300, "alt_ref": "AGL", "schedule": sched},
              "geometry": mapping(multi)}]
    return ZoneSet.from_geojson({"type": "FeatureCollection", "features": make_zone_features(30, 11) + extra})


ZONES = _zones()
NO_AREA = ZoneSet([z for z in ZONES if z.kind != "area"])  # outside an area no suggestion can help
ANCHORS = [tuple(shapely.get_coordinates(z.geometry)[k]) for z in ZONES for k in (0, 7)]
CEILING = ("corridor", "area")


def reference(zs: ZoneSet, lon, lat, alt, t) -> set:
    """(code, zone_id, segment) of every restricted / ceiling / outside-area reason, the slow way."""
    out = set()
    ceiling_amsl = zs.vertical.to_amsl(zs.vertical.ceiling_agl_m, "AGL")
    areas = [j for j, z in enumerate(zs) if z.kind == "area"]
    for k in range(len(lon) - 1):
        covered, in_area = [], []
        for j, z in enumerate(zs):
            pieces = line_pieces(z.geometry, lon[k], lat[k], lon[k + 1], lat[k + 1])

            def in_force(a, b, z=z, k=k):
                if z.schedule is None:
                    return True
                ta, tb = t[k] + (t[k + 1] - t[k]) * a, t[k] + (t[k + 1] - t[k]) * b
                return bool(z.schedule.intervals(ta, tb)) if tb > ta else bool(z.schedule.active(ta))

            if z.kind in CEILING:
                covered += [q for a, b in pieces for q in _in_force_parts(z, t[k], t[k + 1], a, b)]
            if j in areas:
                in_area += pieces
            for s0, s1 in pieces:
                iv = band_interval(alt[k], alt[k + 1], zs.lower_amsl[j], zs.upper_amsl[j], s0, s1)
                if z.restriction == "PROHIBITED" and iv is not None and in_force(*iv):
                    out.add(("restricted_zone", z.id, k))
                if z.kind in CEILING:
                    above = _above(alt[k], alt[k + 1], zs.upper_amsl[j], s0, s1)
                    if above is not None and in_force(*above):
                        out.add(("above_ceiling", z.id, k))
        for a, b in _gaps(covered):
            if _above(alt[k], alt[k + 1], ceiling_amsl, a, b) is not None:
                out.add(("above_ceiling", None, k))
        if areas and _gaps(in_area):
            out.add(("outside_area", zs.zones[areas[0]].id if len(areas) == 1 else None, k))
    return out


def _in_force_parts(z, t0, t1, a, b):
    """The parts of [a, b] (segment parameters, time linear from t0 to t1) when z is in force."""
    if z.schedule is None:
        return [(a, b)]
    ta, tb = t0 + (t1 - t0) * a, t0 + (t1 - t0) * b
    if tb == ta:
        return [(a, b)] if z.schedule.active(ta) else []
    return [(a + (b - a) * (x - ta) / (tb - ta), a + (b - a) * (y - ta) / (tb - ta))
            for x, y in z.schedule.intervals(ta, tb)]


def _above(a0, a1, level, s0, s1):
    if a1 == a0:
        return (s0, s1) if a0 > level else None
    u = (level - a0) / (a1 - a0)
    lo, hi = (max(s0, u), s1) if a1 > a0 else (s0, min(s1, u))
    if lo > hi or (lo == hi and a0 + (a1 - a0) * lo <= level):
        return None
    return lo, hi


def _gaps(pieces):
    cur, out = 0.0, []
    for a, b in sorted(pieces):
        if a > cur:
            out.append((cur, a))
        cur = max(cur, b)
    if cur < 1.0:
        out.append((cur, 1.0))
    return out


def expanded(result) -> set:
    out = set()
    for r in result.reasons:
        if r["code"] in ("restricted_zone", "above_ceiling", "outside_area"):
            k0, k1 = r.get("segments", [r["segment"]] * 2)
            out |= {(r["code"], r["zone_id"], k) for k in range(k0, k1 + 1)}
    return out


@st.composite
def routes(draw):
    n = draw(st.integers(2, 8))
    lon, lat = draw(st.sampled_from(ANCHORS))
    pts = []
    for _ in range(n):
        pts.append((lon, lat))
        step = draw(st.sampled_from([30.0, 150.0, 600.0]))
        ang = draw(st.floats(0, 2 * np.pi))
        lon += step * np.cos(ang) / m_per_deg_lon(lat)
        lat += step * np.sin(ang) / M_PER_DEG_LAT
    alts = [draw(st.sampled_from([10.0, 25.0, 60.0, 90.0, 119.0, 121.0, 150.0, 250.0])) for _ in range(n)]
    dep = T0 + timedelta(seconds=draw(st.integers(0, 300)))
    return [Waypoint(x, y, a) for (x, y), a in zip(pts, alts)], dep


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routes())
def test_reasons_match_the_naive_reference(route):
    waypoints, dep = route
    result = check_route(ZONES, waypoints, departure=dep, speed_mps=12.0, suggest=False)
    t = [p["epoch"] for p in result.route]
    lon = [w.lon for w in waypoints]
    lat = [w.lat for w in waypoints]
    alt = [ZONES.vertical.to_amsl(w.alt_m, "AGL") for w in waypoints]
    assert expanded(result) == reference(ZONES, lon, lat, alt, t)
    assert result.approved == (not result.reasons)


def test_a_waypoint_on_a_corridor_edge_leaves_no_sliver_above_the_true_height_ceiling():
    """Found by the test above (seed 12): a climb to 121 m ending on a zone's edge gave a zero-length gap in the
    ceiling bands at the segment's end, and so an above_ceiling reason the reference does not see."""
    pts = [(121.44068319135442, 31.00445773371433, 10.0), (121.43806633815987, 31.009375513199593, 121.0),
           (121.43838076902458, 31.009375513199593, 10.0), (121.43869519988928, 31.009375513199593, 10.0)]
    waypoints = [Waypoint(x, y, a) for x, y, a in pts]
    result = check_route(ZONES, waypoints, departure=datetime(2026, 11, 27, 0, 58, tzinfo=timezone.utc),
                         speed_mps=12.0, suggest=False)
    alt = [ZONES.vertical.to_amsl(a, "AGL") for _, _, a in pts]
    ref = reference(ZONES, [p[0] for p in pts], [p[1] for p in pts], alt, [p["epoch"] for p in result.route])
    assert expanded(result) == ref


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(routes(), st.integers(0, 3))
def test_every_suggestion_is_approved_when_resubmitted(route, n_approved):
    waypoints, dep = route
    others = []
    for k in range(n_approved):  # earlier approved flights along parts of the same path
        shifted = check_route(NO_AREA, [Waypoint(w.lon, w.lat, 60.0) for w in waypoints],
                              departure=dep + timedelta(seconds=40 * k - 40), speed_mps=10.0, suggest=False)
        pts = shifted.route  # approved earlier, whatever it crosses: only its 4D track matters here
        others.append(ApprovedClearance(f"O{k}", f"V{k}", tuple(p["lon"] for p in pts), tuple(p["lat"] for p in pts),
                                        tuple(p["alt_amsl"] for p in pts), tuple(p["epoch"] for p in pts)))
    index = ApprovedIndex(others)
    result = check_route(NO_AREA, waypoints, departure=dep, speed_mps=12.0, approved=index)
    assume(not result.approved)
    for sug in result.suggestions:
        again = [Waypoint(w["lon"], w["lat"], w["alt_m"], datetime.fromisoformat(w["t"].replace("Z", "+00:00")))
                 for w in sug["waypoints"]]
        res = check_route(NO_AREA, again, approved=index, suggest=False)
        assert res.approved, (sug["kind"], res.reasons)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(-300, 300), min_size=8, max_size=8), st.lists(st.floats(-6, 6), min_size=4, max_size=4),
       st.floats(10, 120), st.floats(10, 120), st.floats(-100, 100), st.floats(-40, 40), st.floats(-2, 2),
       st.floats(-2, 2))
def test_closest_approach_is_exact_against_sampling(xy, v, da, db, dt, dz, wa, wb):
    m = SeparationMinima(horizontal_m=80.0, vertical_m=25.0, time_s=30.0)
    pa, pb = np.array([xy[:2]]), np.array([xy[2:4]])
    va, vb = np.array([v[:2]]), np.array([v[2:]])
    f, u, w = closest_approach(pa, va, np.array([50.0]), np.array([wa]), np.array([0.0]), np.array([da]),
                               pb, vb, np.array([50.0 + dz]), np.array([wb]), np.array([dt]), np.array([db]), m)
    # brute force over a fine (u, w) grid
    U = np.linspace(0, da, 241)[:, None]
    Wg = np.linspace(0, db, 241)[None, :]
    ok = (np.abs(U - (dt + Wg)) <= m.time_s) & (np.abs(50 + wa * U - (50 + dz + wb * Wg)) <= m.vertical_m)
    d2 = (pa[0, 0] + va[0, 0] * U - pb[0, 0] - vb[0, 0] * Wg) ** 2 + (pa[0, 1] + va[0, 1] * U - pb[0, 1] - vb[0, 1] * Wg) ** 2
    sampled = np.where(ok, d2, np.inf).min()
    assert f[0] <= sampled + 1e-6  # never misses a closer feasible approach
    if np.isfinite(f[0]):  # and what it reports is feasible (to the solver's 1e-7 relative slack) and real
        tol = 1e-7 * (1 + max(abs(da), abs(db), abs(dt) + m.time_s, abs(dz) + m.vertical_m)) * 2
        assert -tol <= u[0] <= da + tol and -tol <= w[0] <= db + tol
        assert abs(u[0] - (dt + w[0])) <= m.time_s + tol
        assert abs(wa * u[0] - dz - wb * w[0]) <= m.vertical_m + tol
        d = pa[0] + va[0] * u[0] - pb[0] - vb[0] * w[0]
        assert abs(float(d @ d) - f[0]) <= 1e-6 * (1 + f[0])


def test_pieces_along_edges_and_through_vertices_match_geos():
    """Routes that run along zone edges, start on vertices and pass exactly through them."""
    from airspace.route import plan
    from airspace.route_pieces import outline_pieces, route_index
    ix = route_index(ZONES)
    checked = 0
    for z in list(ZONES)[:12]:
        xy = shapely.get_coordinates(z.geometry)
        for k in (0, 3, 9):
            a, b = xy[k], xy[k + 1]
            ext = b + (b - a) * 0.5                                  # past the vertex b, on the edge's line
            through = (2 * b - xy[k + 2] * 1.0)                      # across vertex b
            for pts in ([a, b, ext], [a, b, through], [b, b + (a - b) * 0.3]):
                wps = [Waypoint(float(p[0]), float(p[1]), 50.0) for p in pts]
                r = plan(ZONES, wps, "AGL", None, None)
                seg, zone, s0, s1 = outline_pieces(ZONES, ix, r, None)
                got = sorted((int(q), int(j), round(a_, 9), round(b_, 9)) for q, j, a_, b_ in zip(seg, zone, s0, s1))
                want = sorted((q, j, round(p0, 9), round(p1, 9)) for q in range(len(pts) - 1)
                              for j, zz in enumerate(ZONES)
                              for p0, p1 in line_pieces(zz.geometry, *pts[q], *pts[q + 1]))
                assert got == want
                checked += 1
    assert checked == 108


@st.composite
def two_flights(draw):
    base_lon, base_lat = 121.50, 31.05
    def flight():
        n = draw(st.integers(2, 6))
        pts = [(base_lon + draw(st.floats(-0.01, 0.01)), base_lat + draw(st.floats(-0.01, 0.01)),
                draw(st.sampled_from([40.0, 50.0, 60.0, 90.0]))) for _ in range(n)]
        t0 = draw(st.floats(0, 600))
        speed = draw(st.floats(5, 25))
        return pts, t0, speed
    return flight(), flight()


def _track(zs, pts, t0, speed):
    res = check_route(zs, [Waypoint(x, y, a) for x, y, a in pts], departure=T0 + timedelta(seconds=t0),
                      speed_mps=speed, suggest=False)
    return res


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(two_flights())
def test_deconfliction_never_misses_a_sampled_conflict(flights):
    (pa, ta, sa), (pb, tb, sb) = flights
    empty = ZoneSet([])
    try:
        a = _track(empty, pa, ta, sa)
        b = _track(empty, pb, tb, sb)
    except ValueError:  # repeated waypoints
        assume(False)
    other = ApprovedClearance("B", "UB", *(tuple(p[k] for p in b.route) for k in ("lon", "lat", "alt_amsl", "epoch")))
    m = SeparationMinima()
    got = check_route(empty, [Waypoint(p["lon"], p["lat"], p["alt_m"], p["epoch"]) for p in a.route],
                      approved=ApprovedIndex([other]), minima=m, suggest=False)
    flagged = any(x["code"] == "separation_conflict" for x in got.reasons)

    def sample(route, step=0.5):
        t = np.array([p["epoch"] for p in route])
        ts = np.arange(t[0], t[-1], step)
        return ts, *(np.interp(ts, t, [p[k] for p in route]) for k in ("lon", "lat", "alt_amsl"))
    t1, x1, y1, z1 = sample(a.route)
    t2, x2, y2, z2 = sample(b.route)
    dt = np.abs(t1[:, None] - t2[None, :]) <= m.time_s
    dz = np.abs(z1[:, None] - z2[None, :]) <= m.vertical_m
    dx = (x1[:, None] - x2[None, :]) * m_per_deg_lon(float(y1.mean()))
    dy = (y1[:, None] - y2[None, :]) * M_PER_DEG_LAT
    close = dx * dx + dy * dy <= (m.horizontal_m * 0.995) ** 2  # (a margin for the frame's rounding)
    if (dt & dz & close).any():
        assert flagged
