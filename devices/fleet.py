"""The demonstration fleet: which drones fly which corridor, and which sensors stand where.

Everything is derived from the zone file and a seed, so a demo, a benchmark and a test that
use the same seed see the same fleet, and the misbehaving drones (strays into a restricted
zone, climbs above the band) are there on purpose to exercise the airspace monitor.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from shapely.geometry import LineString, Point, Polygon

from .geo import LocalFrame, LonLat

Behaviour = Literal["nominal", "stray_no_fly", "climb_above_band"]
BEHAVIOURS: tuple[Behaviour, ...] = ("nominal", "stray_no_fly", "climb_above_band")

SensorKind = Literal["wind", "traffic", "air_quality", "energy", "water_level", "noise", "manhole",
                     "streetlight", "rain"]
# Cycle order of make_sensors: wind first, so even a small fleet has the corridor masts (W-C1, W-C2, ...).
SENSOR_KINDS: tuple[SensorKind, ...] = ("wind", "traffic", "air_quality", "energy", "water_level", "noise",
                                        "manhole", "streetlight", "rain")
# The families of the urban sensing network (measure 18), stored as the device's category.
CATEGORY: dict[SensorKind, str] = {
    "traffic": "traffic", "energy": "energy", "water_level": "municipal", "manhole": "municipal",
    "streetlight": "municipal", "air_quality": "environment", "noise": "environment", "wind": "weather",
    "rain": "weather",
}

# metric name -> (SenML unit, base, amplitude, noise standard deviation); unit "" = no unit (booleans)
Metric = tuple[str, float, float, float]


@dataclass(frozen=True, slots=True)
class Episode:
    """Occasional excursions of one metric (gusts, smog, downpours): in each `every_s` window of sensor time
    one starts with probability `probability`, lasts `duration_s` and lifts the value to `peak` (a range)."""

    every_s: float
    probability: float
    duration_s: tuple[float, float]
    peak: tuple[float, float]


DEFAULT_CEILING_M = 120.0


@dataclass(frozen=True, slots=True)
class Corridor:
    """What the simulator needs of a corridor feature."""

    corridor_id: str
    centerline: tuple[LonLat, ...]
    lower_m: float
    upper_m: float
    from_vertiport: str
    to_vertiport: str


@dataclass(frozen=True, slots=True)
class DroneSpec:
    """One simulated drone. Frozen and hashable so flight plans can be cached per spec."""

    uav_id: str
    corridor_id: str
    behaviour: Behaviour
    speed_mps: float
    phase_s: float  # offset into the flight cycle so the fleet does not move in lockstep
    centerline: tuple[LonLat, ...]
    lower_m: float
    upper_m: float
    excursion_alt_m: float | None = None  # climb_above_band: the altitude it climbs to
    stray_zone_id: str | None = None  # stray_no_fly: the restricted zone it flies into
    stray_target: LonLat | None = None  # stray_no_fly: a point inside that zone

    @property
    def cruise_alt_m(self) -> float:
        return (self.lower_m + self.upper_m) / 2.0


@dataclass(frozen=True)
class SensorSpec:
    """One simulated urban sensor and the shape of its signals."""

    sensor_id: str
    kind: SensorKind
    lon: float
    lat: float
    interval_s: float
    metrics: dict[str, Metric]
    period_s: float = 900.0  # period of the slow variation around `base`
    phase: float = 0.0  # radians, from the seed, so sensors of one kind differ
    episodes: dict[str, Episode] = field(default_factory=dict)  # metric -> occasional excursions
    properties: dict[str, Any] = field(default_factory=dict)  # registry extras, e.g. the corridor a mast is on

    @property
    def category(self) -> str:
        return CATEGORY[self.kind]


def _features(zones: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    feats = [f for f in zones.get("features", []) if f.get("properties", {}).get("kind") == kind]
    return sorted(feats, key=lambda f: str(f["properties"].get("id", f.get("id"))))


def _fid(feature: dict[str, Any]) -> str:
    return str(feature["properties"].get("id", feature.get("id")))


def corridors(zones: dict[str, Any]) -> list[Corridor]:
    """The corridors of a zone file, in id order."""
    out = []
    for f in _features(zones, "corridor"):
        p = f["properties"]
        out.append(Corridor(
            corridor_id=_fid(f),
            centerline=tuple((float(lon), float(lat)) for lon, lat in p["centerline"]),
            lower_m=float(p["lower_m"]), upper_m=float(p["upper_m"]),
            from_vertiport=str(p.get("from_vertiport", "")), to_vertiport=str(p.get("to_vertiport", "")),
        ))
    return out


def _ceiling(zones: dict[str, Any]) -> float:
    areas = _features(zones, "area")
    return float(areas[0]["properties"].get("upper_m", DEFAULT_CEILING_M)) if areas else DEFAULT_CEILING_M


def _zone_point(feature: dict[str, Any]) -> LonLat:
    """A point well inside a restricted zone: the circle centre, else the polygon's inner point."""
    center = feature["properties"].get("center")
    if center:
        return float(center[0]), float(center[1])
    ring = feature["geometry"]["coordinates"][0]
    p = Polygon(ring).representative_point()
    return p.x, p.y


