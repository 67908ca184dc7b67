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

Optional header fields (readers ignore what they do not know): ``session`` (an id shared by the
parts of one rotated recording), ``part`` (1, 2, ... in order), and for an export from the
database ``source`` ("database"), ``start`` and ``end`` (RFC 3339, the window). A rotated recording is a set of
files ``NAME.00001.slrec.gz``, ``NAME.00002.slrec.gz``, ...; readers accept the set, its
directory, or the list of files, and play them in name order (replay.recordset).

Durability: a ``.gz`` file is a sequence of gzip members (RFC 1952 allows several; ``zcat`` and
every gzip reader join them). The writer closes the current member at least every
``FLUSH_EVERY_S`` (0.5 s) and on close, so after a crash (even SIGKILL) everything but the last
half second is in complete members; a plain file is flushed as often. A reader reports and skips
a torn last line or a gzip member cut short instead of failing, and skips, counting, any line
that is not a valid message. Appending to a file a crash left damaged first cuts it back to its
last complete member (or line), so the continuation stays readable.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import logging
import queue
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from protocol.times import rfc3339

log = logging.getLogger(__name__)

FORMAT = "skylane-record"
VERSION = 1
CONTEXT_KEYS = ("policy", "zone_set_version")  # header fields saying what a recording was made under
FLUSH_EVERY_S = 0.5
COMPRESS_LEVEL = 6
SUFFIXES = (".slrec", ".slrec.gz")
_MAX_WARNINGS = 10  # per read: enough to diagnose, not enough to flood the log


class RecordFormatError(ValueError):
    """The file is not a Skylane record file this version can read."""


@dataclass(frozen=True, slots=True)
class Header:
    created: str
    root: str
    filters: tuple[str, ...]
    version: int = VERSION
    session: str | None = None
    part: int | None = None
    context: dict = field(default_factory=dict)  # what it was recorded under: "policy", "zone_set_version"


class Record(NamedTuple):
    """One recorded message (a named tuple: made a million times a second when evaluating)."""

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
    bytes_done: int = 0  # file bytes consumed so far, over every file of a set (progress)
    problems: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.bad_lines + self.bad_base64


def _is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def _open(path: Path, mode: str) -> IO[bytes]:
    return gzip.open(path, mode) if _is_gzip(path) else open(path, mode)  # type: ignore[return-value]


def _header_line(root: str, filters: Sequence[str], session: str | None = None, part: int | None = None,
                 extra: dict[str, Any] | None = None, created: str | None = None) -> bytes:
    head: dict[str, Any] = {**(extra or {}), "format": FORMAT, "version": VERSION,
                            "created": created or rfc3339(time.time()), "root": root, "filters": list(filters)}
    if session is not None:
        head["session"] = session
    if part is not None:
        head["part"] = part
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
    session, part = head.get("session"), head.get("part")
    return Header(created=str(head.get("created", "")), root=root, filters=tuple(filters),
                  session=session if isinstance(session, str) else None,
                  part=part if isinstance(part, int) and not isinstance(part, bool) else None,
                  context={k: head[k] for k in CONTEXT_KEYS if k in head})


def encode_record(t: float, topic: str, qos: int, retain: bool, payload: bytes) -> bytes:
    """One message line."""
    return orjson.dumps({"t": t, "topic": topic, "qos": qos, "retain": retain,
                         "payload": base64.b64encode(payload).decode("ascii")}) + b"\n"


def repair(path: str | Path) -> int:
    """Cut a file a crash left damaged back to its last complete gzip member (or last full line);
    returns the number of bytes dropped. A sound file is left alone."""
    path = Path(path)
    data = path.read_bytes()
    if _is_gzip(path):
        good, pos = 0, 0
        while pos < len(data):
            d = zlib.decompressobj(wbits=31)
            try:
                d.decompress(data[pos:])
            except zlib.error:
                break
            if not d.eof:
                break
            pos = len(data) - len(d.unused_data)
            good = pos
    else:
        good = data.rfind(b"\n") + 1
    if good < len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
        log.warning("%s: cut %d bytes a crash left incomplete before appending", path, len(data) - good)
    return len(data) - good


class RecordWriter:
    """Writes a record file; thread-safe (paho's network thread writes, a timer flushes).

    A .gz file is written as a series of gzip members, one closed at every flush, so all that
    was flushed survives a crash as complete, standard gzip data.
    """

    def __init__(self, path: str | Path, root: str, filters: Sequence[str], append: bool = False, *,
                 session: str | None = None, part: int | None = None, compresslevel: int = COMPRESS_LEVEL,
                 extra: dict[str, Any] | None = None, created: str | None = None) -> None:
        """A new file (replacing any old one), or with `append` the continuation of an existing
        recording of the same root. `created` pins the header's time (reproducible files)."""
        self.path = Path(path)
        self.root = root
        self.filters = list(filters)
        self.count = 0
        self.compresslevel = compresslevel
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._dirty = False
        continuing = append and self.path.exists() and self.path.stat().st_size > 0
        if continuing:
            repair(self.path)
            old = read_header(self.path)
            if old.root != root:
                raise RecordFormatError(f"{self.path}: recorded under root {old.root!r}, not {root!r}")
        self._raw: IO[bytes] | None = open(self.path, "ab" if continuing else "wb")
        self._gz: gzip.GzipFile | None = None
        if not continuing:
            self._put(_header_line(root, self.filters, session, part, extra, created))
            self.flush()

    def _put(self, data: bytes) -> None:
        if self._raw is None:
            raise ValueError("record file is closed")
        if _is_gzip(self.path):
            if self._gz is None:
                self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=self.compresslevel,
                                         mtime=0)
            self._gz.write(data)
        else:
            self._raw.write(data)
        self._dirty = True

    def write(self, t: float, topic: str, qos: int, retain: bool, payload: bytes) -> None:
        line = encode_record(t, topic, qos, retain, payload)
        with self._lock:
            self._put(line)
            self.count += 1
            if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
                self._flush_locked()

    def append(self, record: Record) -> None:
        self.write(record.t, record.topic, record.qos, record.retain, record.payload)

    def write_lines(self, lines: bytes, n: int) -> None:
        """Already encoded message lines (a generator's fast path); `n` of them."""
        with self._lock:
            self._put(lines)
            self.count += n
            if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
                self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_flush = time.monotonic()
        if self._raw is None or not self._dirty:
            return
        if self._gz is not None:
            self._gz.close()  # ends the member; the underlying file stays open
            self._gz = None
        self._raw.flush()
        self._dirty = False

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def flush_if_due(self) -> None:
        """Flush if FLUSH_EVERY_S has passed since the last flush (for a caller's timer)."""
        with self._lock:
            if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
                self._flush_locked()

    def size(self) -> int:
        """Bytes on disk so far (what rotation by size counts)."""
        with self._lock:
            return self._raw.tell() if self._raw is not None else self.path.stat().st_size

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._dirty = True
                self._flush_locked()
                self._raw.close()
                self._raw = None

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


