"""The ingest service: paho-mqtt in, batches through the pipeline, idempotent COPY into the database, events out.

No loss, by construction:
- QoS 1 with manual acknowledgement, a fixed client id and a persistent session (clean_start false, session
  expiry): what the broker sent and we did not acknowledge is re-delivered, to this run or the next one.
- A batch is acknowledged only after its transaction is committed; writes are idempotent (storage.writes),
  so a re-delivery of something already stored is harmless.
- Backpressure: the messages waiting here are bounded by the receive maximum (the broker's inflight window
  for us). While the database is slow or down the batch thread retries with backoff and takes nothing new;
  the broker then keeps the rest in our session's queue (deploy/mosquitto/mosquitto.conf sizes it).
- A lost broker connection: paho reconnects with backoff; every (re)connect re-subscribes and unsubscribes
  what an earlier shard assignment left in the session; messages of the lost connection are not acknowledged
  (their ids are void) and come again.
Bad input never stops the loop: oversize payloads, devices over their rate, wrong shards and everything the
pipeline refuses are dead letters with a reason, and metrics.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from protocol.publisher import BoundedPublisher
from protocol import topics
from protocol.brokerauth import SERVICE_ACCOUNTS
from protocol.mqttclient import MqttTarget

from . import metrics as m
from .fastmqtt import FastClient
from .limits import RateLimiter, oversize_reason, record_count
from .batchstore import BatchStore, Refused
from .controls import ControlAuthority
from .outputs import batch_messages
from .pipeline import BatchOutput, Pipeline
from .rows import DeadLetter, RawMessage
from .sharding import Assignment, ShardError, unshard

log = logging.getLogger("skylane.ingest")
EPOCH = datetime.fromtimestamp(0, timezone.utc)

RECEIVE_MAXIMUM = 10000  # QoS 1 messages the broker may have outstanding with us (the bounded buffer) ...
MAX_RECEIVE_MAXIMUM = 60000  # ... or 4 batches when bigger, so the window never waits for a commit
SESSION_EXPIRY_S = 7 * 24 * 3600
LOGGED_DEAD_LETTERS = 5
MAX_QOS0_BACKLOG = 200_000  # QoS 1 is bounded by the broker's window; QoS 0 only by this
RETIRE_IDLE_S = 2.0  # a retired worker's session counts as drained after this long without messages
IDLE_TICK_S = 1.0  # with no messages for this long, the monitor's clock moves on by the wall clock ...
IDLE_LATENESS_S = 5.0  # ... to now minus this (fixes may arrive this late): a lone silent UAV gets link_lost
STATE_INTERVAL_S = 0.25  # live state topics: at most 4 a second per device, the latest always follows


class _Abandoned(Exception):
    """A batch could not be stored before shutdown; it was not acknowledged."""


class Ingester:
    def __init__(self, *, mqtt_url: str, database_url: str, pipeline: Pipeline,
                 client_id: str, batch_size: int = 2000, batch_ms: int = 50,
                 assignment: Assignment | None = None, rate_limiter: RateLimiter | None = None,
                 max_payload_bytes: int | None = None, retire: bool = False,
                 idle_tick_s: float = IDLE_TICK_S, idle_lateness_s: float = IDLE_LATENESS_S,
                 controls: ControlAuthority | None = None):
        """`controls`: checks control messages against the store (None: they are taken as they come)."""
        self.pipeline = pipeline
        self.controls = controls
        self._stop = threading.Event()
        # event time otherwise moves only with fixes: when nothing arrives, tick to now - lateness
        self.idle_tick_s, self.idle_lateness_s = idle_tick_s, idle_lateness_s
        self._event_clock: tuple[datetime, float] | None = None  # (newest fix/reading time, monotonic then)
        self.root = pipeline.root
        self.database_url = database_url
        self.batch_size = batch_size
        self.batch_s = batch_ms / 1000.0
        self.assignment = assignment or Assignment()
        self.limiter = rate_limiter if rate_limiter is not None else RateLimiter()
        self.max_payload_bytes = max_payload_bytes or pipeline.max_payload_bytes
        self.client_id = client_id
        self.retire = retire  # drain a retired worker's session, then let it end (see retire_session)
        self.session_present: bool | None = None
        # Catching up (a queued session's backlog after a connect, or the broker's queue after a database
        # outage) arrives far faster than devices sent it: the rate limit waits until the inbox runs dry.
        self.catching_up = False
        self._drained = False
        self._reconnected = False
        # (message, re-delivery flag) in arrival order; the network thread puts, the batch thread takes
        self.inbox: queue.SimpleQueue[tuple[RawMessage, bool]] = queue.SimpleQueue()
        self.generation = 0  # bumped on every connect and disconnect (under _ack_lock)
        self._ack_lock = threading.Lock()
        self.connected = threading.Event()  # set once subscribed (SUBACK), cleared on disconnect
        self._writer_idle = threading.Event()  # the writer thread waits for a batch
        self.store = BatchStore(database_url, on_outage_over=self._catch_up)
        self._control_prefix = f"{self.root}/control/"
        self.client = FastClient(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                                 manual_ack=True, on_fast_message=self._on_fast_message)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message  # QoS 2 only; QoS 0/1 take the fast path
        self.publisher = BoundedPublisher(self.client, max_pending=5000)
        self.target = MqttTarget.parse(mqtt_url)
        self.target.configure(self.client)
        self._dropped_logged = 0.0
        self._sub_mid: int | None = None
        self._state_sent: dict[str, float] = {}  # state topic -> when last published (monotonic)
        self._state_pending: dict[str, bytes] = {}  # state topic -> latest state not yet published
        self._state_flushed = 0.0

    # ------------------------------------------------------------------------------------------ MQTT side
    def subscriptions(self) -> list[str]:
        """Device filters of this worker's shards, every control topic, and (for the worker that takes the
        unsharded topics) surveillance observations and the enabled dialects' topics."""
        unsharded: list[str] = []
        if self.assignment.takes_unsharded():
            unsharded = topics.observation_filters(self.root)
            unsharded += [f for d in self.pipeline.dialects for f in d.filters(self.root)]
        return self.assignment.filters(self.root) + topics.control_filters(self.root) + unsharded

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        with self._ack_lock:
            self.generation += 1
        self.session_present = bool(flags.session_present)
        self._reconnected = self.generation > 1  # confirmed in the log once a batch is stored again
        self.catching_up = self.catching_up or self.session_present
        if self.retire:  # no new messages: only what the session had queued
            if flags.session_present:
                client.unsubscribe(self.assignment.foreign_filters(self.root) + self.assignment.filters(self.root))
            log.info("retiring session %s (present: %s)", self.client_id, flags.session_present)
            self.connected.set()
            return
        stale = self.assignment.foreign_filters(self.root)
        if flags.session_present and stale:
            client.unsubscribe(stale)  # before subscribing: an old assignment's shards go to their new owner
        _rc, self._sub_mid = client.subscribe([(f, _subscribe_options(self.root, f)) for f in self.subscriptions()])
        log.info("connected to %s as %s (session present: %s)", self.target, self.client_id,
                 flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if mid != self._sub_mid:
            return
        refused = [f"{f}: {rc}" for f, rc in zip(self.subscriptions(), reason_codes) if rc.is_failure]
        if refused:
            log.error("broker refused subscriptions: %s", ", ".join(refused))
            return
        self.connected.set()
        m.CONNECTED.set(1)
        a = self.assignment
        log.info("subscribed under %s/ as worker %d of %d (%d of %d shards%s)", self.root, a.worker, a.workers,
                 len(a.owned()), a.shards, " and the unsharded topics" if a.takes_unsharded() else "")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._ack_lock:  # from now on no acknowledgement of the lost connection's ids is queued: on the
            self.generation += 1  # next connection the same ids name other messages
        self.connected.clear()
        m.CONNECTED.set(0)
        if reason_code.is_failure:
            log.warning("disconnected from the broker (%s); reconnecting with backoff", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage):
        self._on_fast_message(msg.topic, msg.payload, msg.qos, msg.mid, msg.dup)

    def _on_fast_message(self, topic: str, payload: bytes, qos: int, mid: int, dup: bool) -> None:
        if qos == 0 and self.inbox.qsize() >= MAX_QOS0_BACKLOG:
            m.QOS0_DROPPED.inc()  # at-most-once traffic while the database cannot keep up: counted, logged
            if time.monotonic() - self._dropped_logged > 10:
                self._dropped_logged = time.monotonic()
                log.error("backlog over %d messages: dropping QoS 0 messages (publish with QoS 1 to keep them)",
                          MAX_QOS0_BACKLOG)
            return
        self.inbox.put((RawMessage(topic, payload, datetime.now(timezone.utc), qos, mid, self.generation), dup))

    def connect(self, timeout: float = 30.0) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if self.retire else SESSION_EXPIRY_S  # retiring: gone at disconnect
        props.ReceiveMaximum = max(RECEIVE_MAXIMUM, min(MAX_RECEIVE_MAXIMUM, 4 * self.batch_size))
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client.connect(self.target.host, self.target.port, keepalive=30, clean_start=False,
                                    properties=props)
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"MQTT broker {self.target} unreachable: {exc}") from exc
                log.warning("broker %s unreachable (%s); retrying", self.target, exc)
                time.sleep(1)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise ConnectionError(f"no CONNACK/SUBACK from the broker {self.target}")

    # -------------------------------------------------------------------------------------- batch side
    def _take_batch(self, limit: int | None = None) -> list[tuple[RawMessage, bool]]:
        """Up to batch_size messages, waiting at most batch_ms after the first one, and not at all while the
        writer is idle and nothing more is queued: waiting only pays while a commit is in progress (then the
        next batch grows during it), so light traffic gets low latency and heavy traffic big batches."""
        limit = min(limit, self.batch_size) if limit is not None else self.batch_size
        batch: list[tuple[RawMessage, bool]] = []
        get, get_nowait, idle = self.inbox.get, self.inbox.get_nowait, self._writer_idle
        deadline = None
        stale = 0
        while len(batch) < limit:
            timeout = 0.2 if deadline is None else deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                # while a commit runs, wait in short steps: the writer may become idle meanwhile
                item = get_nowait() if batch and idle.is_set() else get(timeout=min(timeout, 0.005) if batch
                                                                         else timeout)
            except queue.Empty:
                if batch and not idle.is_set() and time.monotonic() < deadline:
                    continue
                break
            if deadline is None:
                deadline = time.monotonic() + self.batch_s
            msg = item[0]
            if msg.qos and msg.generation != self.generation:
                stale += 1  # arrived on a lost connection: the broker re-delivers it, unacknowledged
                continue
            batch.append(item)
        if stale:
            m.SKIPPED_REDELIVERED.inc(stale)
        self._drained = len(batch) < limit and self.inbox.empty()  # caught up once this batch is admitted
        return batch

    def _admit(self, batch: list[tuple[RawMessage, bool]]) -> tuple[list[RawMessage], list[DeadLetter]]:
        """Limits and shards, before any parsing: (messages for the pipeline, dead letters)."""
        good: list[RawMessage] = []
        dead: list[DeadLetter] = []
        limiter, max_bytes, root = self.limiter, self.max_payload_bytes, self.root
        limiter.catching_up(self.catching_up)
        shard_prefix, control = root + "/shard/", self._control_prefix
        now = time.monotonic()
        limited: Counter[str] = Counter()
        for msg, dup in batch:
            topic = msg.topic
            if topic.startswith(control):
                resolved = self._resolve_control(msg)
                if isinstance(resolved, DeadLetter):
                    dead.append(resolved)
                elif resolved is not None:
                    good.append(resolved)
                continue
            if (reason := oversize_reason(len(msg.payload), max_bytes)) is not None:
                dead.append(DeadLetter(msg.received_at, topic, msg.payload[:max_bytes], reason))
                m.REFUSED.labels("oversize").inc()
                continue
            if topic.startswith(shard_prefix):
                try:
                    topic = msg.topic = unshard(root, topic, self.assignment.shards)
                except ShardError as exc:
                    dead.append(DeadLetter(msg.received_at, topic, msg.payload, str(exc)))
                    m.REFUSED.labels("shard").inc()
                    continue
            if limiter.rate > 0 and not dup:
                parts = topic[len(root) + 1:].split("/", 2)
                device = (parts[1] if len(parts) == 3 else "") if topic.startswith(root + "/") else topic
                if device and not limiter.allow(device, now, record_count(msg.payload)):
                    limited[device] += 1
                    dead.append(DeadLetter(msg.received_at, topic, msg.payload,
                                           f"rate limit: device {device[:64]!r} over {limiter.describe()}"))
                    continue
            good.append(msg)
        if limited:
            m.REFUSED.labels("rate_limit").inc(sum(limited.values()))
            log.warning("rate limit (%s): refused %d messages of %d devices, e.g. %s", limiter.describe(),
                        sum(limited.values()), len(limited), ", ".join(list(limited)[:3]))
        return good, dead

    def _catch_up(self) -> None:
        self.catching_up = True

    def _resolve_control(self, msg: RawMessage) -> RawMessage | DeadLetter | None:
        """A control message checked against the store (ingest.controls), retrying while the database is away."""
        if self.controls is None:
            return msg
        delay = 0.5
        while True:
            try:
                return self.controls.resolve(msg)
            except psycopg.Error as exc:
                m.DB_ERRORS.inc()
                log.error("cannot check control %s against the store (%s); retrying in %.1fs", msg.topic[:200],
                          str(exc).strip()[:200], delay)
                self.controls.close()
                if self._stop.wait(delay):
                    raise _Abandoned() from None
                delay = min(delay * 2, 10.0)

    def _publish(self, out: BatchOutput, stop: threading.Event) -> None:
        kinds = Counter(ev.event.kind for ev in out.events) + Counter(se.kind for se in out.sensor_events)
        for kind, n in kinds.items():
            m.EVENTS.labels(kind).inc(n)
        now = time.monotonic()
        states: list[tuple[str, bytes]] = []
        for msg in batch_messages(out, self.root, SERVICE_ACCOUNTS["ingest"]):
            if msg.coalesce:
                self._state(msg.topic, msg.payload, now, states)
            else:
                self.publisher.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain, stop=stop)
        self.client.publish_states(states)

    def _state(self, topic: str, payload: bytes, now: float, send: list[tuple[str, bytes]]) -> None:
        """A live state (retained, QoS 0) into `send` now, or kept for flush_states when this topic was
        published less than STATE_INTERVAL_S ago: a 10 Hz drone need not cost 10 broker writes a second."""
        if now - self._state_sent.get(topic, -1e9) >= STATE_INTERVAL_S:
            self._state_sent[topic] = now
            self._state_pending.pop(topic, None)
            send.append((topic, payload))
        else:
            self._state_pending[topic] = payload

    def flush_states(self, force: bool = False) -> None:
        """Publish the kept states whose interval has passed (all of them when `force`)."""
        now = time.monotonic()
        if not self._state_pending or (not force and now - self._state_flushed < STATE_INTERVAL_S / 4):
            return
        self._state_flushed = now
        due = [t for t in self._state_pending if force or now - self._state_sent.get(t, -1e9) >= STATE_INTERVAL_S]
        for topic in due:
            self._state_sent[topic] = now
        self.client.publish_states([(topic, self._state_pending.pop(topic)) for topic in due])

    def _ack(self, batch: list[RawMessage]) -> None:
        with self._ack_lock:  # ids of an earlier connection are void: those messages come again
            gen = self.generation
            self.client.ack_many([msg.mid for msg in batch if msg.qos == 1 and msg.generation == gen])
            for msg in batch:
                if msg.qos == 2 and msg.generation == gen:
                    self.client.ack(msg.mid, 2)

    def prepare(self, batch: list[RawMessage] | list[tuple[RawMessage, bool]]) -> tuple[list[RawMessage], BatchOutput, float]:
        """Admit and process one batch (CPU only): (its raw messages, what to store and publish, start time)."""
        t0 = time.perf_counter()
        items = [b if isinstance(b, tuple) else (b, False) for b in batch]
        raw = [msg for msg, _ in items]
        good, dead = self._admit(items)
        if self._drained:
            self.catching_up = False  # from the next batch on, arrival rates are the devices' own
        out = self.pipeline.process(good) if good else BatchOutput()
        out.dead_letters.extend(dead)
        if out.telemetry or out.readings:
            newest = max(max((row.ts for row in out.telemetry), default=EPOCH),
                         max((row.ts for row in out.readings), default=EPOCH))
            if self._event_clock is None or newest > self._event_clock[0]:
                self._event_clock = (newest, time.monotonic())
        return raw, out, t0

    def commit(self, raw: list[RawMessage], out: BatchOutput, t0: float, stop: threading.Event) -> BatchOutput:
        """Store (retrying), publish, then acknowledge one prepared batch."""
        try:
            result = self.store.store(out, stop)
        except Refused as exc:
            out, result = self.store.store_refused(raw, out, exc, stop)
        if result is None:
            raise _Abandoned()
        self._publish(out, stop)
        if not raw:  # an idle tick's output: nothing to acknowledge or account for
            return out
        self._ack(raw)
        if self._reconnected and raw[-1].generation == self.generation:
            self._reconnected = False
            log.info("messages flow again after reconnecting: a batch of %d stored and acknowledged", len(raw))
        for topic, _at in out.applied_controls:
            log.info("applied control %s", topic[:200])
        prefix = self.root + "/"
        for family, n in Counter(msg.topic[len(prefix):].split("/", 1)[0] if msg.topic.startswith(prefix)
                                 else "dialect" for msg in raw).items():
            m.MESSAGES.labels(family).inc(n)
        m.RECORDS.labels("uav_telemetry").inc(result.telemetry)
        m.RECORDS.labels("sensor_readings").inc(result.readings)
        m.DUPLICATES.inc(len(out.telemetry) - result.telemetry + len(out.readings) - result.readings)
        m.DEAD_LETTERS.inc(len(out.dead_letters))
        for d in out.dead_letters[:LOGGED_DEAD_LETTERS]:  # all are stored; the log shows a sample
            log.warning("dead letter on %s: %s", d.topic[:200], d.reason)
        if len(out.dead_letters) > LOGGED_DEAD_LETTERS:
            log.warning("... and %d more dead letters in this batch", len(out.dead_letters) - LOGGED_DEAD_LETTERS)
        m.BATCH_SECONDS.observe(time.perf_counter() - t0)
        lag = (datetime.now(timezone.utc) - raw[0].received_at).total_seconds()
        m.LAG.set(lag)
        m.DELAY.observe(lag)
        return out

    def idle_tick(self, now: datetime | None = None) -> BatchOutput:
        """What the pipeline decides when event time moves on without any message: link_lost of UAVs gone
        silent. Same thread as prepare().

        Event time is estimated, not read off the wall clock: the newest fix's or reading's time plus the wall time since it
        arrived (never beyond `now`, default the wall clock), minus the lateness. Live, that is the wall
        clock minus the lateness; for a replay of a past trace it moves on from the trace's own time, so a
        replay (at any rate) never looks silent just because its fixes are old."""
        now = datetime.now(timezone.utc) if now is None else now
        if self._event_clock is not None:
            newest, seen_at = self._event_clock
            now = min(now, newest + timedelta(seconds=time.monotonic() - seen_at))
        return self.pipeline.tick(now - timedelta(seconds=self.idle_lateness_s))

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: this thread takes and prepares batches while a writer thread stores, publishes and
        acknowledges the one before (the database's commit overlaps the next batch's parsing). The hand-off
        holds one batch, so at most three are in memory; the broker's window bounds the rest."""
        self._stop = stop
        self.connect()
        handoff: queue.Queue = queue.Queue(maxsize=1)
        writer_done = threading.Event()
        failure: list[BaseException] = []

        def write() -> None:
            try:
                while True:
                    self._writer_idle.set()
                    try:
                        item = handoff.get(timeout=0.05)
                    except queue.Empty:
                        self.flush_states()
                        continue
                    self._writer_idle.clear()
                    if item is None:
                        return
                    self.commit(*item, stop)
                    self.flush_states()
            except BaseException as exc:  # _Abandoned, or a bug: the reader stops too
                failure.append(exc)
            finally:
                writer_done.set()

        def hand(item) -> bool:
            while not writer_done.is_set():
                try:
                    handoff.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        writer = threading.Thread(target=write, name=f"ingest-writer-{self.assignment.worker}", daemon=True)
        writer.start()
        last_log, count = time.monotonic(), 0
        try:
            idle_since = last_tick = time.monotonic()  # last_tick: the last idle tick (idle_tick)
            while not stop.is_set() and not writer_done.is_set() and not (self.retire and not self.session_present):
                batch = self._take_batch()
                m.PENDING.set(self.inbox.qsize() + len(batch))
                if batch:
                    if not hand(self.prepare(batch)):
                        break
                    count += len(batch)
                    idle_since = time.monotonic()
                elif self.retire and time.monotonic() - idle_since > RETIRE_IDLE_S:
                    break  # a retired session is drained
                # Caught up (idle, or batches that empty the inbox: e.g. only sensors report) and no tick for
                # idle_tick_s: the clock moves by the wall clock. Never while catching up on a backlog.
                now = time.monotonic()
                quiet = not batch and now - idle_since >= self.idle_tick_s
                if quiet:
                    self.catching_up = False  # nothing arrived for a while: whatever was queued is in
                if (self.idle_tick_s > 0 and not self.retire and not self.catching_up
                        and now - last_tick >= self.idle_tick_s and (quiet or (batch and self._drained))):
                    last_tick = now
                    out = self.idle_tick()
                    if (out.events or out.sensor_events or out.zone_decisions) and not hand(([], out, time.perf_counter())):
                        break
                if time.monotonic() - last_log >= 30 and count:
                    log.info("ingested %d messages in the last %.0fs", count, time.monotonic() - last_log)
                    last_log, count = time.monotonic(), 0
            left = self.inbox.qsize()  # what arrived before the stop; later ones are re-delivered next run
            while left > 0 and not writer_done.is_set() and (batch := self._take_batch(left)):
                left -= len(batch)
                if not hand(self.prepare(batch)):
                    break
            hand(None)
            writer.join()
            if not failure:
                self.flush_states(force=True)
        except _Abandoned:  # stopped while the store could not be asked: nothing of it was acknowledged
            log.error("stopping with control messages unchecked; the broker will re-deliver them")
            hand(None)
            writer.join()
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self.store.close()
            if self.controls is not None:
                self.controls.close()
            m.PENDING.set(0)
            log.info("ingest stopped")
        if failure and not isinstance(failure[0], _Abandoned):
            raise failure[0]


