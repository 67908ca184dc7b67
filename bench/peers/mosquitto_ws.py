"""Live positions straight from Mosquitto's WebSocket listener: what a dashboard could do without Skylane's API.

`private_broker(...)` starts a Mosquitto of its own (config in a temporary folder, a TCP listener for the
publisher and a `protocol websockets` listener, both on 127.0.0.1 and free ports, Skylane's shipped tuning,
password file when a username is given), stopped on exit; the project's services are not touched.

The clients (`python -m bench.peers.mosquitto_ws --clients HOST PORT FILTER N`, the same protocol as
bench/feeds.py's client processes: "ready" once all are subscribed, a line on stdin to stop, one JSON line
with a latency histogram) are MQTT 3.1.1 over WebSockets on asyncio, as lean as it gets: a hand-made
handshake (subprotocol "mqtt"), masked frames out, and every incoming chunk parsed in place into
WebSocket frames and MQTT PUBLISH packets; each payload is parsed with orjson like the API clients parse
theirs, and publish -> receive is measured on the same clock (`bench_t`, stamped by the publisher).
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import orjson

from protocol.mqttwire import encode_varint

BUCKET_MS = 1.0
MAX_BUCKET = 60_000

CONF = """# bench/peers/mosquitto_ws.py: a private broker for the feeds peer
per_listener_settings false
{auth}
listener {mqtt_port} 127.0.0.1
listener {ws_port} 127.0.0.1
protocol websockets
persistence false
log_dest stderr
log_type error
log_type warning
{tuning}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerPorts(tuple):
    """(mqtt_port, ws_port), with the broker's process id as `.pid`."""

    pid: int


