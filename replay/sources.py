"""Where replayed messages come from (record files, a database window, a list) and which are kept.

A source yields Records in receive order and can be read again (for --loop); `fraction()` says
how far it has got, for the progress bar. `Selection` keeps a time window and topic, UAV and
sensor filters; it never reorders.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt

from .recordfile import ReadReport, Record, read_header
from .recordset import expand, read_set

OUTPUT_FAMILIES = ("events", "state")  # what the pipeline publishes; a replay regenerates it
PARALLEL_MIN_BYTES = 8 << 20  # a bigger recording is decoded in a child process (a second core)


def parse_time(value: str | float | None) -> float | None:
    """RFC 3339 (with an offset, or taken as UTC) or epoch seconds -> epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {value!r}: use RFC 3339 (2026-05-09T07:35:25Z) or epoch seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def split_topic(topic: str, root: str) -> tuple[str, str] | None:
    """(family, device id) of a topic under `root` ('uav', 'uav-001'), or None outside it."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    return parts[0], parts[1] if len(parts) > 1 else ""


@dataclass(frozen=True)
class Selection:
    """Which records of a source to play.

    start/end: absolute receive-time window (epoch s, end exclusive); offset_s: skip that many
    seconds from the first record (both may be given: the later start wins); topics: MQTT
    filters on the recorded topic; uavs / sensors: keep only those devices' messages (a device
    status is kept only if its id is in one of them; a filter on one family leaves the other
    alone); outputs: also play the pipeline's outputs
    (events/, state/), which are skipped by default since a replay regenerates them; controls: play the
    recorded control/ messages (not onto the live root: there they would replace stored decisions).
    """

    start: float | None = None
    end: float | None = None
    offset_s: float | None = None
    topics: tuple[str, ...] = ()
    uavs: frozenset[str] = field(default_factory=frozenset)
    sensors: frozenset[str] = field(default_factory=frozenset)
    outputs: bool = False
    controls: bool = True

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        if self.offset_s is not None and not (self.offset_s >= 0 and math.isfinite(self.offset_s)):
            raise ValueError("offset must be a number of seconds >= 0")
        for f in self.topics:
            if not f or ("#" in f and not f.endswith("#")):
                raise ValueError(f"bad topic filter {f!r}")

    def keeps_topic(self, topic: str, root: str) -> str | None:
        """None if the topic is kept, else the counter that explains why not."""
        ref = split_topic(topic, root)
        if ref is not None and ref[0] in OUTPUT_FAMILIES and not self.outputs:
            return "skipped_outputs"
        if ref is not None and ref[0] == "control" and not self.controls:
            return "skipped_controls"
        if self.topics and not any(mqtt.topic_matches_sub(f, topic) for f in self.topics):
            return "filtered"
        if ref is not None:
            family, device = ref
            if family == "uav" and self.uavs and device not in self.uavs:
                return "filtered"
            if family == "sensor" and self.sensors and device not in self.sensors:
                return "filtered"
            if family == "device" and (self.uavs or self.sensors) and device not in self.uavs | self.sensors:
                return "filtered"
        return None

    def apply(self, records: Iterable[Record], root: str, counters: dict[str, int]) -> Iterator[Record]:
        start, end = self.start, self.end
        first = True
        cache: dict[str, str | None] = {}  # topic -> verdict; topics repeat a lot
        for rec in records:
            if first:
                first = False
                if self.offset_s is not None:
                    start = max(start if start is not None else -math.inf, rec.t + self.offset_s)
            if (start is not None and rec.t < start) or (end is not None and rec.t >= end):
                counters["outside_window"] = counters.get("outside_window", 0) + 1
                if end is not None and rec.t >= end and rec.t - end > 3600:
                    break  # receive order: nothing later comes back into the window (1 h slack for clock steps)
                continue
            verdict = cache.get(rec.topic, "?")
            if verdict == "?":
                verdict = self.keeps_topic(rec.topic, root)
                if len(cache) < 200_000:
                    cache[rec.topic] = verdict
            if verdict is not None:
                counters[verdict] = counters.get(verdict, 0) + 1
                continue
            yield rec


class Source:
    """A re-readable sequence of records under one topic root."""

    root: str
    label: str

    def records(self) -> Iterator[Record]:
        raise NotImplementedError

    def fraction(self) -> float | None:
        """How far the current read has got (0..1), if known."""
        return None

    def starts_at(self) -> float | None:
        """When the recorded traffic starts (epoch s), if known without reading it."""
        return None


class FileSource(Source):
    """One record file, a rotated set, a directory of them, or a list of files."""

    def __init__(self, paths: str | Path | Sequence[str | Path], parallel: bool | None = None) -> None:
        """`parallel` (default: for recordings over PARALLEL_MIN_BYTES) decodes in a child process."""
        self.paths = expand(paths)
        self.header = read_header(self.paths[0])
        self.root = self.header.root
        self.label = str(self.paths[0]) if len(self.paths) == 1 else f"{self.paths[0]} (+{len(self.paths) - 1} parts)"
        self.report = ReadReport()
        self._sizes = [p.stat().st_size for p in self.paths]
        self.parallel = sum(self._sizes) >= PARALLEL_MIN_BYTES if parallel is None else parallel

    def starts_at(self) -> float | None:
        """The header's creation time: the recorder writes it before it subscribes."""
        return parse_time(self.header.created) if self.header.created else None

    def records(self) -> Iterator[Record]:
        self.report = ReadReport()
        _, recs = read_set(self.paths, self.report, parallel=self.parallel)
        return recs

    def fraction(self) -> float | None:
        total = sum(self._sizes)
        return None if not total else min(self.report.bytes_done / total, 1.0)


class ListSource(Source):
    """Records already in memory (tests, the API's database windows once fetched)."""

    def __init__(self, records: Sequence[Record], root: str, label: str = "records") -> None:
        self._records = list(records)
        self.root = root
        self.label = label
        self._pos = 0

    def records(self) -> Iterator[Record]:
        self._pos = 0
        for rec in self._records:
            self._pos += 1
            yield rec

    def fraction(self) -> float | None:
        return self._pos / len(self._records) if self._records else 1.0

    def starts_at(self) -> float | None:
        return self._records[0].t if self._records else None


def replay_start(source: Source, selection: Selection) -> float | None:
    """The instant a replay starts from (epoch s; None: unknown): the selection's start or offset, else the
    source's start. A replay's pipeline starts from the stored truth as of then (ingest.stored.read_stored)."""
    start = source.starts_at()
    if start is not None and selection.offset_s is not None:
        start += selection.offset_s
    if selection.start is not None:
        start = selection.start if start is None else max(start, selection.start)
    return start
