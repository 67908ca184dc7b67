"""Servers for the feed tests: the real LiveHub on the real broker, the real key store and device registry in a
real database; the feed-only app (api.feeds.create_feed_app) or the whole API with its config overridden,
under uvicorn in a thread."""
from __future__ import annotations

import socket
import threading
import time

import orjson

from api.feeds import create_feed_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(message)


class AppServer:
    """An ASGI app under uvicorn on a free port, in a background thread, once `ready()`; `close()` stops it."""

    def __init__(self, app, ready=lambda: True):
        import uvicorn
        self.app = app
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        _wait(lambda: self.server.started and ready(), 20, "server did not start (and get ready)")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class FeedServer(AppServer):
    """The feed app (api.feeds.create_feed_app), ready once its hub has subscribed."""

    def __init__(self, database_url: str, mqtt_url: str, root: str, **app_kw):
        app = create_feed_app(database_url, mqtt_url, root, **app_kw)
        self.hub = app.state.hub
        super().__init__(app, lambda: self.hub.connected)


def api_server(settings, **config) -> AppServer:
    """The whole API (api.app.create_app) for a test system, with ApiConfig fields overridden by `config`."""
    from dataclasses import replace

    from api.app import create_app
    from skylane.wiring import api_config
    app = create_app(replace(api_config(settings), **config))
    ctx = app.state.ctx
    return AppServer(app, lambda: ctx.hub.connected and ctx.control.connected)


def ws_messages(frame: str | bytes) -> list[dict]:
    """The messages of one WebSocket frame (a JSON array)."""
    data = orjson.loads(frame)
    return data if isinstance(data, list) else [data]


class RawWebSocket:
    """A WebSocket client on a bare socket with a tiny receive buffer, reading only when asked: while the
    test does not read, nothing drains the connection (no library reader thread buffering ahead)."""

    def __init__(self, port: int, path: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head[:200]

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout: float) -> str:
        """The next text frame (server frames are unmasked; no fragmentation from the server)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                b0, b1 = self._read(2)
                length = b1 & 0x7F
                if length == 126:
                    length = int.from_bytes(self._read(2), "big")
                elif length == 127:
                    length = int.from_bytes(self._read(8), "big")
                payload = self._read(length)
                if b0 & 0x0F == 0x1:
                    return payload.decode()
                if b0 & 0x0F == 0x8:
                    raise ConnectionError(f"closed by server: {payload[:2].hex()} {payload[2:]!r}")
        except socket.timeout:
            raise TimeoutError from None

    def close(self) -> None:
        self.sock.close()
