"""API keys: hashed storage, revocation, the TTL cache, the CLI, and 401/403 at the API."""
from __future__ import annotations

import subprocess
import sys

import httpx
import psycopg
import pytest

from skylane.settings import REPO_ROOT
from storage import auth

from .api_support import bearer, keys  # noqa: F401  (fixture)
from .helpers import query

pytestmark = pytest.mark.integration


def test_keys_are_stored_hashed_and_revocable(system):
    with psycopg.connect(system.database_url) as conn:
        made = auth.create_key(conn, "engineer", name="ci")
        assert made.key.startswith(f"sky_{made.key_id}_") and len(made.key) > 50
        [(stored,)] = conn.execute("SELECT secret_hash FROM api_keys WHERE key_id = %s", (made.key_id,)).fetchall()
        assert made.key.encode() not in bytes(stored) and len(bytes(stored)) == 32
        assert auth.lookup_key(conn, made.key) == auth.KeyRecord(made.key_id, "engineer", None, "ci")
        assert auth.lookup_key(conn, made.key[:-1] + ("A" if made.key[-1] != "A" else "B")) is None
        assert auth.lookup_key(conn, "nonsense") is None
        assert auth.revoke_key(conn, made.key_id) and not auth.revoke_key(conn, made.key_id)
        assert auth.lookup_key(conn, made.key) is None
        assert [k["key_id"] for k in auth.list_keys(conn)] == []
        assert [k["key_id"] for k in auth.list_keys(conn, include_revoked=True)] == [made.key_id]


def test_create_key_refuses_bad_role_and_ownerless_operator(system):
    with psycopg.connect(system.database_url) as conn:
        with pytest.raises(ValueError, match="role"):
            auth.create_key(conn, "root")
        with pytest.raises(ValueError, match="owner"):
            auth.create_key(conn, "operator")


def test_cache_remembers_until_ttl(system):
    calls = []

    def connect():
        calls.append(1)
        return psycopg.connect(system.database_url)

    with psycopg.connect(system.database_url) as conn:
        made = auth.create_key(conn, "viewer")
        cache = auth.KeyCache(ttl=3600)
        assert cache.peek(made.key) == (False, None)  # not looked up yet: the caller must go to the database
        assert cache.lookup(made.key, connect).role == "viewer"
        assert cache.peek(made.key)[0] and cache.peek(made.key)[1].role == "viewer"
        assert cache.peek("garbage") == (True, None)
        assert cache.lookup(made.key, connect).role == "viewer"
        assert len(calls) == 1
        auth.revoke_key(conn, made.key_id)
        assert cache.lookup(made.key, connect) is not None  # still cached
        cache.clear()
        assert cache.lookup(made.key, connect) is None
        assert cache.lookup("garbage", connect) is None and len(calls) == 2  # malformed: no round trip


def test_demo_keys_one_per_role_and_fresh_each_time(system):
    with psycopg.connect(system.database_url) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, owner) VALUES ('U1', 'uav', 'fleet-x'), "
                     "('U2', 'uav', 'fleet-x'), ('U3', 'uav', 'fleet-y')")
        first = auth.ensure_demo_keys(conn)
        assert set(first) == set(auth.ROLES)
        assert auth.lookup_key(conn, first["operator"]).owner == "fleet-x"
        second = auth.ensure_demo_keys(conn)
        assert all(auth.lookup_key(conn, k) is None for k in first.values())
        assert all(auth.lookup_key(conn, k).role == r for r, k in second.items())


def test_keys_cli_create_list_revoke(system):
    env = {"SKYLANE_DATABASE_URL": system.database_url, "SKYLANE_MQTT_URL": system.mqtt_url,
           "SKYLANE_ZONE_FILE": str(system.zone_file), "PATH": "/usr/bin:/bin"}

    def run(*argv):
        return subprocess.run([sys.executable, "-m", "skylane", "--log-level", "WARNING", "keys", *argv],
                              capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60)

    made = run("create", "--role", "operator", "--owner", "fleet-z", "--name", "ops desk")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    key_id = auth.parse_key_id(key)
    assert key_id and "shown once" in made.stderr
    listed = run("list")
    assert key_id in listed.stdout and key not in listed.stdout and "fleet-z" in listed.stdout
    assert run("create", "--role", "operator").returncode == 2
    assert run("revoke", key_id).returncode == 0
    assert run("revoke", key_id).returncode == 1
    assert query(system.database_url, "SELECT revoked_at IS NOT NULL FROM api_keys WHERE key_id = %s",
                 key_id) == [(True,)]


def test_me_and_401_403(api, keys):  # noqa: F811
    assert httpx.get(api.url + "/v1/me").status_code == 401
    r = httpx.get(api.url + "/v1/me", headers={"Authorization": "Bearer sky_000000000000_" + "x" * 43})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(api.url + "/v1/me", headers=bearer(keys.revoked)).status_code == 401
    me = httpx.get(api.url + "/v1/me", headers=bearer(keys.operator)).json()
    assert me["role"] == "operator" and me["owner"] == "op-alpha" and keys.operator.startswith(f"sky_{me['key_id']}_")
    # the query token is for WebSockets and event streams only
    assert httpx.get(api.url + "/v1/me", params={"access_token": keys.viewer}).status_code == 401
    assert httpx.get(api.url + "/v1/me", params={"access_token": keys.viewer},
                     headers={"Accept": "text/event-stream"}).status_code == 200


def test_demo_keys_text_lists_every_role(system):
    from skylane.commands.keys import demo_keys, demo_keys_text
    made = demo_keys(system)
    text = demo_keys_text(made)
    assert all(f"{role:<9} {key}" in text for role, key in made.items()) and set(made) == set(auth.ROLES)
