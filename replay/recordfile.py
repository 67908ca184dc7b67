"""The Skylane record file: MQTT traffic captured for replay.

Format (version 1)
------------------
JSON Lines, UTF-8, one JSON object per line; gzip-compressed when the file name ends in
``.gz`` (conventional names: ``*.slrec`` and ``*.slrec.gz``).

The first line is the header::

    {"format": "skylane-record", "version": 1, "created": "2026-05-09T07:35:25.123Z",
     "root": "skylane/v1", "filters": ["skylane/v1/#"]}

``root`` is the topic root the traffic was recorded under (a player remaps it), ``filters``
the subscriptions of the recording.

Every further line is one received message::

    {"t": 1778312125.123456, "topic": "skylane/v1/uav/uav-001/telemetry", "qos": 1,
     "retain": false, "payload": "eyJ0cyI6..."}

``t`` is the receive time (epoch seconds, float), ``qos`` and ``retain`` are as delivered
(recorded with retain-as-published, so a retained status stays retained), ``payload`` is the
message body in standard base64 (payloads are bytes, not necessarily UTF-8 or JSON).
Lines are in receive order.

Durability: the writer flushes at least once a second, so a crash loses at most the last
second; a reader reports and skips a torn last line (or a gzip stream cut short) instead of
failing, and skips, counting, any line that is not a valid message.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import logging
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from devices.payloads import rfc3339

log = logging.getLogger(__name__)

FORMAT = "skylane-record"
VERSION = 1
FLUSH_EVERY_S = 1.0
_MAX_WARNINGS = 10  # per read: enough to diagnose, not enough to flood the log


class RecordFormatError(ValueError):
    """The file is not a Skylane record file this version can read."""


@dataclass(frozen=True, slots=True)
class Header:
    created: str
    root: str
    filters: tuple[str, ...]
    version: int = VERSION


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded message."""

    t: float
    topic: str
    qos: int
    retain: bool
    payload: bytes


@dataclass
class ReadReport:
    """What a read skipped, and why."""

    records: int = 0
    bad_lines: int = 0  # not JSON, or fields missing / of the wrong type
    bad_base64: int = 0
    truncated: bool = False  # torn last line or gzip stream cut short (a crash mid-write)
    problems: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.bad_lines + self.bad_base64


def _is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def _open(path: Path, mode: str) -> IO[bytes]:
    return gzip.open(path, mode) if _is_gzip(path) else open(path, mode)  # type: ignore[return-value]


def _header_line(root: str, filters: Sequence[str]) -> bytes:
    head = {"format": FORMAT, "version": VERSION, "created": rfc3339(time.time()), "root": root,
            "filters": list(filters)}
    return orjson.dumps(head) + b"\n"


def parse_header(line: bytes) -> Header:
    """Validate a header line; RecordFormatError says what is wrong."""
    try:
        head = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordFormatError(f"header is not JSON: {exc}") from exc
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise RecordFormatError(f"not a {FORMAT} file (first line must be its header)")
    if head.get("version") != VERSION:
        raise RecordFormatError(f"unsupported {FORMAT} version {head.get('version')!r} (this reader: {VERSION})")
    root, filters = head.get("root"), head.get("filters")
    if not isinstance(root, str) or not root:
        raise RecordFormatError("header field 'root' must be a non-empty string")
    if not isinstance(filters, list) or not all(isinstance(f, str) for f in filters):
        raise RecordFormatError("header field 'filters' must be a list of strings")
    return Header(created=str(head.get("created", "")), root=root, filters=tuple(filters))


def encode_record(t: float, topic: str, qos: int, retain: bool, payload: bytes) -> bytes:
    """One message line."""
    return orjson.dumps({"t": t, "topic": topic, "qos": qos, "retain": retain,
                         "payload": base64.b64encode(payload).decode("ascii")}) + b"\n"


