"""Live feed fan-out: one aiomqtt subscription to the event and state topics, many WebSocket clients.

API processes hold no airspace state of their own: everything comes from the broker, so any number of
them can serve feeds. Each client has its own queue: alerts are kept in order, positions coalesce to
the latest per UAV, so a slow browser loses old positions (counted and told) and never an alert.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import aiomqtt
import orjson
from prometheus_client import Counter, Gauge

from protocol import topics

log = logging.getLogger("skylane.api.live")

FEED_CLIENTS = Gauge("skylane_feed_clients", "Connected live-feed clients")
SKIPPED = Counter("skylane_feed_skipped_messages_total", "Malformed messages on the event/state topics")
DROPPED = Counter("skylane_feed_dropped_positions_total", "Position updates replaced before a slow client got them")
MAX_EVENTS_QUEUED = 10000


@dataclass(eq=False)
class Subscriber:
    """One live client's filters and pending messages."""

    uav_ids: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    bbox: tuple[float, float, float, float] | None = None
    events: deque = field(default_factory=deque)
    positions: dict[str, dict] = field(default_factory=dict)
    sensors: dict[str, dict] = field(default_factory=dict)
    dropped: int = 0
    overflow: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wants_uav(self, msg: dict) -> bool:
        if self.uav_ids and msg.get("uav_id") not in self.uav_ids:
            return False
        if self.bbox and "lon" in msg:
            x0, y0, x1, y1 = self.bbox
            return x0 <= msg["lon"] <= x1 and y0 <= msg["lat"] <= y1
        return True

    def offer(self, msg: dict) -> None:
        kind = msg["type"]
        if kind == "event":
            if (self.kinds and msg.get("kind") not in self.kinds) or (self.uav_ids and msg.get("uav_id") not in self.uav_ids):
                return
            if len(self.events) >= MAX_EVENTS_QUEUED:
                self.overflow = True  # the client cannot keep up even with alerts: it will be disconnected
            self.events.append(msg)
        elif kind == "position":
            if not self.wants_uav(msg):
                return
            if msg["uav_id"] in self.positions:
                self.dropped += 1
                DROPPED.inc()
            self.positions[msg["uav_id"]] = msg
        else:
            self.sensors[msg.get("sensor_id", "")] = msg
        self.wake.set()

    def drain(self) -> list[dict]:
        out = list(self.events)
        self.events.clear()
        out.extend(self.positions.values())
        out.extend(self.sensors.values())
        self.positions.clear()
        self.sensors.clear()
        if self.dropped:
            out.append({"type": "notice", "dropped_positions": self.dropped,
                        "message": f"{self.dropped} position updates skipped: only the latest per UAV was sent"})
            self.dropped = 0
        self.wake.clear()
        return out


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shape(rest: str, body: object) -> dict | None:
    """The feed message for a broker message, or None when it is not of the contract's shape."""
    if not isinstance(body, dict):
        return None
    if rest.startswith("events/"):
        ok = isinstance(body.get("kind"), str) and isinstance(body.get("uav_id"), str)
        return {"type": "event", **body} if ok else None
    if rest.startswith("state/uav/"):
        ok = isinstance(body.get("uav_id"), str) and _is_number(body.get("lon")) and _is_number(body.get("lat"))
        return {"type": "position", **body} if ok else None
    if rest.startswith("state/sensor/"):
        ok = isinstance(body.get("sensor_id"), str) and isinstance(body.get("values"), dict)
        return {"type": "sensor", **body} if ok else None
    return None


class LiveHub:
    """Keeps the latest UAV and sensor states (from retained topics) and feeds subscribers."""

    def __init__(self, host: str, port: int, root: str):
        self.host, self.port, self.root = host, port, root
        self.uavs: dict[str, dict] = {}
        self.sensors: dict[str, dict] = {}
        self.subscribers: set[Subscriber] = set()
        self.connected = False
        self._task: asyncio.Task | None = None
        self._skip_logged = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def subscribe(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)
        FEED_CLIENTS.set(len(self.subscribers))
        for state in self.uavs.values():
            sub.offer({"type": "position", **state})
        for state in self.sensors.values():
            sub.offer({"type": "sensor", **state})

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        FEED_CLIENTS.set(len(self.subscribers))

    def dispatch(self, topic: str, payload: bytes) -> None:
        """Route one broker message to the caches and subscribers; anything malformed is skipped."""
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            body = None
        rest = topic[len(self.root) + 1:]
        msg = _shape(rest, body)
        if msg is None:
            self._skip(topic)
            return
        if msg["type"] == "position":
            self.uavs[msg["uav_id"]] = body
        elif msg["type"] == "sensor":
            self.sensors[msg["sensor_id"]] = body
        for sub in self.subscribers:
            sub.offer(msg)

    def _skip(self, topic: str) -> None:
        SKIPPED.inc()
        now = time.monotonic()
        if now - self._skip_logged > 10:
            self._skip_logged = now
            log.warning("skipping malformed message on %s (and any others in the next 10 s)", topic[:200])

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, protocol=aiomqtt.ProtocolVersion.V5) as client:
                    for f in topics.outbound_filters(self.root):
                        await client.subscribe(f, qos=1)
                    self.connected, delay = True, 1.0
                    log.info("live feed subscribed to %s:%d under %s/", self.host, self.port, self.root)
                    async for message in client.messages:
                        try:
                            self.dispatch(str(message.topic), bytes(message.payload))
                        except Exception:  # one bad message must not end the feed
                            log.exception("live feed: failed to dispatch a message on %s", message.topic)
            except aiomqtt.MqttError as exc:
                self.connected = False
                log.warning("live feed lost the broker (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                self.connected = False
