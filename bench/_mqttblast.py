"""A minimal MQTT 5 QoS 1 publisher on a raw socket, for load generation in benchmarks.

paho publishes a few thousand messages a second from Python, which would measure the publisher, not the
ingester. This one pre-encodes PUBLISH packets and writes them in chunks, counting PUBACKs on a reader
thread. Like every Skylane publisher it bounds its unacknowledged messages (`max_pending`, far below the
65,535 packet ids and the broker's receive maximum), so nothing is lost to id reuse or a full window.
Not a general client: no reconnects, no QoS 2, no incoming publications.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterable

from ingest.fastmqtt import encode_varint
from protocol.mqttclient import MqttTarget


def _str(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


class BlastPublisher:
    def __init__(self, url: str, client_id: str, max_pending: int = 5000, timeout: float = 10.0):
        """`url`: the broker and account (protocol.mqttclient.MqttTarget)."""
        if not 0 < max_pending < 60000:
            raise ValueError("max_pending must be 1..59999 (16-bit packet ids)")
        self.max_pending = max_pending
        target = MqttTarget.parse(url)
        self.sock = socket.create_connection((target.host, target.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        flags = 0x02 | (0x80 if target.username is not None else 0) | (0x40 if target.password is not None else 0)
        body = _str(b"MQTT") + bytes([5, flags]) + struct.pack("!H", 60) + b"\x00" + _str(client_id.encode())
        for field in (target.username, target.password):
            if field is not None:
                body += _str(field.encode())
        self.sock.sendall(b"\x10" + encode_varint(len(body)) + body)
        kind, packet = self._read_packet()
        if kind != 0x20 or packet[1] != 0:
            raise ConnectionError(f"broker refused the connection (packet {kind:#x}, reason {packet[1:2].hex()})")
        self.sock.settimeout(None)
        self.sent = 0
        self.acked = 0
        self.error: BaseException | None = None
        self._next_id = 0
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return bytes(buf)

    def _read_packet(self) -> tuple[int, bytes]:
        first = self._recv_exact(1)[0]
        length, mult = 0, 1
        while True:
            b = self._recv_exact(1)[0]
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        return first & 0xF0, self._recv_exact(length)

    def _read_acks(self) -> None:
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("broker closed the connection")
                buf += chunk
                n, pos = 0, 0
                while len(buf) - pos >= 2:  # PUBACKs: 0x40, short remaining length
                    kind, length = buf[pos], buf[pos + 1]
                    if length & 0x80:
                        raise ConnectionError("unexpected long packet from the broker")
                    if len(buf) - pos < 2 + length:
                        break
                    if kind & 0xF0 == 0x40:
                        if length > 2 and buf[pos + 4] >= 0x80:
                            raise ConnectionError(f"broker refused a message (reason {buf[pos + 4]:#x})")
                        n += 1
                    elif kind & 0xF0 == 0xE0:
                        raise ConnectionError("broker sent DISCONNECT")
                    pos += 2 + length
                buf = buf[pos:]
                if n:
                    with self._cond:
                        self.acked += n
                        self._cond.notify_all()
        except BaseException as exc:  # reported to the sending thread
            with self._cond:
                self.error = self.error or exc
                self._cond.notify_all()

    def _packet(self, topic: bytes, payload: bytes) -> bytes:
        self._next_id = self._next_id % 65535 + 1
        var = _str(topic) + struct.pack("!H", self._next_id) + b"\x00"
        return b"\x32" + encode_varint(len(var) + len(payload)) + var + payload

    def _room(self, n: int) -> None:
        with self._cond:
            while self.sent + n - self.acked > self.max_pending and self.error is None:
                self._cond.wait(1.0)
            if self.error is not None:
                raise ConnectionError(f"publisher failed: {self.error}")

    def publish_many(self, messages: Iterable[tuple[str | bytes, bytes]], chunk: int = 500) -> None:
        """QoS 1, as fast as the window allows."""
        batch: list[bytes] = []
        for topic, payload in messages:
            batch.append(self._packet(topic.encode() if isinstance(topic, str) else topic, payload))
            if len(batch) >= chunk:
                self._send(batch)
                batch = []
        if batch:
            self._send(batch)

    def _send(self, packets: list[bytes]) -> None:
        self._room(len(packets))
        self.sock.sendall(b"".join(packets))
        self.sent += len(packets)

    def publish_paced(self, messages: Iterable[tuple[str | bytes, bytes]], rate: float, on_sent=None,
                      tick_s: float = 0.005) -> None:
        """QoS 1 at `rate` messages a second; `on_sent(i, t)` is called with each message's send time."""
        per_tick = max(1, round(rate * tick_s))
        t0 = time.perf_counter()
        batch: list[bytes] = []
        i = 0
        for topic, payload in messages:
            batch.append(self._packet(topic.encode() if isinstance(topic, str) else topic, payload))
            if len(batch) >= per_tick:
                i = self._paced_send(batch, i, t0, rate, on_sent)
                batch = []
        if batch:
            self._paced_send(batch, i, t0, rate, on_sent)

    def _paced_send(self, batch: list[bytes], i: int, t0: float, rate: float, on_sent) -> int:
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self._room(len(batch))
        now = time.time()
        self.sock.sendall(b"".join(batch))
        self.sent += len(batch)
        if on_sent is not None:
            for k in range(len(batch)):
                on_sent(i + k, now)
        return i + len(batch)

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until the broker acknowledged everything sent."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.acked < self.sent and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
        if self.error is not None:
            raise ConnectionError(f"publisher failed: {self.error}")
        return True

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
        except OSError:
            pass
        self.sock.close()
