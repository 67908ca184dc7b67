"""Recordings made of several files: rotated parts (NAME.00001.slrec.gz, ...) and directories.

A recorder rotates by size or duration into numbered parts of one session (same `session` in
their headers, `part` 1, 2, ...); numbering continues after parts already on disk, so a restarted
recorder never overwrites. Readers take a file, a rotated set's base name, a directory or a list,
and read the files in name order (the numbering is chronological).
"""
from __future__ import annotations

import logging
import multiprocessing
import pickle
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .recordfile import (SUFFIXES, Header, ReadReport, Record, RecordFormatError, RecordWriter, read_header,
                         read_records)

log = logging.getLogger(__name__)


def split_name(path: str | Path) -> tuple[Path, str]:
    """(path without the record suffix, the suffix): a/b.slrec.gz -> (a/b, .slrec.gz)."""
    path = Path(path)
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)]), suffix
    return path, ".slrec.gz" if path.name.endswith(".gz") else ""


def part_path(base: str | Path, part: int) -> Path:
    stem, suffix = split_name(base)
    return stem.with_name(f"{stem.name}.{part:05d}{suffix or '.slrec.gz'}")


def _part_pattern(base: str | Path) -> tuple[Path, re.Pattern[str]]:
    stem, suffix = split_name(base)
    return stem.parent, re.compile(re.escape(stem.name) + r"\.(\d{5,})" + re.escape(suffix or ".slrec.gz") + "$")


def parts_of(base: str | Path) -> list[Path]:
    """The existing parts of a rotated recording named `base`, in order."""
    folder, pattern = _part_pattern(base)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


class RotatingWriter:
    """A recording split into parts by size and/or duration (NAME.00001.slrec.gz, ...).

    Numbering continues after parts already on disk, so a restarted recorder never overwrites.
    """

    def __init__(self, base: str | Path, root: str, filters: Sequence[str], *, max_bytes: int | None = None,
                 max_seconds: float | None = None, clock=time.monotonic, extra: dict | None = None) -> None:
        if max_bytes is not None and max_bytes < 1024:
            raise ValueError("rotate size must be at least 1 KiB")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError("rotate interval must be > 0 s")
        self.base = Path(base)
        self.root, self.filters = root, list(filters)
        self.max_bytes, self.max_seconds, self.clock = max_bytes, max_seconds, clock
        self.extra = extra
        self.session = uuid.uuid4().hex[:12]
        existing = parts_of(base)
        self.part = int(_part_pattern(base)[1].match(existing[-1].name).group(1)) if existing else 0  # type: ignore[union-attr]
        self.paths: list[Path] = []
        self.count_before = 0
        self._lock = threading.Lock()
        self._open_next()

    def _open_next(self) -> None:
        self.part += 1
        path = part_path(self.base, self.part)
        self._w = RecordWriter(path, self.root, self.filters, session=self.session, part=self.part, extra=self.extra)
        self._started = self.clock()
        self.paths.append(path)
        log.info("recording to %s", path)

    @property
    def count(self) -> int:
        return self.count_before + self._w.count

    @property
    def path(self) -> Path:
        return self._w.path

    def _due(self) -> bool:
        return ((self.max_seconds is not None and self.clock() - self._started >= self.max_seconds)
                or (self.max_bytes is not None and self._w.size() >= self.max_bytes))

    def rotate_if_due(self) -> None:
        with self._lock:
            if self._due():
                self.count_before += self._w.count
                self._w.close()
                self._open_next()

    def write(self, t: float, topic: str, qos: int, retain: bool, payload: bytes) -> None:
        with self._lock:
            self._w.write(t, topic, qos, retain, payload)

    def append(self, record: Record) -> None:
        self.write(record.t, record.topic, record.qos, record.retain, record.payload)

    def flush_if_due(self) -> None:
        with self._lock:
            self._w.flush_if_due()
        self.rotate_if_due()

    def flush(self) -> None:
        with self._lock:
            self._w.flush()

    def close(self) -> None:
        with self._lock:
            self._w.close()

    def __enter__(self) -> RotatingWriter:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def is_record_file(path: Path) -> bool:
    return path.is_file() and path.name.endswith(SUFFIXES)


def expand(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The files of one recording: a file, a rotated set's base name, a directory, or a list of those.

    Directories give their *.slrec / *.slrec.gz files in name order (the parts' numbering is
    chronological); a base name that is not a file gives its parts. Raises FileNotFoundError.
    """
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if is_record_file(f))
            if not files:
                raise FileNotFoundError(f"{p}: no record files (*.slrec, *.slrec.gz) in this directory")
            out.extend(files)
        elif p.is_file():
            out.append(p)
        elif parts := parts_of(p):
            out.extend(parts)
        else:
            raise FileNotFoundError(f"{p}: no such recording (nor parts {part_path(p, 1).name}, ...)")
    return out


PARALLEL_BATCH = 4096


def read_set(paths: Sequence[Path], report: ReadReport | None = None,
             parallel: bool = False) -> tuple[Header, Iterator[Record]]:
    """The header of the first file and the records of all, in order; every file must share its root.

    `parallel`: decode in a child process (decompression, JSON, base64: most of the reading cost),
    handing over batches; the records, their order and the report are the same.
    """
    if not paths:
        raise FileNotFoundError("no record files given")
    heads = [read_header(p) for p in paths]
    roots = {h.root for h in heads}
    if len(roots) > 1:
        raise RecordFormatError(f"these files were recorded under different roots {sorted(roots)}; replay them apart")
    report = report if report is not None else ReadReport()

    def records() -> Iterator[Record]:
        for p in paths:
            yield from read_records(p, report)
    return heads[0], (_parallel(list(paths), report) if parallel else records())


def _reader_main(paths: list[Path], conn, parent_end) -> None:
    """Child process: read the files, send pickled batches, then the report (or the error)."""
    # a forked child inherits the parent's signal handlers (a CLI's "stop on SIGTERM"): it must die
    # on terminate(), and leave Ctrl-C to the parent; and it must not hold the parent's read end,
    # or a write to a pipe the parent abandoned blocks instead of failing
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_end.close()
    report = ReadReport()
    try:
        batch: list[Record] = []
        for p in paths:
            for rec in read_records(p, report):
                batch.append(rec)
                if len(batch) >= PARALLEL_BATCH:
                    conn.send_bytes(pickle.dumps(("records", batch, report.bytes_done), protocol=5))
                    batch = []
        conn.send_bytes(pickle.dumps(("records", batch, report.bytes_done), protocol=5))
        conn.send_bytes(pickle.dumps(("end", report), protocol=5))
    except BaseException as exc:  # reported to the parent, which raises it there
        try:
            conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {exc}"), protocol=5))
        except OSError:
            pass
    finally:
        conn.close()


def _parallel(paths: list[Path], report: ReadReport) -> Iterator[Record]:
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_reader_main, args=(paths, send, recv), name="record-reader", daemon=True)
    proc.start()
    send.close()
    try:
        while True:
            try:
                kind, *rest = pickle.loads(recv.recv_bytes())
            except EOFError:
                raise RuntimeError("the record reader process died") from None
            if kind == "records":
                batch, report.bytes_done = rest
                yield from batch
            elif kind == "end":
                done: ReadReport = rest[0]
                for name in ("records", "bad_lines", "bad_base64", "truncated", "bytes_done"):
                    setattr(report, name, getattr(done, name))
                report.problems.extend(done.problems)
                return
            else:
                raise RuntimeError(f"reading the recording failed: {rest[0]}")
    finally:
        recv.close()
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        proc.join(5)
