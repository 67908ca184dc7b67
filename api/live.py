"""Live feed fan-out: one aiomqtt subscription to the event, state and zone-control topics, many clients.

API processes hold no airspace state of their own: everything comes from the broker (events, retained
UAV and sensor states, retained zone states), so any number of them can serve feeds. Each message is
encoded once; each client has its own bounded queues:

- alerts (airspace events) and zone-state changes are never dropped; if a client falls so far behind
  that even its alert queue is full, it is disconnected with a reason instead (memory stays bounded);
- positions are a FIFO of at most `max_positions`, none older than `max_position_age_s`: a slow client
  loses the OLDEST positions, counts them and is told with a `notice` message carrying the count before
  the next batch;
- sensor states coalesce to the latest per sensor (a slow client skips intermediate values, counted too).

The broker intake runs on its own thread and event loop (aiomqtt reads one packet per loop turn, too few
on a loop busy serving hundreds of clients) and hands messages to the serving loop in batches. If this
process falls behind anyway, positions superseded within the backlog are shed (counted for, and told to,
the clients that wanted them), so the feed's delay stays bounded; alerts are never shed.
Clients with the same filter share one filter decision per message.

Operators see only their own drones (owner from the device registry, `DeviceDirectory`); zones, sensors
and UAV-less events are public to every role.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import aiomqtt
import orjson
from prometheus_client import Counter, Gauge

from airspace.dynamic import ZoneState
from protocol import topics
from protocol.mqttclient import MqttTarget

from .subscribers import DROPPED_POSITIONS, Entry, PositionLog, Subscriber, is_number

log = logging.getLogger("skylane.api.live")

FEED_CLIENTS = Gauge("skylane_feed_clients", "Connected live-feed clients", ["transport"])
SKIPPED = Counter("skylane_feed_skipped_messages_total", "Malformed messages on the event/state/control topics")
RECEIVED = Counter("skylane_feed_received_messages_total", "Broker messages routed to feed clients", ["type"])
SENT = Counter("skylane_feed_updates_sent_total", "Updates written to feed clients", ["type"])
DISCONNECTS = Counter("skylane_feed_disconnects_total", "Feed clients closed by the server", ["reason"])
SHED = Counter("skylane_feed_shed_positions_total",
               "Positions superseded within a backlog of broker messages, not fanned out (process overloaded)")

COALESCE_BACKLOG = 200  # from this many queued broker messages on, superseded positions are shed
MESSAGE_TYPES = ("position", "event", "sensor", "zone_state", "zones_changed", "traffic")
_RECEIVED_BY_TYPE = {kind: RECEIVED.labels(kind) for kind in MESSAGE_TYPES}
_KIND, _DATA = itemgetter(0), itemgetter(1)  # of an Entry


async def _cancel(task: asyncio.Task | None) -> None:
    """Cancel a background task and wait until it has ended."""
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


class DeviceDirectory:
    """Drone owners and sensor kinds from the device registry, reloaded in the background.

    `connect` is a connection factory (e.g. a psycopg pool's `.connection`); lookups never block the event
    loop. An unknown id asks for an early reload (at most once a second), so a newly registered drone shows
    up for its operator within about a second.
    """

    def __init__(self, connect: Callable[[], Any] | None = None, ttl_s: float = 10.0):
        self.connect, self.ttl_s = connect, ttl_s
        self.owners: dict[str, str | None] = {}
        self.sensor_kinds: dict[str, str | None] = {}
        self._wanted: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.loaded = False

    def set(self, owners: dict[str, str | None], sensor_kinds: dict[str, str | None]) -> None:
        self.owners, self.sensor_kinds, self.loaded = dict(owners), dict(sensor_kinds), True

    def owner_of(self, uav_id: str) -> str | None:
        if uav_id not in self.owners:
            self._miss()
        return self.owners.get(uav_id)

    def sensor_kind(self, sensor_id: str) -> str | None:
        if sensor_id not in self.sensor_kinds:
            self._miss()
        return self.sensor_kinds.get(sensor_id)

    def _miss(self) -> None:
        if self._wanted is not None:
            self._wanted.set()

    def _load(self) -> None:
        with self.connect() as conn:
            rows = conn.execute("SELECT device_id, kind, owner, sensor_kind FROM devices").fetchall()
        self.set({r[0]: r[2] for r in rows if r[1] == "uav"}, {r[0]: r[3] for r in rows if r[1] == "sensor"})

    def start(self) -> None:
        if self.connect is None or self._task is not None:
            return
        self._wanted = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await _cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        assert self._wanted is not None
        while True:
            try:
                await asyncio.to_thread(self._load)
            except Exception as exc:  # database away: keep the last directory, retry later
                log.warning("feed device directory: reload failed: %s", exc)
            try:
                await asyncio.wait_for(self._wanted.wait(), self.ttl_s)
                await asyncio.sleep(1.0)  # coalesce misses: at most one reload a second
            except TimeoutError:
                pass
            self._wanted.clear()


def _shape(rest: str, body: object) -> tuple[str, dict] | None:
    """(type, feed message) for a broker message, or None when it is not of the contract's shape."""
    if not isinstance(body, dict):
        return None
    if rest.startswith("events/"):
        uav = body.get("uav_id")
        ok = isinstance(body.get("kind"), str) and (uav is None or isinstance(uav, str))
        return ("event", {"type": "event", **body}) if ok else None
    if rest.startswith("state/uav/"):
        ok = isinstance(body.get("uav_id"), str) and is_number(body.get("lon")) and is_number(body.get("lat"))
        return ("position", {"type": "position", **body}) if ok else None
    if rest.startswith("state/traffic/"):
        ok = isinstance(body.get("track_id"), str) and (body.get("lon") is None or is_number(body.get("lon")))
        return ("traffic", {"type": "traffic", **body}) if ok else None
    if rest.startswith("state/sensor/"):
        ok = isinstance(body.get("sensor_id"), str) and isinstance(body.get("values"), dict)
        return ("sensor", {"type": "sensor", **body}) if ok else None
    if rest.startswith("control/zone/"):
        zone_id = topics.zone_id_of_level(rest[len("control/zone/"):])
        try:
            state = ZoneState.from_payload(zone_id, body).to_payload()
        except ValueError:
            return None
        return "zone_state", {"type": "zone_state", **state, "zone_id": zone_id}
    return None


def zone_control_filters(root: str) -> list[str]:
    """The retained zone-control topics a feed shows: per-zone state and the whole zone set."""
    return [topics.control_zone_filter(root), topics.control_zones(root)]


class LiveHub:
    """Keeps the latest UAV, sensor and zone states (retained topics) and feeds subscribers."""

    def __init__(self, mqtt_url: str, root: str, directory: DeviceDirectory | None = None,
                 owns_directory: bool = True):
        """`owns_directory`: start and stop `directory` with this hub (False for a replay root's hub, which
        shares the live hub's directory)."""
        self.mqtt_url, self.root = mqtt_url, root
        self.target = MqttTarget.parse(mqtt_url)
        self.directory = directory
        self.owns_directory = owns_directory
        self.root_hubs: Any = None  # api.feeds.RootHubs: the replay roots' hubs, closed with this one
        self.uavs: dict[str, dict] = {}
        self.sensors: dict[str, dict] = {}
        self.zone_states: dict[str, dict] = {}
        self.traffic: dict[str, dict] = {}  # the air picture: track id -> latest traffic state
        self._encoded: dict[tuple[str, str], tuple[dict, bytes]] = {}  # (type, id) -> snapshot entry
        self.subscribers: set[Subscriber] = set()
        # clients with equal filters (most dashboards) share one filter decision and one position log
        self._groups: dict[tuple, set[Subscriber]] = {}
        self._logs: dict[tuple, PositionLog] = {}
        self.connected = False
        self.ready: asyncio.Event | None = None  # made in start(): it needs the running loop
        self._skip_logged = 0.0
        # broker intake: its own thread and event loop, handing batches to the serving loop (below)
        self._pending: deque[tuple[str, bytes]] = deque()
        self._signal_lock = threading.Lock()
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._intake_loop: asyncio.AbstractEventLoop | None = None
        self._intake_task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the broker intake (a thread with its own event loop) and the device directory.

        aiomqtt reads one MQTT packet per event-loop turn; on the serving loop, busy with hundreds of
        clients, that caps the intake far below the update rate. On its own loop it keeps up, and the
        serving loop gets the messages in batches.
        """
        self._loop = asyncio.get_running_loop()
        self.ready = asyncio.Event()
        self._intake_loop = asyncio.new_event_loop()
        self._intake_task = self._intake_loop.create_task(self._run())
        self._thread = threading.Thread(target=self._intake_main, name="feed-intake", daemon=True)
        self._thread.start()
        if self.directory is not None and self.owns_directory:
            self.directory.start()

    def _intake_main(self) -> None:
        loop, task = self._intake_loop, self._intake_task
        assert loop is not None and task is not None
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        finally:
            # the ended MQTT client's socket callbacks need this loop: collect it while the loop is open
            self._intake_task = task = None
            gc.collect()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def stop(self) -> None:
        if self.root_hubs is not None:
            await self.root_hubs.close()
        if self.directory is not None and self.owns_directory:
            await self.directory.stop()
        if self._thread is not None and self._intake_loop is not None and self._intake_task is not None:
            try:
                self._intake_loop.call_soon_threadsafe(self._intake_task.cancel)
            except RuntimeError:  # its loop has already ended
                pass
            await asyncio.to_thread(self._thread.join, 10)
            self._thread = None

    def _hand_over(self, topic: str, payload: bytes) -> None:
        """(intake thread) Queue a broker message for the serving loop; wake it if it is not already due."""
        self._pending.append((topic, payload))
        with self._signal_lock:
            if self._signalled:
                return
            self._signalled = True
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """(serving loop) Route everything the intake has handed over so far."""
        with self._signal_lock:
            self._signalled = False
        batch = [self._pending.popleft() for _ in range(len(self._pending))]
        if batch:
            self.route(batch)

    def subscribe(self, sub: Subscriber) -> None:
        """Add a client and queue the current picture for it (states it may see)."""
        if sub.directory is None:
            sub.directory = self.directory
        self.subscribers.add(sub)
        key = self._group_key(sub)
        self._groups.setdefault(key, set()).add(sub)
        sub.attach(self._logs.setdefault(key, PositionLog(sub.max_positions)))
        FEED_CLIENTS.labels(sub.transport).inc()
        for (kind, _), (body, data) in list(self._encoded.items()):
            sub.offer(kind, body, data)

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            sub.detach()
            key = self._group_key(sub)
            group = self._groups.get(key, set())
            group.discard(sub)
            if not group:
                self._groups.pop(key, None)
                self._logs.pop(key, None)
            FEED_CLIENTS.labels(sub.transport).dec()

    @staticmethod
    def _group_key(sub: Subscriber) -> tuple:
        return (sub.filter, id(sub.directory), sub.max_positions)

    def dispatch(self, topic: str, payload: bytes) -> None:
        """Route one broker message to the caches and subscribers; anything malformed is skipped."""
        rest = topic[len(self.root) + 1:]
        if rest == "control/zones":  # the whole zone set changed: clients reload /v1/zones
            self._publish("zones_changed", {"type": "zones_changed"})
            return
        if not payload:  # a retained state cleared: forget it (new clients no longer get it)
            self._forget(rest)
            return
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            body = None
        shaped = _shape(rest, body)
        if shaped is None:
            self._skip(topic)
            return
        kind, msg = shaped
        if kind == "position":
            self.uavs[msg["uav_id"]] = body
            key = msg["uav_id"]
        elif kind == "sensor":
            self.sensors[msg["sensor_id"]] = body
            key = msg["sensor_id"]
        elif kind == "zone_state":
            self.zone_states[msg["zone_id"]] = msg
            key = msg["zone_id"]
        elif kind == "traffic":
            self.traffic[msg["track_id"]] = body
            key = msg["track_id"]
        else:
            key = None
        data = self._publish(kind, msg)
        if key is not None:
            self._encoded[(kind, key)] = (msg, data)

    def route(self, named: list[tuple[str, bytes]]) -> None:
        """Dispatch a batch of broker messages (topic, payload).

        When this process falls behind the broker (a backlog of COALESCE_BACKLOG or more), a UAV's position
        superseded by a later one in the same batch is not fanned out: every client that would have got it
        has it counted as dropped and is told, and the feed's delay stays bounded instead of growing.
        """
        latest: dict[str, int] = {}
        if len(named) >= COALESCE_BACKLOG:
            prefix = f"{self.root}/state/uav/"
            latest = {t: i for i, (t, _) in enumerate(named) if t.startswith(prefix)}
        for i, (topic, payload) in enumerate(named):
            try:
                if latest.get(topic, i) != i:
                    self._shed(topic, payload)
                else:
                    self.dispatch(topic, payload)
            except Exception:  # one bad message must not end the feed
                log.exception("feed.dispatch_failed topic=%s", topic[:200])

    def _shed(self, topic: str, payload: bytes) -> None:
        """Count a superseded position as dropped for every client that wanted it."""
        try:
            shaped = _shape(topic[len(self.root) + 1:], orjson.loads(payload))
        except orjson.JSONDecodeError:
            shaped = None
        if shaped is None:
            self._skip(topic)
            return
        kind, msg = shaped
        SHED.inc()
        for group in self._groups.values():
            if next(iter(group)).wants(kind, msg):
                for sub in group:
                    sub.dropped_positions += 1
                DROPPED_POSITIONS.inc(len(group))

    def _forget(self, rest: str) -> None:
        for prefix, kind, cache in (("state/uav/", "position", self.uavs), ("state/sensor/", "sensor", self.sensors),
                                    ("state/traffic/", "traffic", self.traffic),
                                    ("control/zone/", "zone_state", self.zone_states)):
            if rest.startswith(prefix):
                key = rest[len(prefix):]
                cache.pop(key, None)
                self._encoded.pop((kind, key), None)

    def _publish(self, kind: str, msg: dict) -> bytes:
        data = orjson.dumps(msg)
        _RECEIVED_BY_TYPE[kind].inc()
        now = time.monotonic()
        for key, group in self._groups.items():
            first = next(iter(group))
            if not first.wants(kind, msg):
                continue
            if kind == "position":
                self._logs[key].append(now, data)
            else:
                shown, shown_data = first.view(kind, msg, data)  # one filter, one view, for the whole group
                for sub in group:
                    sub.enqueue(kind, shown, shown_data, now)
        return data

    def _skip(self, topic: str) -> None:
        SKIPPED.inc()
        now = time.monotonic()
        if now - self._skip_logged > 10:
            self._skip_logged = now
            log.warning("feed.skip topic=%s reason=malformed (further ones muted for 10 s)", topic[:200])

    async def _run(self) -> None:
        """(intake thread) Subscribe and hand every message over; reconnect with back-off."""
        delay = 1.0
        while True:
            try:
                # MQTT 3.1.1: nothing here needs v5, and paho parses v5 properties on every message (costly at
                # thousands of messages a second)
                t = self.target
                async with aiomqtt.Client(t.host, t.port, username=t.username, password=t.password,
                                          tls_params=aiomqtt.TLSParameters(ca_certs=t.ca_file) if t.tls else None,
                                          protocol=aiomqtt.ProtocolVersion.V311) as client:
                    for f in topics.outbound_filters(self.root) + zone_control_filters(self.root):
                        await client.subscribe(f, qos=1)
                    self.connected, delay = True, 1.0
                    if self.ready is not None and self._loop is not None:
                        self._loop.call_soon_threadsafe(self.ready.set)
                    log.info("feed.broker state=subscribed broker=%s root=%s", self.target, self.root)
                    async for message in client.messages:
                        self._hand_over(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError as exc:
                self.connected = False
                log.warning("feed.broker state=lost error=%r retry_s=%.0f", str(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                self.connected = False


def encode_ws(batch: list[Entry]) -> str:
    """One WebSocket text frame: a JSON array of the batch's messages."""
    return (b"[" + b",".join(map(_DATA, batch)) + b"]").decode()


def encode_sse(batch: list[Entry]) -> bytes:
    """Server-sent events, one per message, the event name being the message type."""
    return b"".join(b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n" for kind, data in batch)


_SENT_BY_TYPE = {kind: SENT.labels(kind) for kind in (*MESSAGE_TYPES, "notice")}


def count_sent(batch: list[Entry]) -> None:
    for kind, n in Tally(map(_KIND, batch)).items():
        (_SENT_BY_TYPE.get(kind) or SENT.labels(kind)).inc(n)

