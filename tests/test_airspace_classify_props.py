"""The fast classification paths (grid index batch, scalar check, band/schedule/class tables, terrain)
held to a naive shapely reference: boundaries, holes, multipolygons, limits, schedule edges."""
from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings, strategies as st
from shapely.geometry import LineString, Point, Polygon, box, mapping

from airspace.schedule import Schedule
from airspace.vertical import VerticalModel
from airspace.zoneindex import ZoneIndex, bits_to_pairs
from airspace.zones import UA_CLASSES, ZoneSet
from bench.airspace_zones import make_positions, make_zones

T0 = 1_795_363_200.0  # 2026-11-23T00:00:00+08:00, a Monday


def naive(zs: ZoneSet, lon, lat, alt, t=None, ua_class=None) -> set[tuple[int, int]]:
    """Reference: every zone, every point, Point.covers (boundary inside), limits inclusive, the
    AGL limits over the ground at that point, the schedule, the UA class."""
    vm = zs.vertical
    out = set()
    for j, z in enumerate(zs):
        for k in range(len(lon)):
            if not z.geometry.covers(Point(lon[k], lat[k])):
                continue
            ground = vm.ground_at(np.array([lon[k]]), np.array([lat[k]]))[0]
            lo, hi = (h + ground if ref == "AGL" else vm.to_amsl(h, ref)
                      for h, ref in ((z.lower_m, z.alt_ref), (z.upper_m, z.upper_ref or z.alt_ref)))
            if not lo <= alt[k] <= hi:
                continue
            if t is not None and z.schedule is not None and not bool(z.schedule.active(t[k])):
                continue
            if not z.applies_to(ua_class):
                continue
            out.add((k, j))
    return out


def naive_horizontal(zs: ZoneSet, lon, lat) -> set[tuple[int, int]]:
    return {(k, j) for j, z in enumerate(zs) for k in range(len(lon))
            if z.geometry.covers(Point(lon[k], lat[k]))}


def q(x: float) -> float:
    return round(x, 4)  # coarse coordinates: shared and collinear edges, points exactly on them


@st.composite
def outlines(draw):
    x = q(draw(st.floats(121.40, 121.48)))
    y = q(draw(st.floats(31.00, 31.06)))
    w = q(draw(st.floats(0.002, 0.03)))
    h = q(draw(st.floats(0.002, 0.03)))
    shape = draw(st.sampled_from(["box", "circle", "hole", "multi", "corridor", "triangle"]))
    if shape == "box":
        return box(x, y, q(x + w), q(y + h))
    if shape == "circle":
        return Point(x, y).buffer(w, quad_segs=draw(st.integers(2, 8)))
    if shape == "hole":
        return Polygon(box(x, y, q(x + w), q(y + h)).exterior.coords,
                       [box(q(x + w / 4), q(y + h / 4), q(x + w / 2), q(y + h / 2)).exterior.coords])
    if shape == "multi":  # two parts, apart or touching at a corner
        gap = draw(st.sampled_from([0.0, 0.001]))
        return shapely.MultiPolygon([box(x, y, q(x + w), q(y + h)),
                                     box(q(x + w + gap), q(y + h), q(x + 2 * w + gap), q(y + 2 * h))])
    if shape == "corridor":
        return LineString([(x, y), (q(x + w), q(y + h)), (q(x + 2 * w), y)]).buffer(w / 6, quad_segs=3)
    return Polygon([(x, y), (q(x + w), y), (x, q(y + h))])


