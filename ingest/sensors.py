"""Urban sensor readings: SenML packs (RFC 8428) and the compact {"ts", "values": {...}} form.

Every metric is stored as it comes, known to the registry or not (a new firmware's metric is data, not an
error); numbers and booleans (as 1/0) go to `value`, SenML strings and data to `vtext`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .validation import EARLIEST, MAX_FUTURE, BadMessage, check_time, load_json, number, string, timestamp

MAX_RECORDS = 5000
SENML_RELATIVE_LIMIT = 2**28  # RFC 8428 4.5.3: smaller times are relative to now


@dataclass(frozen=True, slots=True)
class ReadingRow:
    ts: datetime
    sensor_id: str
    metric: str
    value: float | None
    vtext: str | None
    unit: str | None
    received_at: datetime


def parse_reading(sensor_id: str, payload: bytes, received_at: datetime, max_bytes: int,
                  fast: bool = True) -> list[ReadingRow]:
    """The readings of one message. A SenML pack of plain numeric records takes the fast path
    (_fast_senml); anything else, or fast=False (the reference it must agree with), goes record by
    record through the checks, which give the dead-letter reason."""
    doc = load_json(payload, max_bytes)
    if isinstance(doc, list):
        rows = _fast_senml(sensor_id, doc, received_at) if fast else None
        if rows is None:
            rows = _senml(sensor_id, doc, received_at)
    elif isinstance(doc, dict) and "values" in doc:
        rows = _compact(sensor_id, doc, received_at)
    else:
        raise BadMessage("sensor reading must be a SenML array or an object with 'values'")
    if not rows:
        raise BadMessage("sensor reading carries no values")
    return rows


_PLAIN_KEYS = frozenset(("bn", "bt", "bu", "n", "v", "t", "u"))
_METRICS: dict[tuple[str, str], str] = {}  # (base name, name) -> metric, for names that pass _check_name


def _fast_senml(sensor_id: str, records: list, received_at: datetime) -> list[ReadingRow] | None:
    """A pack of plain numeric records (keys among bn bt bu n v t u, well-typed, in range): its rows as
    _senml would make them; None when anything else is in it, and then _senml decides with the reason."""
    if len(records) > MAX_RECORDS:
        return None
    base_name, base_time, base_unit = "", 0.0, None
    rows = []
    limit = received_at + MAX_FUTURE
    for rec in records:
        if type(rec) is not dict or not rec.keys() <= _PLAIN_KEYS:
            return None
        if "bn" in rec:
            base_name = rec["bn"]
            if type(base_name) is not str or len(base_name) > 256 or not base_name.isprintable():
                return None
        if "bt" in rec:
            base_time = rec["bt"]
            if type(base_time) is not float and type(base_time) is not int:
                return None
        if "bu" in rec:
            base_unit = rec["bu"]
            if type(base_unit) is not str or len(base_unit) > 32 or not base_unit.isprintable():
                return None
        value = rec.get("v")
        if type(value) is not float and type(value) is not int:
            return None  # a base-only record, a missing or odd value: the checked path
        name = rec.get("n", "")
        metric = _METRICS.get((base_name, name)) if type(name) is str else None
        if metric is None:
            if type(name) is not str or len(name) > 256 or not name.isprintable():
                return None
            metric = (base_name + name).rsplit(":", 1)[-1] if base_name.startswith("urn:") else base_name + name
            if not 0 < len(metric) <= 64 or not metric.isprintable():
                return None
            if len(_METRICS) >= 4096:
                _METRICS.clear()
            _METRICS[(base_name, name)] = metric
        t = rec.get("t", 0.0)
        if type(t) is not float and type(t) is not int:
            return None
        t = base_time + float(t)
        try:
            if -SENML_RELATIVE_LIMIT < t < SENML_RELATIVE_LIMIT:
                ts = received_at + timedelta(seconds=t)
            elif SENML_RELATIVE_LIMIT <= t < 253402300800.0:  # up to the year 9999
                ts = datetime.fromtimestamp(t, tz=timezone.utc)
            else:  # NaN, infinities, negative or far times: the checked path
                return None
        except (OverflowError, OSError, ValueError):
            return None
        if ts < EARLIEST or ts > limit:
            return None
        unit = rec.get("u")
        if unit is None:
            unit = base_unit
        elif type(unit) is not str or len(unit) > 32 or not unit.isprintable():
            return None
        value = float(value) + 0.0  # as _senml_value adds the base value 0.0 (so -0.0 becomes 0.0)
        if not -1e308 <= value <= 1e308:  # NaN and infinities
            return None
        rows.append(ReadingRow(ts, sensor_id, metric, value, None, unit, received_at))
    return rows


def _compact(sensor_id: str, doc: dict, received_at: datetime) -> list[ReadingRow]:
    ts = timestamp(doc["ts"], received_at) if doc.get("ts") is not None else received_at
    values, units = doc["values"], doc.get("units") or {}
    if not isinstance(values, dict) or not isinstance(units, dict):
        raise BadMessage("'values' (and 'units') must be objects of name: number")
    if len(values) > MAX_RECORDS:
        raise BadMessage(f"more than {MAX_RECORDS} values")
    rows = []
    for name in values:
        _check_name(name)
        flag = values[name]  # booleans (a cover open, a lamp on) as 1/0, like SenML's vb
        value = float(flag) if isinstance(flag, bool) else number(values, name, required=True)
        unit = units.get(name)
        rows.append(ReadingRow(ts, sensor_id, name, value, None,
                               None if unit is None else string(unit, f"units.{name}", 32), received_at))
    return rows


def _senml(sensor_id: str, records: list, received_at: datetime) -> list[ReadingRow]:
    if len(records) > MAX_RECORDS:
        raise BadMessage(f"more than {MAX_RECORDS} SenML records")
    base_name, base_time, base_unit, base_value = "", 0.0, None, 0.0
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise BadMessage(f"SenML record {i} is not an object")
        try:
            if "bn" in rec:
                base_name = string(rec["bn"], "bn", 256)
            base_time = number(rec, "bt") if "bt" in rec else base_time
            base_unit = string(rec["bu"], "bu", 32) if rec.get("bu") is not None else base_unit
            base_value = number(rec, "bv") if "bv" in rec else base_value
            name = string(rec.get("n", ""), "n", 256)
            metric = (base_name + name).rsplit(":", 1)[-1] if base_name.startswith("urn:") else base_name + name
            value, vtext = _senml_value(rec, base_value)
            if value is None and vtext is None:
                if any(k in rec for k in ("n", "v", "vs", "vb", "vd", "s")):
                    raise BadMessage("record has no value (v, vs, vb, vd or s)")
                continue  # a base-only record
            _check_name(metric)
            t = base_time + (number(rec, "t") or 0.0)
            ts = _senml_time(t, received_at)
            unit = string(rec["u"], "u", 32) if rec.get("u") is not None else base_unit
            rows.append(ReadingRow(ts, sensor_id, metric, value, vtext, unit, received_at))
        except BadMessage as exc:
            raise BadMessage(f"SenML record {i}: {exc}") from None
    return rows


def _senml_value(rec: dict, base_value: float) -> tuple[float | None, str | None]:
    if "v" in rec:
        return number(rec, "v", required=True) + base_value, None
    if "s" in rec:
        return number(rec, "s", required=True), None
    if "vb" in rec:
        if not isinstance(rec["vb"], bool):
            raise BadMessage("'vb' must be true or false")
        return float(rec["vb"]), None
    for key in ("vs", "vd"):
        if key in rec:
            return None, string(rec[key], key, 1024)
    return None, None


def _senml_time(t: float, received_at: datetime) -> datetime:
    if not math.isfinite(t):
        raise BadMessage("time must be finite")
    if abs(t) < SENML_RELATIVE_LIMIT:
        return check_time(received_at + timedelta(seconds=t), received_at)
    try:
        ts = datetime.fromtimestamp(t, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise BadMessage(f"time {t!r} is not usable") from None
    return check_time(ts, received_at)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= 64 or not name.isprintable():
        raise BadMessage(f"metric name {str(name)[:70]!r} must be 1-64 printable characters")
