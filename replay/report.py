"""The incident report's facts: a recording's evaluated events, the tracks, the zones and the sensor values.

`collect` runs `replay.evaluate.evaluate` (the events are exactly those of `skylane replay --evaluate`), then
reads the recording's messages once more with ingest's own parsers for the tracks (fixes in event time) and
the readings of the sensors that mattered: those named by an event (a suspension's wind mast) and those
whose zone rules watch a zone of an event. `build_report` renders the HTML (replay/report_html.py) in a
language (zh-CN or en, the catalogue's `report.*` texts). Pure: no database, no broker, no clock; the same
recording gives the same report.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airspace.dynamic import rules_from_zones
from airspace.monitor import MonitorPolicy
from airspace.thresholds import Rule
from airspace.zones import Zone, ZoneSet
from ingest.pipeline import Pipeline, load_dynamic_rules
from ingest.sensors import parse_reading
from ingest.sensor_watch import SensorInfo
from ingest.sharding import ShardError, unshard
from ingest.telemetry import parse_telemetry
from protocol.times import parse_rfc3339
from protocol.topics import TopicError, parse_inbound

from .evaluate import evaluate
from .sources import Source

SENSOR_WINDOW_S = 300.0  # readings kept around each event that involves their sensor
MAX_POINTS = 20_000  # per drone: longer tracks are thinned evenly (events keep their own positions)
MAX_PAYLOAD = 1 << 20


@dataclass(frozen=True)
class Fix:
    t: float
    lon: float
    lat: float
    alt_m: float
    alt_ref: str
    speed_mps: float | None
    battery_pct: float | None
    status: str | None


@dataclass(frozen=True)
class Reading:
    t: float
    value: float | None
    text: str | None
    unit: str | None


@dataclass(frozen=True)
class Why:
    """A reason a sensor's readings are shown: an event of `kind` in `zone`, or the zone rule `rule` on `zone`
    (said in the report's language by report_html)."""

    zone: str
    kind: str | None = None
    rule: str | None = None


@dataclass
class SensorSeries:
    sensor_id: str
    metric: str
    readings: list[Reading]
    rules: list[Rule] = field(default_factory=list)  # the zone rules on it (limit and clear lines)
    why: list[Why] = field(default_factory=list)  # which events or zone rules made it matter


@dataclass
class ReportData:
    title: str
    source: str
    root: str
    events: list[dict]
    tracks: dict[str, list[Fix]]
    zones: list[Zone]  # every zone of the airspace (the map shows those in view)
    involved: set[str]  # zone ids named by an event
    sensors: list[SensorSeries]
    summary: dict[str, Any]
    uav: str | None = None
    recorded: str | None = None  # the recording's creation time (its header)

    @property
    def span(self) -> tuple[float, float] | None:
        times = [f.t for fixes in self.tracks.values() for f in fixes] + [event_time(e) for e in self.events]
        return (min(times), max(times)) if times else None


def event_time(ev: Mapping) -> float:
    return parse_rfc3339(ev["ts"]).timestamp()


def collect(source: Source, zones: ZoneSet, *, uav: str | None = None, policy: MonitorPolicy = MonitorPolicy(),
            sensors: Mapping[str, SensorInfo] | None = None, title: str | None = None,
            pipeline: Pipeline | None = None) -> ReportData:
    """Everything the report shows. `uav`: only that drone's events and track (the evaluation still runs on
    the whole recording, so its decisions are the live ones). `pipeline`: built from the stored truth as live
    ingest builds its own (ingest.stored: dialects, registry, restored states), else from `zones` and `policy`."""
    ev = evaluate(source, zones, policy=policy, sensors=sensors, pipeline=pipeline)
    events = [e for e in ev.events if uav is None or e.get("uav_id") == uav]
    involved = {e["zone_id"] for e in events if e.get("zone_id")}
    rules = [r for r in [*load_dynamic_rules(), *rules_from_zones(zones)] if r.zone_id in involved]
    wanted = _sensors_that_matter(events, rules)
    tracks, readings = _read(source, uav, wanted)
    series = []
    for (sensor_id, metric), rows in sorted(readings.items()):
        on_it = [r for r in rules if r.metric == metric and r.sensor_ids and sensor_id in r.sensor_ids]
        series.append(SensorSeries(sensor_id, metric, rows, on_it, wanted[sensor_id][1]))
    header = getattr(source, "header", None)
    return ReportData(title or source.label, source.label, source.root, events, tracks, list(zones), involved,
                      series, ev.summary(), uav, getattr(header, "created", None))


def _sensors_that_matter(events: list[dict], rules: list[Rule]
                         ) -> dict[str, tuple[list[tuple[float, float]], list[Why]]]:
    """sensor id -> (time windows to keep readings in, why it matters)."""
    out: dict[str, tuple[list[tuple[float, float]], list[Why]]] = {}
    span = (min(map(event_time, events)), max(map(event_time, events))) if events else None
    for e in events:
        sid = (e.get("detail") or {}).get("sensor_id")
        if isinstance(sid, str):
            t = event_time(e)
            windows, why = out.setdefault(sid, ([], []))
            windows.append((t - SENSOR_WINDOW_S, t + SENSOR_WINDOW_S))
            why.append(Why(e.get("zone_id") or "-", kind=e["kind"]))
    for r in rules:
        for sid in sorted(r.sensor_ids or ()):
            if span is not None:
                windows, why = out.setdefault(sid, ([], []))
                windows.append((span[0] - SENSOR_WINDOW_S, span[1] + SENSOR_WINDOW_S))
                why.append(Why(r.zone_id, rule=r.id))
    return {sid: (windows, list(dict.fromkeys(why))) for sid, (windows, why) in out.items()}


def _read(source: Source, uav: str | None, sensors: Mapping[str, tuple[list[tuple[float, float]], list[Why]]]
          ) -> tuple[dict[str, list[Fix]], dict[tuple[str, str], list[Reading]]]:
    """Fixes of every drone (or `uav`) and the readings of `sensors` inside their windows, in event time."""
    root = source.root
    tracks: dict[str, list[Fix]] = defaultdict(list)
    readings: dict[tuple[str, str], list[Reading]] = defaultdict(list)
    for rec in source.records():
        try:
            ref = parse_inbound(root, unshard(root, rec.topic))
        except (TopicError, ShardError):
            continue  # controls, outputs, other roots: not device traffic
        received = datetime.fromtimestamp(rec.t, timezone.utc)
        try:
            if ref.kind == "telemetry" and (uav is None or ref.device_id == uav):
                for r in parse_telemetry(ref.device_id, rec.payload, received, MAX_PAYLOAD):
                    tracks[r.uav_id].append(Fix(r.ts.timestamp(), r.lon, r.lat, r.alt_m, r.alt_ref, r.speed_mps,
                                                r.battery_pct, r.status))
            elif ref.kind == "reading" and ref.device_id in sensors:
                windows = sensors[ref.device_id][0]
                for r in parse_reading(ref.device_id, rec.payload, received, MAX_PAYLOAD):
                    t = r.ts.timestamp()
                    if any(lo <= t <= hi for lo, hi in windows):
                        readings[(r.sensor_id, r.metric)].append(Reading(t, r.value, r.vtext, r.unit))
        except ValueError:  # ingest.validation.BadMessage too
            continue  # a dead letter in the live system: not part of the track
    for fixes in tracks.values():
        fixes.sort(key=lambda f: f.t)
        if len(fixes) > MAX_POINTS:
            step = len(fixes) / MAX_POINTS
            fixes[:] = [fixes[int(i * step)] for i in range(MAX_POINTS)] + [fixes[-1]]
    for rows in readings.values():
        rows.sort(key=lambda r: r.t)
    return dict(tracks), dict(readings)


def build_report(source: Source, zones: ZoneSet, *, language: str = "en", **options) -> str:
    """The self-contained HTML report of a recording in `language` (zh-CN or en; any tag i18n.normalize takes),
    `options` as for `collect`."""
    from .report_html import render
    return render(collect(source, zones, **options), language)
