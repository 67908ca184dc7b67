"""The demo fleet: composition, placement and determinism."""
from __future__ import annotations

from collections import Counter

import pytest
from shapely.geometry import Point, shape

from devices.fleet import SENSOR_KINDS, corridors, make_fleet, stray_target
from devices.geo import distance_m
from protocol import topics


@pytest.fixture(scope="module")
def zones(zones_geojson) -> dict:
    return zones_geojson


def _feature(zones: dict, fid: str) -> dict:
    return next(f for f in zones["features"] if f["properties"]["id"] == fid)


def test_counts_and_unique_valid_ids(zones):
    drones, sensors = make_fleet(zones, 24, 30, seed=7)
    assert len(drones) == 24 and len(sensors) == 30
    ids = [d.uav_id for d in drones] + [s.sensor_id for s in sensors]
    assert len(set(ids)) == len(ids)
    assert all(topics.valid_id(i) for i in ids)


def test_drones_spread_over_all_corridors(zones):
    drones, _ = make_fleet(zones, 12, 0, seed=1)
    per_corridor = Counter(d.corridor_id for d in drones)
    assert set(per_corridor) == {"C1", "C2", "C3"}
    assert max(per_corridor.values()) - min(per_corridor.values()) <= 1


def test_about_one_in_six_misbehaves(zones):
    drones, _ = make_fleet(zones, 60, 0, seed=3)
    kinds = Counter(d.behaviour for d in drones)
    assert kinds["stray_no_fly"] == 10 and kinds["climb_above_band"] == 10
    assert kinds["nominal"] == 40


@pytest.mark.parametrize("n", [3, 6, 12])
def test_small_fleets_still_show_each_behaviour(zones, n):
    drones, _ = make_fleet(zones, n, 0, seed=11)
    assert {d.behaviour for d in drones} >= {"stray_no_fly", "climb_above_band", "nominal"}


def test_misbehaviour_parameters(zones):
    drones, _ = make_fleet(zones, 30, 0, seed=5)
    for d in drones:
        if d.behaviour == "climb_above_band":
            assert d.excursion_alt_m is not None and d.excursion_alt_m > max(d.upper_m, 120.0)
        elif d.behaviour == "stray_no_fly":
            zone = _feature(zones, d.stray_zone_id)
            assert zone["properties"]["kind"] == "restricted"
            assert shape(zone["geometry"]).contains(Point(d.stray_target))
        else:
            assert d.excursion_alt_m is None and d.stray_target is None
        assert 10.0 <= d.speed_mps <= 20.0


@pytest.mark.parametrize("corridor_id", ["C2", "C3"])
def test_strays_of_the_southern_corridors_target_the_bridge_circle(zones, corridor_id):
    c = next(c for c in corridors(zones) if c.corridor_id == corridor_id)
    zone_id, target = stray_target(zones, c)
    assert zone_id == "R-BR-MP"
    assert distance_m(target, (121.4885, 31.044)) < 1.0


def test_sensor_kinds_intervals_and_places(zones):
    _, sensors = make_fleet(zones, 0, 40, seed=2)
    assert {s.kind for s in sensors} == set(SENSOR_KINDS)
    assert {s.category for s in sensors} == {"traffic", "energy", "municipal", "environment", "weather"}
    expected = {"traffic": 30.0, "air_quality": 60.0, "wind": 10.0, "energy": 15.0, "water_level": 60.0,
                "noise": 60.0, "manhole": 300.0, "streetlight": 120.0, "rain": 60.0}
    area = shape(_feature(zones, "PWZ")["geometry"])
    vertiports = [tuple(f["properties"]["center"]) for f in zones["features"]
                  if f["properties"]["kind"] == "vertiport"]
    for s in sensors:
        assert s.interval_s == expected[s.kind]
        assert area.contains(Point(s.lon, s.lat)), s.sensor_id
        if s.kind == "wind" and "vertiport_id" in s.properties:
            assert min(distance_m((s.lon, s.lat), v) for v in vertiports) < 250.0
    units = {name: unit for s in sensors for name, (unit, *_rest) in s.metrics.items()}
    assert units == {"pm2_5": "ug/m3", "pm10": "ug/m3", "no2": "ug/m3", "wind_speed": "m/s",
                     "wind_gust": "m/s", "wind_dir": "deg", "vehicle_count": "count", "avg_speed": "km/h",
                     "power": units["power"], "energy": "kWh", "water_level": "m", "noise_laeq": "dB",
                     "cover_open": "", "tilt_deg": "deg", "lamp_on": "", "dimming": "%", "rain_rate": "mm/h"}


@pytest.mark.parametrize("n", [1, 19, 30])
def test_corridor_wind_masts_have_stable_ids_on_their_corridor(zones, n):
    """The sensor-driven airspace rule binds to W-C1..W-C3: the same ids and places for every seed and size."""
    for seed in (1, 2):
        _, sensors = make_fleet(zones, 0, n, seed=seed)
        masts = {s.sensor_id: s for s in sensors if s.sensor_id.startswith("W-")}
        assert list(masts) == ["W-C1", "W-C2", "W-C3"][:min(3, 1 + (n - 1) // len(SENSOR_KINDS))]
        for sid, s in masts.items():
            c = next(c for c in corridors(zones) if c.corridor_id == sid[2:])
            assert s.kind == "wind" and s.properties == {"corridor_id": c.corridor_id}
            assert shape(_feature(zones, c.corridor_id)["geometry"]).contains(Point(s.lon, s.lat))
            assert "wind_gust" in s.episodes


def test_rate_scale_shortens_intervals(zones):
    _, normal = make_fleet(zones, 0, 10, seed=2)
    _, fast = make_fleet(zones, 0, 10, seed=2, rate_scale=10.0)
    assert [s.interval_s / 10.0 for s in normal] == pytest.approx([s.interval_s for s in fast])
    with pytest.raises(ValueError):
        make_fleet(zones, 0, 10, seed=2, rate_scale=0)


def test_deterministic_with_seed(zones):
    assert make_fleet(zones, 18, 20, seed=42) == make_fleet(zones, 18, 20, seed=42)
    assert make_fleet(zones, 18, 20, seed=42) != make_fleet(zones, 18, 20, seed=43)
