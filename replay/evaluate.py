"""Deterministic evaluation: a recording through the airspace core on event time, events out.

No broker, no database, no wall clock: the recorded messages go through the ingester's own
`Pipeline` in batches, stamped with their recorded receive times, so the decisions are those
the live system made (or, with another zone file, would have made). The events are listed in a
stable order (event time, UAV, kind, zone, id) as canonical JSON lines, so two evaluations of the
same input are byte-identical whatever the rate or batch size, and an expected-events file is a
regression test (`diff_events`).
"""
from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from airspace.formats import parse_zones
from airspace.zones import ZoneSet
from airspace.monitor import MonitorPolicy
from airspace.traffic_policy import TrafficPolicy
from ingest.pipeline import Pipeline, build_pipeline, fewer_collections
from ingest.sensor_watch import SensorInfo

from .player import play
from .sinks import PipelineSink
from .sources import Selection, Source
from .timing import MAX, PlaybackControl

EVENT_KEYS = ("id", "kind", "uav_id", "zone_id", "ts", "detail")


def load_zones(path: str | Path) -> ZoneSet:
    """A zone file in any format airspace.formats reads (ED-269, ED-318, GeoJSON)."""
    return parse_zones(json.loads(Path(path).read_text()))


def _sort_key(ev: dict) -> tuple:
    return (ev.get("ts") or "", ev.get("uav_id") or "", ev.get("kind") or "", ev.get("zone_id") or "",
            str(ev.get("id") or ""))


def canonical(events: Iterable[dict]) -> list[dict]:
    """Events in the stable order, as plain JSON values (a round trip through JSON)."""
    return sorted((orjson.loads(orjson.dumps(e)) for e in events), key=_sort_key)


def event_line(ev: dict) -> str:
    return orjson.dumps(ev, option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class Evaluation:
    events: list[dict]
    counts: dict[str, int]
    dead_reasons: dict[str, int]
    zone_decisions: list = field(default_factory=list)  # airspace.dynamic.ZoneState of sensor rules
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for e in self.events:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        return {**self.counts, "events_by_kind": dict(sorted(kinds.items())),
                "dead_letter_reasons": dict(self.dead_reasons), "seconds": round(self.seconds, 3)}


def evaluate(source: Source, zones: ZoneSet, *, selection: Selection = Selection(), batch_size: int = 10_000,
             rate: float = MAX, root: str | None = None, control: PlaybackControl | None = None,
             on_status: Callable[[dict], None] | None = None, policy: MonitorPolicy = MonitorPolicy(),
             sensors: Mapping[str, SensorInfo] | None = None,
             traffic: TrafficPolicy | None = TrafficPolicy(), pipeline: Pipeline | None = None) -> Evaluation:
    """Run the recording through the pipeline as live ingest builds it (rate MAX by default: as fast as it
    computes). `pipeline`: one built from the stored truth (ingest.stored.stored_pipeline: dialects, registry,
    restored states), used instead of one from `zones`, `policy`, `sensors` and `traffic` alone."""
    root = root or source.root
    if pipeline is None:
        pipeline = build_pipeline(zones, root, policy=policy, sensors=sensors, traffic=traffic)
    sink = PipelineSink(pipeline, batch_size=batch_size)
    t0 = time.perf_counter()
    with fewer_collections():
        if control is None and rate == MAX and selection == Selection():
            counters = _straight(source, sink, root, on_status)
        else:
            control = control or PlaybackControl(rate)
            res = play(source, sink, control=control, selection=selection, root_from=root, root_to=root,
                       on_status=on_status)
            counters = {k: v for k, v in res.counters.items() if k not in ("sent", "not_sent")}
    events = canonical(e.to_dict() for e in sink.events)
    counts = {**dict(sink.counts), **counters}
    return Evaluation(events, counts, dict(sink.dead_reasons), list(sink.zone_decisions), time.perf_counter() - t0)


def _straight(source: Source, sink: PipelineSink, root: str, on_status: Callable[[dict], None] | None) -> dict:
    """play() without a timeline, remapping or filters: the whole recording as fast as it computes
    (the default evaluation; the same messages reach the pipeline in the same order)."""
    keeps = Selection().keeps_topic
    verdicts: dict[str, str | None] = {}
    counters: dict[str, int] = {"outside_root": 0}
    send = sink.send
    n = 0
    try:
        for rec in source.records():
            topic = rec.topic
            verdict = verdicts.get(topic, "?")
            if verdict == "?":
                verdict = keeps(topic, root)
                if len(verdicts) < 200_000:
                    verdicts[topic] = verdict
            if verdict is not None:
                counters[verdict] = counters.get(verdict, 0) + 1
                continue
            send(topic, rec)
            n += 1
            if on_status is not None and not n & 0x3FFF:
                on_status({"counters": {"sent": n, **counters}, "fraction": source.fraction(), "t": rec.t,
                           "control": {"rate": "max", "paused": False, "stopped": False}})
    finally:
        sink.close(False)
    if on_status is not None:
        on_status({"counters": {"sent": n, **counters}, "fraction": 1.0, "t": None,
                   "control": {"rate": "max", "paused": False, "stopped": True}})
    return counters


def write_events(events: Sequence[dict], out: str | Path | IO[str]) -> None:
    """One canonical JSON line per event ('-' or a stream: written there)."""
    text = "".join(event_line(e) + "\n" for e in events)
    if isinstance(out, (str, Path)):
        Path(out).write_text(text)
    else:
        out.write(text)


def read_events(path: str | Path) -> list[dict]:
    """An events file (JSON lines; blank lines and lines starting with # ignored)."""
    events = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}:{i}: not JSON: {exc}") from None
        if not isinstance(ev, dict) or "kind" not in ev:
            raise ValueError(f"{path}:{i}: not an event object")
        events.append(ev)
    return canonical(events)


def diff_events(expected: Sequence[dict], got: Sequence[dict], expected_label: str = "expected",
                got_label: str = "got") -> list[str]:
    """A unified diff of the two event lists in canonical form; empty when they are identical."""
    a = [event_line(e) for e in canonical(expected)]
    b = [event_line(e) for e in canonical(got)]
    if a == b:
        return []
    lines = list(difflib.unified_diff(a, b, expected_label, got_label, n=1, lineterm=""))
    missing = sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))
    extra = sum(1 for x in lines if x.startswith("+") and not x.startswith("+++"))
    return [f"{missing} expected event line(s) missing or changed, {extra} unexpected"] + lines
