"""Replaying a record file onto a broker, with the original timing scaled by `rate`.

Outbound topics ({root}/events/..., {root}/state/...) are skipped by default because the
pipeline regenerates them from the inbound traffic; replaying them too would show every
event twice. With a remap (root_from -> root_to) records outside root_from are skipped, so a
replay meant for a sandbox root can never leak onto live topics.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path

from devices.mqttclient import close_client, connect_with_retry
from devices.progress import ProgressCallback, ProgressReporter
from devices.publisher import DEFAULT_MAX_PENDING, BoundedPublisher
from protocol import topics

from .recordfile import ReadReport, read_header, read_records

log = logging.getLogger(__name__)

STOPPED_DRAIN_S = 5.0  # after a stop, how long to still wait for outstanding acks


def output_prefixes(*roots: str) -> tuple[str, ...]:
    """Topic prefixes of what the pipeline publishes under these roots."""
    return tuple(f"{r}/{family}/" for r in dict.fromkeys(roots) for family in ("events", "state"))


def replay(
    path: str | Path,
    mqtt_url: str,
    rate: float = 1.0,
    root_from: str | None = None,
    root_to: str | None = None,
    include_outputs: bool = False,
    stop: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    *,
    client_id: str | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
    connect_timeout_s: float = 30.0,
) -> int:
    """Publish the records of `path` in file order; returns how many were published.

    rate 1 keeps the recorded timing, 10 plays ten times faster, 0 as fast as possible (still
    bounded by acknowledgements). Timing is scheduled from the first record against a
    monotonic clock, so slow publishes never accumulate drift. QoS and retain are as
    recorded. Returns after every QoS>0 publish is acknowledged (or shortly after a stop).
    """
    if not (rate >= 0 and math.isfinite(rate)):
        raise ValueError("rate must be a finite number >= 0")
    header = read_header(path)  # fail fast, before connecting, on a file that is not a recording
    src = root_from or header.root
    dst = root_to or src
    skip_prefixes = () if include_outputs else output_prefixes(header.root, src)
    stop = stop if stop is not None else threading.Event()
    client_id = client_id or f"skylane-replay-{os.getpid()}-{threading.get_ident() % 10_000}"
    counters = {"published": 0, "skipped_outputs": 0, "outside_root": 0, "bad_topic": 0}
    report = ReadReport()
    reporter = ProgressReporter(log, f"replay {path}", progress)

    client = connect_with_retry(mqtt_url, client_id, stop, give_up_after_s=connect_timeout_s)
    if client is None:
        return 0
    pub = BoundedPublisher(client, max_pending)
    log.info("replaying %s to %s at rate %s (%s -> %s)", path, mqtt_url, rate or "max", src, dst)
    t0: float | None = None
    mono0 = time.monotonic()
    try:
        for rec in read_records(path, report):
            if stop.is_set():
                break
            if t0 is None:
                t0, mono0 = rec.t, time.monotonic()
            if rec.topic.startswith(skip_prefixes):
                counters["skipped_outputs"] += 1
                continue
            topic = topics.remap(rec.topic, src, dst)
            if dst != src and topic == rec.topic:
                counters["outside_root"] += 1
                continue
            if rate > 0:
                delay = mono0 + (rec.t - t0) / rate - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            while not client.is_connected():  # QoS 0 published while offline would be lost
                if stop.wait(0.1):
                    break
            try:
                info = pub.publish(topic, rec.payload, qos=rec.qos, retain=rec.retain, stop=stop)
            except ValueError as exc:  # e.g. a wildcard in a hand-edited topic
                counters["bad_topic"] += 1
                log.warning("record not replayed: %s (%r)", exc, topic[:200])
                continue
            if info is None:
                break
            counters["published"] += 1
            reporter.maybe(counters)
        drained = pub.drain(timeout=STOPPED_DRAIN_S) if stop.is_set() else pub.drain(stop=stop)
        if not drained:
            log.warning("replay ended with %d publishes unacknowledged", pub.pending())
    finally:
        close_client(client)
        reporter.report({**counters, "bad_records": report.skipped, "truncated": int(report.truncated)})
    return counters["published"]
