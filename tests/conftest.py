"""Test fixtures: the real Mosquitto and PostgreSQL (started here when not running), a fresh database
and MQTT root per test that needs them, and in-process ingest and API servers."""
from __future__ import annotations

import json
import os
import uuid

import psycopg
import pytest
from psycopg import sql

from skylane import localservices
from skylane.settings import REPO_ROOT, Settings

from .helpers import (TEST_DATABASE_URL, TEST_MQTT_DEVICE_URL, TEST_MQTT_TLS_PORT, TEST_MQTT_URL, ZONE_FILE, ApiServer,
                      start_ingester, start_test_broker)


@pytest.fixture(scope="session")
def zones_geojson() -> dict:
    return json.loads(ZONE_FILE.read_text())


@pytest.fixture(scope="session")
def services() -> Settings:
    """Real services on the test ports (separate from a running demo)."""
    base = Settings.from_env({"SKYLANE_MQTT_URL": TEST_MQTT_URL, "SKYLANE_MQTT_DEVICE_URL": TEST_MQTT_DEVICE_URL,
                              "SKYLANE_MQTT_TLS_PORT": str(TEST_MQTT_TLS_PORT),
                              "SKYLANE_DATABASE_URL": TEST_DATABASE_URL,
                              "SKYLANE_STATE_DIR": os.environ.get("SKYLANE_STATE_DIR", str(REPO_ROOT / ".skylane"))})
    settings = start_test_broker(base)
    localservices.postgres_up(settings)
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


@pytest.fixture
def ingester(system: Settings):
    ing, runner = start_ingester(system)
    yield ing
    runner.close()


@pytest.fixture
def api(system: Settings):
    server = ApiServer(system)
    yield server
    server.close()


