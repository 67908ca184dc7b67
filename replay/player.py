"""Playing recorded traffic: a source, a selection, a timeline and a sink.

Outbound topics ({root}/events/..., {root}/state/...) are skipped by default because the
pipeline regenerates them from the inbound traffic; replaying them too would show every
event twice. Topics are remapped from the recording's root to another one, by default
``replay/<root>`` (DEFAULT_PREFIX), so a replay never lands on live topics unless asked to
(``root_to`` equal to the live root); records outside the source root are then not published.

Those are the vendors' own topics (DJI ``thing/product/...``, ChirpStack ``application/...``, The Things Stack
``v3/...``): their names are fixed by the vendor, not under a root, and ingest subscribes to them as they are,
so they cannot be re-rooted: published unchanged they would reach live ingest as live traffic. A re-rooted
replay therefore leaves them out of the broker (counted as ``outside_root``) and gives them, as recorded, only
to a sink that evaluates in process (``Sink.takes_outside_root``: the pipeline of an evaluated replay, counted as
``evaluated_outside_root``), so its decisions still mirror live ingest's. A replay onto the live root itself
(``--live``) publishes them like every other topic.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from protocol.progress import ProgressCallback, ProgressReporter
from protocol import topics

from .sinks import DEFAULT_MAX_PENDING, BrokerSink, Sink
from .sources import OUTPUT_FAMILIES, FileSource, Selection, Source
from .timing import MAX, PlaybackControl, Scheduler, TimingStats, parse_rate

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "replay"
PROGRESS_EVERY_S = 0.2


def default_root(src: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where a replay of `src` goes unless told otherwise: replay/skylane/v1 for skylane/v1."""
    return f"{prefix.strip('/')}/{src}"


def output_prefixes(*roots: str) -> tuple[str, ...]:
    """Topic prefixes of what the pipeline publishes under these roots."""
    return tuple(f"{r}/{family}/" for r in dict.fromkeys(roots) for family in OUTPUT_FAMILIES)


@dataclass
class PlayResult:
    counters: dict[str, int] = field(default_factory=dict)
    timing: TimingStats = field(default_factory=TimingStats)
    passes: int = 0
    stopped: bool = False
    src: str = ""
    dst: str = ""

    @property
    def sent(self) -> int:
        return self.counters.get("sent", 0)


StatusCallback = Callable[[dict], None]


def play(source: Source, sink: Sink, *, control: PlaybackControl | None = None, selection: Selection = Selection(),
         root_from: str | None = None, root_to: str | None = None, loop: bool = False,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float | None, int], None] | None = None,
         on_status: StatusCallback | None = None) -> PlayResult:
    """Play `source` into `sink` at the control's rate until the end (or forever with `loop`).

    `on_status` gets {"counters", "fraction", "t", "control", "timing"} every PROGRESS_EVERY_S
    and once at the end (a progress bar, the API's status). Returns what was done.
    """
    control = control or PlaybackControl()
    src = root_from or source.root
    dst = root_to if root_to is not None else default_root(src)
    result = PlayResult(src=src, dst=dst)
    counters = result.counters
    counters.update(sent=0, not_sent=0, outside_root=0)
    scheduler = Scheduler(control, clock, sleep)
    result.timing = scheduler.stats
    if not sink.open(control.stop_event):
        result.stopped = True
        return result
    last_status = -math.inf
    t_now: float | None = None

    def status(force: bool = False) -> None:
        nonlocal last_status
        now = clock()
        if on_status is not None and (force or now - last_status >= PROGRESS_EVERY_S):
            last_status = now
            on_status({"counters": dict(counters), "fraction": source.fraction(), "t": t_now,
                       "control": control.state(), "timing": scheduler.stats})

    def before_sleep() -> None:  # waiting (paced, paused): deliver batched work, refresh the status
        sink.idle()
        status()

    remap_cache: dict[str, str] = {}
    try:
        while not control.stopped:
            result.passes += 1
            scheduler.restart()  # each pass starts its timeline afresh
            n = 0
            for rec in selection.apply(source.records(), src, counters):
                topic = remap_cache.get(rec.topic)
                if topic is None:
                    topic = topics.remap(rec.topic, src, dst)
                    outside = dst != src and topic == rec.topic
                    if outside and not sink.takes_outside_root:
                        counters["outside_root"] += 1
                        continue
                    if len(remap_cache) < 200_000 and not outside:
                        remap_cache[rec.topic] = topic
                else:
                    outside = False
                if not scheduler.wait_for(rec.t, before_sleep):
                    break
                t_now = rec.t
                if outside:  # a vendor's topic (not under the root): evaluated in process, never published
                    key = "evaluated_outside_root" if sink.send_outside_root(topic, rec) else "outside_root"
                    counters[key] = counters.get(key, 0) + 1
                elif sink.send(topic, rec):
                    counters["sent"] += 1
                elif control.stopped:
                    break
                else:
                    counters["not_sent"] += 1
                n += 1
                if not n & 63:
                    status()
            if not loop or control.stopped or n == 0:
                break
    finally:
        result.stopped = control.stopped
        sink.close(result.stopped)
        status(force=True)
    return result


def replay(
    path: str | Path,
    mqtt_url: str,
    rate: float | str = 1.0,
    root_from: str | None = None,
    root_to: str | None = None,
    include_outputs: bool = False,
    stop: threading.Event | None = None,
    progress: ProgressCallback | None = None,
    *,
    client_id: str | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
    connect_timeout_s: float = 30.0,
    selection: Selection | None = None,
    loop: bool = False,
    control: PlaybackControl | None = None,
) -> int:
    """Publish the records of a recording (file, rotated set or directory) into the broker; returns
    how many were published.

    rate: 0.1..1000 or "max" (0 is taken as "max", as before). Timing follows absolute deadlines
    (replay.timing). QoS and retain are as recorded. Topics go under `root_to`, by default
    replay/<root>. Returns after every QoS>0 publish is acknowledged (or shortly after a stop).
    """
    rate_value = MAX if rate in (0, 0.0, "0") else parse_rate(rate)  # validate before connecting
    source = FileSource(path)  # fail fast, before connecting, on a file that is not a recording
    sel = selection or Selection(outputs=include_outputs)
    if include_outputs and not sel.outputs:
        sel = dataclasses.replace(sel, outputs=True)
    if control is None:
        control = PlaybackControl(rate_value, stop_event=stop)
    else:
        control.set_rate(rate_value)
    sink = BrokerSink(mqtt_url, client_id=client_id, max_pending=max_pending, connect_timeout_s=connect_timeout_s)
    reporter = ProgressReporter(log, f"replay {source.label}", progress)
    log.info("replaying %s to %s at rate %s", source.label, mqtt_url, "max" if rate_value == MAX else rate_value)
    res = play(source, sink, control=control, selection=sel, root_from=root_from, root_to=root_to, loop=loop,
               on_status=lambda s: reporter.maybe(s["counters"]))
    reporter.report({**res.counters, "published": sink.published, "bad_topic": sink.bad_topic,
                     "bad_records": source.report.skipped, "truncated": int(source.report.truncated),
                     "max_late_ms": round(res.timing.max_late_s * 1000, 3)})
    return sink.published
