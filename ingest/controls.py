"""Control messages checked against the store before the pipeline sees them (live ingest only).

The retained control topics announce changes; the database holds the truth (storage.controls). For each
control message the ingester:

1. refuses it unless it names a Skylane service as its `issuer` (the broker's ACL already keeps devices off
   these topics; this is the second wall): a dead letter with the reason;
2. replaces its content by the stored one:
   - `{root}/control/zones` `{"version": V}`: the stored zone set, when V is newer than the one this ingester
     runs (an older V is stale and changes nothing); a V the store does not have is refused;
   - `{root}/control/zone/{id}`: the zone's stored state when the message is that state (same `at`); a message
     older than the stored state is stale (the stored one is applied again, harmless); one the store does not
     have is refused;
   - `{root}/control/registry`: the stored device registry (vendor identifiers, sensors' kinds and intervals);
   - `{root}/control/clearance/{uav}`: the UAV's newest stored clearance that is approved and in force (announcements
     of several API processes may arrive out of order), its withdrawal when there is none; an announced
     clearance the store does not have is refused.
So a forged or stale retained message cannot replace the airspace, whatever it says. Replays and `--evaluate`
feed the recorded messages to the pipeline as they are (the recording is the record of what happened).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

import orjson
import psycopg

from protocol import topics
from protocol.brokerauth import CONTROL_ISSUERS
from protocol.times import parse_rfc3339
from storage import catalog
from storage import controls as stored

from . import metrics as m
from .rows import DeadLetter, RawMessage
from .validation import BadMessage, load_json

log = logging.getLogger("skylane.ingest.controls")
MAX_CONTROL_BYTES = 1 << 20


class ControlAuthority:
    """Resolves control messages against the store (see the module). `connect` gives a database connection."""

    def __init__(self, root: str, connect: Callable[[], psycopg.Connection], zone_version: int = 0) -> None:
        self.root = root
        self.connect = connect
        self.zone_version = zone_version  # the version of the zone set the pipeline runs
        self._conn: psycopg.Connection | None = None

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
            self._conn.autocommit = True
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def resolve(self, msg: RawMessage) -> RawMessage | DeadLetter | None:
        """The message to give the pipeline (with the stored content), a dead letter, or None when it is
        stale and changes nothing. psycopg.Error when the database cannot be asked (the caller retries)."""
        ref = topics.parse_control(self.root, msg.topic)
        if ref is None:
            return msg
        try:
            return self._resolve(ref, msg)
        except BadMessage as exc:
            m.REFUSED.labels("control").inc()
            return DeadLetter(msg.received_at, msg.topic, msg.payload, f"control refused: {exc}")

    def _resolve(self, ref: topics.ControlRef, msg: RawMessage) -> RawMessage | None:
        if not msg.payload:  # a retained message withdrawn: what the store says now decides
            body = None
        else:
            body = load_json(msg.payload, MAX_CONTROL_BYTES)
            if not isinstance(body, dict):
                raise BadMessage("a control message must be a JSON object")
            issuer = body.get("issuer")
            if issuer not in CONTROL_ISSUERS:
                raise BadMessage(f"issuer {str(issuer)[:64]!r} is not a Skylane service "
                                 f"({', '.join(sorted(CONTROL_ISSUERS))})")
        conn = self._db()
        if ref.kind == "zones":
            return self._zones(conn, body, msg)
        if ref.kind == "registry":  # reloading the stored registry is always safe: no version to check
            return None if body is None else _with(msg, orjson.dumps(catalog.registry(conn)))
        if ref.kind == "zone":
            return self._zone_state(conn, ref.target, body, msg)
        return self._clearance(conn, ref.target, body, msg)

    def _zones(self, conn, body: dict | None, msg: RawMessage) -> RawMessage | None:
        if body is None:
            return None  # the announcement was withdrawn: the zone set stays as stored
        version = body.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise BadMessage("field 'version' must be an integer (the zone set's version)")
        current = stored.zone_set_version(conn)
        if version > current:
            raise BadMessage(f"zone set version {version} is unknown to the store (it has {current})")
        if current <= self.zone_version:
            m.CONTROLS_STALE.inc()
            return None
        self.zone_version = current
        log.info("zone set version %d from the store", current)
        return _with(msg, orjson.dumps(catalog.load_zones(conn)))

    def _zone_state(self, conn, zone_id: str, body: dict | None, msg: RawMessage) -> RawMessage | None:
        row = stored.zone_state(conn, zone_id)
        if body is None:
            return _with(msg, b"" if row is None else orjson.dumps(row))
        try:
            at = parse_rfc3339(body.get("at"))
        except ValueError as exc:
            raise BadMessage(f"field 'at': {exc}") from None
        if row is None:
            raise BadMessage(f"zone {zone_id} has no stored state at {body.get('at')}")
        stored_at = parse_rfc3339(row["at"])
        if at > stored_at or (at == stored_at and body.get("state") != row["state"]):
            raise BadMessage(f"zone {zone_id}: the store has no state {body.get('state')!r} at {body.get('at')} "
                             f"(it has {row['state']!r} at {row['at']})")
        if at < stored_at:
            m.CONTROLS_STALE.inc()
        return _with(msg, orjson.dumps(row))

    def _clearance(self, conn, uav_id: str, body: dict | None, msg: RawMessage) -> RawMessage:
        now = datetime.now(timezone.utc)
        if body is not None and body.get("state") not in ("cancelled", "closed", "withdrawn"):
            clearance_id = body.get("clearance_id")
            if not isinstance(clearance_id, str):
                raise BadMessage("field 'clearance_id' must be a string")
            found = stored.clearance_payload(conn, clearance_id, uav_id, now)
            if found is None:
                raise BadMessage(f"clearance {clearance_id[:64]!r} of {uav_id} is unknown to the store")
            if found[1] is None:
                m.CONTROLS_STALE.inc()
                log.info("clearance %s of %s is %s in the store", clearance_id, uav_id, found[0])
        payload = stored.newest_in_force(conn, uav_id, now)
        return _with(msg, b"" if payload is None else orjson.dumps(payload))


def _with(msg: RawMessage, payload: bytes) -> RawMessage:
    return RawMessage(msg.topic, payload, msg.received_at, msg.qos, msg.mid, msg.generation)
