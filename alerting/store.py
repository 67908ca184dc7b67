"""The SQL of alert delivery (migration 0008): subscriptions for the admin API, the outbox for the worker.

The outbox rows themselves are written by ingest (storage.writes.enqueue_alerts). The worker claims due rows
with FOR UPDATE SKIP LOCKED and a lease (next_attempt moved ahead, attempts counted) in one statement, so
several workers share the work and a worker that dies leaves its rows due again when the lease ends. Secrets
leave this module only towards the channels (`claim`), never in what the API lists. The reasons stored on a
delivery (`last_error`) are the catalogue's English texts (`alerting.*` keys), as in the worker's log: one
stored text for every admin, often quoting what the receiver answered in its own words.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row

from i18n import Msg
from protocol.times import rfc3339

from .channel import Alert, Subscription

STATUSES = ("pending", "delivered", "failed")
_STATUS_SQL = {"pending": "o.delivered_at IS NULL AND o.failed_at IS NULL", "delivered": "o.delivered_at IS NOT NULL",
               "failed": "o.failed_at IS NOT NULL"}
SUBSCRIPTION_COLS = ("id", "name", "channel", "target", "kinds", "zone_ids", "uav_ids", "owners", "language",
                     "enabled", "created_by", "created_at")


# ------------------------------------------------------------------------------------------ subscriptions

def redact_target(channel: str, target: str) -> str:
    """A target as the API shows it: URLs without user info and with every query value hidden (robot addresses
    carry their key there); email addresses as they are."""
    if channel == "email":
        return target
    parts = urlsplit(target)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = urlencode([(k, "***") for k, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _public(row: dict) -> dict:
    out = {k: row[k] for k in SUBSCRIPTION_COLS}
    out["id"] = str(row["id"])
    out["target"] = redact_target(row["channel"], row["target"])
    out["has_secret"] = bool(row.get("secret"))
    out["created_at"] = rfc3339(row["created_at"])
    for key in ("pending", "delivered", "failed"):
        if key in row:
            out.setdefault("deliveries", {})[key] = row[key]
    return out


def create_subscription(conn: psycopg.Connection, *, name: str, channel: str, target: str, secret: str | None,
                        kinds: Sequence[str] = (), zone_ids: Sequence[str] = (), uav_ids: Sequence[str] = (),
                        owners: Sequence[str] = (), language: str = "zh-CN", enabled: bool = True,
                        created_by: str | None = None) -> dict:
    """Store a subscription; returns it as the API shows it (no secret)."""
    with conn.transaction():
        row = conn.cursor(row_factory=dict_row).execute(
            "INSERT INTO alert_subscriptions (name, channel, target, secret, kinds, zone_ids, uav_ids, owners, "
            "language, enabled, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
            (name, channel, target, secret, list(kinds), list(zone_ids), list(uav_ids), list(owners), language,
             enabled, created_by)).fetchone()
    return _public({**row, "pending": 0, "delivered": 0, "failed": 0})


def list_subscriptions(conn: psycopg.Connection, subscription_id: uuid.UUID | None = None) -> list[dict]:
    """The subscriptions not deleted, oldest first, each with its deliveries by status."""
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT s.*, count(o.event_id) FILTER (WHERE o.delivered_at IS NULL AND o.failed_at IS NULL) AS pending, "
        "count(o.delivered_at) AS delivered, count(o.failed_at) AS failed "
        "FROM alert_subscriptions s LEFT JOIN alert_outbox o ON o.subscription_id = s.id "
        "WHERE s.deleted_at IS NULL AND (%(id)s::uuid IS NULL OR s.id = %(id)s) "
        "GROUP BY s.id ORDER BY s.created_at, s.id", {"id": subscription_id}).fetchall()
    return [_public(r) for r in rows]


def delete_subscription(conn: psycopg.Connection, subscription_id: uuid.UUID) -> bool:
    """Mark it deleted (its deliveries keep their history); its pending deliveries fail with the reason."""
    with conn.transaction():
        found = conn.execute("UPDATE alert_subscriptions SET deleted_at = now(), enabled = false "
                             "WHERE id = %s AND deleted_at IS NULL RETURNING id", (subscription_id,)).fetchone()
        if found:
            conn.execute("UPDATE alert_outbox SET failed_at = now(), last_error = %s WHERE subscription_id = %s "
                         "AND delivered_at IS NULL AND failed_at IS NULL",
                         (str(Msg("alerting.store.deleted")), subscription_id))
    return found is not None


def deliveries(conn: psycopg.Connection, status: str | None = None, subscription_id: uuid.UUID | None = None,
               limit: int = 100) -> list[dict]:
    """Newest first: what was, will be or could not be delivered, with attempts and the last error."""
    where = _STATUS_SQL[status] if status else "true"
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT o.subscription_id, s.name AS subscription_name, s.channel, o.event_id, o.event_ts, o.source, o.kind, "
        "o.created, o.attempts, o.next_attempt, o.delivered_at, o.failed_at, o.last_error, o.digest_id "
        f"FROM alert_outbox o JOIN alert_subscriptions s ON s.id = o.subscription_id WHERE {where} "
        "AND (%(sid)s::uuid IS NULL OR o.subscription_id = %(sid)s) ORDER BY o.created DESC, o.event_id LIMIT %(n)s",
        {"sid": subscription_id, "n": limit}).fetchall()
    for r in rows:
        r["status"] = "delivered" if r["delivered_at"] else "failed" if r["failed_at"] else "pending"
        for key in ("subscription_id", "event_id", "digest_id"):
            r[key] = str(r[key]) if r[key] else None
        for key in ("event_ts", "created", "next_attempt", "delivered_at", "failed_at"):
            r[key] = rfc3339(r[key]) if r[key] else None
        if r["status"] != "pending":
            r["next_attempt"] = None
    return rows


@dataclass(frozen=True)
class Figures:
    backlog: int  # pending deliveries, due or waiting for a retry
    oldest_pending_s: float | None
    last_hour: list[tuple[str, str, int]]  # (channel, status, deliveries created in the last hour)


def backlog(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM alert_outbox WHERE delivered_at IS NULL AND failed_at IS NULL"
                        ).fetchone()[0]


def figures(conn: psycopg.Connection) -> Figures:
    backlog, oldest = conn.execute(
        "SELECT count(*), extract(epoch FROM now() - min(created)) FROM alert_outbox "
        "WHERE delivered_at IS NULL AND failed_at IS NULL").fetchone()
    hour = conn.execute(
        "SELECT s.channel, CASE WHEN o.delivered_at IS NOT NULL THEN 'delivered' WHEN o.failed_at IS NOT NULL "
        "THEN 'failed' ELSE 'pending' END AS status, count(*) FROM alert_outbox o "
        "JOIN alert_subscriptions s ON s.id = o.subscription_id WHERE o.created > now() - interval '1 hour' "
        "GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    return Figures(backlog, None if oldest is None else float(oldest), [tuple(r) for r in hour])


# ------------------------------------------------------------------------------------------ the worker's side

@dataclass(frozen=True)
class Claimed:
    subscription_id: str
    event_id: str
    event_ts: datetime
    source: str
    kind: str
    attempts: int  # including this one
    created: datetime  # when ingest wrote the row
    digest_id: str | None  # the digest it was first sent in: retried in that digest, under that id

    @property
    def key(self) -> tuple[str, str]:
        return self.subscription_id, self.event_id


def claim(conn: psycopg.Connection, limit: int, lease_s: float) -> list[Claimed]:
    """Due deliveries, oldest due first, leased for `lease_s` (another worker skips them meanwhile)."""
    rows = conn.execute(
        "WITH due AS (SELECT subscription_id, event_id FROM alert_outbox "
        "WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt <= now() "
        "ORDER BY next_attempt, event_ts LIMIT %s FOR UPDATE SKIP LOCKED) "
        "UPDATE alert_outbox o SET attempts = o.attempts + 1, next_attempt = now() + make_interval(secs => %s) "
        "FROM due WHERE o.subscription_id = due.subscription_id AND o.event_id = due.event_id "
        "RETURNING o.subscription_id, o.event_id, o.event_ts, o.source, o.kind, o.attempts, o.created, o.digest_id",
        (limit, lease_s)).fetchall()
    return sorted((Claimed(str(s), str(e), ts, src, kind, n, at, str(d) if d else None)
                   for s, e, ts, src, kind, n, at, d in rows),
                  key=lambda c: (c.subscription_id, c.event_ts, c.event_id))


def subscriptions(conn: psycopg.Connection, ids: Iterable[str]) -> dict[str, tuple[Subscription, bool, bool]]:
    """id -> (subscription, enabled, deleted) for the channels, secrets included."""
    rows = conn.execute("SELECT id, name, channel, target, secret, language, enabled, deleted_at IS NOT NULL "
                        "FROM alert_subscriptions WHERE id = ANY(%s::uuid[])", (list(set(ids)),)).fetchall()
    return {str(r[0]): (Subscription(str(r[0]), *r[1:6]), r[6], r[7]) for r in rows}


def events(conn: psycopg.Connection, claimed: Sequence[Claimed]) -> dict[str, Alert]:
    """The claimed deliveries' events, by event id, as the API serves them."""
    out: dict[str, Alert] = {}
    for source, sql in (
            ("airspace", "SELECT id, ts, kind, jsonb_build_object('uav_id', uav_id, 'zone_id', zone_id, "
                         "'detail', detail) FROM airspace_events"),
            ("sensor", "SELECT id, ts, kind, jsonb_build_object('sensor_id', sensor_id, 'rule_id', rule_id, "
                       "'metric', metric, 'value', value, 'detail', detail) FROM sensor_events")):
        keys = {(c.event_id, c.event_ts) for c in claimed if c.source == source}
        if not keys:
            continue
        ids, tss = zip(*keys)
        for event_id, ts, kind, body in conn.execute(
                f"{sql} WHERE (id, ts) IN (SELECT * FROM unnest(%s::uuid[], %s::timestamptz[]))",
                (list(ids), list(tss))):
            event: dict[str, Any] = {"id": str(event_id), "ts": rfc3339(ts), "kind": kind, **body}
            out[str(event_id)] = Alert(str(event_id), source, kind, ts, event)
    names = zone_names_zh(conn, {a.event["zone_id"] for a in out.values() if a.event.get("zone_id")})
    return {k: replace(a, zone_name_zh=names.get(a.event.get("zone_id"))) if a.event.get("zone_id") in names else a
            for k, a in out.items()}


