"""Surveillance observations on `{root}/obs/{source}/{track_id}`: validated into ObservationRows.

The payload is one `ObservationRow.to_dict()` object or a JSON array of up to 1,000 of them (docs/mqtt-contract.md).
`source` and `track_id` may be left out (the topic's are taken); when given they must equal the topic's, so a
publisher cannot write one aircraft's sightings under another's track. Every check has a reason, which makes
the dead letter's (ingest.validation.BadMessage).
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from protocol import topics

from .rows import ALT_SOURCES, ObservationRow
from .telemetry import ALT_REFS
from .validation import BadMessage, load_json, number, string, text, timestamp

MAX_OBSERVATIONS_PER_MESSAGE = 1000
T = TypeVar("T")
MAX_IDENTITY_KEYS = 32
MAX_IDENTITY_TEXT = 256
KNOWN_FIELDS = frozenset(("ts", "source", "track_id", "lon", "lat", "alt_m", "alt_ref", "alt_source", "speed_mps",
                          "track_deg", "vspeed_mps", "receiver_id", "rssi", "identity", "received_at"))


def parse_observations(ref: topics.ObservationRef, payload: bytes, received_at: datetime,
                       max_bytes: int) -> list[ObservationRow]:
    return each_item(load_json(payload, max_bytes), MAX_OBSERVATIONS_PER_MESSAGE, "observation",
                     lambda item: _observation(ref, item, received_at))


def each_item(doc: object, max_items: int, noun: str, parse: Callable[[object], T]) -> list[T]:
    """`parse` over a JSON object or each of an array of at most `max_items`; a failure names the item."""
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise BadMessage(f"empty {noun} array")
    if len(items) > max_items:
        raise BadMessage(f"more than {max_items} {noun}s in one message")
    rows = []
    for i, item in enumerate(items):
        try:
            rows.append(parse(item))
        except BadMessage as exc:
            raise BadMessage(f"{noun} {i}: {exc}" if len(items) > 1 else str(exc)) from None
    return rows


def _observation(ref: topics.ObservationRef, obj: object, received_at: datetime) -> ObservationRow:
    if not isinstance(obj, dict):
        raise BadMessage("an observation must be a JSON object")
    unknown = sorted(k for k in obj if k not in KNOWN_FIELDS)
    if unknown:
        raise BadMessage(f"unknown field(s) {', '.join(repr(k)[:40] for k in unknown[:5])}")
    for key, want in (("source", ref.source), ("track_id", ref.track_id)):
        if obj.get(key) is not None and obj[key] != want:
            raise BadMessage(f"field {key!r}={str(obj[key])[:64]!r} does not match the topic's {want!r}")
    if "ts" not in obj:
        raise BadMessage("missing field 'ts'")
    ts = timestamp(obj["ts"], received_at)
    lat = number(obj, "lat", lo=-90, hi=90, required=True)
    lon = number(obj, "lon", lo=-180, hi=180, required=True)
    alt = number(obj, "alt_m", lo=-1000, hi=100_000)
    alt_ref = text(obj, "alt_ref", choices=ALT_REFS)
    alt_source = text(obj, "alt_source", choices=ALT_SOURCES)
    if alt is not None and alt_ref is None:
        raise BadMessage("field 'alt_m' needs 'alt_ref' (AGL, AMSL or WGS84)")
    if alt is None and (alt_ref is not None or alt_source is not None):
        raise BadMessage("fields 'alt_ref'/'alt_source' without 'alt_m'")
    receiver = obj.get("receiver_id")
    if receiver is not None and (not isinstance(receiver, str) or not topics.valid_id(receiver)):
        raise BadMessage("field 'receiver_id' must be 1-64 of A-Z a-z 0-9 _ . : -")
    return ObservationRow(
        ts, ref.source, ref.track_id, lon, lat, alt, alt_ref, alt_source,  # type: ignore[arg-type]
        number(obj, "speed_mps", lo=0, hi=2000), number(obj, "track_deg", lo=0, hi=360),
        number(obj, "vspeed_mps", lo=-500, hi=500), receiver, number(obj, "rssi", lo=-200, hi=100), received_at,
        _identity(obj.get("identity")))


def _identity(value: object) -> dict:
    """A flat JSON object of what the source says of the aircraft: at most 32 keys, scalar or short text values."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadMessage("field 'identity' must be a JSON object")
    if len(value) > MAX_IDENTITY_KEYS:
        raise BadMessage(f"field 'identity' has more than {MAX_IDENTITY_KEYS} keys")
    out = {}
    for key, v in value.items():
        string(key, "identity key", 64)
        if isinstance(v, str):
            out[key] = string(v, f"identity.{key}", MAX_IDENTITY_TEXT)
        elif v is None or isinstance(v, (bool, int)) or isinstance(v, float) and v == v and abs(v) != float("inf"):
            out[key] = v
        else:
            raise BadMessage(f"field 'identity.{key[:40]}' must be text, a number, a boolean or null")
    return out
