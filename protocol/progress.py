"""Periodic progress lines for long-running loops (simulator, recorder, player).

A line every ~10 s shows an operator that a demo is alive without flooding the log, and the
same counters go to an optional callback (a CLI's status line, a test's probe).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

Counters = Mapping[str, int | float]
ProgressCallback = Callable[[dict[str, int | float]], None]


class ProgressReporter:
    def __init__(self, logger: logging.Logger, label: str, progress: ProgressCallback | None = None,
                 period_s: float = 10.0) -> None:
        self.logger = logger
        self.label = label
        self.progress = progress
        self.period_s = period_s
        self._next = time.monotonic() + period_s

    def maybe(self, counters: Counters) -> None:
        """Report if a period has passed since the last report."""
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.period_s
            self.report(counters)

    def report(self, counters: Counters) -> None:
        """Report now (e.g. at the end of a run)."""
        self.logger.info("%s: %s", self.label, " ".join(f"{k}={v}" for k, v in counters.items()))
        if self.progress is not None:
            self.progress(dict(counters))
