"""Batched, idempotent writes: one transaction per ingest batch.

QoS 1 is at-least-once and the ingester acknowledges only after commit, so a crash or a lost connection
re-delivers messages that may already be stored. The unique keys of migration 0003 ((uav_id, ts, seq), or
(uav_id, ts) without seq, for fixes; (sensor_id, metric, ts) for readings) refuse a second copy. Bulk rows
are binary-COPied straight into their table; a batch that hits a key is instead COPied into a per-connection
temporary staging table and moved with INSERT ... ON CONFLICT DO NOTHING: COPY's speed in the usual case,
without COPY's failure on a duplicate.

Dead letters have a daily cap per device (DeadLetterCap; the device is read from the topic): within it they are
stored whole; past it only counted, per device and day, in dead_letter_daily (count, bytes, reasons, the last
truncated payload) and in the skylane_ingest_dead_letters_capped_total metric, after one stored dead letter
that says the cap was reached. A device spamming garbage cannot fill the disk, and nothing goes uncounted.
"""
from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

import orjson
import psycopg
from prometheus_client import Counter as MetricCounter
from psycopg.types.json import Jsonb

from protocol.times import parse_rfc3339

TELEMETRY_COLS = ("ts", "uav_id", "seq", "lon", "lat", "alt_m", "alt_ref", "speed_mps", "track_deg",
                  "vspeed_mps", "battery_pct", "status", "clearance_id", "received_at")
TELEMETRY_TYPES = ("timestamptz", "text", "int8", "float8", "float8", "float4", "text", "float4", "float4",
                   "float4", "float4", "text", "text", "timestamptz")
READING_COLS = ("ts", "sensor_id", "metric", "value", "vtext", "unit", "received_at")
READING_TYPES = ("timestamptz", "text", "text", "float8", "text", "text", "timestamptz")
OBSERVATION_COLS = ("ts", "source", "track_id", "lon", "lat", "alt_m", "alt_ref", "alt_source", "speed_mps",
                    "track_deg", "vspeed_mps", "receiver_id", "rssi", "identity", "received_at")
OBSERVATION_TYPES = ("timestamptz", "text", "text", "float8", "float8", "float4", "text", "text", "float4", "float4",
                     "float4", "text", "float4", "jsonb", "timestamptz")
DEAD_LETTER_COLS = ("received_at", "topic", "payload", "reason")
DEAD_LETTER_TYPES = ("timestamptz", "text", "bytea", "text")
STAGES = {"uav_telemetry": "skylane_stage_telemetry", "sensor_readings": "skylane_stage_readings",
          "observations": "skylane_stage_observations"}

_staged: weakref.WeakSet = weakref.WeakSet()  # connections whose session already has the staging tables
DEAD_LETTERS_CAPPED = MetricCounter(
    "skylane_ingest_dead_letters_capped", "Dead letters past their device's daily cap: counted in the "
    "dead_letter_daily table, not stored whole")


@dataclass(frozen=True, slots=True)
class DeadLetterCap:
    """Dead letters stored whole per device and UTC day: at most `rows` rows and `payload_bytes` of payload."""

    rows: int = 1000
    payload_bytes: int = 4 << 20
    sample_bytes: int = 256  # of a capped payload kept in its summary row


