"""Where replayed messages go: the broker, or the ingest pipeline in this process.

The pipeline sink is what makes evaluation deterministic: it runs the same `Pipeline` the
ingester runs, on the recorded receive times (never the wall clock), so the airspace core sees
exactly the event times it saw live.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone

from ingest.pipeline import BatchOutput, Pipeline, RawMessage

from .mqttpub import FastPublisher, MqttError
from .recordfile import Record

log = logging.getLogger(__name__)

STOPPED_DRAIN_S = 5.0  # after a stop, how long to still wait for outstanding acks
DEFAULT_MAX_PENDING = 2000  # unacknowledged QoS 1 publishes at most


class Sink:
    """Receives the selected, remapped messages in order."""

    takes_outside_root = False  # whether send_outside_root may take anything (replay.player)

    def open(self, stop: threading.Event) -> bool:
        """Get ready; False if stopped first (e.g. the broker never answered)."""
        return True

    def send(self, topic: str, rec: Record) -> bool:
        """Deliver one message; False if it could not be (stopped, or a bad topic: see counters)."""
        raise NotImplementedError

    def send_outside_root(self, topic: str, rec: Record) -> bool:
        """A record outside the source root during a re-rooted replay (a vendor's topic: replay.player): never
        published; True if this sink took it (evaluation in process)."""
        return False

    def idle(self) -> None:
        """The player is about to wait: deliver anything batched."""

    def close(self, stopped: bool) -> None:
        """Finish (drain, flush)."""


class BrokerSink(Sink):
    """Publishes with QoS and retain as recorded (QoS 2 as QoS 1), at most `max_pending` unacknowledged.

    Uses replay.mqttpub.FastPublisher (pipelined, 3x paho's rate); retries connecting with backoff
    until `connect_timeout_s` (None: until stopped).
    """

    def __init__(self, mqtt_url: str, *, client_id: str | None = None, max_pending: int = DEFAULT_MAX_PENDING,
                 connect_timeout_s: float | None = 30.0, clear_retained: bool = False) -> None:
        """`clear_retained`: when the replay ends, withdraw every retained message it left (an API replay's
        root must not keep a replay's states, zone decisions and statuses after it)."""
        self.mqtt_url = mqtt_url
        self.client_id = client_id or f"skylane-replay-{os.getpid()}-{threading.get_ident() % 100_000}"
        self.max_pending = max_pending
        self.connect_timeout_s = connect_timeout_s
        self.published = 0
        self.bad_topic = 0
        self.clear_retained = clear_retained
        self._retained: set[str] = set()
        self._pub: FastPublisher | None = None
        self._stop = threading.Event()

    def open(self, stop: threading.Event) -> bool:
        self._stop = stop
        deadline = None if self.connect_timeout_s is None else time.monotonic() + self.connect_timeout_s
        delay = 0.5
        while not stop.is_set():
            try:
                self._pub = FastPublisher(self.mqtt_url, self.client_id, max_pending=self.max_pending, stop=stop)
                return True
            except MqttError as exc:
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise
                log.warning("%s; retrying in %.1f s", exc, delay)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)
        return False

    def send(self, topic: str, rec: Record) -> bool:
        assert self._pub is not None
        if rec.retain:
            self._retained.add(topic)
        try:
            ok = self._pub.publish(topic, rec.payload, qos=rec.qos, retain=rec.retain)
        except ValueError as exc:  # e.g. a wildcard in a hand-edited topic
            self.bad_topic += 1
            log.warning("record not replayed: %s", exc)
            return False
        if ok:
            self.published += 1
        return ok

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        """Publish something else on the same connection (e.g. the pipeline's outputs of a replay)."""
        assert self._pub is not None
        if retain:
            self._retained.add(topic)
        return self._pub.publish(topic, payload, qos=qos, retain=retain)

    def idle(self) -> None:
        if self._pub is not None:
            self._pub.flush()

    def pending(self) -> int:
        return self._pub.pending() if self._pub is not None else 0

    def close(self, stopped: bool) -> None:
        if self._pub is None:
            return
        try:
            if self.clear_retained:
                for topic in sorted(self._retained):
                    self._pub.publish(topic, b"", qos=1, retain=True)
                self._retained.clear()
            drained = self._pub.drain(timeout=STOPPED_DRAIN_S if stopped else None)
            if not drained:
                log.warning("replay ended with %d publishes unacknowledged", self._pub.pending())
        finally:
            self._pub.close()
            self._pub = None


OutputCallback = Callable[[BatchOutput], None]


class PipelineSink(Sink):
    """Feeds the ingest pipeline in batches, on recorded receive times; keeps what it decides.

    `on_output` sees every BatchOutput (e.g. to publish events under a replay root); the events
    themselves accumulate in `events` (EventRow, in pipeline order: sort for a stable listing).

    Batches hold at most `batch_size` messages; `Pipeline.process` itself applies controls and
    rule-watched readings in receive order, so the events do not depend on the batch size.
    """

    def __init__(self, pipeline: Pipeline, batch_size: int = 10_000,
                 on_output: OutputCallback | None = None, keep_events: bool = True) -> None:
        if batch_size < 1:
            raise ValueError("batch size must be >= 1")
        self.pipeline = pipeline
        self.root = pipeline.root
        self.batch_size = batch_size
        self.on_output = on_output
        self.keep_events = keep_events
        self.events: list = []
        self.zone_decisions: list = []  # airspace.dynamic.ZoneState
        self.counts: Counter[str] = Counter()
        self.dead_reasons: Counter[str] = Counter()
        self._batch: list[RawMessage] = []
        self._last_t: float | None = None
        self._last_dt: datetime | None = None

    def send(self, topic: str, rec: Record) -> bool:
        if rec.t != self._last_t:  # consecutive records often share a receive time
            self._last_t, self._last_dt = rec.t, datetime.fromtimestamp(rec.t, timezone.utc)
        self._batch.append(RawMessage(topic=topic, payload=rec.payload, received_at=self._last_dt,  # type: ignore[arg-type]
                                      qos=rec.qos))
        if len(self._batch) >= self.batch_size:
            self.flush()
        return True

    takes_outside_root = True

    def send_outside_root(self, topic: str, rec: Record) -> bool:
        """A vendor's topic, as recorded: the pipeline's dialects match it as live ingest does."""
        return self.send(topic, rec)

    def flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        out = self.pipeline.process(batch)
        c = self.counts
        c["messages"] += len(batch)
        c["telemetry"] += len(out.telemetry)
        c["readings"] += len(out.readings)
        c["statuses"] += len(out.statuses)
        c["events"] += len(out.events)
        c["dead_letters"] += len(out.dead_letters)
        for d in out.dead_letters:
            self.dead_reasons[d.reason.split(":", 1)[0][:80]] += 1
        if self.keep_events:
            self.events.extend(out.events)
        if out.zone_decisions:
            self.zone_decisions.extend(out.zone_decisions)
            c["zone_decisions"] += len(out.zone_decisions)
        if self.on_output is not None:
            self.on_output(out)

    def idle(self) -> None:
        self.flush()

    def close(self, stopped: bool) -> None:
        self.flush()


class TeeSink(Sink):
    """Several sinks in order (e.g. publish into the broker and evaluate in process)."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks
        self.takes_outside_root = any(s.takes_outside_root for s in sinks)

    def send_outside_root(self, topic: str, rec: Record) -> bool:
        took = False
        for s in self.sinks:
            took = s.send_outside_root(topic, rec) or took
        return took

    def open(self, stop: threading.Event) -> bool:
        return all(s.open(stop) for s in self.sinks)

    def send(self, topic: str, rec: Record) -> bool:
        ok = True
        for s in self.sinks:
            ok = s.send(topic, rec) and ok
        return ok

    def idle(self) -> None:
        for s in self.sinks:
            s.idle()

    def close(self, stopped: bool) -> None:
        for s in reversed(self.sinks):  # later sinks may still publish through earlier ones (outputs)
            s.close(stopped)
