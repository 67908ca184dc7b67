"""Sensor events on event time: threshold rules with hysteresis, silence, and online/offline.

Pure logic (no I/O, no wall clock): the pipeline calls

    watch = SensorWatch(sensor_infos(registry_rows), load_rules())
    events = watch.observe(readings, statuses)   # per batch, ReadingRow and DeviceStatus lists
    events += watch.tick(watermark)               # event-time clock: silent sensors
or both in one call, the watermark kept by the watch from the event times it sees:
    events = watch.step(readings, statuses, latest=newest_fix_ts)

Rules are airspace.thresholds.Rule (the format zone suspension uses too), from ingest/data/sensor_rules.json.
Event kinds (SENSOR_EVENT_KINDS):
  sensor_threshold          a rule's limit crossed (value above `above`, or below `below`)
  sensor_threshold_cleared  back past the rule's clear value (the gap is the hysteresis: no flapping)
  sensor_silent             no reading for `silence_factor` x the registry's expected interval; its ts is the
                            moment the deadline passed, so it does not depend on how batches were cut
  sensor_resumed            the first reading after a silence (detail: gap_s)
  sensor_online / sensor_offline  a status change (retained "online" on connect, "offline" as last will);
                            repeated retained deliveries of the same state are not events
Each event has a deterministic id (uuid5 of sensor, kind, rule, metric, time): a re-delivered or replayed
batch gives the same ids, and storage inserts them once.

Readings are evaluated per (sensor, metric) in event-time order; a reading older than the last one a rule
has seen for that sensor is stored by the pipeline but not re-evaluated (the state already moved on). The
numeric work per batch is vectorized (numpy masks per rule, one array of silence deadlines); only sensors
whose state can change are walked in order.
"""
from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from airspace.events import from_epoch
from airspace.thresholds import Rule, parse_rules
from protocol.times import rfc3339

SENSOR_EVENT_KINDS = ("sensor_threshold", "sensor_threshold_cleared", "sensor_silent", "sensor_resumed",
                      "sensor_online", "sensor_offline")
SENSOR_EVENT_NAMESPACE = uuid.UUID("0b8e64f4-2f5e-4c39-8d8a-5b1f0e6c7a21")
DEFAULT_RULES_FILE = Path(__file__).parent / "data" / "sensor_rules.json"
DEFAULT_SILENCE_FACTOR = 2.5  # a sensor is silent after missing its interval by this factor (jitter, retries)
DEFAULT_LATENESS_S = 5.0  # step(): the watermark trails the newest event time by this (messages in transit)


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """What the watch needs of a registry entry."""

    sensor_id: str
    sensor_kind: str | None = None
    expected_interval_s: float | None = None
    limits: dict[str, float] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SensorEvent:
    id: uuid.UUID
    ts: datetime
    kind: str
    sensor_id: str
    rule_id: str | None = None
    metric: str | None = None
    value: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body published on {root}/events/sensor/{sensor_id} and served by the API."""
        return {"id": str(self.id), "ts": rfc3339(self.ts), "kind": self.kind, "sensor_id": self.sensor_id,
                "rule_id": self.rule_id, "metric": self.metric, "value": self.value, "detail": self.detail}


def sensor_event_id(sensor_id: str, kind: str, rule_id: str | None, metric: str | None, ts: datetime) -> uuid.UUID:
    return uuid.uuid5(SENSOR_EVENT_NAMESPACE, f"{sensor_id}|{kind}|{rule_id or ''}|{metric or ''}|{rfc3339(ts)}")


# ------------------------------------------------------------------------------------------------ loading

def load_rules(path: Path | str = DEFAULT_RULES_FILE, *, zone_rules: bool = False) -> list[Rule]:
    """A rules file (airspace.thresholds format): sensor event rules, or with `zone_rules` zone suspension rules
    (ingest.pipeline.load_dynamic_rules); RuleError names the file, the rule and the field."""
    return parse_rules(json.loads(Path(path).read_text(encoding="utf-8")), Path(path).name, zone_rules=zone_rules)


def sensor_infos(rows: Iterable[Any]) -> dict[str, SensorInfo]:
    """Registry entries (dicts from storage.catalog.registry or devices.registry.DeviceRecord) -> SensorInfo
    by id; drones are left out (their silence is the airspace monitor's link_lost)."""
    out: dict[str, SensorInfo] = {}
    for r in rows:
        get = r.get if isinstance(r, Mapping) else (lambda k, _r=r: getattr(_r, k, None))
        if get("kind") == "uav":
            continue
        props = dict(get("properties") or {})
        limits = props.get("limits") or {}
        limits = {str(k): float(v) for k, v in limits.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)} \
            if isinstance(limits, Mapping) else {}
        interval = get("expected_interval_s")
        out[get("device_id")] = SensorInfo(get("device_id"), get("sensor_kind"),
                                           float(interval) if interval else None, limits, props)
    return out


