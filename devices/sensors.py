"""Simulated sensor signals: a slow sinusoid around a base value plus reproducible noise.

Values are a pure function of (spec, t) so a rerun with the same seed publishes the same
readings; the noise is drawn from a hash of (sensor, metric, t) rather than a shared RNG so
the order in which sensors are read does not change the values.
"""
from __future__ import annotations

import math
import random
import zlib

from .fleet import SensorSpec

Reading = dict[str, tuple[str, float | int]]  # metric -> (unit, value)

_NONNEGATIVE_KINDS = ("air_quality", "traffic", "wind", "energy")


def _noise(spec: SensorSpec, name: str, t: float, sigma: float) -> float:
    if sigma <= 0:
        return 0.0
    key = f"{spec.sensor_id}|{name}|{round(t, 3)}".encode()
    return random.Random(zlib.crc32(key)).gauss(0.0, sigma)


def _energy_kwh(spec: SensorSpec, start_kwh: float, t: float) -> float:
    """Meter reading: the start value plus the integral of the noiseless power curve."""
    _, base, amp, _ = spec.metrics.get("power", ("kW", 0.0, 0.0, 0.0))
    w = 2.0 * math.pi / spec.period_s
    kws = base * t - amp / w * (math.cos(w * t + spec.phase) - math.cos(spec.phase))
    return start_kwh + max(kws, 0.0) / 3600.0


def read_sensor(spec: SensorSpec, t: float) -> Reading:
    """The sensor's metrics t seconds after simulation start."""
    w = 2.0 * math.pi / spec.period_s
    out: Reading = {}
    for name, (unit, base, amp, sigma) in spec.metrics.items():
        if spec.kind == "energy" and name == "energy":
            out[name] = (unit, round(_energy_kwh(spec, base, t), 3))
            continue
        value = base + amp * math.sin(w * t + spec.phase) + _noise(spec, name, t, sigma)
        if name == "wind_dir":
            out[name] = (unit, round(value % 360.0, 1))
        elif unit == "count":
            out[name] = (unit, max(int(round(value)), 0))
        else:
            if spec.kind in _NONNEGATIVE_KINDS:
                value = max(value, 0.0)
            out[name] = (unit, round(value, 2))
    if "wind_speed" in out and "wind_gust" in out and out["wind_gust"][1] < out["wind_speed"][1]:
        out["wind_gust"] = (out["wind_gust"][0], out["wind_speed"][1])  # a gust is never below the mean
    return out
