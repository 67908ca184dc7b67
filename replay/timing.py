"""Replay timing: absolute deadlines on a monotonic clock, and pause / resume / single-step.

A message recorded at time t is due at ``anchor_mono + (t - anchor_t) / rate``. Every deadline is
computed from the anchor, never from the previous sleep, so time spent publishing, a slow
broker or a late wake-up delays one message without shifting all later ones (sleep-per-gap
players accumulate those errors: minutes of drift over a long replay). The anchor moves only
when the operator changes the timeline: after a pause, a step or a rate change, playing
continues from the next message as if the recording resumed there.

`PlaybackControl` is the one object the keyboard, the HTTP API and tests drive; it is
thread-safe and wakes a waiting scheduler at once.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MIN_RATE = 0.1
MAX_RATE = 1000.0
MAX = math.inf  # "as fast as possible"
POLL_S = 0.25
SPIN_S = 0.002


def parse_rate(value: str | float | None) -> float:
    """A replay rate: MIN_RATE..MAX_RATE, or 'max' / inf (as fast as possible)."""
    if value is None:
        return 1.0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("max", "inf", "fastest"):
            return MAX
        try:
            value = float(text.rstrip("x"))
        except ValueError:
            raise ValueError(f"rate {value!r}: a number from {MIN_RATE:g} to {MAX_RATE:g}, or 'max'") from None
    rate = float(value)
    if rate == MAX:
        return MAX
    if not (math.isfinite(rate) and MIN_RATE <= rate <= MAX_RATE):
        raise ValueError(f"rate {value!r}: a number from {MIN_RATE:g} to {MAX_RATE:g}, or 'max'")
    return rate


class PlaybackControl:
    """Pause, resume, single-step, rate changes and stop for a running replay (thread-safe)."""

    def __init__(self, rate: float | str = 1.0, paused: bool = False,
                 stop_event: threading.Event | None = None) -> None:
        self._cond = threading.Condition()
        self._rate = parse_rate(rate)
        self._paused = paused
        self._steps = 0
        self._stopped = False
        self._version = 0  # bumped on every change, so a waiter knows to re-plan
        self.stop_event = stop_event or threading.Event()  # for blocking calls that take an Event (publishing)

    def _change(self) -> None:
        self._version += 1
        self._cond.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stopped(self) -> bool:
        return self._stopped or self.stop_event.is_set()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def version(self) -> int:
        return self._version

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._change()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._steps = 0
            self._change()

    def toggle(self) -> bool:
        """Pause if playing, resume if paused; returns whether it is now paused."""
        with self._cond:
            self._paused = not self._paused
            self._steps = 0
            self._change()
            return self._paused

    def step(self, n: int = 1) -> None:
        """Release `n` more messages while paused (pauses first if playing)."""
        with self._cond:
            self._paused = True
            self._steps += max(int(n), 0)
            self._change()

    def set_rate(self, rate: float | str) -> float:
        with self._cond:
            self._rate = parse_rate(rate)
            self._change()
            return self._rate

    def faster(self) -> float:
        return self.set_rate(MAX if self._rate == MAX else min(self._rate * 2, MAX_RATE))

    def slower(self) -> float:
        return self.set_rate(MAX_RATE if self._rate == MAX else max(self._rate / 2, MIN_RATE))

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self.stop_event.set()
            self._change()

    def take_step(self) -> bool:
        with self._cond:
            if self._steps > 0:
                self._steps -= 1
                return True
            return False

    def wait(self, timeout: float | None, version: int) -> None:
        """Sleep up to `timeout` seconds, or until something changes after `version`.

        Waits at most POLL_S at a time so a stop set straight on `stop_event` (a signal handler)
        is noticed too; deadlines are absolute, so the early wake-ups cost no accuracy."""
        with self._cond:
            if self._version == version and not self.stop_event.is_set():
                self._cond.wait(POLL_S if timeout is None else min(timeout, POLL_S))

    def state(self) -> dict:
        return {"paused": self._paused, "stopped": self._stopped, "rate": "max" if self._rate == MAX else self._rate}


@dataclass
class TimingStats:
    """How closely messages left at their deadlines (seconds; positive = late).

    The lateness of a message the scheduler waited for is its timing error (the drift at that
    point of the replay); a message already due when reached (the ones before it took longer to
    send than their recorded spacing, e.g. 500 fixes stamped the same second) is backlog instead.
    """

    released: int = 0
    waited: int = 0
    max_late_s: float = 0.0
    sum_late_s: float = 0.0
    last_late_s: float = 0.0  # the latest waited-for message: the drift at the end of a run
    max_backlog_s: float = 0.0

    @property
    def mean_late_s(self) -> float:
        return self.sum_late_s / self.waited if self.waited else 0.0


class Scheduler:
    """Decides when each message (by recorded time t) may go out.

    `clock` is a monotonic clock and `sleep(timeout, version)` a wait that returns early when the
    control changes; both default to the real ones, tests inject a fake clock.
    """

    def __init__(self, control: PlaybackControl, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float | None, int], None] | None = None) -> None:
        self.control = control
        self.clock = clock
        self.sleep = sleep or control.wait
        # on the real clock, wake SPIN_S early and spin to the deadline: OS wake-ups are late by
        # ~0.1-10 ms on a busy machine, the spin makes each message leave within microseconds
        self._spin = SPIN_S if sleep is None else 0.0
        self.stats = TimingStats()
        self._anchor: tuple[float, float] | None = None  # (monotonic, recorded t)
        self._rate_seen = control.rate
        self._last_t: float | None = None

    def deadline(self, t: float) -> float:
        """Monotonic time at which a message recorded at `t` is due (-inf at rate max)."""
        rate = self.control.rate
        if self._anchor is None or rate == MAX:
            return -math.inf
        mono0, t0 = self._anchor
        return mono0 + (t - t0) / rate

    def restart(self) -> None:
        """The next message starts a new timeline (a new pass of a loop)."""
        self._anchor = None
        self._last_t = None

    def reanchor(self, t: float) -> None:
        """Continue the timeline from recorded time `t`, now."""
        self._anchor = (self.clock(), t)

    def wait_for(self, t: float, before_sleep: Callable[[], None] | None = None) -> bool:
        """Block until the message recorded at `t` is due; False if the replay was stopped.

        `before_sleep` runs before any real wait (e.g. to flush a batch so its events show now).
        """
        c = self.control
        if c._rate == MAX and not c._paused and self._anchor is not None and not c.stopped:
            return self._release(t, -math.inf)  # as fast as possible: nothing to wait for
        if self._anchor is None:
            self.reanchor(t)
        was_paused = slept = False
        while True:
            version = c.version
            if c.stopped:
                return False
            if c.paused:
                if c.take_step():
                    self.reanchor(t)
                    return self._release(t, self.clock(), True)
                if before_sleep is not None:
                    before_sleep()
                was_paused = slept = True
                self.sleep(None, version)
                continue
            if was_paused:  # resumed: carry on from this message, now
                self.reanchor(t)
                was_paused = False
            if c.rate != self._rate_seen:  # keep the spacing from the last message at the new rate
                self._rate_seen = c.rate
                self.reanchor(self._last_t if self._last_t is not None else t)
            due = self.deadline(t)
            now = self.clock()
            if now >= due:
                return self._release(t, due, slept)
            if before_sleep is not None:
                before_sleep()
                now = self.clock()
                if now >= due:
                    return self._release(t, due, slept)
            slept = True
            if due - now <= self._spin:
                while self.clock() < due and c.version == version:
                    time.sleep(0)
                continue
            self.sleep(due - now - self._spin, version)

    def _release(self, t: float, due: float, waited: bool = False) -> bool:
        s = self.stats
        s.released += 1
        self._last_t = t
        if due == -math.inf:
            return True
        late = self.clock() - due
        if waited:
            s.waited += 1
            s.last_late_s = late
            s.sum_late_s += late
            s.max_late_s = max(s.max_late_s, late)
        else:
            s.max_backlog_s = max(s.max_backlog_s, late)
        return True
