"""A lean MQTT 3.1.1 publisher for replays: pipelined QoS 1 with a bound on unacknowledged messages.

paho-mqtt tops out near 10,000 QoS 1 publishes/s here: each publish builds objects, takes locks
and wakes its network thread, and with an in-flight window each acknowledgement scans every
in-flight message (`_update_inflight`), so larger windows get slower. A replay only publishes,
so this client encodes PUBLISH packets itself, writes them in large chunks, and a reader thread
retires PUBACKs by packet id. At most `max_pending` QoS 1/2 messages are unacknowledged (16-bit
packet ids: never more than 65,535 may be, or messages are lost); past that, publish() waits.

If the connection drops, it reconnects with backoff and re-sends every unacknowledged message
with DUP set (at-least-once, like any MQTT client); QoS 0 messages written to a dead socket are
lost, as QoS 0 allows. PINGREQ keeps an idle connection (a paused replay) alive.
"""
from __future__ import annotations

import logging
import select
import socket
import ssl
import struct
import threading
import time

from protocol.mqttclient import MqttTarget
from protocol.mqttwire import encode_varint

log = logging.getLogger(__name__)

MAX_IDS = 65_535
WRITE_CHUNK = 64 * 1024


class MqttError(ConnectionError):
    pass


def _string(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def connect_packet(client_id: str, keepalive: int, clean: bool = True, username: str | None = None,
                   password: str | None = None) -> bytes:
    flags = (0x02 if clean else 0x00) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    var = _string(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body = var + _string(client_id.encode())
    if username is not None:
        body += _string(username.encode())
    if password is not None:
        body += _string(password.encode())
    return b"\x10" + encode_varint(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, qos: int, retain: bool, pid: int, dup: bool = False) -> bytes:
    head = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    var = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", pid) if qos else b"")
    return bytes([head]) + encode_varint(len(var) + len(payload)) + var + payload


class FastPublisher:
    """Connected on construction (raises MqttError naming the broker when that fails)."""

    def __init__(self, url: str, client_id: str, *, max_pending: int = 5000, keepalive: int = 30,
                 connect_timeout: float = 10.0, stop: threading.Event | None = None) -> None:
        if not 1 <= max_pending <= MAX_IDS - 1:
            raise ValueError(f"max_pending must be 1..{MAX_IDS - 1}")
        self.target = MqttTarget.parse(url)
        self.url = str(self.target)  # without the password: for messages
        self.host, self.port = self.target.host, self.target.port
        self.client_id = client_id
        self.max_pending = max_pending
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.stop = stop or threading.Event()
        self.unacked: dict[int, bytes] = {}  # packet id -> PUBLISH packet (for a re-send)
        self._next_id = 0
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._acked = threading.Condition()
        self._send_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._generation = 0
        self._closed = False
        self._last_send = time.monotonic()
        self.reconnects = 0
        self._connect()
        self._reader = threading.Thread(target=self._read_loop, name=f"mqttpub-{client_id}", daemon=True)
        self._reader.start()

    # -------------------------------------------------------------------------------- connection
    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.target.tls:
                sock = ssl.create_default_context(cafile=self.target.ca_file).wrap_socket(sock,
                                                                                         server_hostname=self.host)
        except OSError as exc:
            raise MqttError(f"MQTT broker {self.url} unreachable: {exc}") from exc
        try:
            sock.sendall(connect_packet(self.client_id, self.keepalive, username=self.target.username,
                                        password=self.target.password))
            ack = self._recv_exact(sock, 4)
        except OSError as exc:
            sock.close()
            raise MqttError(f"MQTT broker {self.url}: no CONNACK ({exc})") from exc
        if ack[0] != 0x20 or ack[3] != 0:
            sock.close()
            raise MqttError(f"MQTT broker {self.url} refused connection for {self.client_id!r} (code {ack[3]})")
        sock.settimeout(None)
        self._sock = sock
        self._generation += 1

    @staticmethod
    def _recv_exact(sock: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise OSError("connection closed")
            buf += chunk
        return buf

    def is_connected(self) -> bool:
        return self._sock is not None and not self._closed

    def _reconnect(self, generation: int) -> bool:
        """Called by the side that noticed the loss; only one reconnect per lost connection."""
        with self._send_lock:
            if generation != self._generation or self._closed:
                return self._sock is not None
            if self._sock is not None:
                try:
                    self._sock.close()
                except OSError:
                    pass
                self._sock = None
            delay = 0.5
            while not self.stop.is_set() and not self._closed:
                try:
                    self._connect()
                    break
                except MqttError as exc:
                    log.warning("%s; retrying in %.1f s", exc, delay)
                    self.stop.wait(delay)
                    delay = min(delay * 2, 10.0)
            if self._sock is None:
                return False
            self.reconnects += 1
            log.warning("reconnected to %s: re-sending %d unacknowledged messages", self.url, len(self.unacked))
            for pid in sorted(self.unacked):  # with DUP: the broker may have them already
                pkt = self.unacked[pid]
                self.unacked[pid] = pkt = bytes([pkt[0] | 0x08]) + pkt[1:]
                self._sock.sendall(pkt)
            return True

    def _read_loop(self) -> None:
        buf = b""
        while not self._closed:
            sock, generation = self._sock, self._generation
            if sock is None:
                if self.stop.wait(0.1):
                    return
                continue
            try:
                ready, _, _ = select.select([sock], [], [], max(self.keepalive / 2, 1))
                if not ready:
                    self._ping()
                    continue
                data = sock.recv(65536)
                if not data:
                    raise OSError("connection closed by the broker")
            except (OSError, ValueError) as exc:  # ValueError: select on a socket closed meanwhile
                if self._closed:
                    return
                log.warning("lost connection to %s (%s)", self.url, exc)
                buf = b""
                self._reconnect(generation)
                continue
            buf += data
            buf = self._handle(buf)
            if time.monotonic() - self._last_send > self.keepalive / 2:
                self._ping()

    def _handle(self, buf: bytes) -> bytes:
        """Retire every complete PUBACK in `buf`; returns what is left of an incomplete packet."""
        pos, n, retired = 0, len(buf), 0
        unacked = self.unacked
        while pos + 2 <= n:
            head = buf[pos]
            length, mult, i = 0, 1, pos + 1
            while True:
                if i >= n:
                    return buf[pos:]
                b = buf[i]
                length += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            end = i + length
            if end > n:
                return buf[pos:]
            if head & 0xF0 == 0x40 and length >= 2:  # PUBACK
                unacked.pop((buf[i] << 8) | buf[i + 1], None)
                retired += 1
            pos = end
        if retired:
            with self._acked:
                self._acked.notify_all()
        return buf[pos:]

    def _ping(self) -> None:
        with self._send_lock:
            if self._sock is not None:
                try:
                    self._sock.sendall(b"\xc0\x00")
                    self._last_send = time.monotonic()
                except OSError:
                    pass

    # -------------------------------------------------------------------------------- publishing
    def _new_id(self) -> int:
        pid = self._next_id
        while True:
            pid = pid % MAX_IDS + 1
            if pid not in self.unacked:
                self._next_id = pid
                return pid

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                timeout: float | None = None) -> bool:
        """Queue one message (written when the chunk fills or on flush()); False if stopped or timed out.

        Raises ValueError for a topic no broker would accept (empty, wildcards, NUL)."""
        if not topic or "+" in topic or "#" in topic or "\x00" in topic:
            raise ValueError(f"invalid publish topic {topic[:200]!r}")
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        qos = min(qos, 1)  # QoS 2 is published as QoS 1 (at-least-once): the replay's own guarantee
        if qos and len(self.unacked) >= self.max_pending:
            self.flush()
            if not self._wait(self.max_pending - 1, timeout):
                return False
        pid = self._new_id() if qos else 0
        pkt = publish_packet(topic.encode(), payload, qos, retain, pid)
        if qos:
            self.unacked[pid] = pkt
        self._out.append(pkt)
        self._out_bytes += len(pkt)
        if self._out_bytes >= WRITE_CHUNK:
            self.flush()
        return True

    def flush(self) -> None:
        """Write what publish() queued."""
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._out_bytes = 0
        with self._send_lock:
            sock, generation = self._sock, self._generation
            if sock is not None:
                try:
                    sock.sendall(data)
                    self._last_send = time.monotonic()
                    return
                except OSError as exc:
                    log.warning("write to %s failed (%s)", self.url, exc)
        # the QoS 1 messages of `data` are in `unacked`: they go out again once reconnected
        self._reconnect(generation)

    def _wait(self, limit: int, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._acked:
            while len(self.unacked) > limit:
                if self.stop.is_set() or self._closed:
                    return False
                wait = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
                if wait <= 0:
                    return False
                self._acked.wait(wait)
        return True

    def pending(self) -> int:
        return len(self.unacked)

    def drain(self, timeout: float | None = None) -> bool:
        """Write everything and wait for every acknowledgement; False on timeout or stop."""
        self.flush()
        return self._wait(0, timeout)

    def close(self) -> None:
        self.flush()
        self._closed = True
        with self._send_lock:
            if self._sock is not None:
                try:
                    self._sock.sendall(b"\xe0\x00")  # DISCONNECT: a clean end
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._sock.close()
                self._sock = None
        with self._acked:
            self._acked.notify_all()
        self._reader.join(2)
