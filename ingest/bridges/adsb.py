"""The ADS-B bridge: a 1090 MHz receiver's output in, observations on the broker out (`skylane adsb`).

    receiver (TCP Beast 30005 | AVR 30002 | SBS 30003, or a capture file)
      -> framing.py (frames, records) -> modes.py (decoded messages) -> tracker.py (positions, identity)
      -> ObservationRow -> {root}/obs/adsb/{icao24} (QoS 1), written to the database by ingest only.

The bridge is also the receiver's presence on the broker: `{root}/device/{receiver_id}/status` is "online"
(retained) while frames flow and "offline" once none came for `silence_s` (a dead feed, a lost TCP link, an
unplugged antenna), and "offline" as the MQTT last will if the bridge itself dies. Ingest turns the change
into `sensor_online`/`sensor_offline` events (ingest/sensor_watch.py), as for any device. The TCP link is
re-opened with exponential backoff (1 s doubling to 30 s) for as long as the bridge runs.

Bad input never stops the bridge: a frame failing its CRC, an unverified reply address, a malformed line are
counted by reason (`AdsbBridge.stats`, in the progress lines and the final summary), not published.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import orjson

from ingest.rows import ObservationRow
from protocol import topics
from protocol.progress import ProgressReporter

from . import framing
from .modes import ModeSDecoder
from .tracker import Tracker

log = logging.getLogger("skylane.adsb")
FORMATS = ("beast", "avr", "sbs")
DEFAULT_PORTS = {"beast": 30005, "avr": 30002, "sbs": 30003}
CHUNK_FRAMES = 4096


def observation_payload(row: ObservationRow) -> bytes:
    """The contract's payload of one observation (docs/mqtt-contract.md)."""
    return orjson.dumps(row.to_dict())


@dataclass
class Output:
    """Where observations and the receiver's presence go: `publish(topic, payload, retain)`."""

    publish: Callable[[str, bytes, bool], None]
    root: str