def stray_target(zones: dict[str, Any], corridor: Corridor) -> tuple[str, LonLat] | None:
    """The restricted zone nearest to the corridor that a stray at cruise altitude would violate."""
    frame = LocalFrame(*corridor.centerline[0])
    line = LineString([frame.to_xy(*p) for p in corridor.centerline])
    cruise = (corridor.lower_m + corridor.upper_m) / 2.0
    best: tuple[float, str, LonLat] | None = None
    for f in _features(zones, "restricted"):
        p = f["properties"]
        if not float(p.get("lower_m", 0)) <= cruise <= float(p.get("upper_m", 0)):
            continue
        target = _zone_point(f)
        d = line.distance(Point(frame.to_xy(*target)))
        if best is None or d < best[0]:
            best = (d, _fid(f), target)
    return None if best is None else (best[1], best[2])


def _behaviours(n: int, rng: random.Random) -> list[Behaviour]:
    """About one in six strays and one in six climbs; at least one of each from three drones up."""
    odd = max(1, round(n / 6)) if n >= 3 else 0
    plan: list[Behaviour] = ["stray_no_fly"] * odd + ["climb_above_band"] * odd
    plan += ["nominal"] * (n - len(plan))
    rng.shuffle(plan)
    return plan


def make_drones(zones: dict[str, Any], n: int, rng: random.Random) -> list[DroneSpec]:
    """Drones spread round-robin over the corridors."""
    cors = corridors(zones)
    if n > 0 and not cors:
        raise ValueError("zone file has no corridor to fly")
    ceiling = _ceiling(zones)
    drones = []
    for i, behaviour in enumerate(_behaviours(n, rng)):
        c = cors[i % len(cors)]
        speed = round(rng.uniform(12.0, 18.0), 1)
        phase = round(rng.uniform(0.0, 3600.0), 1)
        excursion = zone_id = target = None
        if behaviour == "climb_above_band":
            excursion = round(max(c.upper_m, ceiling) + rng.uniform(15.0, 30.0), 1)
        elif behaviour == "stray_no_fly":
            found = stray_target(zones, c)
            if found is None:
                behaviour = "nominal"
            else:
                zone_id, target = found
        drones.append(DroneSpec(
            uav_id=f"uav-{i + 1:03d}", corridor_id=c.corridor_id, behaviour=behaviour,
            speed_mps=speed, phase_s=phase, centerline=c.centerline, lower_m=c.lower_m, upper_m=c.upper_m,
            excursion_alt_m=excursion, stray_zone_id=zone_id, stray_target=target,
        ))
    return drones


@dataclass(frozen=True)
class _KindProfile:
    prefix: str
    interval_s: float
    period_s: float
    metrics: dict[str, Metric] = field(default_factory=dict)
    episodes: dict[str, Episode] = field(default_factory=dict)


