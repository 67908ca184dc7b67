"""One batch of raw MQTT messages in, everything to store and publish out.

No network and no database here: the consumer feeds it from the broker, replay feeds it from a file,
and tests call it directly. Airspace decisions run on event time, in one vectorized pass per batch.

Control topics (protocol.topics.control_filters) steer the airspace of this worker: a new zone set,
a zone's state (admin or a sensor rule on another worker), a UAV's approved clearance. Readings feed
the dynamic-airspace rules; a rule's decision becomes an event for the flights inside the zone and a
zone decision in BatchOutput.zone_decisions, which is stored and announced after the commit, so
every worker (this one included) applies it. After the batch's fixes, the monitor's event-time clock
moves to the newest fix (tick): silent airborne UAVs get link_lost.
"""
from __future__ import annotations

import gc
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import NamedTuple


from airspace.dynamic import DynamicAirspace, ZoneState, rules_from_zones
from airspace.events import AirspaceEvent
from airspace.monitor import AirspaceMonitor, MonitorPolicy
from airspace.separation import ApprovedClearance
from airspace.thresholds import Rule
from airspace.traffic import TrafficEngine
from airspace.traffic_policy import TrafficPolicy
from airspace.zones import ZoneFormatError, ZoneSet
from protocol import topics
from protocol.times import parse_rfc3339, rfc3339

from .dialects.base import Dialect, DialectContext, RegistryView, UnregisteredDevice
from .observations import parse_observations
from .rows import DeadLetter, DeviceStatus, ObservationRow, OutMessage, RawMessage
from .sensor_watch import SensorInfo, SensorWatch, load_rules, sensor_infos
from .sensors import ReadingRow, parse_reading
from .telemetry import TelemetryRow, parse_telemetry
from .validation import BadMessage, load_json

log = logging.getLogger("skylane.ingest")
EVENT_NAMESPACE = uuid.UUID("6f1c6f2e-52a4-4d39-9f0e-3b7d1c0a5e11")
DYNAMIC_RULES_FILE = Path(__file__).resolve().parents[1] / "airspace" / "data" / "dynamic_rules.json"
MAX_ZONESET_BYTES = 32 << 20  # a whole zone set on {root}/control/zones
WITHDRAWN = ("cancelled", "closed", "withdrawn")
MAX_ROUTES = 1 << 16  # parsed topics remembered per pipeline (cleared when full)
MAX_NOTIFIED = 10_000  # unregistered vendor identifiers remembered (each announced once while remembered)


def load_dynamic_rules(path: Path | str = DYNAMIC_RULES_FILE) -> list[Rule]:
    """The zone suspension rules file (airspace.thresholds format; RuleError names the rule and field)."""
    return load_rules(path, zone_rules=True)


def build_pipeline(zones: ZoneSet, root: str, *, policy: MonitorPolicy = MonitorPolicy(),
                   sensors: Mapping[str, SensorInfo] | None = None, max_payload_bytes: int = 65536,
                   dialects: Sequence[Dialect] = (), registry: RegistryView = RegistryView(),
                   traffic: TrafficPolicy | None = TrafficPolicy()) -> Pipeline:
    """The pipeline as live ingest runs it: the one construction for live ingest, evaluation and replays, so
    the same messages give the same decisions everywhere. `sensors`: the registry's sensors (thresholds and
    silences need their kinds and intervals; none: every sensor unknown)."""
    pipe = Pipeline(zones, root, max_payload_bytes, policy=policy,
                    sensor_watch=SensorWatch(sensors or {}, load_rules()), dialects=dialects, registry=registry,
                    traffic=traffic)
    pipe.monitor.prepare()  # build the zone indexes now rather than on the first batch
    return pipe


class ZoneControl(NamedTuple):
    """A zone's state set by a control message (None: the retained state was deleted) at its time."""
    at: datetime
    zone_id: str
    state: ZoneState | None


@dataclass(frozen=True, slots=True)
class EventRow:
    id: uuid.UUID
    event: AirspaceEvent

    def to_dict(self) -> dict:
        return {"id": str(self.id), **self.event.to_dict()}