@st.composite
def zone_props(draw, i: int):
    ref = draw(st.sampled_from(["AGL", "AMSL", "WGS84"]))
    lower = draw(st.sampled_from([0, 0, 20, 30, 60]))
    upper = lower + draw(st.sampled_from([10, 30, 60, 90]))
    props = {"id": f"Z{i}", "name": f"zone {i}", "kind": draw(st.sampled_from(["restricted", "corridor", "area",
                                                                                "conditional"])),
             "lower_m": lower, "upper_m": upper, "alt_ref": ref}
    if draw(st.booleans()):
        props["upper_ref"] = draw(st.sampled_from(["AGL", "AMSL"]))
        props["upper_m"] = upper + 40
    if draw(st.integers(0, 2)) == 0:
        a, b = draw(st.integers(0, 23)), draw(st.integers(0, 23))
        days = draw(st.lists(st.sampled_from(["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]), min_size=1,
                             max_size=3, unique=True))
        period = {"windows": [{"days": days, "start": f"{a:02d}:00", "end": f"{b:02d}:30"}]}
        if draw(st.booleans()):
            period["start"] = "2026-11-24T06:00:00+08:00"
        props["schedule"] = {"periods": [period]}
    if draw(st.integers(0, 3)) == 0:
        props["ua_classes"] = draw(st.lists(st.sampled_from(UA_CLASSES), min_size=1, max_size=3, unique=True))
    return props


@st.composite
def zone_sets(draw, terrain: bool = False):
    n = draw(st.integers(1, 7))
    feats = [{"type": "Feature", "properties": draw(zone_props(i)), "geometry": mapping(draw(outlines()))}
             for i in range(n)]
    vm = VerticalModel(ground=(lambda lon, lat: 4.0 + (lon - 121.40) * 900.0)) if terrain else VerticalModel()
    zs = ZoneSet.from_geojson({"type": "FeatureCollection", "features": feats}, vm)
    zs._grid = ZoneIndex(zs, max_cells=draw(st.sampled_from([16, 200, 5000, None])))
    return zs


@st.composite
def probes(draw, zs: ZoneSet):
    """Points anywhere, on vertices, on edge midpoints, on the coarse grid; altitudes at limits;
    times at and next to schedule changes."""
    verts = [tuple(c) for z in zs for c in shapely.get_coordinates(z.geometry)]
    mids = [((a[0] + b[0]) / 2, (a[1] + b[1]) / 2) for a, b in zip(verts, verts[1:])]
    pt = st.one_of(st.tuples(st.floats(121.395, 121.55), st.floats(30.995, 31.10)),
                   st.sampled_from(verts), st.sampled_from(mids),
                   st.tuples(st.floats(121.40, 121.50).map(q), st.floats(31.0, 31.09).map(q)))
    pts = draw(st.lists(pt, min_size=1, max_size=25))
    limits = sorted(set(zs.lower_amsl.tolist() + zs.upper_amsl.tolist()) - {math.inf})
    alt = draw(st.lists(st.one_of(st.floats(-20, 300), st.sampled_from(limits)), min_size=len(pts),
                        max_size=len(pts)))
    edges = [T0]
    for z in zs:
        if z.schedule is not None:
            for a, b in z.schedule.intervals(T0, T0 + 14 * 86400):
                edges += [a, b, a - 1, b - 0.5]
    t = draw(st.lists(st.one_of(st.floats(T0, T0 + 14 * 86400), st.sampled_from(edges), st.just(math.nan)),
                      min_size=len(pts),
                      max_size=len(pts)))
    lon, lat = (np.array(c, dtype=float) for c in zip(*pts))
    return lon, lat, np.array(alt), np.array(t)


def as_set(p, z) -> set[tuple[int, int]]:
    return set(zip(p.tolist(), z.tolist()))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), terrain=st.booleans())
def test_fast_paths_match_naive_reference(data, terrain):
    zs = data.draw(zone_sets(terrain))
    lon, lat, alt, t = data.draw(probes(zs))
    ua = data.draw(st.none() | st.sampled_from(UA_CLASSES))
    expect = naive(zs, lon, lat, alt, t, ua)
    assert as_set(*zs.contains_pairs(lon, lat, alt, t, ua)) == expect
    for k in range(len(lon)):
        assert zs.zones_at(lon[k], lat[k], alt[k], t[k], ua) == sorted(j for i, j in expect if i == k)
    horizontal, inside = zs.classify(lon, lat, alt, t, ua)
    assert as_set(*np.nonzero(horizontal)) == naive_horizontal(zs, lon, lat)
    assert as_set(*np.nonzero(inside)) == expect
    # without a time: schedules ignored
    assert as_set(*zs.contains_pairs(lon, lat, alt)) == naive(zs, lon, lat, alt)


def test_synthetic_500_zones_match_reference():
    zs = make_zones(500, seed=3)
    lon, lat, alt, t = make_positions(1500, seed=5)
    expect = set()
    active = zs.active_mask(t)
    for j, z in enumerate(zs):
        hit = (shapely.intersects_xy(z.geometry, lon, lat) & (alt >= zs.lower_amsl[j]) & (alt <= zs.upper_amsl[j])
               & active[:, j])
        expect.update((int(k), j) for k in np.flatnonzero(hit))
    p, z = zs.contains_pairs(lon, lat, alt, t)
    assert as_set(p, z) == expect
    assert np.all(np.diff(p * len(zs) + z) > 0)  # sorted by point, then zone
    for k in range(200):
        assert zs.zones_at(lon[k], lat[k], alt[k], t[k]) == sorted(j for i, j in expect if i == k)
    horizontal = np.bincount(zs.index.pairs(lon, lat)[0], minlength=lon.size).mean()
    assert 8 <= horizontal <= 14  # the benchmark's "~11 zones over each point"