@contextmanager
def private_broker(username: str | None = None, password: str | None = None):
    """Yields (mqtt_port, ws_port) of a private Mosquitto with a WebSocket listener (`.pid`: its process);
    stopped afterwards."""
    from skylane.localservices import MOSQUITTO_TUNING, ensure_packages, wait_port
    ensure_packages({"mosquitto": "mosquitto", "mosquitto_passwd": "mosquitto"})
    mqtt_port, ws_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="skylane-bench-mosquitto-ws-") as tmp:
        d = Path(tmp)
        os.chmod(d, 0o755)  # as root Mosquitto drops to its own user, which must read the password file
        auth = "allow_anonymous true"
        if username is not None:
            subprocess.run(["mosquitto_passwd", "-b", "-c", str(d / "passwd"), username, password or ""], check=True,
                           capture_output=True)
            os.chmod(d / "passwd", 0o644)
            auth = f"allow_anonymous false\npassword_file {d / 'passwd'}"
        tuning = "\n".join(line for line in MOSQUITTO_TUNING.splitlines()
                           if not line.startswith(("persistent_client_expiration", "autosave")))
        (d / "mosquitto.conf").write_text(CONF.format(auth=auth, mqtt_port=mqtt_port, ws_port=ws_port, tuning=tuning))
        binary = next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), "mosquitto")
        with open(d / "mosquitto.log", "wb") as log:
            proc = subprocess.Popen([binary, "-c", str(d / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT)
        try:
            if not (wait_port("127.0.0.1", mqtt_port, 15) and wait_port("127.0.0.1", ws_port, 15)):
                raise RuntimeError(f"private mosquitto did not start: {(d / 'mosquitto.log').read_text()[-800:]}")
            ports = BrokerPorts((mqtt_port, ws_port))
            ports.pid = proc.pid
            yield ports
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ------------------------------------------------------------------ MQTT over WebSockets, by hand
def _str(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, username: str | None = None, password: str | None = None) -> bytes:
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _str(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 0) + _str(client_id.encode())
    if username is not None:
        body += _str(username.encode())
    if password is not None:
        body += _str(password.encode())
    return b"\x10" + encode_varint(len(body)) + body


def subscribe_packet(topic_filter: str, packet_id: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + _str(topic_filter.encode()) + b"\x00"
    return b"\x82" + encode_varint(len(body)) + body


def ws_frame(payload: bytes) -> bytes:
    """A masked binary frame (client to server; only CONNECT and SUBSCRIBE, so short)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Stream:
    """Incoming bytes -> WebSocket frame payloads -> MQTT packets. `feed` returns the PUBLISH payloads."""

    def __init__(self) -> None:
        self.ws = b""
        self.mqtt = b""
        self.acks: list[int] = []  # packet types of the non-PUBLISH packets seen (CONNACK, SUBACK)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.ws + data
        pos, n, parts = 0, len(buf), [self.mqtt]
        while n - pos >= 2:
            b1 = buf[pos + 1] & 0x7F
            head = 2
            if b1 == 126:
                if n - pos < 4:
                    break
                b1, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif b1 == 127:
                if n - pos < 10:
                    break
                b1, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if n - pos < head + b1:
                break
            if buf[pos] & 0x0F in (0, 1, 2):  # continuation, text, binary: MQTT bytes; control frames ignored
                parts.append(buf[pos + head:pos + head + b1])
            pos += head + b1
        self.ws = buf[pos:]
        m = b"".join(parts)
        out: list[bytes] = []
        pos, n = 0, len(m)
        while n - pos >= 2:
            first = m[pos]
            length, mult, i = 0, 1, pos + 1
            while True:
                if i >= n:
                    length = -1
                    break
                b = m[i]
                length += (b & 0x7F) * mult
                mult <<= 7
                i += 1
                if not b & 0x80:
                    break
            if length < 0 or n - i < length:
                break
            if first & 0xF0 == 0x30:
                tlen = (m[i] << 8) | m[i + 1]
                start = i + 2 + tlen + (2 if first & 0x06 else 0)
                out.append(m[start:i + length])
            else:
                self.acks.append(first & 0xF0)
            pos = i + length
        self.mqtt = m[pos:]
        return out


class _Client(asyncio.Protocol):
    def __init__(self, host: str, port: int, topic_filter: str, lat: list, stats: dict, ready: asyncio.Future,
                 username: str | None, password: str | None) -> None:
        self.host, self.port, self.filter = host, port, topic_filter
        self.lat, self.stats, self.ready = lat, stats, ready
        self.username, self.password = username, password
        self.handshake = b""
        self.upgraded = False
        self.stream = Stream()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((f"GET /mqtt HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                         f"Sec-WebSocket-Protocol: mqtt\r\n\r\n").encode())

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.upgraded:
            self.handshake += data
            end = self.handshake.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.handshake.startswith(b"HTTP/1.1 101"):
                self._fail(ConnectionError(f"handshake refused: {self.handshake[:80]!r}"))
                return
            self.upgraded = True
            data, self.handshake = self.handshake[end + 4:], b""
            cid = f"bench-ws-{os.getpid()}-{id(self) % 100000}"
            self.transport.write(ws_frame(connect_packet(cid, self.username, self.password))
                                 + ws_frame(subscribe_packet(self.filter)))
        payloads = self.stream.feed(data)
        if not self.ready.done() and 0x90 in self.stream.acks:
            self.stats["connected"] += 1
            self.ready.set_result(True)
        lat = self.lat
        for p in payloads:
            msg = orjson.loads(p)
            if "bench_t" in msg and "warm" not in msg:
                lat.append(now - msg["bench_t"])

    def _fail(self, exc: BaseException) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before SUBACK"))


async def _clients_main(host: str, port: int, topic_filter: str, n: int, username=None, password=None) -> dict:
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    stats = {"connected": 0, "received": 0, "dropped": 0, "failed": 0}
    transports = []
    readies = []
    for _ in range(n):
        ready = loop.create_future()
        try:
            tr, _ = await loop.create_connection(
                lambda r=ready: _Client(host, port, topic_filter, lat, stats, r, username, password), host, port)
            transports.append(tr)
            readies.append(ready)
        except OSError as exc:
            stats["failed"] += 1
            print(f"client failed: {exc!r}", file=sys.stderr, flush=True)
    for r in asyncio.as_completed(readies, timeout=30):
        try:
            await r
        except Exception as exc:  # noqa: BLE001 - counted and reported, the others go on
            stats["failed"] += 1
            print(f"client failed: {exc!r}", file=sys.stderr, flush=True)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)  # the orchestrator says stop
    for tr in transports:
        tr.close()
    ms = np.clip((np.asarray(lat) * (1000.0 / BUCKET_MS)).astype(np.int64), 0, MAX_BUCKET)
    hist = np.bincount(ms, minlength=1) if ms.size else np.zeros(1, np.int64)
    stats["received"] = len(lat)
    return {"hist": {int(i): int(hist[i]) for i in np.flatnonzero(hist)}, **stats}


def run_clients(host: str, port: int, topic_filter: str, n: int, username=None, password=None) -> None:
    print(json.dumps(asyncio.run(_clients_main(host, port, topic_filter, n, username, password))), flush=True)


def client_argv(ws_port: int, topic_filter: str, n: int, username: str | None = None,
                password: str | None = None) -> list[str]:
    argv = [sys.executable, "-m", "bench.peers.mosquitto_ws", "--clients", "127.0.0.1", str(ws_port), topic_filter,
            str(n)]
    if username is not None:
        argv += ["--username", username, "--password", password or ""]
    return argv


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m bench.peers.mosquitto_ws", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", nargs=4, metavar=("HOST", "PORT", "FILTER", "N"), required=True)
    ap.add_argument("--username")
    ap.add_argument("--password")
    args = ap.parse_args(argv)
    host, port, topic_filter, n = args.clients
    run_clients(host, int(port), topic_filter, int(n), args.username, args.password)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
