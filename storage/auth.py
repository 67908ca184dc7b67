"""API keys: created with a random secret shown once, stored only as a SHA-256 hash.

A key reads `sky_<key_id>_<secret>`: the key id is public (listed, logged, shown in acks), the
secret is 256 random bits, so a plain SHA-256 is enough (no password stretching needed) and the
comparison is constant-time. Lookups go through a small TTL cache so a busy API does not hit the
database on every request; a revocation is therefore seen within the cache TTL (default 5 s).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from protocol.times import rfc3339_or_none

ROLES = ("viewer", "operator", "engineer", "admin")
KEY_PREFIX = "sky"
_KEY = re.compile(r"^sky_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
DEMO_NAME = "demo"
DEMO_OPERATOR = "Skylane demo fleet"  # devices.registry.fleet_records' default owner


@dataclass(frozen=True)
class KeyRecord:
    """What the API needs to know about a valid key (never the secret or its hash)."""

    key_id: str
    role: str
    owner: str | None
    name: str | None


@dataclass(frozen=True)
class CreatedKey:
    key_id: str
    key: str  # the full secret: shown once, not recoverable later
    role: str
    owner: str | None
    name: str | None


def _hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_key_id(token: str) -> str | None:
    """The key id of a well-formed key, else None (nothing to look up)."""
    m = _KEY.match(token)
    return m[1] if m else None


def create_key(conn: psycopg.Connection, role: str, owner: str | None = None, name: str | None = None) -> CreatedKey:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "operator" and not owner:
        raise ValueError("an operator key needs an owner (the devices.owner of the drones it may act on)")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    with conn.transaction():
        conn.execute("INSERT INTO api_keys (key_id, secret_hash, role, owner, name) VALUES (%s, %s, %s, %s, %s)",
                     (key_id, _hash(key), role, owner, name))
    return CreatedKey(key_id, key, role, owner, name)


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    """Revoke a key; False when there is no such (unrevoked) key."""
    with conn.transaction():
        cur = conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
                           (key_id,))
    return cur.rowcount == 1


def list_keys(conn: psycopg.Connection, include_revoked: bool = False) -> list[dict]:
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT key_id, role, owner, name, created_at, revoked_at FROM api_keys "
        "WHERE %s OR revoked_at IS NULL ORDER BY created_at, key_id", (include_revoked,)).fetchall()
    for r in rows:
        for k in ("created_at", "revoked_at"):
            r[k] = rfc3339_or_none(r[k])
    return rows


def valid_key_ids(conn: psycopg.Connection, key_ids: list[str]) -> set[str]:
    """Those of `key_ids` that are unrevoked keys (one query however many ask: open feeds re-check theirs)."""
    rows = conn.execute("SELECT key_id FROM api_keys WHERE key_id = ANY(%s) AND revoked_at IS NULL",
                        (list(key_ids),)).fetchall()
    return {r[0] for r in rows}


def lookup_key(conn: psycopg.Connection, token: str) -> KeyRecord | None:
    """The record of a valid, unrevoked key, else None."""
    key_id = parse_key_id(token)
    if key_id is None:
        return None
    row = conn.execute("SELECT secret_hash, role, owner, name, revoked_at FROM api_keys WHERE key_id = %s",
                       (key_id,)).fetchone()
    # compare even when the row is missing so timing does not reveal which key ids exist
    stored = bytes(row[0]) if row else b"\0" * 32
    if not hmac.compare_digest(stored, _hash(token)) or row is None or row[4] is not None:
        return None
    return KeyRecord(key_id, row[1], row[2], row[3])


class KeyCache:
    """Valid and invalid lookups remembered for `ttl` seconds, keyed by the token's hash."""

    def __init__(self, ttl: float = 5.0, max_entries: int = 10000):
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[bytes, tuple[float, KeyRecord | None]] = {}
        self._lock = threading.Lock()

    def peek(self, token: str) -> tuple[bool, KeyRecord | None]:
        """(found, record) from the cache alone: no I/O, so callable on an event loop."""
        with self._lock:
            hit = self._entries.get(_hash(token))
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return parse_key_id(token) is None, None  # a malformed key needs no lookup: known invalid

    def lookup(self, token: str, connect: Callable[[], object]) -> KeyRecord | None:
        """`connect()` is a context manager giving a connection (e.g. pool.connection)."""
        digest = _hash(token)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        if parse_key_id(token) is None:
            return None  # malformed: no database round trip, nothing to remember
        with connect() as conn:
            record = lookup_key(conn, token)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[digest] = (now + self.ttl, record)
        return record

    def forget(self, key_id: str) -> None:
        """Drop what is remembered about a key (it was revoked): its next lookup asks the database."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[1] is None or v[1].key_id != key_id}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def demo_operator(conn: psycopg.Connection) -> str:
    """The owner of most registered drones: the demo operator sees the simulated fleet."""
    owners = Counter(r[0] for r in conn.execute("SELECT owner FROM devices WHERE kind = 'uav' AND owner IS NOT NULL"))
    return owners.most_common(1)[0][0] if owners else DEMO_OPERATOR


def ensure_demo_keys(conn: psycopg.Connection, operator_owner: str | None = None) -> dict[str, str]:
    """One fresh key per role for the local demo (earlier demo keys are revoked); role -> key."""
    with conn.transaction():
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (DEMO_NAME,))
    owner = operator_owner or demo_operator(conn)
    return {role: create_key(conn, role, owner if role == "operator" else None, DEMO_NAME).key for role in ROLES}
