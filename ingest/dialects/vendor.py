"""What the vendor dialects (DJI Cloud API, ChirpStack, The Things Stack) share: their metrics, the unregistered
device refusal, JSON envelopes, vendor fields turned into readings, and native fixes built through the contract's
own checks. Pure, like the dialects: no I/O, no clock.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

import orjson
from prometheus_client import Counter

from protocol.times import RFC3339, rfc3339

from ..sensors import ReadingRow
from ..telemetry import TelemetryRow, parse_telemetry_checked
from ..validation import BadMessage, check_time, load_json, timestamp
from .base import UnregisteredDevice, DialectContext, DialectResult

MESSAGES = Counter("skylane_dialect_messages_total", "Messages parsed by an input dialect", ["dialect", "kind"])
ROWS = Counter("skylane_dialect_rows_total", "Rows and replies an input dialect produced", ["dialect", "table"])
DEAD_LETTERS = Counter("skylane_dialect_dead_letters_total", "Dialect messages refused into the dead letters",
                       ["dialect"])
UNREGISTERED = Counter("skylane_dialect_unregistered_total",
                       "Dialect messages from a vendor identifier no registry entry names", ["dialect"])
FRAMES_LOST = Counter("skylane_lorawan_frames_lost_total", "LoRaWAN uplinks missing from a device's frame counter",
                      ["dialect"])
FRAME_DUPLICATES = Counter("skylane_lorawan_duplicate_frames_total",
                           "LoRaWAN uplinks seen again with the same frame counter (stored once)", ["dialect"])

MAX_TEXT = 1024  # a string field stored as text
MAX_DEPTH = 3  # nested objects of a decoded payload are flattened this deep ("gps.lat")


def counted(dialect: str, parse: Callable[..., tuple[str, DialectResult]]) -> Callable[..., DialectResult]:
    """A dialect's parse with its metrics: `parse` returns (message kind, result) or raises BadMessage."""
    unregistered, dead = UNREGISTERED.labels(dialect), DEAD_LETTERS.labels(dialect)
    messages: dict[str, Counter] = {}  # the labelled children, looked up once (labels() takes a lock)
    rows_of = {table: ROWS.labels(dialect, table) for table in ("telemetry", "readings", "statuses", "replies")}

    def run(topic: str, payload: bytes, received_at: datetime, ctx: DialectContext) -> DialectResult:
        try:
            kind, res = parse(topic, payload, received_at, ctx)
        except UnregisteredDevice:
            unregistered.inc()
            dead.inc()
            raise
        except BadMessage:
            dead.inc()
            raise
        counter = messages.get(kind)
        if counter is None:
            counter = messages[kind] = MESSAGES.labels(dialect, kind)
        counter.inc()
        if res.telemetry:
            rows_of["telemetry"].inc(len(res.telemetry))
        if res.readings:
            rows_of["readings"].inc(len(res.readings))
        if res.statuses:
            rows_of["statuses"].inc(len(res.statuses))
        if res.replies:
            rows_of["replies"].inc(len(res.replies))
        return res
    return run


def device_of(ctx: DialectContext, key: str, value: str, what: str) -> str:
    """The registered device a vendor identifier names; UnregisteredDevice otherwise."""
    device_id = ctx.registry.device(key, value)
    if device_id is None:
        raise UnregisteredDevice(what, key, value)
    return device_id


def json_object(payload: bytes, ctx: DialectContext, what: str) -> dict:
    """The message as a JSON object (BadMessage with the reason otherwise)."""
    doc = load_json(payload, ctx.max_payload_bytes)
    if not isinstance(doc, dict):
        raise BadMessage(f"{what} must be a JSON object, got {type(doc).__name__}")
    return doc


def sub_object(doc: Mapping, key: str, what: str, required: bool = True) -> dict:
    """doc[key] as an object ({} when absent and not required)."""
    value = doc.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadMessage(f"{what}: field {key!r} must be an object" + (" (missing)" if value is None else ""))
    return value


def vendor_time(value: object, received_at: datetime, key: str) -> datetime:
    """A vendor's RFC 3339 time (network servers write nanoseconds and '+00:00' or 'Z'), checked like the
    contract's: the usual form straight through datetime.fromisoformat (only where the contract's RFC 3339 pattern
    matches), everything else through validation.timestamp, which gives the reason."""
    if type(value) is str and 20 <= len(value) <= 40 and value[10] == "T" and RFC3339.fullmatch(value):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return timestamp(value, received_at, key)
        return check_time(ts.astimezone(timezone.utc), received_at, key)
    return timestamp(value, received_at, key)


