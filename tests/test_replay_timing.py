"""Replay timing on a fake clock: absolute deadlines, pause / resume / step, rate changes, stop."""
from __future__ import annotations

import math
import threading

import pytest

from replay.player import play
from replay.recordfile import Record
from replay.sinks import Sink
from replay.sources import ListSource
from replay.timing import MAX, PlaybackControl, Scheduler, parse_rate

ROOT = "skylane/v1"


class FakeClock:
    """Monotonic time that moves only when the code under test sleeps or works.

    `at(t, action)` schedules an operator action (pause, step, ...) at fake time t; a sleep
    that would pass it stops there and runs it, as a real keyboard thread would.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.actions: list[tuple[float, object]] = []
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def at(self, t: float, action) -> None:
        self.actions.append((t, action))
        self.actions.sort(key=lambda a: a[0])

    def sleep(self, timeout: float | None, _version: int) -> None:
        self.sleeps += 1
        target = math.inf if timeout is None else self.now + timeout
        if self.actions and self.actions[0][0] <= target:
            t, action = self.actions.pop(0)
            self.now = max(self.now, t)
            action()
            return
        if target == math.inf:
            raise AssertionError("paused forever: nothing scheduled to resume")
        self.now = target


class TimedSink(Sink):
    """Notes when (fake time) each message was sent; each send costs `work` seconds."""

    def __init__(self, clock: FakeClock, work: float = 0.0) -> None:
        self.clock, self.work = clock, work
        self.sent: list[tuple[float, float]] = []  # (fake send time, recorded t)

    def send(self, topic: str, rec: Record) -> bool:
        self.sent.append((self.clock.now, rec.t))
        self.clock.now += self.work
        return True


def _records(ts):
    return [Record(t, f"{ROOT}/uav/u1/telemetry", 1, False, b"{}") for t in ts]


def _play(clock, ts, control, work=0.0, **kw):
    sink = TimedSink(clock, work)
    res = play(ListSource(_records(ts), ROOT), sink, control=control, root_to=ROOT, clock=clock, sleep=clock.sleep,
               **kw)
    return sink.sent, res


def test_parse_rate():
    assert parse_rate("max") == MAX and parse_rate("10x") == 10 and parse_rate(0.1) == 0.1 and parse_rate(1000) == 1000
    for bad in ("0", "0.05", "1001", "-1", "nan", "fast", float("inf") * 0):
        with pytest.raises(ValueError):
            parse_rate(bad)


@pytest.mark.parametrize("rate", [1.0, 2.0, 10.0])
def test_deadlines_are_absolute_so_work_never_accumulates(rate):
    """Each send costs 30% of the gap; a sleep-per-gap player would drift 0.3 s per message."""
    clock = FakeClock()
    clock.now = 100.0
    ts = [1000.0 + i * 0.5 for i in range(40)]
    sent, res = _play(clock, ts, PlaybackControl(rate), work=0.15 / rate)
    assert [s for s, _ in sent] == pytest.approx([100.0 + (t - 1000.0) / rate for t in ts])
    assert res.timing.max_late_s == pytest.approx(0.0, abs=1e-9) and res.timing.released == len(ts)


def test_a_late_message_catches_up_without_shifting_the_rest():
    clock = FakeClock()
    ts = [0.0, 1.0, 2.0, 3.0, 4.0]
    sink = TimedSink(clock)
    sched = Scheduler(PlaybackControl(1.0), clock, clock.sleep)
    for t in ts:
        assert sched.wait_for(t)
        sink.send("x", _records([t])[0])
        if t == 1.0:
            clock.now += 1.7  # a stall (slow broker) while sending message 1
    assert [s for s, _ in sink.sent] == pytest.approx([0.0, 1.0, 2.7, 3.0, 4.0])
    st = sched.stats
    assert st.max_backlog_s == pytest.approx(0.7)  # message 2 was due while message 1 was still sending
    assert st.max_late_s == pytest.approx(0.0) and st.waited == 3 and st.released == 5


def test_rate_max_never_sleeps():
    clock = FakeClock()
    sent, _ = _play(clock, [0, 10, 20, 30], PlaybackControl("max"))
    assert [s for s, _ in sent] == [0, 0, 0, 0] and clock.sleeps == 0


def test_pause_then_resume_continues_from_the_next_message():
    clock = FakeClock()
    control = PlaybackControl(1.0)
    clock.at(1.2, control.pause)
    clock.at(5.0, control.resume)
    sent, res = _play(clock, [0, 1, 2, 3, 4], control)
    assert [s for s, _ in sent] == pytest.approx([0, 1, 5, 6, 7])
    assert res.timing.max_late_s == pytest.approx(0.0)


def test_single_step_while_paused_releases_one_message_each():
    clock = FakeClock()
    control = PlaybackControl(1.0)
    clock.at(0.5, control.pause)
    clock.at(3.0, control.step)
    clock.at(4.0, control.step)
    clock.at(10.0, control.resume)
    sent, _ = _play(clock, [0, 1, 2, 3, 4], control)
    assert sent == [(0, 0), (3.0, 1), (4.0, 2), (10.0, 3), (11.0, 4)]


def test_starting_paused_waits_for_a_step():
    clock = FakeClock()
    control = PlaybackControl(1.0, paused=True)
    clock.at(2.0, lambda: control.step(2))
    clock.at(9.0, control.resume)
    sent, _ = _play(clock, [0, 1, 2], control)
    assert [s for s, _ in sent] == pytest.approx([2.0, 2.0, 9.0])


def test_rate_change_keeps_the_spacing_from_the_last_message():
    clock = FakeClock()
    control = PlaybackControl(1.0)
    clock.at(2.5, lambda: control.set_rate(2))
    sent, _ = _play(clock, [0, 1, 2, 3, 4, 5], control)
    assert [s for s, _ in sent] == pytest.approx([0, 1, 2, 3.0, 3.5, 4.0])
    assert control.faster() == 4 and control.slower() == 2
    control.set_rate(800)
    assert control.faster() == 1000 and control.set_rate("max") == MAX and control.slower() == 1000


def test_stop_ends_a_paused_replay():
    clock = FakeClock()
    control = PlaybackControl(1.0)
    clock.at(1.5, control.pause)
    clock.at(3.0, control.stop)
    sent, res = _play(clock, [0, 1, 2, 3], control)
    assert [t for _, t in sent] == [0, 1] and res.stopped


def test_loop_replays_each_pass_on_its_own_timeline():
    clock = FakeClock()
    control = PlaybackControl(1.0)
    clock.at(7.5, control.stop)
    sent, res = _play(clock, [10, 11, 12], control, loop=True)
    assert [s for s, _ in sent] == pytest.approx([0, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7])
    assert res.passes == 4


def test_control_wakes_a_real_waiting_scheduler():
    """The programmatic control object, across threads, on the real clock (no timing asserted)."""
    control = PlaybackControl(1.0)
    sched = Scheduler(control)
    assert sched.wait_for(0.0)
    released = threading.Event()

    def later():
        sched.wait_for(3600.0)  # an hour away at rate 1
        released.set()
    th = threading.Thread(target=later, daemon=True)
    th.start()
    control.pause()
    control.step()  # releases it at once
    assert released.wait(5)
    th.join(5)
    control.resume()
    control.stop()
    assert not sched.wait_for(7200.0)
    assert control.state() == {"paused": False, "stopped": True, "rate": 1.0}


def test_stop_event_from_a_signal_handler_is_noticed():
    stop = threading.Event()
    control = PlaybackControl(1.0, stop_event=stop)
    sched = Scheduler(control)
    assert sched.wait_for(0.0)
    threading.Timer(0.05, stop.set).start()
    assert not sched.wait_for(3600.0)