class AdsbBridge:
    """Decoder, tracker and presence of one receiver. Feed it frames, lines or raw TCP bytes."""

    def __init__(self, output: Output, receiver_id: str, receiver: tuple[float, float] | None = None,
                 silence_s: float = 60.0, progress: ProgressReporter | None = None, **tracker_options):
        if not topics.valid_id(receiver_id):
            raise ValueError(f"receiver id {receiver_id!r}: 1-64 of A-Z a-z 0-9 _ . : -")
        self.output = output
        self.receiver_id = receiver_id
        self.decoder = ModeSDecoder()
        self.tracker = Tracker(receiver_id, receiver, **tracker_options)
        self.silence_s = silence_s
        self.progress = progress
        self.stats: Counter = Counter()
        self.online: bool | None = None
        self._last_data = time.monotonic()

    # ----------------------------------------------------------------------------------- frames
    def frames(self, ts: list[float], frames: list[bytes], signal: list[float | None] | None = None) -> int:
        """Decode a chunk and publish its observations; returns how many were published."""
        rows = self.tracker.update(self.decoder.decode(ts, frames, signal))
        return self._publish(rows)

    def sbs_lines(self, lines: Iterable[bytes], t: float) -> int:
        rows = []
        for line in lines:
            self.stats["sbs_lines"] += 1
            try:
                rec = framing.parse_sbs(line)
            except (ValueError, UnicodeDecodeError) as exc:
                self._bad("sbs", exc, line)
                continue
            if rec is not None and (row := self.tracker.update_sbs(rec, t)) is not None:
                rows.append(row)
        return self._publish(rows)

    def avr_lines(self, lines: Iterable[bytes], t: float) -> int:
        frames: list[bytes] = []
        for line in lines:
            if not line.strip():
                continue
            try:
                frames.append(framing.parse_avr(line)[1])
            except ValueError as exc:
                self._bad("avr", exc, line)
        return self.frames([t] * len(frames), frames) if frames else 0

    def _bad(self, kind: str, exc: Exception, line: bytes) -> None:
        self.stats[f"bad_{kind}_line"] += 1
        if self.stats[f"bad_{kind}_line"] <= 10:  # a few examples in the log, then only the count
            log.warning("bad %s line (%s): %r", kind, exc, line[:120])

    def _publish(self, rows: list[ObservationRow]) -> int:
        root, publish = self.output.root, self.output.publish
        for row in rows:
            publish(topics.observation(root, row.source, row.track_id), observation_payload(row), False)
        self.stats["observations"] += len(rows)
        if self.progress is not None:
            self.progress.maybe(self.counters())
        return len(rows)

    def counters(self) -> dict:
        d, t = self.decoder.stats, self.tracker.stats
        return {"frames": d["frames"], "observations": self.stats["observations"], "aircraft": len(self.tracker.aircraft),
                "crc_failed": d["crc_failed"], "unverified_address": d["unverified_address"],
                **{k: v for k, v in sorted((self.stats | t).items()) if k != "observations"}}

    # ---------------------------------------------------------------------------------- presence
    def data_arrived(self) -> None:
        self._last_data = time.monotonic()
        if self.online is not True:
            self._status(True)

    def check_silence(self, reason: str = "no frames") -> None:
        if self.online is not False and time.monotonic() - self._last_data >= self.silence_s:
            log.warning("receiver %s silent for %.0f s (%s): offline", self.receiver_id, self.silence_s, reason)
            self._status(False)

    def _status(self, online: bool) -> None:
        self.online = online
        self.stats["went_online" if online else "went_offline"] += 1
        self.output.publish(topics.status(self.output.root, self.receiver_id), b"online" if online else b"offline",
                            True)

    # ------------------------------------------------------------------------------------- TCP
    def run_tcp(self, host: str, port: int, fmt: str, stop: threading.Event, *, max_delay_s: float = 30.0,
                recv_timeout_s: float = 0.5) -> None:
        """Read the receiver until `stop`: reconnect with backoff, presence from the data flow."""
        first_delay = delay = min(1.0, max_delay_s)
        while not stop.is_set():
            try:
                sock = socket.create_connection((host, port), timeout=5)
            except OSError as exc:
                self.stats["connect_failed"] += 1
                log.warning("receiver %s:%d unreachable (%s); retrying in %.0f s", host, port, exc, delay)
                self._wait(stop, delay)
                delay = min(delay * 2, max_delay_s)
                continue
            self.stats["connects"] += 1
            log.info("connected to receiver %s:%d (%s)", host, port, fmt)
            try:
                sock.settimeout(recv_timeout_s)
                for _ in self._read(sock, fmt, stop):
                    delay = first_delay  # data came: the next loss starts the backoff again
            except OSError as exc:
                log.warning("receiver %s:%d: %s; reconnecting", host, port, exc)
            finally:
                sock.close()
            self.stats["disconnects"] += 1
            self.check_silence("disconnected")
            self._wait(stop, delay)
            delay = min(delay * 2, max_delay_s)

    def _wait(self, stop: threading.Event, seconds: float) -> None:
        """Sleep while watching for silence (the receiver stays silent while we cannot reach it)."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            self.check_silence("unreachable")
            stop.wait(min(0.25, max(0.0, deadline - time.monotonic())))

    def _read(self, sock: socket.socket, fmt: str, stop: threading.Event) -> Iterator[int]:
        beast = framing.BeastParser() if fmt == "beast" else None
        pending = b""
        while not stop.is_set():
            try:
                data = sock.recv(1 << 16)
            except TimeoutError:
                self.check_silence()
                continue
            if not data:
                raise ConnectionError("closed by the receiver")
            now = time.time()
            self.data_arrived()
            if beast is not None:
                got = list(beast.feed(data))
                self.stats["skipped_bytes"] = beast.skipped_bytes
                yield self.frames([now] * len(got), [f for _, _, f in got],
                                  [framing.signal_dbfs(s) for _, s, _ in got])
                continue
            pending += data
            lines = pending.split(b"\n")
            pending = lines.pop()
            if len(pending) > framing.MAX_LINE:
                self._bad(fmt, ValueError("line too long"), pending)
                pending = b""
            yield self.sbs_lines(lines, now) if fmt == "sbs" else self.avr_lines(lines, now)

    # ------------------------------------------------------------------------------------ files
    def run_file(self, items: Iterator[tuple[float, bytes, float | None]], stop: threading.Event,
                 realtime: bool = False) -> None:
        """A capture (framing items: time, frame, signal), in chunks; `realtime` follows the recorded times (each
        frame published no earlier than its time after the first, chunks at most 0.2 s old)."""
        t0 = w0 = None
        flushed = time.monotonic()
        chunk: list[tuple[float, bytes, float | None]] = []
        for item in items:
            if stop.is_set():
                return
            if realtime:
                if t0 is None:
                    t0, w0 = item[0], time.monotonic()
                ahead = (item[0] - t0) - (time.monotonic() - w0)
                if ahead > 0.02:
                    if chunk:
                        self._chunk(chunk)
                        chunk, flushed = [], time.monotonic()
                    if stop.wait(ahead):
                        return
            chunk.append(item)
            if len(chunk) >= CHUNK_FRAMES or realtime and time.monotonic() - flushed > 0.2:
                self._chunk(chunk)
                chunk, flushed = [], time.monotonic()
        if chunk:
            self._chunk(chunk)

    def _chunk(self, chunk: list[tuple[float, bytes, float | None]]) -> None:
        self.frames([c[0] for c in chunk], [c[1] for c in chunk], [c[2] for c in chunk])


def beast_file(data: bytes, start: float) -> Iterator[tuple[float, bytes, float | None]]:
    """A Beast capture's frames, timed by their 12 MHz counter from `start` (epoch seconds) on."""
    first = None
    for ticks, signal, frame in framing.BeastParser().feed(data):
        first = ticks if first is None else first
        yield start + max(0, ticks - first) / framing.BEAST_CLOCK_HZ, frame, framing.signal_dbfs(signal)


def json_lines_file(lines: Iterable[bytes], shift_to: float | None, stats: Counter
                    ) -> Iterator[tuple[float, bytes, float | None]]:
    """JSON-lines frames (framing.parse_json_frame); `shift_to`: move the first frame's time there, keeping the
    gaps (a 2024 recording replayed as traffic of today). Bad lines are counted and logged, never fatal."""
    offset = None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            t, frame, signal = framing.parse_json_frame(line)
        except ValueError as exc:
            stats["bad_json_line"] += 1
            if stats["bad_json_line"] <= 10:
                log.warning("line %d: %s", n, exc)
            continue
        if offset is None:
            offset = 0.0 if shift_to is None else shift_to - t
        yield t + offset, frame, signal