@dataclass
class BatchOutput:
    telemetry: list[TelemetryRow] = field(default_factory=list)
    readings: list[ReadingRow] = field(default_factory=list)
    statuses: list[DeviceStatus] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    uav_states: dict[str, dict] = field(default_factory=dict)
    sensor_states: dict[str, dict] = field(default_factory=dict)
    zone_decisions: list[ZoneState] = field(default_factory=list)  # sensor rules' zone states: stored, announced
    observations: list[ObservationRow] = field(default_factory=list)  # surveillance sightings (ADS-B, Remote ID, ...)
    replies: list[OutMessage] = field(default_factory=list)  # what a dialect's protocol requires back
    applied_controls: list[tuple[str, datetime]] = field(default_factory=list)  # (topic, received_at) taken
    sensor_events: list = field(default_factory=list)  # ingest.sensor_watch.SensorEvent, when a watch is wired
    traffic_states: dict[str, dict | None] = field(default_factory=dict)  # track id -> state (None: dropped)


def event_id(ev: AirspaceEvent) -> uuid.UUID:
    """Deterministic: the same decision on the same data has the same id (idempotent, comparable replays)."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{ev.uav_id}|{ev.kind}|{ev.zone_id}|{rfc3339(ev.ts)}")


GC_GEN0_THRESHOLD = 100_000
_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections(gen0: int = GC_GEN0_THRESHOLD) -> Iterator[None]:
    """Cyclic garbage collection every `gen0` allocations instead of CPython's 700, while it lasts.

    Ingest and replay allocate millions of short-lived objects without cycles (records, messages, rows),
    which reference counting frees anyway; at the default threshold the collector re-traverses every
    live object of a batch hundreds of times per batch (a quarter of a replay evaluation's CPU time).
    Nested and concurrent users share it; the last one out restores the previous threshold."""
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(gen0, _gc_saved[0]), *_gc_saved[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)


class Pipeline:
    def __init__(self, zones: ZoneSet, root: str = topics.DEFAULT_ROOT, max_payload_bytes: int = 65536,
                 rules: Iterable[Rule] | None = None, policy: MonitorPolicy = MonitorPolicy(),
                 sensor_watch: SensorWatch | None = None, dialects: Sequence[Dialect] = (),
                 registry: RegistryView = RegistryView(), traffic: TrafficPolicy | None = None):
        """`rules`: sensor-bound zone rules (None: the bundled airspace/data/dynamic_rules.json);
        rules kept in zone properties (`suspend_when`) are added either way. `sensor_watch`: sensor
        thresholds and silences (ingest.sensor_watch), fed each batch's readings and statuses. `dialects`: the
        enabled input dialects (ingest/dialects), with `registry` for their vendors' identifiers."""
        self.sensor_watch = sensor_watch
        self.root = root
        self.max_payload_bytes = max_payload_bytes
        self.monitor = AirspaceMonitor(zones, policy)
        self._file_rules = list(load_dynamic_rules() if rules is None else rules)
        self.dynamic = DynamicAirspace(self._file_rules + rules_from_zones(zones))
        self._routes: dict[str, topics.TopicRef | topics.ControlRef | Dialect] = {}
        self.dialects = tuple(dialects)
        self._notified: dict[tuple[str, str], None] = {}  # vendor identifiers already announced unregistered
        self.dialect_context = DialectContext(root, registry, zones.vertical, max_payload_bytes)
        self.traffic = TrafficEngine(zones, traffic) if traffic is not None else None  # air picture, separation

    def update_registry(self, rows: list) -> None:
        """The device registry changed (registry rows): dialects' identifiers and the sensor watch's sensors."""
        self.dialect_context = replace(self.dialect_context, registry=RegistryView.from_registry(rows))
        if self.sensor_watch is not None:
            self.sensor_watch.update_registry(sensor_infos(rows))
        log.info("device registry reloaded: %d entries", len(rows))

    def restore(self, zone_states: dict[str, dict], clearances: list[dict]) -> None:
        """Start from the stored truth: zone states (id -> control payload) and approved clearances (their
        published payloads), as an ingester does when it starts. Bad entries are logged and skipped (the store
        was written by Skylane; nothing a device sent)."""
        for zone_id, payload in zone_states.items():
            try:
                state = ZoneState.from_payload(zone_id, payload)
            except ValueError as exc:
                log.error("stored state of zone %s not applied: %s", zone_id, exc)
                continue
            self.dynamic.apply(state)
            self.monitor.set_zone_state(zone_id, state.to_payload(), parse_rfc3339(state.at))
        for doc in clearances:
            try:
                self.monitor.set_clearance(ApprovedClearance.from_dict(doc))
            except ValueError as exc:
                log.error("stored clearance not applied: %s", exc)

    def process(self, messages: list[RawMessage]) -> BatchOutput:
        """The batch's outputs. Messages take effect in receive order where it matters: the batch is cut
        into segments where a control message, or a reading of a sensor a dynamic-airspace rule watches,
        follows telemetry, and the fixes received before it are decided first. So a wind reading or a
        zone control lands before or after the same fixes wherever the batches were cut (live batches,
        replay at any batch size). Both are rare, so a batch is usually one segment."""
        out, i = self._segment(messages, 0)
        while i < len(messages):
            seg, i = self._segment(messages, i)
            _merge(out, seg)
        return out

    def _segment(self, messages: list[RawMessage], start: int) -> tuple[BatchOutput, int]:
        """Messages from `start` up to the next cut (see process): their outputs and where it stopped."""
        out = BatchOutput()
        zone_controls: list[ZoneControl] = []
        watched = frozenset(r.sensor_id for r in self.dynamic.rules)
        routes, max_bytes = self._routes, self.max_payload_bytes
        telemetry, dead = out.telemetry, out.dead_letters
        has_fixes = False
        i, n = start, len(messages)
        while i < n:
            msg = messages[i]
            try:
                route = routes.get(msg.topic)
                if route is None:
                    route = self._route(msg.topic)
                if type(route) is topics.TopicRef:
                    kind = route.kind
                    if kind == "telemetry":
                        telemetry.extend(parse_telemetry(route.device_id, msg.payload, msg.received_at, max_bytes))
                        has_fixes = True
                    elif kind == "reading":
                        if has_fixes and route.device_id in watched:
                            break
                        out.readings.extend(parse_reading(route.device_id, msg.payload, msg.received_at, max_bytes))
                    else:
                        out.statuses.append(DeviceStatus(route.device_id, _status(msg.payload), msg.received_at))
                elif type(route) is topics.ObservationRef:  # surveillance sightings (ingest/observations.py)
                    out.observations.extend(parse_observations(route, msg.payload, msg.received_at, max_bytes))
                elif type(route) is topics.ControlRef:
                    if has_fixes:
                        break
                    if (zone_control := self._control(route, msg)) is not None:
                        zone_controls.append(zone_control)
                    out.applied_controls.append((msg.topic, msg.received_at))
                else:  # an input dialect (ingest/dialects)
                    res = route.parse(msg.topic, msg.payload, msg.received_at, self.dialect_context)
                    if has_fixes and any(r.sensor_id in watched for r in res.readings):
                        break
                    telemetry.extend(res.telemetry)
                    has_fixes = has_fixes or bool(res.telemetry)
                    out.readings.extend(res.readings)
                    out.statuses.extend(res.statuses)
                    out.observations.extend(res.observations)
                    out.replies.extend(res.replies)
            except UnregisteredDevice as exc:
                dead.append(DeadLetter(msg.received_at, msg.topic, msg.payload, str(exc)))
                out.events += self._unregistered(exc, route, msg.received_at)
            except BadMessage as exc:
                dead.append(DeadLetter(msg.received_at, msg.topic, msg.payload, str(exc)))
            except topics.TopicError as exc:
                dead.append(DeadLetter(msg.received_at, msg.topic, msg.payload, f"bad topic: {exc}"))
            except Exception as exc:  # a bug must not lose the message nor stop the ingester
                log.exception("unexpected error on %s", msg.topic[:200])
                dead.append(DeadLetter(msg.received_at, msg.topic, msg.payload,
                                       f"internal error: {type(exc).__name__}: {exc}"))
            i += 1
        events = self._airspace(out, zone_controls)
        out.events += [EventRow(event_id(ev), ev) for ev in events]
        if self.traffic is not None and (out.telemetry or out.observations):
            self._traffic(out, self.traffic.step(out.telemetry, out.observations, self.dialect_context.registry.device))
        if self.sensor_watch is not None and (out.readings or out.statuses or out.telemetry):
            latest = max((r.ts for r in out.telemetry), default=None)
            out.sensor_events = self.sensor_watch.step(out.readings, out.statuses, latest=latest)
        for r in out.readings:
            ts = rfc3339(r.ts)
            state = out.sensor_states.setdefault(r.sensor_id, {"sensor_id": r.sensor_id, "ts": ts, "values": {}})
            state["ts"] = max(state["ts"], ts)
            state["values"][r.metric] = r.value if r.value is not None else r.vtext
        return out, i

    def _unregistered(self, exc: UnregisteredDevice, dialect, at: datetime) -> list[EventRow]:
        """An `unregistered_device` notice the first time an identifier is seen (bounded memory: the oldest are
        forgotten, and notified again if they come back)."""
        key = (exc.key, exc.value)
        if key in self._notified:
            return []
        if len(self._notified) >= MAX_NOTIFIED:
            self._notified.pop(next(iter(self._notified)))
        self._notified[key] = None
        ev = AirspaceEvent("unregistered_device", exc.value[:64], None, at,
                           {"key": exc.key, "dialect": getattr(dialect, "name", None), "reason": str(exc)})
        return [EventRow(event_id(ev), ev)]

    def _route(self, topic: str) -> topics.TopicRef | topics.ControlRef | Dialect:
        """The topic parsed (TopicError when it breaks the contract, or no enabled dialect speaks on it),
        remembered: devices keep their topic."""
        dialect = next((d for d in self.dialects if d.matches(topic, self.root)), None)
        route = dialect or topics.parse_control(self.root, topic) or topics.parse_observation(self.root, topic) \
            or topics.parse_inbound(self.root, topic)
        if len(self._routes) >= MAX_ROUTES:
            self._routes.clear()
        self._routes[topic] = route
        return route

    def _airspace(self, out: BatchOutput, zone_controls: list[ZoneControl]) -> list[AirspaceEvent]:
        """Zone-state changes (controls, sensor rules) and fixes, merged in event-time order.

        Fixes up to a change's time are applied before it, so the flights a suspension reaches and
        what every fix is judged against follow event time, not where the batch was cut.
        """
        changes = self._zone_changes(out, zone_controls)
        rows = sorted(out.telemetry, key=lambda r: r.ts)
        events: list[AirspaceEvent] = []
        k = 0
        for at, zone_id, payload in changes:
            n = k
            while n < len(rows) and rows[n].ts <= at:
                n += 1
            events += self._fixes(rows[k:n])
            k = n
            events += self.monitor.set_zone_state(zone_id, payload, at)
        events += self._fixes(rows[k:])
        if rows:
            events += self.monitor.tick(rows[-1].ts)
            latest: dict[str, TelemetryRow] = {}
            for row in rows:
                latest[row.uav_id] = row
            for uav_id, row in latest.items():
                if row.ts != self.monitor.last_ts(uav_id):
                    continue  # late fixes are stored but do not move the live position back
                out.uav_states[uav_id] = {**row.state(), "zones": self.monitor.zones_of(uav_id),
                                          "alerts": self.monitor.alerts_of(uav_id)}
        return events

    def _fixes(self, rows: list[TelemetryRow]) -> list[AirspaceEvent]:
        if not rows:
            return []
        return self.monitor.process_columns([r.uav_id for r in rows], [r.ts for r in rows], [r.lon for r in rows],
                                            [r.lat for r in rows], [r.alt_m for r in rows],
                                            [r.alt_ref for r in rows], [r.status for r in rows])

    def _zone_changes(self, out: BatchOutput, zone_controls: list[ZoneControl]) -> list[tuple[datetime, str, dict]]:
        """Admin controls and sensor readings in event-time order through the dynamic airspace:
        (time, zone id, state payload) for the monitor; rule decisions also become controls."""
        timeline: list[tuple] = [(at, 0, n, zone_id, st) for n, (at, zone_id, st) in enumerate(zone_controls)]
        timeline += [(r.ts, 1, n, r, None) for n, r in enumerate(out.readings)
                     if r.value is not None and self.dynamic.watches(r.sensor_id, r.metric)]
        timeline.sort(key=lambda x: (x[0], x[1], x[2]))
        changes = []
        for at, kind, _, item, st in timeline:
            if kind == 0:
                if st is None:
                    self.dynamic.clear(item)
                    changes.append((at, item, {"state": "active", "reason": "state cleared", "by": "control"}))
                else:
                    self.dynamic.apply(st)
                    changes.append((at, item, st.to_payload()))
                continue
            for st in self.dynamic.observe(item.sensor_id, item.metric, item.value, item.ts):
                out.zone_decisions.append(st)
                changes.append((at, st.zone_id, st.to_payload()))
        return changes

    def tick(self, watermark: datetime) -> BatchOutput:
        """Event time moved on without messages (e.g. the consumer's idle clock): link_lost of silent UAVs,
        and sensor_silent of sensors past their expected interval."""
        out = BatchOutput(events=[EventRow(event_id(ev), ev) for ev in self.monitor.tick(watermark)])
        if self.sensor_watch is not None:
            out.sensor_events = self.sensor_watch.tick(watermark)
        if self.traffic is not None:
            self._traffic(out, self.traffic.tick(watermark))
        return out

    @staticmethod
    def _traffic(out: BatchOutput, res) -> None:
        """The traffic engine's events and track states (airspace.traffic.TrafficResult) into the batch."""
        out.events += [EventRow(event_id(ev), ev) for ev in res.events]
        out.traffic_states.update(res.states)

    # -------------------------------------------------------------------------------- control
    def _control(self, ctl: topics.ControlRef, msg: RawMessage) -> ZoneControl | None:
        """Apply a control message. A zone state is returned instead, to be applied in event-time order
        with the batch's fixes (_airspace)."""
        if ctl.kind == "registry":  # live: the store's registry (ingest.controls); a recording's announcement: nothing
            rows = load_json(msg.payload, MAX_ZONESET_BYTES)
            if isinstance(rows, list):
                self.update_registry(rows)
            return None
        if ctl.kind == "zones":
            doc = load_json(msg.payload, MAX_ZONESET_BYTES)
            if isinstance(doc, dict) and "features" not in doc and "version" in doc:
                return None  # an announcement of a stored change (ingest.controls resolves it live)
            try:
                zones = ZoneSet.from_geojson(doc, self.monitor.zones.vertical)
                rules = rules_from_zones(zones)
            except (ZoneFormatError, ValueError) as exc:
                raise BadMessage(f"zone set refused: {exc}") from None
            self.monitor.replace_zones(zones)
            if self.traffic is not None:
                self.traffic.set_zones(zones)
            states = self.dynamic.states
            self.dynamic = DynamicAirspace(self._file_rules + rules)
            self.dynamic.states.update(states)
            log.info("zone set replaced: %d zones", len(zones))
            return None
        if ctl.kind == "zone":  # applied in event-time order with the batch's fixes (_airspace)
            if not msg.payload:  # the retained state was deleted: back to the schedule
                return ZoneControl(msg.received_at, ctl.target, None)
            try:
                state = ZoneState.from_payload(ctl.target, load_json(msg.payload, self.max_payload_bytes))
            except ValueError as exc:
                raise BadMessage(f"zone state refused: {exc}") from None
            return ZoneControl(parse_rfc3339(state.at), ctl.target, state)
        if not msg.payload:
            self.monitor.set_clearance(None, ctl.target)
            return None
        doc = load_json(msg.payload, MAX_ZONESET_BYTES)
        if isinstance(doc, dict) and doc.get("state") in WITHDRAWN:
            self.monitor.set_clearance(None, ctl.target)
            return None
        try:
            clearance = ApprovedClearance.from_dict(doc)
        except ValueError as exc:
            raise BadMessage(f"clearance refused: {exc}") from None
        if clearance.uav_id != ctl.target:
            raise BadMessage(f"clearance refused: uav_id {clearance.uav_id!r} does not match the topic's "
                             f"{ctl.target!r}")
        self.monitor.set_clearance(clearance)
        return None


def _merge(into: BatchOutput, seg: BatchOutput) -> None:
    """A later segment's outputs after an earlier one's, as if the batch had been cut there."""
    for name in ("telemetry", "readings", "statuses", "events", "dead_letters", "zone_decisions", "applied_controls",
                 "observations", "replies"):
        getattr(into, name).extend(getattr(seg, name))
    into.sensor_events = [*into.sensor_events, *seg.sensor_events]
    into.uav_states.update(seg.uav_states)
    into.traffic_states.update(seg.traffic_states)
    for sensor_id, state in seg.sensor_states.items():
        cur = into.sensor_states.get(sensor_id)
        if cur is None:
            into.sensor_states[sensor_id] = state
        else:
            cur["ts"] = max(cur["ts"], state["ts"])
            cur["values"].update(state["values"])


def _status(payload: bytes) -> bool:
    text = payload.decode("utf-8", "replace").strip().strip('"').lower()
    if text not in ("online", "offline"):
        raise BadMessage("device status must be 'online' or 'offline'")
    return text == "online"
