"""One live-feed client: what it asked for (FeedFilter), its bounded queues, and what it lost.

Alerts and zone states are never dropped (a client too slow even for them is disconnected); positions are
a bounded FIFO with a maximum age, read from a log shared by the clients of one filter group; sensor values
coalesce to the latest per sensor. Losses are counted and told to the client in a `notice`.
"""
from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter

from .localize import describe

if TYPE_CHECKING:
    from .live import DeviceDirectory

MAX_POSITIONS_QUEUED = 2000
MAX_POSITION_AGE_S = 1.0  # a position waiting longer than this for a slow client is dropped (counted, told)
MAX_ALERTS_QUEUED = 5000
MAX_BATCH = 2000
DROPPED = Counter("skylane_feed_dropped_updates_total",
                  "Updates a slow client lost (oldest positions; superseded sensor values)", ["type"])
DROPPED_POSITIONS, _DROPPED_SENSORS = DROPPED.labels("position"), DROPPED.labels("sensor")
Entry = tuple[str, bytes]  # (message type, encoded JSON object)
_ENTRY = itemgetter(1)  # of a (time, Entry) pair


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def own_flights_only(event: dict, owns: Callable[[str], bool]) -> dict:
    """An event as an operator may see it: the drones it lists in `detail.flights` (a zone suspension names
    every flight inside the zone) narrowed to the operator's own (`owns`), and the other aircraft of a pair event
    (separation, conflict) without who it is when it is another operator's drone. The same dict when nothing is
    hidden."""
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return event
    flights = detail.get("flights")
    if isinstance(flights, list):
        mine = [u for u in flights if isinstance(u, str) and owns(u)]
        if mine != flights:
            detail = {**detail, "flights": mine}
    other = detail.get("other")
    if isinstance(other, dict) and other.get("uav_id") and not owns(other["uav_id"]):
        hidden = opaque_track(str(other.get("track_id")))
        detail = {**detail, "other": {**other, "track_id": hidden, "uav_id": None, "callsign": None}}
        if event.get("zone_id") == other.get("track_id"):  # pair events name the other aircraft there
            event = {**event, "zone_id": hidden}
        positions = detail.get("positions")
        if isinstance(positions, dict) and other.get("track_id") in positions:
            detail["positions"] = {(hidden if k == other.get("track_id") else k): v for k, v in positions.items()}
    return event if detail is event.get("detail") else {**event, "detail": detail}


def others_drone_hidden(track: dict, owns: Callable[[str], bool]) -> dict:
    """A traffic state as an operator may see it: another operator's drone keeps where it is and what it is (every
    aircraft in the sky matters to safety) but not who it is: no registered id, identity or source keys, and an
    opaque track id (stable, so it can be followed). The same dict when nothing is hidden."""
    uav = track.get("uav_id")
    if not uav or owns(uav):
        return track
    sources = track.get("sources") if isinstance(track.get("sources"), dict) else {}
    return {**track, "track_id": opaque_track(str(track.get("track_id"))), "uav_id": None, "identity": {},
            "sources": {name: {k: v for k, v in s.items() if k != "key"} if isinstance(s, dict) else s
                        for name, s in sources.items()}}


