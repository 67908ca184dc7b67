"""System figures from the database for /metrics: what every ingest worker together has stored.

Ingest workers export their own rates and lag (:9108); with several of them, the stored outcome is the
one place to read the whole system's events by kind and dead letters. Read at scrape time over the last
hour (indexed time ranges), cached for a few seconds so a tight scrape interval cannot load the database.
"""
from __future__ import annotations

import logging
import time

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

log = logging.getLogger("skylane.api.metrics")


class DatabaseFigures(Collector):
    def __init__(self, connect, ttl_s: float = 10.0):
        self.connect, self.ttl_s = connect, ttl_s
        self._at, self._rows = 0.0, None

    def _read(self) -> tuple[list[tuple[str, int]], int, float | None] | None:
        if self._rows is None or time.monotonic() - self._at > self.ttl_s:
            try:
                with self.connect(timeout=2) as conn:
                    kinds = conn.execute("SELECT kind, count(*) FROM airspace_events WHERE ts > now() - interval "
                                         "'1 hour' GROUP BY kind ORDER BY kind").fetchall()
                    dead = conn.execute("SELECT count(*) FROM dead_letters WHERE received_at > now() - interval "
                                        "'1 hour'").fetchone()[0]
                    newest = conn.execute("SELECT extract(epoch FROM now() - max(received_at)) FROM dead_letters "
                                          "WHERE received_at > now() - interval '1 hour'").fetchone()[0]
                self._rows = (kinds, dead, None if newest is None else float(newest))
            except Exception as exc:  # a scrape must not fail because the database is away
                log.warning("metrics: database figures unavailable: %s", exc)
                self._rows = None
            self._at = time.monotonic()
        return self._rows

    def collect(self):
        rows = self._read()
        up = GaugeMetricFamily("skylane_db_up", "1 when the API could read the database figures below")
        up.add_metric([], 0 if rows is None else 1)
        yield up
        if rows is None:
            return
        kinds, dead, newest = rows
        events = GaugeMetricFamily("skylane_db_events_last_hour", "Airspace events stored in the last hour",
                                   labels=["kind"])
        for kind, n in kinds:
            events.add_metric([kind], n)
        yield events
        yield GaugeMetricFamily("skylane_db_dead_letters_last_hour", "Dead letters stored in the last hour",
                                value=dead)
        if newest is not None:
            yield GaugeMetricFamily("skylane_db_dead_letter_age_seconds", "Age of the newest dead letter",
                                    value=newest)


def registry(connect) -> CollectorRegistry:
    """A registry of this app's database figures (served next to the process-wide default registry)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(DatabaseFigures(connect))
    return reg
