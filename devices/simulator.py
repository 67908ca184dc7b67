"""The device simulator: publishes the fleet's telemetry and sensor readings over MQTT.

One client carries every simulated device's data (thousands of connections would test the broker,
not Skylane). With `device_wills`, each device also holds a small presence session of its own, as a
real device would: it publishes the device's retained "online" and carries its last will "offline", so a
killed simulator (or a cut network) marks every device offline through the broker, not only itself. Pacing follows the wall clock by tick index (tick k is due at start + k/hz), so
a slow publish delays one tick without shifting all later ones; after falling far behind (a
suspended laptop, a stalled broker) it skips ahead instead of bursting stale positions.
"""
from __future__ import annotations

import heapq
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from protocol import topics

from . import payloads
from .fleet import DroneSpec, SensorSpec
from .flight import FlightPlan, plan_for
from protocol.mqttclient import Will, close_client, connect_with_retry
from protocol.progress import ProgressCallback, ProgressReporter
from protocol.publisher import DEFAULT_MAX_PENDING, BoundedPublisher
from .sensors import read_sensor

log = logging.getLogger(__name__)

MAX_LAG_S = 5.0  # behind the wall clock by more than this: skip ahead
FIRST_READING_WITHIN_S = 5.0  # sensors start staggered over this window, not all at once
SHUTDOWN_TIMEOUT_S = 10.0
MAX_PRESENCE_SESSIONS = 500  # more devices than this: statuses go over the data connection (no per-device will)


@dataclass
class SimStats:
    """What a run published (the counters of the periodic log line)."""

    telemetry: int = 0
    readings: int = 0
    status: int = 0
    dropped: int = 0  # not published: the broker link was down at that tick
    skipped_ticks: int = 0  # drone ticks skipped after falling behind the wall clock
    surveillance: int = 0  # Remote ID broadcasts and the converging pair's fixes (devices/surveillance_sim.py)