def zone_names_zh(conn: psycopg.Connection, zone_ids: Iterable[str]) -> dict[str, str]:
    """Zone id -> its Chinese name (`name_zh` of the zone as stored), for the zones that have one."""
    ids = sorted(set(zone_ids))
    if not ids:
        return {}
    rows = conn.execute("SELECT id, properties->>'name_zh' FROM zones WHERE id = ANY(%s) "
                        "AND properties->>'name_zh' <> ''", (ids,)).fetchall()
    return {zid: name for zid, name in rows if name}


def _keys(keys: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [k[0] for k in keys], [k[1] for k in keys]


def assign_digest(conn: psycopg.Connection, keys: Sequence[tuple[str, str]], digest_id: str) -> None:
    """Before a digest is first sent: its rows keep its id for every later attempt, so an event goes out under
    one id only (its own, or its digest's), however often it is retried."""
    conn.execute("UPDATE alert_outbox o SET digest_id = %s FROM unnest(%s::uuid[], %s::uuid[]) AS k(s, e) "
                 "WHERE o.subscription_id = k.s AND o.event_id = k.e", (digest_id, *_keys(keys)))


def mark_delivered(conn: psycopg.Connection, keys: Sequence[tuple[str, str]]) -> None:
    conn.execute("UPDATE alert_outbox o SET delivered_at = now(), last_error = NULL "
                 "FROM unnest(%s::uuid[], %s::uuid[]) AS k(s, e) WHERE o.subscription_id = k.s AND o.event_id = k.e "
                 "AND o.delivered_at IS NULL", _keys(keys))


def mark_failed(conn: psycopg.Connection, keys: Sequence[tuple[str, str]], error: str) -> None:
    conn.execute("UPDATE alert_outbox o SET failed_at = now(), last_error = %s "
                 "FROM unnest(%s::uuid[], %s::uuid[]) AS k(s, e) WHERE o.subscription_id = k.s AND o.event_id = k.e "
                 "AND o.delivered_at IS NULL AND o.failed_at IS NULL", (str(error), *_keys(keys)))


def mark_retry(conn: psycopg.Connection, keys: Sequence[tuple[str, str]], delays_s: Sequence[float], error: str,
               give_up_s: float, undigest: bool = False) -> int:
    """Due again after each key's delay, with the error; those pending longer than `give_up_s` fail instead
    (the reason says so). `undigest`: a digest the receiver surely did not get: its rows may join another.
    Returns how many gave up."""
    rows = conn.execute(
        "UPDATE alert_outbox o SET digest_id = CASE WHEN %(undigest)s THEN NULL ELSE o.digest_id END, "
        "last_error = CASE WHEN o.created < now() - make_interval(secs => %(give_up)s) "
        "THEN format(%(gave_up)s, o.attempts) ELSE %(error)s END, "
        "failed_at = CASE WHEN o.created < now() - make_interval(secs => %(give_up)s) THEN now() END, "
        "next_attempt = now() + make_interval(secs => k.d) "
        "FROM unnest(%(s)s::uuid[], %(e)s::uuid[], %(d)s::float8[]) AS k(s, e, d) "
        "WHERE o.subscription_id = k.s AND o.event_id = k.e AND o.delivered_at IS NULL AND o.failed_at IS NULL "
        "RETURNING o.failed_at IS NOT NULL",
        {"give_up": give_up_s, "error": error, "undigest": undigest, "s": _keys(keys)[0], "e": _keys(keys)[1], "d": list(delays_s),
         "gave_up": str(Msg("alerting.store.gave_up", attempts="%s", hours=give_up_s / 3600,
                            error=error.replace("%", "%%")))}
    ).fetchall()
    return sum(1 for (gave_up,) in rows if gave_up)


def release(conn: psycopg.Connection, keys: Sequence[tuple[str, str]], delay_s: float) -> None:
    """Claimed but not attempted (rate limit, a disabled subscription): due again after `delay_s`, the claim
    not counted as an attempt."""
    conn.execute("UPDATE alert_outbox o SET attempts = greatest(o.attempts - 1, 0), "
                 "next_attempt = now() + make_interval(secs => %s) "
                 "FROM unnest(%s::uuid[], %s::uuid[]) AS k(s, e) WHERE o.subscription_id = k.s AND o.event_id = k.e "
                 "AND o.delivered_at IS NULL AND o.failed_at IS NULL", (delay_s, *_keys(keys)))


def missing_event(conn: psycopg.Connection, keys: Sequence[tuple[str, str]]) -> None:
    mark_failed(conn, keys, Msg("alerting.store.no_event"))


def subscription_deleted(conn: psycopg.Connection, keys: Sequence[tuple[str, str]]) -> None:
    mark_failed(conn, keys, Msg("alerting.store.deleted"))


def prune(conn: psycopg.Connection, keep_s: float) -> int:
    """Delete finished deliveries (delivered or failed) created longer than `keep_s` ago."""
    return conn.execute("DELETE FROM alert_outbox WHERE created < now() - make_interval(secs => %s) "
                        "AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL)", (keep_s,)).rowcount
