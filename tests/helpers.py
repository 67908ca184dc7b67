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
TEST_MQTT_URL = os.environ.get("SKYLANE_TEST_MQTT_URL", "mqtt://127.0.0.1:21883")  # the service listener
TEST_MQTT_DEVICE_URL = os.environ.get("SKYLANE_TEST_MQTT_DEVICE_URL", "mqtt://127.0.0.1:21884")
TEST_MQTT_TLS_PORT = int(os.environ.get("SKYLANE_TEST_MQTT_TLS_PORT", "28883"))
# The test suite's own account on the test broker's service listener: tests publish device traffic and
# controls and watch outputs with it; the components under test use their own service accounts.
TEST_ACCOUNT = "skylane-test"
TEST_DATABASE_URL = os.environ.get("SKYLANE_TEST_DATABASE_URL",
                                   "postgresql://skylane:skylane@127.0.0.1:25432/skylane_test")
ARTIFACTS = REPO_ROOT / "test-artifacts"


def start_test_broker(base: Settings) -> Settings:
    """The project-local broker for `base` with the test suite's account (read and write everything under
    its service listener) added; the settings returned connect with that account (`mqtt_url`) and give the
    components their own service accounts (`service_url(role)`). ACLs cover every two-level root."""
    from protocol import brokerauth
    from protocol.mqttclient import with_credentials
    from skylane import localservices
    acl = base.with_(mqtt_root="+/+")
    password = brokerauth.derive_password(brokerauth.load_or_create_secret(acl.secret_path), TEST_ACCOUNT)
    localservices.mosquitto_up(acl, extra_accounts=[brokerauth.Account(TEST_ACCOUNT, password, "service",
                                                                      ("#",), ("#",))])
    return base.with_(mqtt_url=with_credentials(base.mqtt_url, TEST_ACCOUNT, password))


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


def start_ingester(settings: Settings, **options):
    """An Ingester as `skylane ingest` runs it, in a thread (`options`: more Ingester arguments)."""
    from skylane.wiring import make_ingester
    ing = make_ingester(settings, **options)
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