DEAD_LETTER_CAP = DeadLetterCap()


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Rows new to the database; the rest of the batch were re-deliveries (duplicates) of stored rows.
    `dead_letters_capped`: the batch's dead letters that were only counted (their device's daily cap)."""

    telemetry: int = 0
    readings: int = 0
    dead_letters_capped: int = 0
    observations: int = 0


def _copy(cur: psycopg.Cursor, table: str, cols: tuple[str, ...], types: tuple[str, ...], rows) -> None:
    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _ensure_stages(conn: psycopg.Connection, cur: psycopg.Cursor) -> None:
    if conn in _staged:
        return
    for table, stage in STAGES.items():
        # no indexes, no WAL; emptied at every commit (and on rollback with the transaction)
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
    _staged.add(conn)


def _insert_new(conn: psycopg.Connection, cur: psycopg.Cursor, table: str, cols: tuple[str, ...],
                types: tuple[str, ...], make_rows) -> int:
    """Rows not stored yet; returns how many were new.

    Re-deliveries are rare (a crash, a lost connection), so first a plain COPY into the table, in a
    savepoint; only when a unique key refuses it, the batch goes through the staging table with ON CONFLICT
    DO NOTHING (twice the database work, but only for that batch)."""
    try:
        with conn.transaction():
            _copy(cur, table, cols, types, make_rows())
        return cur.rowcount
    except psycopg.errors.UniqueViolation:
        pass
    _ensure_stages(conn, cur)
    stage = STAGES[table]
    _copy(cur, stage, cols, types, make_rows())
    names = ", ".join(cols)
    cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ON CONFLICT DO NOTHING")
    return cur.rowcount


def write_batch(conn: psycopg.Connection, out, cap: DeadLetterCap = DEAD_LETTER_CAP) -> WriteResult:
    """Store an ingest BatchOutput atomically: all of it or none (then the batch is retried, not acked).

    Returns how many telemetry and reading rows were new (the others were already stored), and how many dead
    letters were past their device's daily cap.
    """
    new_tel = new_read = capped = new_obs = 0
    with conn.transaction(), conn.cursor() as cur:
        if out.telemetry:
            new_tel = _insert_new(
                conn, cur, "uav_telemetry", TELEMETRY_COLS, TELEMETRY_TYPES,
                lambda: ((r.ts, r.uav_id, r.seq, r.lon, r.lat, r.alt_m, r.alt_ref, r.speed_mps, r.track_deg,
                          r.vspeed_mps, r.battery_pct, r.status, r.clearance_id, r.received_at) for r in out.telemetry))
        if out.readings:
            new_read = _insert_new(
                conn, cur, "sensor_readings", READING_COLS, READING_TYPES,
                lambda: ((r.ts, r.sensor_id, r.metric, r.value, r.vtext, r.unit, r.received_at) for r in out.readings))
        if out.observations:  # surveillance sightings (migration 0009), keyed (source, track_id, ts, receiver_id)
            new_obs = _insert_new(
                conn, cur, "observations", OBSERVATION_COLS, OBSERVATION_TYPES,
                lambda: ((o.ts, o.source, o.track_id, o.lon, o.lat, o.alt_m, o.alt_ref, o.alt_source, o.speed_mps,
                          o.track_deg, o.vspeed_mps, o.receiver_id or "", o.rssi, Jsonb(o.identity, dumps=_dumps),
                          o.received_at) for o in out.observations))
        if out.dead_letters:
            keep, capped = _cap_dead_letters(cur, out.dead_letters, cap)
            if keep:
                _copy(cur, "dead_letters", DEAD_LETTER_COLS, DEAD_LETTER_TYPES, keep)
        if out.events:
            cur.executemany(
                "INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id, detail) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(e.event.ts, e.id, e.event.kind, e.event.uav_id, e.event.zone_id, Jsonb(e.event.detail, dumps=_dumps))
                 for e in out.events])
            enqueue_alerts(cur, "airspace", [(e.id, e.event.ts, e.event.kind, e.event.uav_id, e.event.zone_id)
                                             for e in out.events])
        if out.zone_decisions:  # sensor rules' zone states: the store is the truth the announcements point to
            store_zone_decisions(cur, out.zone_decisions)
        if out.sensor_events:  # ingest.sensor_watch events
            from .sensor_events import insert_sensor_events
            insert_sensor_events(cur, out.sensor_events)
            enqueue_alerts(cur, "sensor", [(e.id, e.ts, e.kind, e.sensor_id, None) for e in out.sensor_events])
        seen = _last_seen(out)
        if seen:
            ids, kinds, ats = zip(*seen)
            cur.execute(  # one statement for the whole batch (executemany costs a round trip per device)
                "INSERT INTO devices (device_id, kind, last_seen) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) "
                "ON CONFLICT (device_id) DO UPDATE SET last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen)",
                (list(ids), list(kinds), list(ats)))
        if out.statuses:
            cur.executemany(
                "INSERT INTO devices (device_id, kind, online, status_at) VALUES (%s, 'unknown', %s, %s) "
                "ON CONFLICT (device_id) DO UPDATE SET online = EXCLUDED.online, status_at = CASE "
                "WHEN devices.online IS NOT DISTINCT FROM EXCLUDED.online THEN devices.status_at "
                "ELSE EXCLUDED.status_at END",  # a re-delivered retained status keeps its time
                [(s.device_id, s.online, s.at) for s in out.statuses])
    if capped:  # committed: count once (a refused transaction is retried whole)
        DEAD_LETTERS_CAPPED.inc(capped)
    return WriteResult(new_tel, new_read, capped, new_obs)


# The alert outbox (migration 0008, docs/alerts.md): the batch's events that match an enabled subscription, in the
# batch's transaction, so a stored event always has its deliveries; `skylane alerts` (alerting/) sends them. An
# empty filter matches everything; uav_ids/owners match the event's device by id or by its registry owner.
ENQUEUE_ALERTS = (
    "INSERT INTO alert_outbox (subscription_id, event_id, event_ts, source, kind) "
    "SELECT s.id, e.id, e.ts, %s, e.kind FROM alert_subscriptions s "
    "JOIN unnest(%s::uuid[], %s::timestamptz[], %s::text[], %s::text[], %s::text[]) AS e(id, ts, kind, device, zone) "
    "ON (s.kinds = '{}' OR e.kind = ANY(s.kinds)) AND (s.zone_ids = '{}' OR e.zone = ANY(s.zone_ids)) "
    "AND ((s.uav_ids = '{}' AND s.owners = '{}') OR e.device = ANY(s.uav_ids) "
    "OR (SELECT d.owner FROM devices d WHERE d.device_id = e.device) = ANY(s.owners)) "
    "WHERE s.enabled AND s.deleted_at IS NULL ON CONFLICT DO NOTHING")


def enqueue_alerts(cur: psycopg.Cursor, source: str, events: list[tuple]) -> None:
    """Outbox rows for (id, ts, kind, device id, zone id) events of `source` ('airspace' or 'sensor'): one
    statement per batch; re-delivered events add nothing (the outbox is unique on (subscription, event))."""
    ids, ts, kinds, devices, zones = (list(col) for col in zip(*events))
    cur.execute(ENQUEUE_ALERTS, (source, ids, ts, kinds, devices, zones))


def store_zone_decisions(cur: psycopg.Cursor, states) -> None:
    """Zone states (airspace.dynamic.ZoneState) decided by sensor rules, each kept only when it is newer than
    the zone's stored state (an admin's later decision, or a later rule decision, wins)."""
    cur.executemany(
        "INSERT INTO zone_states (zone_id, state, reason, set_by, set_at, detail) VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (zone_id) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason, "
        "set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at, detail = EXCLUDED.detail "
        "WHERE zone_states.set_at < EXCLUDED.set_at",
        [(st.zone_id, st.state, st.reason, st.by, parse_rfc3339(st.at),
          Jsonb({k: v for k, v in (("sensor_id", st.sensor_id), ("metric", st.metric), ("value", st.value),
                                   ("reading_ts", st.reading_ts)) if v is not None})) for st in states])


_DEVICE_FAMILIES = frozenset(("uav", "sensor", "device"))
OTHER_DEVICE = "(other)"  # topics without a device: one shared cap
_EPOCH_DAY = date(1970, 1, 1)


def dead_letter_device(topic: str) -> str:
    """The device a dead letter is counted against: the id of {root}/<uav|sensor|device>/<id>/<leaf>."""
    parts = topic.rsplit("/", 3)
    if len(parts) == 4 and parts[1] in _DEVICE_FAMILIES and parts[2]:
        return parts[2][:64]
    return OTHER_DEVICE


def _cap_dead_letters(cur: psycopg.Cursor, dead_letters, cap: DeadLetterCap) -> tuple[list[tuple], int]:
    """Count the batch's dead letters per device and day; return (the rows to store, how many were capped).

    One statement when every device is within its cap (the upsert's new totals say where each batch starts);
    past it, a second one adds the capped ones to the summary rows, and the first capped dead letter of a
    device and day is stored truncated, with a reason that says the cap was reached."""
    groups: dict[tuple[int, str], list] = {}
    for d in dead_letters:
        groups.setdefault((int(d.received_at.timestamp() // 86400), dead_letter_device(d.topic)), []).append(d)
    keys = sorted(groups)  # one lock order for concurrent workers
    days = [_EPOCH_DAY + timedelta(days=k[0]) for k in keys]
    totals = {(day, dev): (n, nbytes) for day, dev, n, nbytes in cur.execute(
        "INSERT INTO dead_letter_daily AS t (day, device, received, received_bytes) "
        "SELECT * FROM unnest(%s::date[], %s::text[], %s::bigint[], %s::bigint[]) "
        "ON CONFLICT (device, day) DO UPDATE SET received = t.received + EXCLUDED.received, "
        "received_bytes = t.received_bytes + EXCLUDED.received_bytes "
        "RETURNING day, device, received, received_bytes",
        (days, [k[1] for k in keys], [len(groups[k]) for k in keys],
         [sum(len(d.payload) for d in groups[k]) for k in keys])).fetchall()}
    keep: list[tuple] = []
    over: dict[tuple[date, str], list] = {}
    for day, key in zip(days, keys):
        group = groups[key]
        n, nbytes = totals[(day, key[1])]
        n -= len(group)
        nbytes -= sum(len(d.payload) for d in group)
        for d in group:
            n += 1
            nbytes += len(d.payload)
            if n <= cap.rows and nbytes <= cap.payload_bytes:
                keep.append((d.received_at, d.topic, d.payload, d.reason))
            else:
                over.setdefault((day, key[1]), []).append(d)
    if not over:
        return keep, 0
    summary = []
    for (day, dev), ds in over.items():
        last = max(ds, key=lambda d: d.received_at)
        reasons = Counter(d.reason.split(":", 1)[0][:80] for d in ds)
        summary.append((day, dev, len(ds), sum(len(d.payload) for d in ds), Jsonb(dict(reasons)), last.received_at,
                        last.reason[:500], bytes(last.payload[:cap.sample_bytes])))
    first_time = cur.execute(
        "UPDATE dead_letter_daily AS t SET capped = t.capped + c.n, capped_bytes = t.capped_bytes + c.nbytes, "
        "capped_reasons = t.capped_reasons || (SELECT coalesce(jsonb_object_agg(r.key, "
        "coalesce((t.capped_reasons ->> r.key)::bigint, 0) + r.value::bigint), '{}') FROM jsonb_each_text(c.reasons) r), "
        "last_capped_at = greatest(t.last_capped_at, c.at), last_reason = c.reason, last_payload = c.payload "
        "FROM unnest(%s::date[], %s::text[], %s::bigint[], %s::bigint[], %s::jsonb[], %s::timestamptz[], %s::text[], "
        "%s::bytea[]) AS c(day, device, n, nbytes, reasons, at, reason, payload) "
        "WHERE t.day = c.day AND t.device = c.device RETURNING t.day, t.device, t.capped = c.n",
        [list(col) for col in zip(*summary)]).fetchall()
    for day, dev, first in first_time:
        if first:
            d = over[(day, dev)][0]
            keep.append((d.received_at, d.topic, bytes(d.payload[:cap.sample_bytes]),
                         f"dead-letter cap reached: device {dev} passed its daily cap ({cap.rows} dead letters or "
                         f"{cap.payload_bytes} bytes of payload, {day.isoformat()} UTC); further ones that day are "
                         f"only counted in dead_letter_daily; this one (payload truncated): {d.reason}"[:1000]))
    return keep, sum(len(ds) for ds in over.values())


def _last_seen(out) -> list[tuple]:
    """(device_id, kind, latest received_at) per device of the batch, sorted by id: one row per device (an
    upsert may touch a row once per statement) and a stable lock order between concurrent workers."""
    latest: dict[str, tuple[str, object]] = {}
    for kind, rows, attr in (("uav", out.telemetry, "uav_id"), ("sensor", out.readings, "sensor_id")):
        for r in rows:
            dev_id = getattr(r, attr)
            seen = latest.get(dev_id)
            if seen is None or r.received_at > seen[1]:
                latest[dev_id] = (seen[0] if seen else kind, r.received_at)
    return [(dev_id, kind, at) for dev_id, (kind, at) in sorted(latest.items())]


def _dumps(obj) -> str:
    return orjson.dumps(obj).decode()