DAY_S = 86_400.0
PROFILES: dict[SensorKind, _KindProfile] = {
    "air_quality": _KindProfile("aq", 60.0, 1800.0, {
        "pm2_5": ("ug/m3", 35.0, 12.0, 3.0),
        "pm10": ("ug/m3", 60.0, 18.0, 5.0),
        "no2": ("ug/m3", 38.0, 14.0, 4.0),
    }, {"pm2_5": Episode(1800.0, 0.3, (300.0, 900.0), (80.0, 140.0))}),  # smog episodes above GB 3095's 75
    "traffic": _KindProfile("trf", 30.0, 1200.0, {
        "vehicle_count": ("count", 42.0, 18.0, 6.0),
        "avg_speed": ("km/h", 36.0, 10.0, 3.0),
    }),
    "energy": _KindProfile("en", 15.0, 900.0, {
        "power": ("kW", 220.0, 80.0, 8.0),
        "energy": ("kWh", 0.0, 0.0, 0.0),  # cumulative: integrated from power, see devices.sensors
    }),
    "wind": _KindProfile("wind", 10.0, 600.0, {
        "wind_speed": ("m/s", 4.5, 2.0, 0.8),
        "wind_gust": ("m/s", 7.0, 3.0, 1.2),
        "wind_dir": ("deg", 135.0, 40.0, 12.0),  # south-easterly summer monsoon
    }, {"wind_gust": Episode(240.0, 0.35, (20.0, 60.0), (13.0, 19.0))}),  # squalls over the corridor limit
    "water_level": _KindProfile("wl", 60.0, 44_712.0, {  # semidiurnal Huangpu tide, 12.42 h
        "water_level": ("m", 3.2, 1.1, 0.03),
    }),
    "noise": _KindProfile("nz", 60.0, DAY_S, {
        "noise_laeq": ("dB", 58.0, 8.0, 2.0),  # A-weighted equivalent level; quiet nights
    }),
    "manhole": _KindProfile("mh", 300.0, DAY_S, {
        "cover_open": ("", 0.0, 0.0, 0.0),  # boolean (SenML vb); opened during episodes
        "tilt_deg": ("deg", 0.4, 0.0, 0.15),
    }, {"cover_open": Episode(3600.0, 0.15, (120.0, 900.0), (1.0, 1.0))}),
    "streetlight": _KindProfile("sl", 120.0, DAY_S, {
        "lamp_on": ("", 0.0, 0.0, 0.0),  # boolean: on from dusk to dawn (Asia/Shanghai), see devices.sensors
        "power": ("W", 150.0, 0.0, 4.0),
        "dimming": ("%", 80.0, 0.0, 0.0),
    }),
    "rain": _KindProfile("rg", 60.0, 7200.0, {
        "rain_rate": ("mm/h", 0.0, 0.0, 0.0),  # dry except during showers
    }, {"rain_rate": Episode(1800.0, 0.25, (300.0, 1200.0), (4.0, 35.0))}),
}

# (site tag, lon, lat): illustrative places in Wujing (west bank) and Pujiang (east bank)
SITES: dict[SensorKind, list[tuple[str, float, float]]] = {
    "air_quality": [("wj", 121.472, 31.040), ("pj", 121.515, 31.062), ("wj", 121.466, 31.064),
                    ("pj", 121.528, 31.041)],
    "traffic": [("wj", 121.468, 31.048), ("pj", 121.512, 31.047), ("wj", 121.476, 31.069),
                ("pj", 121.520, 31.083)],
    "energy": [("wj", 121.461, 31.041), ("pj", 121.532, 31.058), ("wj", 121.478, 31.028),
               ("pj", 121.509, 31.036)],
    "water_level": [("hp-w", 121.486, 31.060), ("hp-e", 121.494, 31.060), ("hp-w", 121.483, 31.030),
                    ("hp-e", 121.491, 31.030)],
    "noise": [("wj", 121.470, 31.052), ("pj", 121.517, 31.055), ("pj", 121.508, 31.070)],
    "manhole": [("wj", 121.469, 31.045), ("pj", 121.514, 31.050), ("pj", 121.522, 31.038)],
    "streetlight": [("wj", 121.467, 31.050), ("pj", 121.513, 31.052), ("pj", 121.519, 31.066)],
    "rain": [("wj", 121.465, 31.058), ("pj", 121.524, 31.060)],
}


