"""The delivery worker (`skylane alerts`): outbox rows out through their channels, at least once.

Each round claims the due rows (store.claim: FOR UPDATE SKIP LOCKED, leased, the attempt counted), groups them
by subscription and hands each subscription's messages to a sender thread, one subscription at a time per
worker (its rows claimed meanwhile wait a moment). A subscription with more than `digest_after` rows due at
once gets one digest message summarising them all (a flood reaches a phone as one message, every event id in
it); each channel's rate per subscription is kept with a sliding minute, and what does not fit waits for the
next free slot (where it joins the next digest). A delivered message marks its rows delivered; a retry sets
each row's next attempt by exponential backoff with jitter (or the receiver's Retry-After), until
`give_up_s`; a failure (4xx but 429, a bad target) marks them failed with the reason. When a receiver cannot
be reached, the subscription's other messages of the round wait for the retry instead of knocking too.

Ids: a single event goes out under its own id; a digest's id is stored on its rows right before it is sent,
and it is sent again under that id whenever the receiver may have got it (a timeout, a worker that died
mid-send: its rows come back when their lease ends); only a digest the receiver surely did not get (refused
connection, an error answer) lets its events join another one. So each event reaches a receiver under one id
only, which the receiver deduplicates on. Nothing a receiver answers, and no bad row, stops the loop.
"""
from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
from prometheus_client import Counter, Gauge, Histogram
from psycopg_pool import ConnectionPool

from i18n import Msg

from . import store
from .channel import DELIVERED, FAILED, RETRY, Channel, Message, Result, Subscription
from .channels import make_channels
from .mail import SmtpConfig

log = logging.getLogger("skylane.alerts")
DIGEST_NAMESPACE = uuid.UUID("6f1d2c58-5a0e-4f43-9d7e-3a8b1c2e4f60")

DELIVERIES = Counter("skylane_alert_deliveries", "Messages sent (a digest is one), by channel and outcome "
                     "(delivered, retry, failed)", ["channel", "outcome"])
EVENTS = Counter("skylane_alert_events", "Events by channel and outcome (delivered, retry, failed, digested: "
                 "delivered inside a digest)", ["channel", "outcome"])
BACKLOG = Gauge("skylane_alert_outbox_backlog", "Pending deliveries in the outbox (due or waiting for a retry)")
DELAY = Histogram("skylane_alert_delivery_delay_seconds", "Outbox row written -> delivered",
                  buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600))


@dataclass(frozen=True)
class WorkerConfig:
    poll_s: float = 0.5  # how often an idle worker looks for due rows
    batch: int = 1000  # rows claimed per round at most
    lease_s: float = 120.0  # a claimed row is due again after this, should the worker die with it
    retry_base_s: float = 2.0  # first retry after about this; doubled per attempt, jittered (x0.5-1)
    retry_cap_s: float = 600.0  # retries at least this often
    give_up_s: float = 172800.0  # a delivery pending longer than this fails (48 h)
    digest_after: int = 10  # more rows due at once for one subscription: one digest message
    http_timeout_s: float = 10.0
    keep_s: float = 30 * 86400.0  # finished deliveries are deleted after this
    senders: int = 8  # subscriptions served at once
    smtp: SmtpConfig = field(default_factory=SmtpConfig)


