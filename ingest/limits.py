"""Per-device rate limit and payload size limit, applied before parsing.

A device that floods (a stuck loop, a misconfigured rate, an attacker with its credentials) must not starve
the others, and one that sends megabytes must not fill memory and database. Neither is dropped silently:
the consumer turns what these refuse into dead letters with the reason and counts them in metrics.

The rate limit is a token bucket per device on arrival time: `rate` messages a second sustained, `burst`
at once. Arrival rates only say how fast a device sends while the ingester keeps up, so nothing is charged
for re-deliveries (the MQTT DUP flag) nor while the consumer catches up (a persistent session's queue after
a restart, the broker's queue after a database outage: ingest/consumer.py `catching_up`, until the inbox
runs dry). A device flooding live traffic is refused from its first message past the burst.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_RATE = 100.0   # messages per second per device, sustained
DEFAULT_BURST = 1000.0  # messages at once per device
MAX_TRACKED = 200_000   # buckets kept; idle full buckets are forgotten past this


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets keyed by device id. rate <= 0 disables the limit."""

    def __init__(self, rate: float = DEFAULT_RATE, burst: float = DEFAULT_BURST) -> None:
        self.rate = float(rate)
        self.burst = max(float(burst), 1.0)
        self._buckets: dict[str, _Bucket] = {}

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
            b = self._buckets[device_id] = _Bucket(self.burst, now)
        elif now > b.at:
            b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
            b.at = now
        if b.tokens < cost:
            return False
        b.tokens -= cost
        return True

    def _forget_idle(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]

    def describe(self) -> str:
        return f"{self.rate:g} messages/s (burst {self.burst:g})"


def oversize_reason(size: int, max_bytes: int) -> str | None:
    """The dead-letter reason for a payload over the limit, or None when it fits."""
    if size > max_bytes:
        return f"payload of {size} bytes exceeds the {max_bytes}-byte limit (stored truncated to {max_bytes} bytes)"
    return None
