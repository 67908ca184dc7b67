"""Storing a batch's outputs: retried while the database is away, never acknowledged before the commit, and
when the database refuses the data itself, only the refused rows become dead letters (the batch's decisions
are kept)."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from storage.writes import WriteResult, write_batch

from . import metrics as m
from .pipeline import BatchOutput
from .rows import DeadLetter, RawMessage

log = logging.getLogger("skylane.ingest")
REFUSED = (psycopg.DataError, psycopg.IntegrityError)  # the data, not the database, is at fault


class Refused(Exception):
    """The database refused the batch's data (not a connection problem)."""


class BatchStore:
    """The ingester's database connection and write policy. `on_outage_over` is called when a write succeeds
    after failures (the broker queued meanwhile: the ingester is catching up)."""

    def __init__(self, database_url: str, on_outage_over: Callable[[], None] = lambda: None) -> None:
        self.database_url = database_url
        self.on_outage_over = on_outage_over
        self._conn: psycopg.Connection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.database_url, connect_timeout=5)
        return self._conn

    def store(self, out: BatchOutput, stop: threading.Event) -> WriteResult | None:
        """Write until it succeeds: nothing is acknowledged before it is committed.

        None only when asked to stop while the database is failing: the batch stays unacknowledged
        and the broker re-delivers it to the next run of this persistent session. Raises Refused when
        the database rejects the data itself, which no retry would change.
        """
        delay = 0.5
        while True:
            try:
                result = write_batch(self._db(), out)
                if delay > 0.5:  # there was an outage: the broker queued meanwhile
                    self.on_outage_over()
                return result
            except REFUSED as exc:
                raise Refused(str(exc)) from exc
            except psycopg.Error as exc:
                if stop.is_set():
                    log.error("stopping with a batch unwritten (%s); the broker will re-deliver it", exc)
                    return None
                m.DB_ERRORS.inc()
                log.error("database write failed (%s); retrying in %.1fs, nothing acknowledged",
                          str(exc).strip()[:300], delay)
                if self._conn is not None:
                    self._conn.close()
                stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def store_refused(self, raw: list[RawMessage], out: BatchOutput, exc: Refused,
                       stop: threading.Event) -> tuple[BatchOutput, WriteResult | None]:
        """The database refused the batch's data. Its decisions are kept (the monitor has moved on: an alert not
        stored now would never be raised again): the rows are stored in halves until the refused ones are found,
        the messages that carried those become dead letters with the database's reason, and everything else
        (events, sensor events, statuses, zone decisions, the other rows) is stored as usual."""
        reason = f"database refused the batch: {str(exc).splitlines()[0][:300]}".replace("\x00", "")
        log.error("the database refused a batch of %d messages (%s): finding the rows it refuses", len(raw), exc)
        refused_tel = self.refused_rows(out.telemetry, lambda rows: BatchOutput(telemetry=rows), stop)
        refused_read = self.refused_rows(out.readings, lambda rows: BatchOutput(readings=rows), stop)
        if refused_tel is None or refused_read is None:
            return out, None
        sources = {(r.uav_id, r.received_at) for r in refused_tel} | {(r.sensor_id, r.received_at) for r in refused_read}
        dead = [DeadLetter(m.received_at, m.topic, m.payload, reason) for m in raw
                if (device_of(m.topic), m.received_at) in sources]
        bad_tel, bad_read = {id(r) for r in refused_tel}, {id(r) for r in refused_read}
        kept = BatchOutput(telemetry=[r for r in out.telemetry if id(r) not in bad_tel],
                           readings=[r for r in out.readings if id(r) not in bad_read],
                           statuses=out.statuses, events=out.events, dead_letters=out.dead_letters + dead,
                           uav_states=out.uav_states, sensor_states=out.sensor_states,
                           zone_decisions=out.zone_decisions, applied_controls=out.applied_controls,
                           sensor_events=out.sensor_events)
        try:
            return kept, self.store(kept, stop)
        except Refused as again:  # the decisions themselves: keep every message as a dead letter at least
            log.error("the database refused the batch's decisions too (%s): %d events not stored", again,
                      len(out.events))
            every = BatchOutput(dead_letters=[DeadLetter(m.received_at, m.topic, m.payload, reason) for m in raw])
            return every, self.store(every, stop)

    def refused_rows(self, rows: list, make_out, stop: threading.Event) -> list | None:
        """The rows the database refuses, found by storing halves (rows it takes are stored on the way);
        None when asked to stop while the database was away."""
        if not rows:
            return []
        try:
            return [] if self.store(make_out(rows), stop) is not None else None
        except Refused:
            if len(rows) == 1:
                return rows
        half = len(rows) // 2
        first = self.refused_rows(rows[:half], make_out, stop)
        second = self.refused_rows(rows[half:], make_out, stop) if first is not None else None
        return None if second is None else first + second


def device_of(topic: str) -> str:
    """The device id of a contract topic ({root}/<family>/<id>/<leaf>)."""
    parts = topic.rsplit("/", 2)
    return parts[1] if len(parts) == 3 else ""