def epoch_ms(value: object, received_at: datetime, key: str) -> datetime:
    """A vendor's epoch-milliseconds time, checked like the contract's (not before 2000, not ahead of arrival)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadMessage(f"field {key!r} must be epoch milliseconds")
    try:
        ts = datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise BadMessage(f"field {key!r}={value!r} is not a usable time") from None
    return check_time(ts, received_at, key)


_NUM = (int, float)
_RANGES = (("lat", -90.0, 90.0), ("lon", -180.0, 180.0), ("alt_m", -500.0, 20000.0))
_OPTIONAL = (("speed_mps", 0.0, 500.0), ("track_deg", 0.0, 360.0), ("vspeed_mps", -200.0, 200.0),
             ("battery_pct", 0.0, 100.0))
_STATUSES = frozenset(("Ground", "Airborne", "Emergency"))


def native_fix(uav_id: str, fields: dict, received_at: datetime, ctx: DialectContext, what: Callable[[], str],
               ts: datetime | None = None) -> TelemetryRow:
    """A fix in the contract's field names (ts, lat, lon, alt_m, alt_ref, ...) held to exactly what a native one
    is: the usual well-formed fix (`ts` given as a checked time, plain numbers in the contract's ranges) is built at
    once; anything else goes through the contract's own parser, which decides and gives the reason (naming the
    vendor message: `what()`, made only then)."""
    if ts is not None:
        values = []
        for key, lo, hi in _RANGES:
            v = fields.get(key)
            if type(v) not in _NUM or not lo <= v <= hi:
                break
            values.append(float(v))
        else:
            for key, lo, hi in _OPTIONAL:
                v = fields.get(key)
                if v is not None and (type(v) not in _NUM or not lo <= v <= hi):
                    break
                values.append(None if v is None else float(v))
            else:
                status = fields.get("status")
                if status is None or status in _STATUSES:
                    lat, lon, alt, speed, track, vspeed, battery = values
                    return TelemetryRow(ts, uav_id, None, lon, lat, alt, fields["alt_ref"], speed, track, vspeed,
                                        battery, status, None, received_at)
        fields = {**fields, "ts": rfc3339(ts, 6)}
    try:
        return parse_telemetry_checked(uav_id, orjson.dumps(fields), received_at, ctx.max_payload_bytes)[0]
    except BadMessage as exc:
        raise BadMessage(f"{what()}: {exc}") from None
    except TypeError as exc:  # orjson: a value JSON cannot hold (e.g. an integer beyond 64 bits)
        raise BadMessage(f"{what()}: {exc}") from None


def field_readings(sensor_id: str, fields: Mapping, ts: datetime, received_at: datetime,
                   metric_map: Mapping[str, tuple[str, str | None]], units: Mapping[str, str] | None = None,
                   only: Mapping[str, str | None] | None = None, prefix: str = "") -> list[ReadingRow]:
    """Readings of a vendor's decoded fields: numbers and booleans as values, strings as text, nested objects
    flattened ("gps.lat"), lists as JSON text. `metric_map` (the registry's, field -> (metric, unit)) renames a
    field and gives its unit; other fields keep their name (unknown metrics are stored, as the contract does)
    with the unit from `units`. `only`: take just these fields (name -> unit) instead of all."""
    rows: list[ReadingRow] = []
    for name, value in fields.items():
        if not isinstance(name, str):
            continue
        path = prefix + name
        if only is not None and path not in only and not any(k.startswith(path + ".") for k in only):
            continue
        if isinstance(value, dict):
            if path.count(".") + 1 < MAX_DEPTH:
                rows += field_readings(sensor_id, value, ts, received_at, metric_map, units, only, path + ".")
            continue
        if value is None:
            continue
        metric, unit = metric_map.get(path) or (path, (only or {}).get(path) or (units or {}).get(path))
        if not 0 < len(metric) <= 64 or not metric.isprintable():
            raise BadMessage(f"field {path[:70]!r}: metric names are 1-64 printable characters (metric_map renames)")
        if isinstance(value, bool):
            rows.append(ReadingRow(ts, sensor_id, metric, float(value), None, unit, received_at))
        elif isinstance(value, (int, float)):
            v = float(value)
            if not math.isfinite(v):
                raise BadMessage(f"field {path!r} must be finite")
            rows.append(ReadingRow(ts, sensor_id, metric, v, None, unit, received_at))
        else:
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            if len(text) > MAX_TEXT or not text.isprintable():
                raise BadMessage(f"field {path!r}: text longer than {MAX_TEXT} characters or not printable")
            rows.append(ReadingRow(ts, sensor_id, metric, None, text, unit, received_at))
    return rows