# ---------------------------------------------------------------------------------------------- the watch

_NAN = float("nan")


class SensorWatch:
    """Per-sensor event-time state; feed it every batch's readings and statuses, then tick it.

    Every sensor ever seen (or registered) has a slot; per-slot state lives in numpy arrays (newest reading,
    silence allowance, silent flag, and per rule: applies, limit, clear value, raised, newest time seen), so a
    batch is a few array operations plus a Python walk over the rows that change something."""

    def __init__(self, registry: Mapping[str, SensorInfo] | None = None, rules: Sequence[Rule] = (),
                 silence_factor: float = DEFAULT_SILENCE_FACTOR) -> None:
        if not silence_factor > 0:
            raise ValueError("silence_factor must be > 0")
        self.silence_factor = silence_factor
        self.rules = list(rules)
        if len({r.id for r in self.rules}) != len(self.rules):
            raise ValueError("rule ids must be unique")
        self._metric_rules: dict[str, list[int]] = defaultdict(list)  # metric -> rule numbers
        for k, rule in enumerate(self.rules):
            self._metric_rules[rule.metric].append(k)
        self.registry: dict[str, SensorInfo] = {}
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        n_rules = len(self.rules)
        self._last = np.full(0, np.nan)  # epoch s of the newest reading per slot (nan: none yet)
        self._allowed = np.full(0, np.inf)  # silence allowance in s (inf: not watched)
        self._silent = np.zeros(0, dtype=bool)
        self._applies = np.zeros((n_rules, 0), dtype=bool)
        self._limit = np.zeros((n_rules, 0))
        self._clear = np.zeros((n_rules, 0))
        self._raised = np.zeros((n_rules, 0), dtype=bool)
        self._rule_last = np.full((n_rules, 0), -np.inf)  # newest reading time each rule has seen per slot
        self._baseline: float | None = None  # first event time seen: never-heard sensors count from here
        self._online: dict[str, bool] = {}
        self.watermark: float | None = None  # step()'s event-time clock (epoch s)
        self.update_registry(registry or {})

    # -- state shared with the outside (wiring seeds it after a restart) --------------------------------

    def update_registry(self, registry: Mapping[str, SensorInfo]) -> None:
        """Add or replace registry entries (expected intervals, kinds, limits); state is kept."""
        for sid, info in registry.items():
            self.registry[sid] = info
            self._configure(self._slot(sid))

    def seed(self, last_seen: Mapping[str, datetime] | None = None, online: Mapping[str, bool] | None = None,
             active: Iterable[tuple[str, str]] = ()) -> None:
        """Restore what the database knows after a restart (newest reading time, online state, raised
        rules), so a restart does not announce every sensor again."""
        for sid, ts in (last_seen or {}).items():
            i = self._slot(sid)
            self._last[i] = np.fmax(self._last[i], ts.timestamp())
        self._online.update(online or {})
        numbers = {rule.id: k for k, rule in enumerate(self.rules)}
        for rule_id, sid in active:
            if rule_id in numbers:
                self._raised[numbers[rule_id], self._slot(sid)] = True

    def active_rules(self) -> set[tuple[str, str]]:
        """(rule id, sensor id) pairs currently raised."""
        ks, slots = np.nonzero(self._raised[:, :len(self._ids)])
        return {(self.rules[k].id, self._ids[i]) for k, i in zip(ks.tolist(), slots.tolist())}

    def is_silent(self, sensor_id: str) -> bool:
        i = self._index.get(sensor_id)
        return bool(i is not None and self._silent[i])

    def _slot(self, sensor_id: str) -> int:
        i = self._index.get(sensor_id)
        if i is not None:
            return i
        i = len(self._ids)
        self._index[sensor_id] = i
        self._ids.append(sensor_id)
        if i >= len(self._last):  # grow geometrically
            extra = max(16, len(self._last))
            self._last = np.concatenate([self._last, np.full(extra, np.nan)])
            self._allowed = np.concatenate([self._allowed, np.full(extra, np.inf)])
            self._silent = np.concatenate([self._silent, np.zeros(extra, dtype=bool)])
            n_rules = len(self.rules)
            self._applies = np.concatenate([self._applies, np.zeros((n_rules, extra), dtype=bool)], axis=1)
            self._limit = np.concatenate([self._limit, np.zeros((n_rules, extra))], axis=1)
            self._clear = np.concatenate([self._clear, np.zeros((n_rules, extra))], axis=1)
            self._raised = np.concatenate([self._raised, np.zeros((n_rules, extra), dtype=bool)], axis=1)
            self._rule_last = np.concatenate([self._rule_last, np.full((n_rules, extra), -np.inf)], axis=1)
        self._configure(i)
        return i

    def _configure(self, i: int) -> None:
        """A slot's allowance and, per rule, whether it applies and with which limits (registry-dependent)."""
        sid = self._ids[i]
        info = self.registry.get(sid)
        interval = info.expected_interval_s if info is not None else None
        self._allowed[i] = interval * self.silence_factor if interval and interval > 0 else np.inf
        for k, rule in enumerate(self.rules):
            self._applies[k, i] = rule.applies_to(sid, info.sensor_kind if info is not None else None)
            self._limit[k, i], self._clear[k, i] = rule.limits_for(
                info.limits.get(rule.metric) if info is not None else None)

    # -- per batch ------------------------------------------------------------------------------------

    def observe(self, readings: Sequence[Any], statuses: Sequence[Any] = ()) -> list[SensorEvent]:
        """Events caused by a batch: status changes, silences ended (and ones the readings themselves prove,
        e.g. a reading long after the previous one), and rule transitions in event-time order."""
        events: list[SensorEvent] = []
        for st in statuses:
            events.extend(self._status(st))
        if readings:
            index, slot = self._index, self._slot
            n = len(readings)
            slots = np.fromiter((index[r.sensor_id] if r.sensor_id in index else slot(r.sensor_id)
                                 for r in readings), np.int64, n)
            ts = np.fromiter((r.ts.timestamp() for r in readings), float, n)
            if self._baseline is None:  # the first reading's event time, not the batch's end: cut-independent
                self._baseline = float(ts.min())
            events.extend(self._arrivals(readings, slots, ts))
            if self.rules:
                events.extend(self._evaluate(readings, slots, ts))
        events.sort(key=lambda e: (e.ts, e.sensor_id, e.kind))
        return events

    def step(self, readings: Sequence[Any], statuses: Sequence[Any] = (), latest: datetime | None = None,
             lateness_s: float = DEFAULT_LATENESS_S) -> list[SensorEvent]:
        """observe() then tick() on the watch's own watermark: the newest event time seen so far (readings,
        and `latest`, e.g. the batch's newest telemetry fix) less `lateness_s`, never moving back."""
        events = self.observe(readings, statuses)
        newest = max((r.ts for r in readings), default=None)
        for t in (newest, latest):
            if t is not None and (self.watermark is None or t.timestamp() - lateness_s > self.watermark):
                self.watermark = t.timestamp() - lateness_s
        if self.watermark is not None:
            events += self.tick(from_epoch(self.watermark))
        return events

    def tick(self, watermark: datetime) -> list[SensorEvent]:
        """sensor_silent for every watched sensor whose deadline (last reading, or for a sensor never heard
        the first event time seen, plus its allowance) is before the event-time watermark."""
        wm = watermark.timestamp()
        if self._baseline is None:
            self._baseline = wm
        n = len(self._ids)
        last = self._last[:n]
        deadline = np.where(np.isnan(last), self._baseline, last) + self._allowed[:n]
        due = np.flatnonzero(~self._silent[:n] & (deadline < wm))
        self._silent[due] = True
        return [self._silent_event(int(i), float(deadline[i]), float(last[i])) for i in due]

    # -- internals ------------------------------------------------------------------------------------

    def _context(self, sensor_id: str) -> dict[str, Any]:
        info = self.registry.get(sensor_id)
        if info is None:
            return {"registered": False}
        ctx: dict[str, Any] = {"sensor_kind": info.sensor_kind}
        for key in ("corridor_id", "vertiport_id", "zone_id"):
            if key in info.properties:
                ctx[key] = info.properties[key]
        return ctx

    def _silent_event(self, i: int, at_s: float, last_s: float) -> SensorEvent:
        sid, at = self._ids[i], from_epoch(at_s)
        detail = {"last_reading": None if math.isnan(last_s) else rfc3339(from_epoch(last_s)),
                  "expected_interval_s": float(self._allowed[i] / self.silence_factor),
                  "online": self._online.get(sid), **self._context(sid)}
        return SensorEvent(sensor_event_id(sid, "sensor_silent", None, None, at), at, "sensor_silent", sid,
                           detail=detail)

    def _status(self, st: Any) -> list[SensorEvent]:
        if self._online.get(st.device_id) == st.online:
            return []  # a retained status delivered again (reconnect, restart)
        self._online[st.device_id] = st.online
        kind = "sensor_online" if st.online else "sensor_offline"
        return [SensorEvent(sensor_event_id(st.device_id, kind, None, None, st.at), st.at, kind, st.device_id,
                            detail=self._context(st.device_id))]

    def _arrivals(self, readings: Sequence[Any], slots: np.ndarray, ts: np.ndarray) -> list[SensorEvent]:
        """Advance each sensor's newest reading time; a silent sensor that reports resumes. A gap longer than
        the allowance within the readings themselves yields the silence too, so results do not depend on
        where batches were cut. Vectorized: rows sorted by (slot, time); Python only for the events."""
        order = np.lexsort((ts, slots))
        S, T = slots[order], ts[order]
        first = np.r_[True, S[1:] != S[:-1]]
        prev = np.r_[np.nan, T[:-1]]
        prev[first] = np.nan
        prev = np.fmax(self._last[S], prev)  # newest time known before each row (nan: never heard)
        newer = np.isnan(prev) | (T > prev)  # late or duplicate rows say nothing about liveness
        counted = np.cumsum(newer)
        starts = np.flatnonzero(first)
        group = np.cumsum(first) - 1
        first_newer = newer & ((counted - (counted - newer)[starts][group]) == 1)
        gap_start = np.where(np.isnan(prev), self._baseline, prev)
        was_silent = first_newer & self._silent[S]
        goes_silent = newer & (T - gap_start > self._allowed[S]) & ~was_silent
        resumes = np.flatnonzero(was_silent | goes_silent)
        events = []
        for j in resumes.tolist():
            i, t, g = int(S[j]), float(T[j]), float(gap_start[j])
            if goes_silent[j]:
                events.append(self._silent_event(i, g + float(self._allowed[i]), float(prev[j])))
            sid, at = self._ids[i], from_epoch(t)
            events.append(SensorEvent(sensor_event_id(sid, "sensor_resumed", None, None, at), at, "sensor_resumed",
                                      sid, detail={"gap_s": round(t - g, 3), **self._context(sid)}))
        ends = np.r_[starts[1:] - 1, len(S) - 1]
        self._last[S[ends]] = np.fmax(self._last[S[ends]], T[ends])
        self._silent[S[newer]] = False
        return events

    def _evaluate(self, readings: Sequence[Any], slots: np.ndarray, ts: np.ndarray) -> list[SensorEvent]:
        metric_no = {m: j for j, m in enumerate(self._metric_rules)}
        n = len(readings)
        mkey = np.fromiter((metric_no.get(r.metric, -1) if r.value is not None else -1 for r in readings),
                           np.int64, n)
        if not (mkey >= 0).any():
            return []
        values = np.fromiter((r.value if r.value is not None else _NAN for r in readings), float, n)
        events: list[SensorEvent] = []
        for metric, j in metric_no.items():
            rows = np.flatnonzero(mkey == j)
            if len(rows):
                for k in self._metric_rules[metric]:
                    events.extend(self._apply(k, readings, rows, slots[rows], ts[rows], values[rows]))
        return events

    def _apply(self, k: int, readings: Sequence[Any], rows: np.ndarray, s: np.ndarray, t: np.ndarray,
               v: np.ndarray) -> list[SensorEvent]:
        rule = self.rules[k]
        applies = self._applies[k, s]
        limit, clear = self._limit[k, s], self._clear[k, s]
        with np.errstate(invalid="ignore"):
            raise_ = rule.trips(v, limit) & applies
            clear_ = rule.clears(v, clear)
        # only sensors raised now or with a raising reading can change state: walk just their rows, in order
        walk = applies & (self._raised[k, s] | np.isin(s, s[raise_]))
        events = []
        if walk.any():
            w = np.flatnonzero(walk)
            for q in w[np.lexsort((t[w], s[w]))].tolist():
                i, tq = int(s[q]), float(t[q])
                if tq <= self._rule_last[k, i]:
                    continue  # late reading: the rule's state has moved past it
                self._rule_last[k, i] = tq
                if not self._raised[k, i] and raise_[q]:
                    self._raised[k, i] = True
                    events.append(self._threshold_event("sensor_threshold", rule, readings[rows[q]], limit[q],
                                                        clear[q]))
                elif self._raised[k, i] and clear_[q]:
                    self._raised[k, i] = False
                    events.append(self._threshold_event("sensor_threshold_cleared", rule, readings[rows[q]],
                                                        limit[q], clear[q]))
        rest = applies & ~walk  # the others: remember how far each got
        np.maximum.at(self._rule_last[k], s[rest], t[rest])
        return events

    def _threshold_event(self, kind: str, rule: Rule, row: Any, limit: float, clear: float) -> SensorEvent:
        detail = {"rule_id": rule.id, "op": rule.op, "limit": float(limit), "clear": float(clear),
                  "severity": rule.severity, "description": rule.description, "unit": row.unit,
                  **self._context(row.sensor_id)}
        return SensorEvent(sensor_event_id(row.sensor_id, kind, rule.id, rule.metric, row.ts), row.ts, kind,
                           row.sensor_id, rule.id, rule.metric, float(row.value), detail)