def opaque_track(track_id: str) -> str:
    return "drone-" + hashlib.sha256(track_id.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class FeedFilter:
    """What one client asked for; empty sets mean "everything". `owner` is set for operators only."""

    uav_ids: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()          # event kinds
    sensor_kinds: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()          # message types (position, event, sensor, zone_state, ...)
    bbox: tuple[float, float, float, float] | None = None
    operator_owner: str | None = None
    operator: bool = False
    lang: str = "en"  # the language of event descriptions (i18n)

    def in_bbox(self, lon: Any, lat: Any) -> bool:
        if self.bbox is None:
            return True
        if not (is_number(lon) and is_number(lat)):
            return False
        x0, y0, x1, y1 = self.bbox
        return x0 <= lon <= x1 and y0 <= lat <= y1


class PositionLog:
    """The positions for every client of one filter group, appended once per message; each client reads it
    from its own cursor. At most `maxlen` are kept: a client whose cursor falls behind the oldest entry has
    lost the difference (the oldest positions), which it counts when it next reads."""

    def __init__(self, maxlen: int):
        self.entries: deque[tuple[float, Entry]] = deque(maxlen=maxlen)  # (appended at, monotonic s; entry)
        self.end = 0  # sequence number of the next entry
        self.sleepers: set[Subscriber] = set()  # clients that read everything and wait for more

    @property
    def start(self) -> int:
        return self.end - len(self.entries)

    def append(self, now: float, data: bytes) -> None:
        self.entries.append((now, ("position", data)))
        self.end += 1
        if self.sleepers:
            for sub in self.sleepers:
                sub.wake.set()
            self.sleepers.clear()


class Subscriber:
    """One live client: its filter, its queues and what it has lost.

    Positions reach it through its group's shared PositionLog (or its own small queue, for the snapshot
    at subscription); alerts, zone states and sensor values through its own queues.
    """

    def __init__(self, filt: FeedFilter | None = None, directory: DeviceDirectory | None = None, *,
                 transport: str = "ws", max_positions: int = MAX_POSITIONS_QUEUED,
                 max_position_age_s: float = MAX_POSITION_AGE_S, max_alerts: int = MAX_ALERTS_QUEUED,
                 uav_ids: Iterable[str] = (), kinds: Iterable[str] = (),
                 bbox: tuple[float, float, float, float] | None = None):
        self.filter = filt or FeedFilter(uav_ids=frozenset(uav_ids), kinds=frozenset(kinds), bbox=bbox)
        self.directory = directory
        self.transport = transport
        self.max_positions, self.max_alerts = max_positions, max_alerts
        self.max_position_age_s = max_position_age_s
        self.alerts: deque[Entry] = deque()
        self.positions: deque[tuple[float, Entry]] = deque()  # (queued at, monotonic seconds; entry)
        self.sensors: dict[str, Entry] = {}
        self.zones: dict[str, Entry] = {}
        self.traffic: dict[str, Entry] = {}
        self.dropped_positions = 0
        self.dropped_sensors = 0
        self.total_dropped = 0
        self.overflow = False
        self.wake = asyncio.Event()
        self.log: PositionLog | None = None  # set by LiveHub.subscribe
        self.cursor = 0

    def attach(self, log: PositionLog) -> None:
        """Read the group's positions from now on."""
        self.log, self.cursor = log, log.end
        log.sleepers.add(self)  # woken by the next position

    def detach(self) -> None:
        if self.log is not None:
            self.log.sleepers.discard(self)
            self.log = None

    # ------------------------------------------------------------------ filtering
    def _may_see_uav(self, uav_id: Any) -> bool:
        f = self.filter
        if f.uav_ids and uav_id not in f.uav_ids:
            return False
        if f.operator:
            return uav_id is None or self._owns(uav_id)  # UAV-less (airspace-wide) events concern everyone
        return True

    def _owns(self, uav_id: str) -> bool:
        owner = self.directory.owner_of(uav_id) if self.directory else None
        return owner is not None and owner == self.filter.operator_owner

    def view(self, kind: str, body: dict, data: bytes) -> tuple[dict, bytes]:
        """A wanted message as this client may see it (body, encoded): an operator's events name only their
        own drones among the flights they list; events say what happened in the client's language."""
        if kind == "traffic":
            shown = others_drone_hidden(body, self._owns) if self.filter.operator else body
            return (body, data) if shown is body else (shown, orjson.dumps(shown))
        if kind == "event":
            shown = own_flights_only(body, self._owns) if self.filter.operator else body
            shown = describe(shown, self.filter.lang)
            return shown, orjson.dumps(shown)
        return body, data

    def wants(self, kind: str, body: dict) -> bool:
        f = self.filter
        if f.types and kind not in f.types:
            return False
        if kind == "position":
            return f.in_bbox(body.get("lon"), body.get("lat")) and self._may_see_uav(body.get("uav_id"))
        if kind == "traffic":  # every aircraft, also for operators (others' drones without identity: view)
            return f.in_bbox(body.get("lon"), body.get("lat")) and (not f.uav_ids or body.get("uav_id") in f.uav_ids)
        if kind == "event":
            if f.kinds and body.get("kind") not in f.kinds:
                return False
            if f.bbox is not None:
                detail = body.get("detail") if isinstance(body.get("detail"), dict) else {}
                lon, lat = body.get("lon", detail.get("lon")), body.get("lat", detail.get("lat"))
                if lon is not None and not f.in_bbox(lon, lat):
                    return False
            return self._may_see_uav(body.get("uav_id"))
        if kind == "sensor":
            if f.sensor_kinds:
                sk = body.get("sensor_kind") or (self.directory.sensor_kind(body["sensor_id"])
                                                 if self.directory else None)
                if sk not in f.sensor_kinds:
                    return False
            return True
        return True  # zone states, zone-set changes, notices: public

    # -------------------------------------------------------------------- queues
    def offer(self, kind: str, body: dict, data: bytes) -> None:
        """Queue one encoded message if the filter wants it; never blocks, never grows without bound."""
        if self.wants(kind, body):
            self.enqueue(kind, *self.view(kind, body, data))

    def enqueue(self, kind: str, body: dict, data: bytes, now: float | None = None) -> None:
        """Queue one message the filter already accepted (`now`: time.monotonic(), given by a caller that
        queues one message for many clients)."""
        if self.overflow:
            return
        if kind == "position":
            if len(self.positions) >= self.max_positions:
                self.positions.popleft()
                self.dropped_positions += 1
                DROPPED_POSITIONS.inc()
            self.positions.append((time.monotonic() if now is None else now, ("position", data)))
        elif kind == "sensor":
            if body["sensor_id"] in self.sensors:
                self.dropped_sensors += 1
                _DROPPED_SENSORS.inc()
            self.sensors[body["sensor_id"]] = (kind, data)
        elif kind == "zone_state":
            self.zones[body["zone_id"]] = (kind, data)  # a state: only the latest per zone matters
        elif kind == "traffic":
            self.traffic[body["track_id"]] = (kind, data)  # the latest per track
        else:
            if len(self.alerts) >= self.max_alerts:
                self.overflow = True  # even the alert stream is too fast: disconnect rather than drop
            else:
                self.alerts.append((kind, data))
        self.wake.set()

    def take(self, limit: int = MAX_BATCH, now: float | None = None) -> list[Entry]:
        """The next batch to send: a notice of losses first, then alerts, zone states, positions, sensors.

        Positions queued longer than `max_position_age_s` are dropped (counted) here: a client that cannot
        keep up gets a current picture with gaps, not an ever older one.
        """
        out: list[Entry] = []
        cutoff = (time.monotonic() if now is None else now) - self.max_position_age_s
        stale = 0
        while self.positions and self.positions[0][0] < cutoff:
            self.positions.popleft()
            stale += 1
        log = self.log
        if log is not None:
            if self.cursor < log.start:  # the log moved past what this client had not read yet
                stale += log.start - self.cursor
                self.cursor = log.start
            for t, _ in islice(log.entries, self.cursor - log.start, None):
                if t >= cutoff:
                    break
                stale += 1
                self.cursor += 1
        if stale:
            self.dropped_positions += stale
            DROPPED_POSITIONS.inc(stale)
        lost = self.dropped_positions + self.dropped_sensors
        if lost:
            notice = {"type": "notice", "dropped_positions": self.dropped_positions,
                      "dropped_sensor_updates": self.dropped_sensors,
                      "message": f"this client was too slow: {self.dropped_positions} oldest position updates "
                                 f"and {self.dropped_sensors} superseded sensor values were skipped"}
            out.append(("notice", orjson.dumps(notice)))
            self.total_dropped += lost
            self.dropped_positions = self.dropped_sensors = 0
        while self.alerts and len(out) < limit:
            out.append(self.alerts.popleft())
        for source in (self.zones, self.traffic, self.sensors):
            while source and len(out) < limit:
                out.append(source.pop(next(iter(source))))
            if len(out) >= limit:
                break
        while self.positions and len(out) < limit:
            out.append(self.positions.popleft()[1])
        if log is not None and self.cursor < log.end and len(out) < limit:
            n = min(log.end - self.cursor, limit - len(out))
            first = self.cursor - log.start
            out.extend(map(_ENTRY, islice(log.entries, first, first + n)))
            self.cursor += n
        if not self.pending():
            self.wake.clear()
            if log is not None:
                log.sleepers.add(self)
        return out

    def drain(self) -> list[dict]:
        """Everything pending, decoded (kept for callers that send one object per frame)."""
        return [orjson.loads(data) for _, data in self.take(limit=1 << 30)]

    def pending(self) -> int:
        shared = self.log.end - max(self.cursor, self.log.start) if self.log is not None else 0
        return len(self.alerts) + len(self.positions) + len(self.sensors) + len(self.zones) + len(self.traffic) + shared
