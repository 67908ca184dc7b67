"""A feed-only API server for the feed tests: the real LiveHub on the real broker, the real key store and
device registry in a real database, the feeds router (api.feeds.create_feed_app), uvicorn in a thread."""
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


class FeedServer:
    """The feed app on a free port, in a background thread; `close()` stops it."""

    def __init__(self, database_url: str, mqtt_host: str, mqtt_port: int, root: str, **router_kw):
        import uvicorn
        self.app = create_feed_app(database_url, mqtt_host, mqtt_port, root, **router_kw)
        self.hub = self.app.state.hub
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        _wait(lambda: self.server.started and self.hub.connected, 20, "feed server did not start and subscribe")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def ws_messages(frame: str | bytes) -> list[dict]:
    """The messages of one WebSocket frame (a JSON array)."""
    data = orjson.loads(frame)
    return data if isinstance(data, list) else [data]