def _wind_sites(zones: dict[str, Any]) -> list[tuple[str, float, float, dict[str, Any]]]:
    """Wind masts: first one on each corridor (ids W-<corridor>, at its midpoint, where the sensor-driven
    airspace rule suspends the corridor in gusts), then at the vertiports, where take-off decisions need them."""
    sites: list[tuple[str, float, float, dict[str, Any]]] = []
    for c in corridors(zones):
        mid = LineString(c.centerline).interpolate(0.5, normalized=True)
        sites.append((f"W-{c.corridor_id}", round(mid.x, 6), round(mid.y, 6), {"corridor_id": c.corridor_id}))
    for f in _features(zones, "vertiport"):
        lon, lat = f["properties"]["center"]
        sites.append((_fid(f).lower(), float(lon), float(lat), {"vertiport_id": _fid(f)}))
    return sites or [("pwz", 121.49, 31.055, {})]


def make_sensors(zones: dict[str, Any], n: int, rng: random.Random, rate_scale: float = 1.0) -> list[SensorSpec]:
    """Sensors cycle through the kinds; each kind cycles through its sites, jittered by the seed.

    A corridor mast keeps its stable id (W-C1, ...) and exact place; any other sensor is named
    <prefix>-<site>-<n> and jittered around its site, so repeated sites do not coincide."""
    if rate_scale <= 0:
        raise ValueError("rate_scale must be > 0")
    sites: dict[SensorKind, list[tuple[str, float, float, dict[str, Any]]]] = {
        k: [(tag, lon, lat, {}) for tag, lon, lat in v] for k, v in SITES.items()}
    sites["wind"] = _wind_sites(zones)
    counts: dict[SensorKind, int] = {k: 0 for k in SENSOR_KINDS}
    sensors = []
    for i in range(n):
        kind = SENSOR_KINDS[i % len(SENSOR_KINDS)]
        j = counts[kind]
        counts[kind] += 1
        tag, lon, lat, props = sites[kind][j % len(sites[kind])]
        prof = PROFILES[kind]
        fixed = kind == "wind" and j < len(sites[kind])  # a mast stays on its corridor or vertiport
        if not fixed:
            lon += rng.uniform(-0.0015, 0.0015)
            lat += rng.uniform(-0.0012, 0.0012)
        sensor_id = tag if fixed and tag.startswith("W-") else f"{prof.prefix}-{tag}-{j + 1:02d}"
        metrics = dict(prof.metrics)
        if kind == "energy":
            metrics["energy"] = ("kWh", round(rng.uniform(5_000.0, 50_000.0), 1), 0.0, 0.0)
        if kind == "air_quality" and tag == "wj":  # the industrial bank breathes worse air
            metrics = {k: (u, b * 1.25, a, s) for k, (u, b, a, s) in metrics.items()}
        daily = prof.period_s in (44_712.0, DAY_S)  # tides and days keep their astronomical period
        sensors.append(SensorSpec(
            sensor_id=sensor_id, kind=kind,
            lon=round(lon, 6), lat=round(lat, 6), interval_s=prof.interval_s / rate_scale,
            metrics=metrics, period_s=prof.period_s * (1.0 if daily else rng.uniform(0.8, 1.2)),
            phase=rng.uniform(0.0, 2.0 * math.pi), episodes=dict(prof.episodes), properties=dict(props),
        ))
    return sensors


def make_fleet(zones_geojson: dict[str, Any], n_drones: int, n_sensors: int, seed: int,
               rate_scale: float = 1.0) -> tuple[list[DroneSpec], list[SensorSpec]]:
    """The demo fleet; the same arguments always give the same fleet."""
    if n_drones < 0 or n_sensors < 0:
        raise ValueError("counts must be >= 0")
    rng = random.Random(seed)
    drones = make_drones(zones_geojson, n_drones, random.Random(rng.random()))
    sensors = make_sensors(zones_geojson, n_sensors, random.Random(rng.random()), rate_scale)
    return drones, sensors