class Simulator:
    """Publishes telemetry at `hz` and readings at each sensor's interval until stopped."""

    def __init__(
        self,
        mqtt_url: str,
        root: str,
        drones: Sequence[DroneSpec],
        sensors: Sequence[SensorSpec],
        hz: float = 1.0,
        client_id_prefix: str = "skylane-sim",
        qos: int = 1,
        clock: Callable[[], float] = time.time,
        max_pending: int = DEFAULT_MAX_PENDING,
        device_wills: bool = False,
        sharded: bool = False,
        dialect=None,
        surveillance=None,
    ) -> None:
        """`dialect`: a devices.vendor_sim.VendorSpeaker; its devices speak a vendor's format (DJI, MAVLink,
        ChirpStack, The Things Stack) instead of the contract's. `surveillance`: a
        devices.surveillance_sim.SurveillanceSim (Remote ID broadcasts, a helicopter's ADS-B, a converging pair)."""
        if not hz > 0:
            raise ValueError("hz must be > 0")
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        ids = [d.uav_id for d in drones] + [s.sensor_id for s in sensors]
        bad = [i for i in ids if not topics.valid_id(i)]
        if bad:
            raise ValueError(f"invalid device ids for the topic contract: {bad[:5]}")
        if surveillance is not None and sharded:
            raise ValueError("the surveillance companion publishes unsharded topics: not with sharded")
        if len(set(ids)) != len(ids):
            raise ValueError("device ids must be unique")
        if any(s.interval_s <= 0 for s in sensors):
            raise ValueError("sensor intervals must be > 0")
        self.mqtt_url = mqtt_url
        self.root = root
        self.drones = list(drones)
        self.sensors = list(sensors)
        self.hz = hz
        self.qos = qos
        self.clock = clock
        self.max_pending = max_pending
        self.client_id = f"{client_id_prefix}-{uuid.uuid4().hex[:8]}"
        self.plans: list[FlightPlan] = [plan_for(d) for d in self.drones]
        # sharded: under {root}/shard/{s}/..., so `skylane ingest --workers N` spreads the fleet over workers
        place = (lambda t: topics.sharded_topic(root, t)) if sharded else (lambda t: t)
        self._telemetry_topics = [place(topics.telemetry(root, d.uav_id)) for d in self.drones]
        self._reading_topics = [place(topics.reading(root, s.sensor_id)) for s in self.sensors]
        self.stats = SimStats()
        n_devices = len(self.drones) + len(self.sensors)
        if device_wills and n_devices > MAX_PRESENCE_SESSIONS:
            log.warning("%d devices: more than %d presence sessions; statuses go over one connection without "
                        "per-device wills", n_devices, MAX_PRESENCE_SESSIONS)
        self.device_wills = device_wills and n_devices <= MAX_PRESENCE_SESSIONS
        self._presence: list = []
        self.dialect = dialect
        self.surveillance = surveillance

    def _device_ids(self) -> list[str]:
        return [d.uav_id for d in self.drones] + [s.sensor_id for s in self.sensors]

    def _status_topics(self) -> list[str]:
        devices = [] if self.device_wills else self._device_ids()  # presence sessions announce their own
        return [topics.status(self.root, i) for i in [self.client_id] + devices]

    def _open_presence(self, stop: threading.Event) -> None:
        """One session per device: retained "online" now, its will "offline" if the session dies."""
        for dev_id in self._device_ids():
            topic = topics.status(self.root, dev_id)
            c = connect_with_retry(self.mqtt_url, f"{self.client_id}-{dev_id}", stop, will=Will(topic),
                                   keepalive=15)
            if c is None:
                return
            self._presence.append(c)
            c.publish(topic, payloads.ONLINE, qos=1, retain=True)
            self.stats.status += 1

    def _close_presence(self) -> None:
        """Clean stop: each device says "offline" itself, then disconnects (no will needed)."""
        infos = []
        for c, dev_id in zip(self._presence, self._device_ids()):
            if c.is_connected():
                infos.append(c.publish(topics.status(self.root, dev_id), payloads.OFFLINE, qos=1, retain=True))
                self.stats.status += 1
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        for info in infos:
            try:
                info.wait_for_publish(max(deadline - time.monotonic(), 0.01))
            except (RuntimeError, ValueError):
                pass  # link gone: the broker publishes the will instead
        for c in self._presence:
            close_client(c)
        self._presence.clear()

    def _announce(self, pub: BoundedPublisher, payload: bytes, stop: threading.Event | None) -> None:
        """Retained online/offline for every device and for the simulator itself."""
        for topic in self._status_topics():
            if pub.publish(topic, payload, qos=1, retain=True, stop=stop, timeout=SHUTDOWN_TIMEOUT_S) is None:
                return
            self.stats.status += 1

    def _publish_drones(self, pub: BoundedPublisher, k: int, due: float, seq: int,
                        stop: threading.Event) -> None:
        if not pub.client.is_connected():
            self.stats.dropped += len(self.drones)
            return
        t = k / self.hz
        for plan, topic, drone in zip(self.plans, self._telemetry_topics, self.drones):
            fix = plan.fix(t)
            msgs = None if self.dialect is None else self.dialect.telemetry(drone.uav_id, fix, seq, due)
            for topic_, body in [(topic, payloads.encode(payloads.telemetry(fix, seq, due)))] if msgs is None else msgs:
                if pub.publish(topic_, body, qos=self.qos, stop=stop) is None:
                    return
            self.stats.telemetry += 1
            if self.surveillance is not None and not self._publish_extra(
                    pub, self.surveillance.on_fix(drone.uav_id, fix, due), stop):
                return
        if self.surveillance is not None:
            self._publish_extra(pub, self.surveillance.tick(due), stop)

    def _publish_extra(self, pub: BoundedPublisher, msgs: list[tuple[str, bytes]], stop: threading.Event) -> bool:
        for topic, body in msgs:
            if pub.publish(topic, body, qos=self.qos, stop=stop) is None:
                return False
            self.stats.surveillance += 1
        return True

    def _publish_reading(self, pub: BoundedPublisher, i: int, due: float, start: float,
                         stop: threading.Event) -> None:
        if not pub.client.is_connected():
            self.stats.dropped += 1
            return
        spec = self.sensors[i]
        reading = read_sensor(spec, due - start, due)
        msgs = None if self.dialect is None else self.dialect.reading(spec, due, reading)
        if msgs is None:
            msgs = [(self._reading_topics[i], payloads.encode(payloads.senml_pack(spec.sensor_id, due, reading)))]
        if all(pub.publish(topic, body, qos=self.qos, stop=stop) is not None for topic, body in msgs):
            self.stats.readings += 1

    def _counters(self, pub: BoundedPublisher | None, lag: float = 0.0) -> dict[str, int | float]:
        c: dict[str, int | float] = dict(asdict(self.stats))
        c["pending"] = pub.pending() if pub is not None else 0
        c["lag_s"] = round(max(lag, 0.0), 2)
        return c

    def run(self, stop: threading.Event, duration_s: float | None = None,
            progress: ProgressCallback | None = None) -> SimStats:
        """Publish until `stop` is set or `duration_s` (wall seconds) has passed; returns the counts."""
        reporter = ProgressReporter(log, f"simulator {self.client_id}", progress)
        will = Will(topics.status(self.root, self.client_id))
        client = connect_with_retry(self.mqtt_url, self.client_id, stop, will=will)
        if client is None:
            log.warning("simulator stopped before it could connect to %s", self.mqtt_url)
            return self.stats
        pub = BoundedPublisher(client, self.max_pending)
        try:
            self._announce(pub, payloads.ONLINE, stop)
            if self.device_wills:
                self._open_presence(stop)
            self._loop(pub, stop, duration_s, reporter)
        finally:
            if client.is_connected():
                if not pub.drain(timeout=SHUTDOWN_TIMEOUT_S):  # data first, then the devices go offline
                    log.warning("%d messages still unacknowledged at shutdown", pub.pending())
                self._announce(pub, payloads.OFFLINE, None)
                pub.drain(timeout=SHUTDOWN_TIMEOUT_S)
            self._close_presence()
            if self.dialect is not None:
                self.dialect.close()
            close_client(client)
            reporter.report(self._counters(None))
        return self.stats

    def _catch_up(self, now: float, start: float, k: int, heap: list[tuple[float, int]]) -> int:
        """Skip the ticks and readings that are already stale; returns the new tick index."""
        new_k = max(k, math.ceil((now - start) * self.hz))
        self.stats.skipped_ticks += new_k - k
        for j, (due, i) in enumerate(heap):
            interval = self.sensors[i].interval_s
            if due < now:
                heap[j] = (due + math.ceil((now - due) / interval) * interval, i)
        heapq.heapify(heap)
        log.warning("simulator fell %.1f s behind the clock; skipped %d ticks", now - start - k / self.hz,
                    new_k - k)
        return new_k

    def _loop(self, pub: BoundedPublisher, stop: threading.Event, duration_s: float | None,
              reporter: ProgressReporter) -> None:
        start = self.clock()
        end = math.inf if duration_s is None else start + duration_s
        seq0 = int(start * self.hz)  # seq keeps increasing across simulator restarts
        golden = 0.6180339887498949
        heap = [(start + min(s.interval_s, FIRST_READING_WITHIN_S) * ((i * golden) % 1.0), i)
                for i, s in enumerate(self.sensors)]
        heapq.heapify(heap)
        k = 0
        online = True  # run() announced
        while not stop.is_set():
            if pub.client.is_connected() != online:
                online = not online
                if online:  # a restarted broker without persistence forgot the retained statuses
                    self._announce(pub, payloads.ONLINE, stop)
            t_drone = start + k / self.hz if self.drones else math.inf
            t_sensor = heap[0][0] if heap else math.inf
            due = min(t_drone, t_sensor)
            if due >= end:
                if due == math.inf:  # nothing to publish at all: just last out the run
                    stop.wait(None if end == math.inf else max(end - self.clock(), 0.0))
                break
            lag = self.clock() - due
            if lag < 0:
                if stop.wait(-lag):
                    break
            elif lag > MAX_LAG_S:
                k = self._catch_up(self.clock(), start, k, heap)
                continue
            if t_drone <= t_sensor:
                self._publish_drones(pub, k, t_drone, seq0 + k, stop)
                k += 1
            else:
                _, i = heapq.heappop(heap)
                self._publish_reading(pub, i, t_sensor, start, stop)
                heapq.heappush(heap, (t_sensor + self.sensors[i].interval_s, i))
            reporter.maybe(self._counters(pub, lag))