def _subscribe_options(root: str, topic_filter: str) -> SubscribeOptions:
    """QoS 1. Fixes and readings are never taken from the broker's retained store (retain handling 2): a
    retained fix is not a live report, and would come back as a phantom current position at every new
    subscription. Controls and device statuses are state, so their retained messages are wanted."""
    reports = not topic_filter.startswith((f"{root}/control/", f"{root}/device/"))
    return SubscribeOptions(qos=1, retainHandling=2 if reports else 0)


def retire_sessions(make_ingester, mqtt_url: str, base_client_id: str, workers: int,
                    stop: threading.Event) -> int:
    """Drain and end the sessions of workers `workers`.. left by a deployment with more workers.

    Their sessions still hold shard subscriptions and queue messages no running worker reads. Each one found
    is taken over with session expiry 0: its subscriptions are removed, what it had queued is processed like
    any batch (stored, then acknowledged), and the session ends at disconnect. Returns how many there were.
    `make_ingester(client_id)` builds an Ingester with retire=True.
    """
    from .fastmqtt import session_exists
    from .sharding import SHARDS
    found = 0
    for k in range(max(workers, 1), SHARDS):
        client_id = f"{base_client_id}-w{k}"
        if stop.is_set() or not session_exists(mqtt_url, client_id, SESSION_EXPIRY_S):
            continue
        make_ingester(client_id).run(stop)
        found += 1
        log.info("drained and ended the session of retired worker %d (%s)", k, client_id)
    return found
