"""Helpers the tests share: the test services' addresses, background runners, in-process ingest and API
servers, polling and queries. Fixtures live in conftest.py."""
from __future__ import annotations

import os
import socket
import threading
import time

import psycopg

from skylane.settings import DEFAULT_ZONE_FILE, REPO_ROOT, Settings

ZONE_FILE = DEFAULT_ZONE_FILE
TEST_MQTT_URL = os.environ.get("SKYLANE_TEST_MQTT_URL", "mqtt://127.0.0.1:21883")
TEST_DATABASE_URL = os.environ.get("SKYLANE_TEST_DATABASE_URL",
                                   "postgresql://skylane:skylane@127.0.0.1:25432/skylane_test")
ARTIFACTS = REPO_ROOT / "test-artifacts"


class Running:
    """A service running in a background thread until stopped."""

    def __init__(self, target, *args):
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(target, *args), daemon=True)
        self.thread.start()

    def _run(self, target, *args):
        try:
            target(*args, self.stop)
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc

    def close(self, timeout: float = 15):
        self.stop.set()
        self.thread.join(timeout)
        if self.error:
            raise self.error


def start_ingester(settings: Settings):
    from ingest.consumer import Ingester
    from skylane.wiring import make_pipeline
    host, port = settings.mqtt_host_port
    ing = Ingester(mqtt_host=host, mqtt_port=port, database_url=settings.database_url,
                   pipeline=make_pipeline(settings), client_id=settings.ingest_client_id,
                   batch_size=settings.batch_size, batch_ms=settings.batch_ms)
    runner = Running(lambda stop: ing.run(stop))
    assert ing.connected.wait(15), "ingester did not subscribe"
    return ing, runner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    def __init__(self, settings: Settings):
        import uvicorn

        from api.app import create_app
        from skylane.wiring import api_config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(api_config(settings))
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 15, "API server did not start")
        import httpx
        wait_until(lambda: httpx.get(self.url + "/v1/health").status_code == 200, 15, "API not healthy")

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)


def wait_until(predicate, timeout: float, message: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may not be checkable yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"{message} (last error: {last_exc})")


def query(database_url: str, q: str, *args) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(q, args).fetchall()
