"""Test fixtures: the real Mosquitto and PostgreSQL (started here when not running), a fresh database
and MQTT root per test that needs them, and in-process ingest and API servers."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql

from skylane import localservices
from skylane.settings import DEFAULT_ZONE_FILE, REPO_ROOT, Settings

ZONE_FILE = DEFAULT_ZONE_FILE
TEST_MQTT_URL = os.environ.get("SKYLANE_TEST_MQTT_URL", "mqtt://127.0.0.1:21883")
TEST_DATABASE_URL = os.environ.get("SKYLANE_TEST_DATABASE_URL",
                                   "postgresql://skylane:skylane@127.0.0.1:25432/skylane_test")
ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def zones_geojson() -> dict:
    return json.loads(ZONE_FILE.read_text())


@pytest.fixture(scope="session")
def services() -> Settings:
    """Real services on the test ports (separate from a running demo)."""
    settings = Settings.from_env({"SKYLANE_MQTT_URL": TEST_MQTT_URL, "SKYLANE_DATABASE_URL": TEST_DATABASE_URL,
                                  "SKYLANE_STATE_DIR": os.environ.get("SKYLANE_STATE_DIR",
                                                                      str(REPO_ROOT / ".skylane"))})
    localservices.up(settings)
    return settings


def _admin_url(settings: Settings) -> str:
    return settings.database_url.rsplit("/", 1)[0] + "/postgres"


@pytest.fixture
def new_database(services: Settings):
    """A factory of new empty databases, dropped after the test."""
    names: list[str] = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_admin_url(services), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        names.append(name)
        return services.database_url.rsplit("/", 1)[0] + "/" + name

    yield make
    with psycopg.connect(_admin_url(services), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def fresh_db(new_database) -> str:
    return new_database()


@pytest.fixture
def new_system(services: Settings, new_database):
    """A factory of isolated systems: each its own database and MQTT root, migrated and seeded."""
    from skylane.wiring import prepare_database

    def make() -> Settings:
        settings = services.with_(database_url=new_database(), mqtt_root=f"t{uuid.uuid4().hex[:8]}/v1",
                                  zone_file=ZONE_FILE, ingest_client_id=f"test-ingest-{uuid.uuid4().hex[:8]}",
                                  batch_ms=20)
        prepare_database(settings)
        return settings
    return make


@pytest.fixture
def system(new_system) -> Settings:
    return new_system()


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


@pytest.fixture
def ingester(system: Settings):
    ing, runner = start_ingester(system)
    yield ing
    runner.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    def __init__(self, settings: Settings):
        import uvicorn

        from api.app import ApiConfig, create_app
        host, port = settings.mqtt_host_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(ApiConfig(settings.database_url, host, port, settings.mqtt_root))
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 15, "API server did not start")
        import httpx
        wait_until(lambda: httpx.get(self.url + "/v1/health").status_code == 200, 15, "API not healthy")

    def close(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def api(system: Settings):
    server = ApiServer(system)
    yield server
    server.close()


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
