"""The ingest service: paho-mqtt in, batches through the pipeline, COPY into the database, events out.

Messages are acknowledged only after their batch is committed (QoS 1, manual ack, persistent session),
so a crash or a database outage re-delivers instead of losing. The broker's inflight window bounds
what waits unacknowledged here, which is the backpressure when the database is slow.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import datetime, timezone

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from devices.publisher import BoundedPublisher
from protocol import topics
from storage.writes import write_batch

from . import metrics as m
from .pipeline import BatchOutput, DeadLetter, Pipeline, RawMessage

log = logging.getLogger("skylane.ingest")

RECEIVE_MAXIMUM = 10000
SESSION_EXPIRY_S = 7 * 24 * 3600
LOGGED_DEAD_LETTERS = 5
MAX_QOS0_BACKLOG = 200_000  # QoS 1 is bounded by the broker's window; QoS 0 only by this
REFUSED = (psycopg.DataError, psycopg.IntegrityError)  # the data, not the database, is at fault


class _Abandoned(Exception):
    """A batch could not be stored before shutdown; it was not acknowledged."""


class _Refused(Exception):
    """The database refused the batch's data (not a connection problem)."""


class Ingester:
    def __init__(self, *, mqtt_host: str, mqtt_port: int, database_url: str, pipeline: Pipeline,
                 client_id: str, batch_size: int = 2000, batch_ms: int = 50):
        self.pipeline = pipeline
        self.root = pipeline.root
        self.database_url = database_url
        self.batch_size = batch_size
        self.batch_s = batch_ms / 1000.0
        self.inbox: queue.SimpleQueue[RawMessage] = queue.SimpleQueue()
        self.generation = 0
        self.connected = threading.Event()  # set once subscribed (SUBACK), cleared on disconnect
        self._conn: psycopg.Connection | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.publisher = BoundedPublisher(self.client, max_pending=5000)
        self._host, self._port = mqtt_host, mqtt_port
        self._dropped_logged = 0.0

    # ------------------------------------------------------------------------------------------ MQTT side
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        self.generation += 1
        opts = SubscribeOptions(qos=1)
        client.subscribe([(f, opts) for f in topics.inbound_filters(self.root)])
        log.info("connected to mqtt://%s:%d (session present: %s)", self._host, self._port, flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("broker refused the subscriptions: %s", ", ".join(refused))
            return
        self.connected.set()
        m.CONNECTED.set(1)
        log.info("subscribed under %s/", self.root)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        m.CONNECTED.set(0)
        if reason_code.is_failure:
            log.warning("disconnected from the broker (%s); reconnecting with backoff", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage):
        if msg.qos == 0 and self.inbox.qsize() >= MAX_QOS0_BACKLOG:
            m.QOS0_DROPPED.inc()  # at-most-once traffic while the database cannot keep up: counted, logged
            if time.monotonic() - self._dropped_logged > 10:
                self._dropped_logged = time.monotonic()
                log.error("backlog over %d messages: dropping QoS 0 messages (publish with QoS 1 to keep them)",
                          MAX_QOS0_BACKLOG)
            return
        self.inbox.put(RawMessage(msg.topic, msg.payload, datetime.now(timezone.utc), msg.qos, msg.mid,
                                  self.generation))
        m.PENDING.inc()

    def connect(self, timeout: float = 30.0) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.connect(self._host, self._port, keepalive=30, clean_start=False, properties=props)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"MQTT broker at {self._host}:{self._port} unreachable: {exc}") from exc
                log.warning("broker at %s:%d unreachable (%s); retrying", self._host, self._port, exc)
                time.sleep(1)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise ConnectionError(f"no CONNACK from the broker at {self._host}:{self._port}")

    # -------------------------------------------------------------------------------------- batch side
    def _take_batch(self, limit: int | None = None) -> list[RawMessage]:
        """Up to batch_size messages, waiting at most batch_ms after the first one."""
        limit = min(limit, self.batch_size) if limit is not None else self.batch_size
        batch: list[RawMessage] = []
        deadline = None
        while len(batch) < limit:
            timeout = 0.2 if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                msg = self.inbox.get(timeout=timeout)
            except queue.Empty:
                break
            deadline = deadline or time.monotonic() + self.batch_s
            if msg.qos and msg.generation != self.generation:
                m.PENDING.dec()  # arrived on a lost connection: the broker re-delivers it, unacknowledged
                m.SKIPPED_REDELIVERED.inc()
                continue
            batch.append(msg)
        return batch

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url, connect_timeout=5)
        return self._conn

    def _store(self, out: BatchOutput, stop: threading.Event) -> bool:
        """Write until it succeeds: nothing is acknowledged before it is committed.

        False only when asked to stop while the database is failing: the batch stays unacknowledged
        and the broker re-delivers it to the next run of this persistent session. Raises _Refused when
        the database rejects the data itself, which no retry would change.
        """
        delay = 0.5
        while True:
            try:
                write_batch(self._db(), out)
                return True
            except REFUSED as exc:
                raise _Refused(str(exc)) from exc
            except psycopg.Error as exc:
                if stop.is_set():
                    log.error("stopping with a batch unwritten (%s); the broker will re-deliver it", exc)
                    return False
                m.DB_ERRORS.inc()
                log.error("database write failed (%s); retrying in %.1fs, nothing acknowledged", exc, delay)
                if self._conn is not None:
                    self._conn.close()
                stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _publish(self, out: BatchOutput, stop: threading.Event) -> None:
        pub = self.publisher.publish
        for ev in out.events:
            pub(topics.event(self.root, ev.event.kind, ev.event.uav_id), orjson.dumps(ev.to_dict()), qos=1, stop=stop)
            m.EVENTS.labels(ev.event.kind).inc()
        for uav_id, state in out.uav_states.items():
            pub(topics.uav_state(self.root, uav_id), orjson.dumps(state), qos=0, retain=True, stop=stop)
        for sensor_id, state in out.sensor_states.items():
            pub(topics.sensor_state(self.root, sensor_id), orjson.dumps(state), qos=0, retain=True, stop=stop)

    def _ack(self, batch: list[RawMessage]) -> None:
        for msg in batch:
            if msg.qos and msg.generation == self.generation:
                self.client.ack(msg.mid, msg.qos)
        m.PENDING.dec(len(batch))

    def handle(self, batch: list[RawMessage], stop: threading.Event) -> BatchOutput:
        t0 = time.perf_counter()
        out = self.pipeline.process(batch)
        try:
            stored = self._store(out, stop)
        except _Refused as exc:
            log.error("the database refused a batch of %d messages (%s): keeping them as dead letters", len(batch), exc)
            reason = f"database refused the batch: {str(exc).splitlines()[0][:300]}".replace("\x00", "")
            out = BatchOutput(dead_letters=[DeadLetter(msg.received_at, msg.topic, msg.payload, reason)
                                            for msg in batch])
            stored = self._store(out, stop)
        if not stored:
            raise _Abandoned()
        self._publish(out, stop)
        self._ack(batch)
        for msg in batch:
            m.MESSAGES.labels(msg.topic[len(self.root) + 1:].split("/", 1)[0]).inc()
        m.RECORDS.labels("uav_telemetry").inc(len(out.telemetry))
        m.RECORDS.labels("sensor_readings").inc(len(out.readings))
        m.DEAD_LETTERS.inc(len(out.dead_letters))
        for d in out.dead_letters[:LOGGED_DEAD_LETTERS]:  # all are stored; the log shows a sample
            log.warning("dead letter on %s: %s", d.topic[:200], d.reason)
        if len(out.dead_letters) > LOGGED_DEAD_LETTERS:
            log.warning("... and %d more dead letters in this batch", len(out.dead_letters) - LOGGED_DEAD_LETTERS)
        m.BATCH_SECONDS.observe(time.perf_counter() - t0)
        m.LAG.set((datetime.now(timezone.utc) - batch[0].received_at).total_seconds())
        return out

    def run(self, stop: threading.Event) -> None:
        self.connect()
        last_log, count = time.monotonic(), 0
        try:
            while not stop.is_set():
                batch = self._take_batch()
                if batch:
                    self.handle(batch, stop)
                    count += len(batch)
                if time.monotonic() - last_log >= 30 and count:
                    log.info("ingested %d messages in the last %.0fs", count, time.monotonic() - last_log)
                    last_log, count = time.monotonic(), 0
            left = self.inbox.qsize()  # what arrived before the stop; later ones are re-delivered next run
            while left > 0 and (batch := self._take_batch(left)):
                left -= len(batch)
                self.handle(batch, stop)
        except _Abandoned:
            pass
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            if self._conn is not None:
                self._conn.close()
            log.info("ingest stopped")
