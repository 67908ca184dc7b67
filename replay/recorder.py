"""Recording live MQTT traffic to a record file (see replay.recordfile for the format)."""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from protocol.mqttclient import close_client, connect_with_retry
from protocol.progress import ProgressCallback, ProgressReporter

from .recordfile import RecordWriter
from .recordset import RotatingWriter

log = logging.getLogger(__name__)

TICK_S = 0.2  # flush/rotation timer: with FLUSH_EVERY_S 0.5, a crash loses at most ~0.7 s


def record(
    mqtt_url: str,
    path: str | Path,
    root: str,
    filters: Sequence[str] | None = None,
    stop: threading.Event | None = None,
    duration_s: float | None = None,
    progress: ProgressCallback | None = None,
    *,
    append: bool = False,
    client_id: str | None = None,
    ready: threading.Event | None = None,
    rotate_bytes: int | None = None,
    rotate_seconds: float | None = None,
    on_status: Callable[[dict], None] | None = None,
    context: dict | None = None,
) -> int:
    """Record every message matching `filters` (default: all of `root`) until `stop` or
    `duration_s`; returns the number of messages written. `context` goes into the header: what the
    recording is made under (the monitor policy, the zone set's version), which `--evaluate` compares.

    With `rotate_bytes` / `rotate_seconds` the recording is a set of parts (PATH's name with
    .00001, .00002, ... before the suffix; see replay.recordfile.RotatingWriter).

    Subscribes at QoS 1 with retain-as-published. Without a duration it keeps retrying an
    unreachable broker until stopped; with one, it gives up after that long. `ready` is set
    once the subscriptions are acknowledged: from then on nothing published is missed.
    """
    filters = list(filters) if filters else [f"{root}/#"]
    stop = stop if stop is not None else threading.Event()
    client_id = client_id or f"skylane-rec-{os.getpid()}-{threading.get_ident() % 10_000}"
    counters = {"recorded": 0, "undecodable": 0}
    writer: RecordWriter | RotatingWriter
    if rotate_bytes is not None or rotate_seconds is not None:
        writer = RotatingWriter(path, root, filters, max_bytes=rotate_bytes, max_seconds=rotate_seconds, extra=context)
    else:
        writer = RecordWriter(path, root, filters, append=append, extra=context)

    def on_message(_c: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            writer.write(time.time(), msg.topic, msg.qos, bool(msg.retain), bytes(msg.payload))
            counters["recorded"] += 1
        except (UnicodeDecodeError, ValueError) as exc:  # non-UTF-8 topic, or writer closed
            counters["undecodable"] += 1
            log.warning("message not recorded: %s", exc)

    reporter = ProgressReporter(log, f"recorder {path}", progress)
    client = None
    try:
        client = connect_with_retry(mqtt_url, client_id, stop, give_up_after_s=duration_s,
                                    subscriptions=[(f, 1) for f in filters], on_message=on_message)
        if client is None:
            return 0
        log.info("recording %s from %s to %s", filters, mqtt_url, path)
        if ready is not None:
            ready.set()
        end = math.inf if duration_s is None else time.monotonic() + duration_s
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0 or stop.wait(min(TICK_S, remaining)):
                break
            writer.flush_if_due()
            reporter.maybe(counters)
            if on_status is not None:
                on_status({**counters, "file": str(writer.path)})
    finally:
        if client is not None:
            close_client(client)
        writer.close()
        reporter.report(counters)
    return writer.count
