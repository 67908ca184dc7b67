"""Per-device rate limit and payload size limit, applied before parsing.

A device that floods (a stuck loop, a misconfigured rate, an attacker with its credentials) must not starve
the others, and one that sends megabytes must not fill memory and database. Neither is dropped silently:
the consumer turns what these refuse into dead letters with the reason and counts them in metrics.

The rate limit is a token bucket per device on arrival time, counted in records (a pack of 500 fixes costs
500): `rate` records a second sustained, `burst` at once. Re-deliveries (the MQTT DUP flag) are not charged.
While the consumer catches up (a persistent session's queue after a restart, the broker's queue after a
database outage: ingest/consumer.py `catching_up`) a backlog arrives far faster than devices sent it, so each
bucket may then hold up to `catch_up_s` seconds of the device's rate on top of the burst: a device's queued
traffic passes, a flood beyond what it may send in that time does not. A device flooding live traffic is
refused from its first record past the burst.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_RATE = 100.0   # records per second per device, sustained
DEFAULT_BURST = 1000.0  # records at once per device
DEFAULT_CATCH_UP_S = 3600.0  # while catching up, a bucket may hold this much of the rate on top of the burst
MAX_TRACKED = 200_000   # buckets kept; idle full buckets are forgotten past this


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets keyed by device id. rate <= 0 disables the limit."""

    def __init__(self, rate: float = DEFAULT_RATE, burst: float = DEFAULT_BURST,
                 catch_up_s: float = DEFAULT_CATCH_UP_S) -> None:
        self.rate = float(rate)
        self.burst = max(float(burst), 1.0)
        self.catch_up_s = catch_up_s
        self.capacity = self.burst
        self._buckets: dict[str, _Bucket] = {}

    def catching_up(self, on: bool) -> None:
        """While catching up a backlog, buckets may fill to burst + catch_up_s of the rate (refilled at the
        rate, as always, from the last record charged)."""
        self.capacity = self.burst + (self.rate * self.catch_up_s if on else 0.0)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, device_id: str, now: float, cost: float = 1.0) -> bool:
        """Charge `cost` tokens to the device at monotonic time `now`; False when it has not enough."""
        if self.rate <= 0:
            return True
        b = self._buckets.get(device_id)
        if b is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._forget_idle(now)
            b = self._buckets[device_id] = _Bucket(self.capacity, now)
        elif now > b.at:
            b.tokens = min(self.capacity, b.tokens + (now - b.at) * self.rate)
            b.at = now
        elif b.tokens > self.capacity:  # catching up has ended
            b.tokens = self.capacity
        if b.tokens < cost:
            return False
        b.tokens -= cost
        return True

    def _forget_idle(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]

    def describe(self) -> str:
        return f"{self.rate:g} records/s (burst {self.burst:g})"


def record_count(payload: bytes) -> int:
    """How many records a message carries, without parsing it: a JSON array's objects (telemetry packs and
    SenML packs hold flat objects), else 1."""
    return max(payload.count(b"{"), 1) if payload[:1] == b"[" else 1


def oversize_reason(size: int, max_bytes: int) -> str | None:
    """The dead-letter reason for a payload over the limit, or None when it fits."""
    if size > max_bytes:
        return f"payload of {size} bytes exceeds the {max_bytes}-byte limit (stored truncated to {max_bytes} bytes)"
    return None