def test_points_outside_the_grid_and_bad_values():
    zs = make_zones(20, seed=1)
    lon = np.array([0.0, 121.5, np.nan, 121.5])
    lat = np.array([0.0, 89.0, 31.05, 31.05])
    alt = np.array([50.0, 50.0, 50.0, np.nan])
    p, z = zs.contains_pairs(lon, lat, alt, np.full(4, T0))
    assert p.size == 0
    assert zs.zones_at(0.0, 0.0, 10.0) == [] and zs.zones_at(121.5, 31.05, math.nan) == []
    with pytest.raises(ValueError, match="UA class"):
        zs.contains_pairs(lon, lat, alt, ua_class="huge")
    with pytest.raises(ValueError, match="lengths differ"):
        zs.contains_pairs([1.0], [1.0, 2.0], [3.0])


def test_empty_zone_set():
    zs = ZoneSet([])
    p, z = zs.contains_pairs([121.5], [31.0], [10.0], T0)
    assert p.size == 0 and zs.zones_at(121.5, 31.0, 10.0, T0) == []
    h, i = zs.classify([121.5], [31.0], [10.0])
    assert h.shape == (1, 0)


@given(st.lists(st.lists(st.integers(0, 129), max_size=8, unique=True), min_size=1, max_size=6))
def test_bits_to_pairs_lists_every_set_bit_in_order(rows):
    bits = np.zeros((len(rows), 3), dtype=np.uint64)
    for r, idx in enumerate(rows):
        for j in idx:
            bits[r, j >> 6] |= np.uint64(1) << np.uint64(j & 63)
    p, z = bits_to_pairs(bits)
    assert list(zip(p.tolist(), z.tolist())) == [(r, j) for r, idx in enumerate(rows) for j in sorted(idx)]


def test_active_mask_follows_schedules_and_ceiling_rule():
    zs = make_zones(60, seed=2)
    t = T0 + np.arange(0, 7 * 86400, 1800.0)
    mask = zs.active_mask(t)
    for j, z in enumerate(zs):
        expect = np.ones(t.size, bool) if z.schedule is None else z.schedule.active(t)
        assert (mask[:, j] == expect).all()
    assert any(isinstance(z.schedule, Schedule) for z in zs)
    vm = VerticalModel()
    assert vm.ceiling_amsl() == 124.0 and not vm.above_ceiling(124.0) and vm.above_ceiling(124.01)
    assert VerticalModel(ceiling_agl_m=None).above_ceiling(10_000.0) == np.False_
    hilly = VerticalModel(ground=lambda lon, lat: np.asarray(lon) * 0 + 50.0)
    assert hilly.ceiling_amsl([121.5], [31.0]).tolist() == [170.0]


@pytest.mark.parametrize("max_cells", [300, None])
def test_points_hugging_boundaries_match_reference(max_cells):
    """Edge points and points 1e-9..1e-4 degrees off them: where the cell and subcell tables hand
    over to the exact test."""
    zs = make_zones(40, seed=9)
    zs._grid = ZoneIndex(zs, max_cells=max_cells)
    rng = np.random.default_rng(0)
    pts = []
    for z in zs:
        c = shapely.get_coordinates(z.geometry)
        pick = rng.choice(len(c) - 1, size=6, replace=False)
        for i in pick:
            a, b = c[i], c[i + 1]
            for f in (0.0, 0.5, rng.random()):
                m = a + (b - a) * f
                for off in (0.0, 1e-9, -1e-9, 1e-6, -1e-6, 1e-4, -1e-4):
                    pts.append((m[0] + off, m[1] - off))
    lon, lat = np.array(pts).T
    alt = np.full(lon.size, 60.0)
    expect = {(k, j) for j, z in enumerate(zs) for k in np.flatnonzero(
        shapely.covers(z.geometry, shapely.points(lon, lat)) & (zs.lower_amsl[j] <= 60.0) & (60.0 <= zs.upper_amsl[j]))}
    assert as_set(*zs.contains_pairs(lon, lat, alt)) == {(int(k), j) for k, j in expect}
    for k in range(0, lon.size, 7):
        assert zs.zones_at(lon[k], lat[k], 60.0) == sorted(j for i, j in expect if i == k)