def backoff_s(attempts: int, cfg: WorkerConfig, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: base * 2^(attempts - 1), capped, times a random 0.5-1."""
    return min(cfg.retry_cap_s, cfg.retry_base_s * 2.0 ** min(max(attempts - 1, 0), 30)) * (0.5 + 0.5 * rng())


class MinuteWindow:
    """At most `per_min` sends in any 60 s (the robots' documented limits are of this kind)."""

    def __init__(self, per_min: float):
        self.limit = max(1, int(per_min))
        self.sent: deque[float] = deque()

    def take(self, now: float) -> bool:
        while self.sent and self.sent[0] <= now - 60.0:
            self.sent.popleft()
        if len(self.sent) >= self.limit:
            return False
        self.sent.append(now)
        return True

    def give_back(self) -> None:
        if self.sent:
            self.sent.pop()

    def wait_s(self, now: float) -> float:
        return max(0.05, self.sent[0] + 60.0 - now) if len(self.sent) >= self.limit else 0.0


@dataclass
class Outgoing:
    message: Message
    rows: list[store.Claimed]
    fresh_digest: bool = False  # a digest not sent before: its id is stored only right before it is sent


@dataclass
class Plan:
    subscription: Subscription
    channel: Channel
    messages: list[Outgoing]


class AlertWorker:
    def __init__(self, database_url: str, config: WorkerConfig = WorkerConfig(),
                 channels: dict[str, Channel] | None = None):
        self.cfg = config
        self.channels = channels or make_channels(config.smtp, config.http_timeout_s)
        self.pool = ConnectionPool(database_url, min_size=1, max_size=config.senders + 1, open=False,
                                   kwargs={"autocommit": True, "connect_timeout": 5}, timeout=10)
        self._windows: dict[str, MinuteWindow] = {}
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._senders = ThreadPoolExecutor(config.senders, thread_name_prefix="alert-send")
        self._last_figures = self._last_prune = 0.0

    # ------------------------------------------------------------------ the loop
    def run(self, stop: threading.Event) -> None:
        self.pool.open(wait=False)
        log.info("alert delivery: polling every %.2f s, digest above %d due, retries %.0f-%.0f s, give up after "
                 "%.0f h", self.cfg.poll_s, self.cfg.digest_after, self.cfg.retry_base_s, self.cfg.retry_cap_s,
                 self.cfg.give_up_s / 3600)
        try:
            while not stop.is_set():
                try:
                    claimed = self.run_once()
                    self._housekeeping()
                except (psycopg.Error, OSError) as exc:  # the database away: try again shortly
                    log.warning("alert delivery: database unavailable (%s); retrying", str(exc).strip()[:200])
                    stop.wait(min(5.0, self.cfg.poll_s * 4))
                    continue
                if not claimed:
                    stop.wait(self.cfg.poll_s)
        finally:
            self.close()

    def close(self) -> None:
        self._stopping.set()
        self._senders.shutdown(wait=True)
        self.pool.close()

    def run_once(self) -> int:
        """One round: claim, plan, hand to the senders. Returns how many rows were claimed."""
        with self.pool.connection() as conn:
            claimed = store.claim(conn, self.cfg.batch, self.cfg.lease_s)
            if not claimed:
                return 0
            subs = store.subscriptions(conn, {c.subscription_id for c in claimed})
            alerts = store.events(conn, claimed)
            groups: dict[str, list[store.Claimed]] = defaultdict(list)
            for c in claimed:
                groups[c.subscription_id].append(c)
            for sub_id, rows in groups.items():
                plan = self._plan(conn, rows, subs.get(sub_id), alerts)
                if plan is not None:
                    self._senders.submit(self._deliver, plan)
        return len(claimed)

    def _plan(self, conn: psycopg.Connection, rows: list[store.Claimed], info, alerts) -> Plan | None:
        keys = [r.key for r in rows]
        if info is None or info[2]:
            store.subscription_deleted(conn, keys)
            return None
        sub, enabled, _ = info
        with self._lock:
            busy = sub.id in self._busy
        if busy or not enabled:  # one send at a time per subscription; a disabled one waits to be enabled
            store.release(conn, keys, self.cfg.poll_s if busy else 60.0)
            return None
        channel = self.channels.get(sub.channel)
        if channel is None:
            store.mark_failed(conn, keys, Msg("alerting.worker.unknown_channel", channel=sub.channel))
            return None
        missing = [r.key for r in rows if r.event_id not in alerts]
        if missing:
            store.missing_event(conn, missing)
        present = [r for r in rows if r.event_id in alerts]
        if not present:
            return None
        digests: dict[str, list[store.Claimed]] = defaultdict(list)
        for r in present:  # a digest the receiver may have got already goes out again as that digest
            if r.digest_id:
                digests[r.digest_id].append(r)
        messages = [Outgoing(Message(d, sub, tuple(alerts[r.event_id] for r in members), digest=True), members)
                    for d, members in digests.items()]
        fresh = [r for r in present if not r.digest_id]
        if len(fresh) > self.cfg.digest_after:
            digest_id = str(uuid.uuid5(DIGEST_NAMESPACE, f"{sub.id}|{','.join(sorted(r.event_id for r in fresh))}"))
            messages.append(Outgoing(Message(digest_id, sub, tuple(alerts[r.event_id] for r in fresh), digest=True),
                                     fresh, fresh_digest=True))
        else:
            messages += [Outgoing(Message(r.event_id, sub, (alerts[r.event_id],)), [r]) for r in fresh]
        messages.sort(key=lambda m: min(r.event_ts for r in m.rows))
        with self._lock:
            self._busy.add(sub.id)
        return Plan(sub, channel, messages)

    # ------------------------------------------------------------------ sending (sender threads)
    def _deliver(self, plan: Plan) -> None:
        sub = plan.subscription
        try:
            window = self._windows.setdefault(sub.id, MinuteWindow(plan.channel.rate_per_min))
            done: list[tuple[Outgoing, Result]] = []
            held: list[store.Claimed] = []
            down: Result | None = None  # a receiver that could not be reached: the plan's rest waits for the retry
            for out in plan.messages:
                if down is not None:
                    done.append((out, Result.retry(down.error or "")))  # not attempted
                elif held or self._stopping.is_set() or not window.take(time.monotonic()):
                    held.extend(out.rows)
                else:
                    if out.fresh_digest:
                        with self.pool.connection() as conn:
                            store.assign_digest(conn, [r.key for r in out.rows], out.message.id)
                    result = self._send(plan.channel, out.message)
                    if result.outcome == RETRY:
                        window.give_back()  # counted are the messages a receiver took or refused
                        down = result
                    done.append((out, result))
            self._record(plan.channel, done, held, window.wait_s(time.monotonic()) or self.cfg.poll_s)
        except Exception:  # the database away while recording: the rows come back when their lease ends
            log.exception("alert delivery: recording the outcome for subscription %s failed", sub.id)
        finally:
            with self._lock:
                self._busy.discard(sub.id)

    def _send(self, channel: Channel, message: Message) -> Result:
        try:
            return channel.send(message)
        except Exception as exc:  # noqa: BLE001 - a bug or bad data must not stop delivery for everyone
            log.exception("alert delivery: channel %s raised for %s", channel.name, message.id)
            return Result.retry(Msg("alerting.worker.internal", error=type(exc).__name__))

    def _record(self, channel: Channel, done, held: list[store.Claimed], held_s: float) -> None:
        with self.pool.connection() as conn:
            for out, result in done:
                message, rows, keys = out.message, out.rows, [r.key for r in out.rows]
                DELIVERIES.labels(channel.name, result.outcome).inc()
                events_outcome = "digested" if message.digest and result.outcome == DELIVERED else result.outcome
                EVENTS.labels(channel.name, events_outcome).inc(len(rows))
                if result.outcome == DELIVERED:
                    store.mark_delivered(conn, keys)
                    now = time.time()
                    for r in rows:
                        DELAY.observe(max(0.0, now - r.created.timestamp()))
                    log.info("alert.delivered subscription=%s channel=%s id=%s events=%d", message.subscription.id,
                             channel.name, message.id, len(rows))
                elif result.outcome == FAILED:
                    store.mark_failed(conn, keys, result.error or "")
                    log.warning("alert.failed subscription=%s channel=%s id=%s: %s", message.subscription.id,
                                channel.name, message.id, result.error)
                else:
                    assert result.outcome == RETRY
                    delays = [max(backoff_s(r.attempts, self.cfg), min(result.retry_after_s or 0.0, 3600.0))
                              for r in rows]
                    undigest = out.fresh_digest and not result.maybe_delivered  # surely not got: may join another
                    gave_up = store.mark_retry(conn, keys, delays, result.error or "", self.cfg.give_up_s, undigest)
                    log.info("alert.retry subscription=%s channel=%s id=%s attempt=%d in=%.1fs: %s%s",
                             message.subscription.id, channel.name, message.id, max(r.attempts for r in rows),
                             min(delays), result.error, f" ({gave_up} gave up)" if gave_up else "")
            if held:
                store.release(conn, [r.key for r in held], held_s)

    # ------------------------------------------------------------------ figures and pruning
    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_figures >= 5.0:
            self._last_figures = now
            with self.pool.connection() as conn:
                BACKLOG.set(store.backlog(conn))
        if now - self._last_prune >= 3600.0:
            self._last_prune = now
            with self.pool.connection() as conn:
                n = store.prune(conn, self.cfg.keep_s)
            if n:
                log.info("alert delivery: deleted %d finished deliveries older than %.0f days", n,
                         self.cfg.keep_s / 86400)
