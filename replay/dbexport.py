"""Stored telemetry and readings rebuilt as the MQTT messages that carried them.

A window of `uav_telemetry` and `sensor_readings` rows becomes records in receive order: each
telemetry row one JSON fix on {root}/uav/{id}/telemetry, each group of readings of one sensor
with one time and arrival one SenML pack on {root}/sensor/{id}/reading (absolute base time, so
it parses back to the same instant). The recorded time is the stored `received_at`. Evaluating
such an export gives the events the live system decided, except where storage rounded a value
(alt_m and the kinematic fields are stored as 32-bit reals).
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import orjson
import psycopg

from protocol import topics
from protocol.times import rfc3339

from .recordfile import Record, RecordWriter
from .sources import Source

ITERSIZE = 5000
TELEMETRY_FIELDS = ("seq", "lon", "lat", "alt_m", "alt_ref", "speed_mps", "track_deg", "vspeed_mps", "battery_pct",
                    "status", "clearance_id")


def _ts(dt: datetime) -> str:
    return rfc3339(dt, digits=6)


def _where(column: str, ids: Iterable[str] | None) -> tuple[str, list]:
    ids = sorted(set(ids or ()))
    return (f" AND {column} = ANY(%s)", [ids]) if ids else ("", [])


def _telemetry(conn: psycopg.Connection, root: str, start: datetime, end: datetime,
               uavs: Iterable[str] | None) -> Iterator[Record]:
    extra, params = _where("uav_id", uavs)
    cur = conn.cursor(name="replay_telemetry")
    cur.itersize = ITERSIZE
    cur.execute("SELECT received_at, uav_id, ts, " + ", ".join(TELEMETRY_FIELDS) + " FROM uav_telemetry"
                " WHERE ts >= %s AND ts < %s" + extra + " ORDER BY received_at, uav_id, ts", [start, end, *params])
    for received_at, uav_id, ts, *values in cur:
        body = {"ts": _ts(ts)}
        body.update((k, v) for k, v in zip(TELEMETRY_FIELDS, values) if v is not None)
        yield Record(received_at.timestamp(), topics.telemetry(root, uav_id), 1, False, orjson.dumps(body))


def _readings(conn: psycopg.Connection, root: str, start: datetime, end: datetime,
              sensors: Iterable[str] | None) -> Iterator[Record]:
    extra, params = _where("sensor_id", sensors)
    cur = conn.cursor(name="replay_readings")
    cur.itersize = ITERSIZE
    cur.execute("SELECT received_at, sensor_id, ts, metric, value, vtext, unit FROM sensor_readings"
                " WHERE ts >= %s AND ts < %s" + extra + " ORDER BY received_at, sensor_id, ts, metric",
                [start, end, *params])
    key, pack = None, []
    for received_at, sensor_id, ts, metric, value, vtext, unit in cur:
        if (received_at, sensor_id, ts) != key:
            if pack:
                yield _pack(root, key, pack)  # type: ignore[arg-type]
            key, pack = (received_at, sensor_id, ts), []
        rec: dict = {"n": metric}
        if unit is not None:
            rec["u"] = unit
        if value is not None:
            rec["v"] = value
        elif vtext is not None:
            rec["vs"] = vtext
        else:
            continue
        pack.append(rec)
    if pack:
        yield _pack(root, key, pack)  # type: ignore[arg-type]


def _pack(root: str, key: tuple[datetime, str, datetime], pack: list[dict]) -> Record:
    received_at, sensor_id, ts = key
    pack[0] = {"bt": round(ts.timestamp(), 6), **pack[0]}
    return Record(received_at.timestamp(), topics.reading(root, sensor_id), 1, False, orjson.dumps(pack))


def _utc(t: float | datetime) -> datetime:
    return t if isinstance(t, datetime) else datetime.fromtimestamp(t, timezone.utc)


def db_records(database_url: str, start: float | datetime, end: float | datetime, *, root: str = topics.DEFAULT_ROOT,
               uavs: Iterable[str] | None = None, sensors: Iterable[str] | None = None) -> Iterator[Record]:
    """The window's telemetry and readings (event time in [start, end)) as records in receive order.

    `uavs` restricts the telemetry, `sensors` the readings (a filter on one leaves the other alone).
    """
    a, b = _utc(start), _utc(end)
    if b <= a:
        raise ValueError("end must be after start")
    with psycopg.connect(database_url) as conn:
        yield from heapq.merge(_telemetry(conn, root, a, b, uavs), _readings(conn, root, a, b, sensors),
                               key=lambda r: r.t)


def count_rows(database_url: str, start: float | datetime, end: float | datetime, *,
               uavs: Iterable[str] | None = None, sensors: Iterable[str] | None = None) -> int:
    """Telemetry rows plus reading rows in the window (for progress)."""
    a, b = _utc(start), _utc(end)
    tx, tp = _where("uav_id", uavs)
    sx, sp = _where("sensor_id", sensors)
    with psycopg.connect(database_url) as conn:
        n1 = conn.execute("SELECT count(*) FROM uav_telemetry WHERE ts >= %s AND ts < %s" + tx, [a, b, *tp]).fetchone()
        n2 = conn.execute("SELECT count(*) FROM sensor_readings WHERE ts >= %s AND ts < %s" + sx,
                          [a, b, *sp]).fetchone()
    return int(n1[0]) + int(n2[0])  # type: ignore[index]


class DbSource(Source):
    """A stored window, as a replay source."""

    def __init__(self, database_url: str, start: float, end: float, *, root: str = topics.DEFAULT_ROOT,
                 uavs: Iterable[str] | None = None, sensors: Iterable[str] | None = None) -> None:
        if end <= start:
            raise ValueError("end must be after start")
        self.database_url, self.start, self.end = database_url, start, end
        self.uavs, self.sensors = sorted(uavs or ()), sorted(sensors or ())
        self.root = root
        self.label = f"database window {_ts(_utc(start))} .. {_ts(_utc(end))}"
        self._total: int | None = None
        self._done = 0

    def records(self) -> Iterator[Record]:
        self._done = 0
        for rec in db_records(self.database_url, self.start, self.end, root=self.root, uavs=self.uavs,
                              sensors=self.sensors):
            self._done += 1
            yield rec

    def starts_at(self) -> float | None:
        return self.start

    def fraction(self) -> float | None:
        if self._total is None:
            self._total = count_rows(self.database_url, self.start, self.end, uavs=self.uavs, sensors=self.sensors)
        return min(self._done / self._total, 1.0) if self._total else 1.0


def export(database_url: str, path: str | Path, start: float, end: float, *, root: str = topics.DEFAULT_ROOT,
           uavs: Iterable[str] | None = None, sensors: Iterable[str] | None = None,
           progress=None) -> int:
    """Write the window to a record file (the recording format); returns the message count."""
    extra = {"source": "database", "start": _ts(_utc(start)), "end": _ts(_utc(end))}
    filters = [topics.telemetry(root, "+"), topics.reading(root, "+")]
    with RecordWriter(path, root, filters, extra=extra) as w:
        for rec in db_records(database_url, start, end, root=root, uavs=uavs, sensors=sensors):
            w.append(rec)
            if progress is not None and not w.count % 10_000:
                progress(w.count)
        return w.count
