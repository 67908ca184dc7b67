"""Urban sensor readings: SenML packs (RFC 8428) and the compact {"ts", "values": {...}} form.

Every metric is stored as it comes, known to the registry or not (a new firmware's metric is data, not an
error); numbers and booleans (as 1/0) go to `value`, SenML strings and data to `vtext`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .validation import BadMessage, check_time, load_json, number, string, timestamp

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


def parse_reading(sensor_id: str, payload: bytes, received_at: datetime, max_bytes: int) -> list[ReadingRow]:
    doc = load_json(payload, max_bytes)
    if isinstance(doc, list):
        rows = _senml(sensor_id, doc, received_at)
    elif isinstance(doc, dict) and "values" in doc:
        rows = _compact(sensor_id, doc, received_at)
    else:
        raise BadMessage("sensor reading must be a SenML array or an object with 'values'")
    if not rows:
        raise BadMessage("sensor reading carries no values")
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
