"""The tunables of the air picture (fusion) and of live separation, with their defaults and why
(docs/surveillance-separation.md gives the sources).

Remote ID positions are only required to be within 30.5 m horizontally and 45.7 m in geometric altitude (95 %,
14 CFR 89.310), so the gates and the discrepancy tolerances sit above that: a compliant broadcaster neither
splits from its drone nor raises position_discrepancy."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .tactical import Minima

# 2,000 ft / 250 ft: the "well clear" of small UAS from crewed aircraft (ASTM F3442/F3442M; FAA draft AC 90-WLCLR)
WELL_CLEAR = Minima(609.6, 76.2)
DRONE_DRONE = Minima(50.0, 15.0)


@dataclass(frozen=True)
class TrafficPolicy:
    """Everything in metres, seconds and metres per second of event time.

    Separation: `drone_drone` and `drone_manned` minima (manned–manned is air traffic control's, never checked),
    `look_ahead_s` for conflict_predicted; an open loss or conflict ends only once the pair is outside the minima
    grown by `end_margin` (hysteresis, as the monitor's exit margins). An aircraft picks at most
    `max_pairs_per_aircraft` pairs of a kind (its open ones, then manned, then the nearest) and a pair is listed
    when either aircraft picks it (the events say how many more are around it): a crowd of N gives at most N times
    that many pairs, not N(N-1)/2, which no one could read and which would let a flood of forged ids at one spot
    stall ingest. Evaluated at instants every `step_s` of
    event time, once sightings up to `lateness_s` out of order can no longer arrive (the watermark).

    Fusion: a source of a track is lost after `source_timeouts[source]` (else `default_timeout_s`) of silence;
    the track's position is its freshest-ranked source (`source_rank`). A sighting with no identity the track
    table knows joins a track within the gates (`gate_*`), else starts one. `discrepancy_*`: how far a drone's
    own telemetry and its Remote ID may disagree at about the same time. A velocity derived from two fixes beyond
    `max_speed_mps` / `max_climb_mps` is a position jump (glitch, spoof), not motion: discarded; a reported one is
    clipped to them. A track silent for `forget_after_s` is dropped. `area_kinds`: zone kinds forming the demonstration zone (none: the bounds of all zones).
    """

    drone_drone: Minima = DRONE_DRONE
    drone_manned: Minima = WELL_CLEAR
    look_ahead_s: float = 30.0
    end_margin: float = 0.1
    max_pairs_per_aircraft: int = 8
    step_s: float = 1.0
    lateness_s: float = 1.0
    source_timeouts: Mapping[str, float] = field(default_factory=lambda: {"telemetry": 10.0, "adsb": 10.0,
                                                                          "rid": 5.0})
    default_timeout_s: float = 10.0
    source_rank: tuple[str, ...] = ("telemetry", "adsb", "rid")
    gate_horizontal_m: float = 50.0
    gate_vertical_m: float = 50.0
    gate_speed_mps: float = 5.0
    gate_age_s: float = 3.0
    discrepancy_horizontal_m: float = 50.0
    discrepancy_vertical_m: float = 50.0
    discrepancy_age_s: float = 2.0
    velocity_window_s: float = 10.0
    max_speed_mps: float = 150.0  # ~290 kt: beyond any low-level traffic (helicopters ~80 m/s)
    max_climb_mps: float = 50.0
    airborne_agl_m: float = 1.0
    forget_after_s: float = 300.0
    area_kinds: tuple[str, ...] = ("area",)

    def __post_init__(self) -> None:
        for name in ("look_ahead_s", "step_s", "default_timeout_s", "gate_horizontal_m", "gate_vertical_m",
                     "discrepancy_horizontal_m", "discrepancy_vertical_m", "forget_after_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.max_pairs_per_aircraft < 1:
            raise ValueError("max_pairs_per_aircraft must be at least 1")
        if self.lateness_s < 0 or self.end_margin < 0:
            raise ValueError("lateness_s and end_margin must not be negative")
        if self.forget_after_s <= max([self.default_timeout_s, *self.source_timeouts.values()]):
            raise ValueError("forget_after_s must exceed every source timeout")

    def timeout(self, source: str) -> float:
        return float(self.source_timeouts.get(source, self.default_timeout_s))

    def rank(self, source: str) -> int:
        return self.source_rank.index(source) if source in self.source_rank else len(self.source_rank)