class RecordWriter:
    """Writes a record file; thread-safe (paho's network thread writes, a timer may flush)."""

    def __init__(self, path: str | Path, root: str, filters: Sequence[str], append: bool = False) -> None:
        """A new file (replacing any old one), or with `append` the continuation of an existing
        recording of the same root (a .gz gets a new gzip member, which readers join)."""
        self.path = Path(path)
        self.root = root
        self.filters = list(filters)
        self.count = 0
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        continuing = append and self.path.exists() and self.path.stat().st_size > 0
        if continuing:
            old = read_header(self.path)
            if old.root != root:
                raise RecordFormatError(f"{self.path}: recorded under root {old.root!r}, not {root!r}")
        self._f: IO[bytes] | None = _open(self.path, "ab" if continuing else "wb")
        if not continuing:
            self._f.write(_header_line(root, self.filters))
            self.flush()

    def write(self, t: float, topic: str, qos: int, retain: bool, payload: bytes) -> None:
        line = encode_record(t, topic, qos, retain, payload)
        with self._lock:
            if self._f is None:
                raise ValueError("record file is closed")
            self._f.write(line)
            self.count += 1
            if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
                self._flush_locked()

    def append(self, record: Record) -> None:
        self.write(record.t, record.topic, record.qos, record.retain, record.payload)

    def _flush_locked(self) -> None:
        if self._f is None:
            return
        if isinstance(self._f, gzip.GzipFile):
            self._f.flush(zlib.Z_SYNC_FLUSH)  # makes everything so far decodable
        else:
            self._f.flush()
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def flush_if_due(self) -> None:
        """Flush if a second has passed since the last flush (for a caller's timer)."""
        with self._lock:
            if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
                self._flush_locked()

    def close(self) -> None:
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def _lines(f: IO[bytes], report: ReadReport) -> Iterator[bytes]:
    """Lines of the file; a gzip stream cut short ends the iteration as 'truncated'."""
    try:
        yield from f
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        report.truncated = True
        _problem(report, f"compressed stream cut short ({exc}); reading stopped there")


def _problem(report: ReadReport, msg: str) -> None:
    report.problems.append(msg)
    if len(report.problems) <= _MAX_WARNINGS:
        log.warning("%s", msg)


def read_header(path: str | Path) -> Header:
    """The header of a record file (RecordFormatError if there is none)."""
    path = Path(path)
    try:
        with _open(path, "rb") as f:
            first = f.readline()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise RecordFormatError(f"{path}: unreadable: {exc}") from exc
    if not first.strip():
        raise RecordFormatError(f"{path}: empty file, no header")
    try:
        return parse_header(first)
    except RecordFormatError as exc:
        raise RecordFormatError(f"{path}: {exc}") from exc


def _record(obj: Any) -> Record | str:
    """The record a line holds, or why it holds none."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    t, topic, qos, retain, payload = (obj.get(k) for k in ("t", "topic", "qos", "retain", "payload"))
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        return "'t' must be a number"
    if not isinstance(topic, str) or not topic:
        return "'topic' must be a non-empty string"
    if qos not in (0, 1, 2) or isinstance(qos, bool):
        return "'qos' must be 0, 1 or 2"
    if not isinstance(retain, bool):
        return "'retain' must be a boolean"
    if not isinstance(payload, str):
        return "'payload' must be a base64 string"
    try:
        body = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return "base64"
    return Record(t=float(t), topic=topic, qos=qos, retain=retain, payload=body)


def read_records(path: str | Path, report: ReadReport | None = None) -> Iterator[Record]:
    """The messages of a record file, in file order, streamed.

    Raises RecordFormatError if the header is missing or invalid. Bad lines are skipped and
    counted in `report`; a torn last line (crash mid-write) is reported, not raised.
    """
    path = Path(path)
    report = report if report is not None else ReadReport()
    read_header(path)
    with _open(path, "rb") as f:
        lines = _lines(f, report)
        next(lines, None)  # the header, validated above
        lineno = 1
        for raw in lines:
            lineno += 1
            if not raw.strip():
                continue
            torn = not raw.endswith(b"\n")
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                if torn:
                    report.truncated = True
                    _problem(report, f"{path}:{lineno}: torn last line (crash mid-write?) skipped")
                else:
                    report.bad_lines += 1
                    _problem(report, f"{path}:{lineno}: not JSON, skipped")
                continue
            rec = _record(obj)
            if isinstance(rec, str):
                if rec == "base64":
                    report.bad_base64 += 1
                    _problem(report, f"{path}:{lineno}: payload is not valid base64, skipped")
                else:
                    report.bad_lines += 1
                    _problem(report, f"{path}:{lineno}: {rec}, skipped")
                continue
            report.records += 1
            yield rec
    if report.skipped or report.truncated:
        log.warning("%s: %d records read, %d lines skipped%s", path, report.records, report.skipped,
                    ", file truncated" if report.truncated else "")
