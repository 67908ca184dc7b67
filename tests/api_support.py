"""Helpers for API tests: one key per role (and a revoked one) in a test system's database."""
from __future__ import annotations

from dataclasses import dataclass

import httpx
import psycopg
import pytest

from storage import auth

OPERATOR_OWNER = "op-alpha"
# a flight along corridor C2 at 80 m AGL: approved when nothing else flies it at the time
C2 = [{"lon": 121.458, "lat": 31.056, "alt_m": 80}, {"lon": 121.505, "lat": 31.053, "alt_m": 80},
      {"lon": 121.530, "lat": 31.051, "alt_m": 80}]


@dataclass
class Keys:
    viewer: str
    operator: str
    engineer: str
    admin: str
    revoked: str
    other_operator: str

    def for_role(self, role: str) -> str:
        return getattr(self, role)


def make_keys(database_url: str) -> Keys:
    with psycopg.connect(database_url) as conn:
        made = {role: auth.create_key(conn, role, OPERATOR_OWNER if role == "operator" else None, "test").key
                for role in auth.ROLES}
        revoked = auth.create_key(conn, "admin", None, "revoked")
        auth.revoke_key(conn, revoked.key_id)
        other = auth.create_key(conn, "operator", "op-beta", "test").key
    return Keys(**made, revoked=revoked.key, other_operator=other)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys(system) -> Keys:
    return make_keys(system.database_url)


class Client:
    """httpx against an ApiServer with a key; `as_(role)` switches key."""

    def __init__(self, url: str, key: str | None):
        self.url, self.key = url, key

    def _h(self, kw: dict) -> dict:
        headers = dict(kw.pop("headers", None) or {})
        if self.key:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        return {**kw, "headers": headers, "timeout": kw.get("timeout", 30)}

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, **self._h(kw))

    def post(self, path: str, **kw) -> httpx.Response:
        return httpx.post(self.url + path, **self._h(kw))

    def put(self, path: str, **kw) -> httpx.Response:
        return httpx.put(self.url + path, **self._h(kw))

    def delete(self, path: str, **kw) -> httpx.Response:
        return httpx.delete(self.url + path, **self._h(kw))


SEED_SQL = """
INSERT INTO devices (device_id, kind, owner, name) VALUES
    ('U-ALPHA', 'uav', 'op-alpha', 'alpha drone'), ('U-BETA', 'uav', 'op-beta', 'beta drone'),
    ('S-AIR1', 'sensor', 'city', 'air quality 1');
INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id, detail) VALUES
    (now() - interval '1 minute', '11111111-1111-4111-8111-111111111111', 'no_fly_violation', 'U-ALPHA', 'R-BR-MP', '{}'),
    (now() - interval '2 minutes', '22222222-2222-4222-8222-222222222222', 'no_fly_violation', 'U-BETA', 'R-BR-MP', '{}');
INSERT INTO clearances (id, uav_id, owner, requested_by, decision, alt_ref, route, start_time, end_time) VALUES
    ('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', 'U-ALPHA', 'op-alpha', 'seed', 'denied', 'AGL', '[]', now(), now() + interval '1 hour'),
    ('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', 'U-BETA', 'op-beta', 'seed', 'denied', 'AGL', '[]', now(), now() + interval '1 hour');
INSERT INTO sensor_readings (ts, sensor_id, metric, value, unit, received_at)
    SELECT now() - make_interval(secs => g * 60), 'S-AIR1', 'pm25', g, 'ug/m3', now() FROM generate_series(0, 59) g;
INSERT INTO uav_telemetry (ts, uav_id, lon, lat, alt_m, alt_ref, received_at) VALUES
    (now() - interval '10 seconds', 'U-ALPHA', 121.5, 31.05, 60, 'AGL', now()),
    (now() - interval '10 seconds', 'U-BETA', 121.49, 31.05, 60, 'AGL', now());
"""
EVENT_ALPHA, EVENT_BETA = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
CLEARANCE_ALPHA, CLEARANCE_BETA = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"


@dataclass
class SharedApi:
    """One system (database, MQTT root) and API server for a whole test module, seeded with SEED_SQL."""

    settings: object
    server: object
    keys: Keys

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, role: str | None) -> Client:
        return Client(self.url, self.keys.for_role(role) if role else None)


@pytest.fixture(scope="module")
def shared_api(services):
    import uuid

    from psycopg import sql

    from skylane.wiring import prepare_database

    from .helpers import ZONE_FILE, ApiServer
    admin_url = services.database_url.rsplit("/", 1)[0] + "/postgres"
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    settings = services.with_(database_url=services.database_url.rsplit("/", 1)[0] + "/" + name,
                              mqtt_root=f"t{uuid.uuid4().hex[:8]}/v1", zone_file=ZONE_FILE)
    prepare_database(settings)
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(SEED_SQL)
    keys = make_keys(settings.database_url)
    server = ApiServer(settings)
    try:
        yield SharedApi(settings, server, keys)
    finally:
        server.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def retained(settings, topic: str, timeout: float = 10.0) -> dict | None:
    """The retained message on `topic` (JSON), read by a fresh subscriber; None when there is none."""
    import queue
    import uuid

    import orjson

    from protocol.mqttclient import close_client, connect_client
    got: queue.Queue = queue.Queue()
    client = connect_client(settings.mqtt_url, f"t-retained-{uuid.uuid4().hex[:8]}", subscriptions=[(topic, 1)],
                            on_message=lambda _c, _u, m: got.put(m))
    try:
        msg = got.get(timeout=timeout)
        return orjson.loads(msg.payload) if msg.retain else None
    except queue.Empty:
        return None
    finally:
        close_client(client)
