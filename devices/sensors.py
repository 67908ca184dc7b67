"""Simulated sensor signals: a slow sinusoid around a base value, reproducible noise and occasional episodes.

Values are a pure function of (spec, t, epoch) so a rerun with the same seed publishes the same
readings; the noise is drawn from a hash of (sensor, metric, t) rather than a shared RNG so the order
in which sensors are read does not change the values. Episodes (gusts above the corridor limit, smog,
showers, an opened manhole) come from a hash of (sensor, metric, window), so the demo reliably shows
the threshold rules and the sensor-driven airspace rule without any randomness at run time.
"""
from __future__ import annotations

import math
import random
import zlib

from .fleet import DAY_S, Episode, SensorSpec

Reading = dict[str, tuple[str, float | int | bool]]  # metric -> (unit, value); bools go out as SenML vb

_NONNEGATIVE_KINDS = ("air_quality", "traffic", "wind", "energy", "noise", "rain", "streetlight", "manhole")
SHANGHAI_UTC_OFFSET_S = 8 * 3600.0
DUSK_H, DAWN_H = 18.5, 5.5  # street lights: on between dusk and dawn, local time


def _noise(spec: SensorSpec, name: str, t: float, sigma: float) -> float:
    if sigma <= 0:
        return 0.0
    key = f"{spec.sensor_id}|{name}|{round(t, 3)}".encode()
    return random.Random(zlib.crc32(key)).gauss(0.0, sigma)


def episode_level(spec: SensorSpec, name: str, ep: Episode, t: float) -> float | None:
    """The episode value of a metric at sensor time t, or None outside every episode.

    Window w = floor(t / every_s) decides (by hash) whether an episode starts in it, where, for how
    long and how strong; the level ramps up and down over the first and last fifth of the episode."""
    w = math.floor(t / ep.every_s)
    for window in (w, w - 1):  # an episode may run over into the next window
        rng = random.Random(zlib.crc32(f"{spec.sensor_id}|{name}|ep|{window}".encode()))
        if rng.random() >= ep.probability:
            continue
        start = window * ep.every_s + rng.uniform(0.0, ep.every_s * 0.5)
        duration = rng.uniform(*ep.duration_s)
        peak = rng.uniform(*ep.peak)
        x = (t - start) / duration
        if 0.0 <= x <= 1.0:
            return peak * min(1.0, x / 0.2, (1.0 - x) / 0.2) if ep.peak[0] != ep.peak[1] else peak
    return None


def _local_hour(epoch_s: float) -> float:
    return ((epoch_s + SHANGHAI_UTC_OFFSET_S) % DAY_S) / 3600.0


def read_sensor(spec: SensorSpec, t: float, epoch_s: float | None = None) -> Reading:
    """The sensor's metrics t seconds after simulation start; `epoch_s` (the reading's Unix time) sets
    the time of day for daily signals (noise, street lights); without it they follow t."""
    w = 2.0 * math.pi / spec.period_s
    daily = spec.period_s == DAY_S
    # daily signals peak at 14:00 local time and are lowest at 02:00
    angle = (2.0 * math.pi * (_local_hour(epoch_s) - 8.0) / 24.0) if daily and epoch_s is not None \
        else w * t + spec.phase
    hour = _local_hour(epoch_s if epoch_s is not None else t)
    out: Reading = {}
    for name, (unit, base, amp, sigma) in spec.metrics.items():
        if spec.kind == "energy" and name == "energy":
            out[name] = (unit, round(_energy_kwh(spec, base, t), 3))
            continue
        value = base + amp * math.sin(angle) + _noise(spec, name, t, sigma)
        ep = spec.episodes.get(name)
        level = episode_level(spec, name, ep, t) if ep is not None else None
        if level is not None:
            value = max(value, level + _noise(spec, name, t, sigma))
        if unit == "":  # booleans
            out[name] = (unit, value >= 0.5)
        elif name in ("wind_dir", "track_deg"):
            out[name] = (unit, round(value % 360.0, 1))
        elif unit == "count":
            out[name] = (unit, max(int(round(value)), 0))
        else:
            if spec.kind in _NONNEGATIVE_KINDS:
                value = max(value, 0.0)
            out[name] = (unit, round(value, 2))
    if spec.kind == "streetlight":
        on = hour >= DUSK_H or hour < DAWN_H
        out["lamp_on"] = ("", on)
        if not on:
            out["power"] = ("W", 0.0)
        out["dimming"] = ("%", (100.0 if 19.0 <= hour or hour < 0.5 else 60.0) if on else 0.0)
    if "wind_speed" in out and "wind_gust" in out:
        speed, gust = out["wind_speed"][1], out["wind_gust"][1]
        if gust < speed:
            out["wind_gust"] = (out["wind_gust"][0], speed)  # a gust is never below the mean
        elif gust > 2.5 * speed + 3.0:  # a squall lifts the mean wind too
            out["wind_speed"] = ("m/s", round(gust / 1.6, 2))
    return out


def _energy_kwh(spec: SensorSpec, start_kwh: float, t: float) -> float:
    """Meter reading: the start value plus the integral of the noiseless power curve."""
    _, base, amp, _ = spec.metrics.get("power", ("kW", 0.0, 0.0, 0.0))
    w = 2.0 * math.pi / spec.period_s
    kws = base * t - amp / w * (math.cos(w * t + spec.phase) - math.cos(spec.phase))
    return start_kwh + max(kws, 0.0) / 3600.0