READ_CHUNK = 1 << 20


class _Inflater:
    """Reads a record file in a background thread, inflating gzip members as they come.

    zlib releases the GIL while it inflates, so on a second core decompression overlaps the
    parsing of the previous block. Blocks of bytes come out of `blocks()` in order; `truncated`
    says whether the data ended inside a gzip member (a crash) or hit corrupt data.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw_pos = 0
        self.truncated: str | None = None
        self._q: queue.Queue = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="record-inflate", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        gz = _is_gzip(self.path)
        try:
            with open(self.path, "rb") as f:
                d, fed = (zlib.decompressobj(wbits=31), False) if gz else (None, False)
                while not self._stop.is_set():
                    raw = f.read(READ_CHUNK)
                    self.raw_pos += len(raw)
                    if not raw:
                        break
                    if d is None:
                        if not self._put(raw):
                            return
                        continue
                    data = raw
                    while data:
                        out = d.decompress(data)
                        fed = True
                        if out and not self._put(out):
                            return
                        if d.eof:
                            data = d.unused_data
                            d, fed = zlib.decompressobj(wbits=31), False
                        else:
                            data = b""
                if d is not None and fed and not d.eof:
                    self.truncated = "compressed stream cut short (a gzip member without its end)"
        except zlib.error as exc:
            self.truncated = f"compressed data corrupt ({exc})"
        except OSError as exc:
            self.truncated = f"read error ({exc})"
        finally:
            self._put(None)

    def blocks(self) -> Iterator[bytes]:
        while True:
            block = self._q.get()
            if block is None:
                return
            yield block

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _lines(blocks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """(line without its newline, torn) pairs; only a last line without a newline is torn."""
    rest = b""
    for block in blocks:
        lines = (rest + block).split(b"\n") if rest else block.split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line, False
    if rest:
        yield rest, True


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


def _slow_record(raw: bytes, torn: bool, path: Path, lineno: int, report: ReadReport) -> Record | None:
    """A line the fast path refused: the record after all, or None with the problem reported."""
    if not raw.strip():
        return None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if torn:
            report.truncated = True
            _problem(report, f"{path}:{lineno}: torn last line (crash mid-write?) skipped")
        else:
            report.bad_lines += 1
            _problem(report, f"{path}:{lineno}: not JSON, skipped")
        return None
    rec = _record(obj)
    if isinstance(rec, str):
        if rec == "base64":
            report.bad_base64 += 1
            _problem(report, f"{path}:{lineno}: payload is not valid base64, skipped")
        else:
            report.bad_lines += 1
            _problem(report, f"{path}:{lineno}: {rec}, skipped")
        return None
    return rec


def read_records(path: str | Path, report: ReadReport | None = None) -> Iterator[Record]:
    """The messages of a record file, in file order, streamed.

    Raises RecordFormatError if the header is missing or invalid. Bad lines are skipped and
    counted in `report`; a torn last line or a gzip member cut short (crash mid-write) is
    reported, not raised: everything before it is read.
    """
    path = Path(path)
    report = report if report is not None else ReadReport()
    read_header(path)
    base = report.bytes_done
    loads, a2b = orjson.loads, binascii.a2b_base64
    inflater = _Inflater(path)
    try:
        lines = _lines(inflater.blocks())
        next(lines, None)  # the header, validated above
        lineno = 1
        for raw, torn in lines:
            lineno += 1
            if not lineno & 1023:
                report.bytes_done = base + inflater.raw_pos
            try:  # the fast path: a well-formed line, checked field by field
                obj = loads(raw)
                t, topic, qos, retain, payload = obj["t"], obj["topic"], obj["qos"], obj["retain"], obj["payload"]
                if ((type(t) is float or type(t) is int) and type(topic) is str and topic and type(qos) is int
                        and 0 <= qos <= 2 and type(retain) is bool and type(payload) is str):
                    report.records += 1
                    yield Record(float(t), topic, qos, retain, a2b(payload, strict_mode=True))
                    continue
            except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
                pass
            rec = _slow_record(raw, torn, path, lineno, report)
            if rec is None:
                continue
            report.records += 1
            yield rec
    finally:
        inflater.close()
    if inflater.truncated:
        report.truncated = True
        _problem(report, f"{path}: {inflater.truncated}; reading stopped there")
    report.bytes_done = base + path.stat().st_size
    if report.skipped or report.truncated:
        log.warning("%s: %d records read, %d lines skipped%s", path, report.records, report.skipped,
                    ", file truncated" if report.truncated else "")
