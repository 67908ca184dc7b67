"""Drone telemetry: one fix per message (or a JSON array of fixes), validated and normalised."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from operator import itemgetter

import orjson

from protocol.times import RFC3339, rfc3339

from .validation import (EARLIEST, MAX_FUTURE, BadMessage, check_time, load_json, number, text,
                         timestamp)

ALT_REFS = ("AGL", "AMSL", "WGS84")
STATUSES = ("Ground", "Airborne", "Emergency")
MAX_FIXES_PER_MESSAGE = 1000


@dataclass(frozen=True, slots=True)
class TelemetryRow:
    ts: datetime
    uav_id: str
    seq: int | None
    lon: float
    lat: float
    alt_m: float
    alt_ref: str
    speed_mps: float | None
    track_deg: float | None
    vspeed_mps: float | None
    battery_pct: float | None
    status: str | None
    clearance_id: str | None
    received_at: datetime

    def state(self) -> dict:
        """The JSON shape of the live position (state topic, /v1/uavs, /v1/live)."""
        return {"uav_id": self.uav_id, "ts": rfc3339(self.ts), "seq": self.seq, "lon": self.lon, "lat": self.lat,
                "alt_m": self.alt_m, "alt_ref": self.alt_ref, "speed_mps": self.speed_mps,
                "track_deg": self.track_deg, "vspeed_mps": self.vspeed_mps, "battery_pct": self.battery_pct,
                "status": self.status, "clearance_id": self.clearance_id}


def parse_telemetry(uav_id: str, payload: bytes, received_at: datetime, max_bytes: int) -> list[TelemetryRow]:
    """The fixes of one message. The usual well-formed shape takes the fast path (_fast_fix); whatever it
    does not accept goes through the field-by-field checks, which decide and give the dead-letter reason."""
    if 0 < len(payload) <= max_bytes:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return parse_telemetry_checked(uav_id, payload, received_at, max_bytes)
        if type(doc) is dict:
            row = _fast_fix(uav_id, doc, received_at)
            if row is not None:
                return [row]
        elif type(doc) is list and 0 < len(doc) <= MAX_FIXES_PER_MESSAGE:
            rows = [_fast_fix(uav_id, item, received_at) if type(item) is dict else None for item in doc]
            if None not in rows:
                return rows  # type: ignore[return-value]
        return _fixes(uav_id, doc, received_at)
    return parse_telemetry_checked(uav_id, payload, received_at, max_bytes)


def parse_telemetry_checked(uav_id: str, payload: bytes, received_at: datetime,
                            max_bytes: int) -> list[TelemetryRow]:
    """The reference parser, every field through the checks; the fast path must agree with it."""
    return _fixes(uav_id, load_json(payload, max_bytes), received_at)


def _fixes(uav_id: str, doc: object, received_at: datetime) -> list[TelemetryRow]:
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise BadMessage("empty telemetry array")
    if len(items) > MAX_FIXES_PER_MESSAGE:
        raise BadMessage(f"more than {MAX_FIXES_PER_MESSAGE} fixes in one message")
    rows = []
    for i, item in enumerate(items):
        try:
            rows.append(_fix(uav_id, item, received_at))
        except BadMessage as exc:
            raise BadMessage(f"fix {i}: {exc}" if len(items) > 1 else str(exc)) from None
    return rows


_TIMES: dict[str, datetime] = {}  # 'YYYY-MM-DDTHH:MM:SS[.fff]Z' -> datetime (a fleet shares each second)
_TIMES_MAX = 4096
_FIELDS = ("ts", "seq", "lon", "lat", "alt_m", "speed_mps", "track_deg", "vspeed_mps", "battery_pct", "alt_ref", "status",
           "clearance_id")
_ALL_FIELDS = itemgetter(*_FIELDS)


def _fast_fix(uav_id: str, obj: dict, received_at: datetime) -> TelemetryRow | None:
    """One fix in the usual shape, or None when anything is unusual (then _fix decides, with the reason).

    Accepts only what _fix accepts and builds the same row: a UTC 'Z' timestamp (parsed once per string),
    finite numbers in range (NaN fails every comparison, infinities the ranges), alt_ref and status in
    their canonical spelling, a short printable clearance id.
    """
    if len(obj) >= 12:  # every field present (the usual device shape): one C call takes them all
        try:
            raw, seq, lon, lat, alt, speed, track, vspeed, battery, ref, status, clearance = _ALL_FIELDS(obj)
        except KeyError:
            raw, seq, lon, lat, alt, speed, track, vspeed, battery, ref, status, clearance = map(obj.get, _FIELDS)
    else:
        raw, seq, lon, lat, alt, speed, track, vspeed, battery, ref, status, clearance = map(obj.get, _FIELDS)
    if raw is None:
        ts = received_at
    else:
        ts = _TIMES.get(raw) if type(raw) is str else None
        if ts is None:
            ts = _utc_z(raw)
            if ts is None:
                return None
        if ts < EARLIEST or ts > received_at + MAX_FUTURE:
            return None
    if seq is not None and (type(seq) is not int or not 0 <= seq < 2**63):
        return None
    if type(lon) is not float:
        if type(lon) is not int:
            return None
        lon = float(lon)
    if type(lat) is not float:
        if type(lat) is not int:
            return None
        lat = float(lat)
    if type(alt) is not float:
        if type(alt) is not int:
            return None
        alt = float(alt)
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0 and -500.0 <= alt <= 20000.0):
        return None
    if speed is not None:
        if type(speed) is not float:
            if type(speed) is not int:
                return None
            speed = float(speed)
        if not 0.0 <= speed <= 500.0:
            return None
    if track is not None:
        if type(track) is not float:
            if type(track) is not int:
                return None
            track = float(track)
        if not 0.0 <= track <= 360.0:
            return None
    if vspeed is not None:
        if type(vspeed) is not float:
            if type(vspeed) is not int:
                return None
            vspeed = float(vspeed)
        if not -200.0 <= vspeed <= 200.0:
            return None
    if battery is not None:
        if type(battery) is not float:
            if type(battery) is not int:
                return None
            battery = float(battery)
        if not 0.0 <= battery <= 100.0:
            return None
    if ref is None:
        ref = "AGL"
    elif type(ref) is not str or ref not in _CANONICAL_REFS:
        return None
    if status is not None and (type(status) is not str or status not in _CANONICAL_STATUSES):
        return None
    if clearance is not None and (type(clearance) is not str or len(clearance) > 64 or not clearance.isprintable()):
        return None
    return _row(ts, uav_id, seq, lon, lat, alt, ref, speed, track, vspeed, battery, status, clearance, received_at)


def _slot_setters() -> tuple:
    return tuple(getattr(TelemetryRow, name).__set__ for name in TelemetryRow.__dataclass_fields__)


(_s0, _s1, _s2, _s3, _s4, _s5, _s6, _s7, _s8, _s9, _s10, _s11, _s12, _s13) = _slot_setters()


def _row(ts: datetime, uav_id: str, seq: int | None, lon: float, lat: float, alt_m: float, alt_ref: str,
         speed: float | None, track: float | None, vspeed: float | None, battery: float | None, status: str | None,
         clearance: str | None, received_at: datetime, _new=object.__new__, _cls=TelemetryRow) -> TelemetryRow:
    """TelemetryRow(...) at half the cost: the frozen dataclass's __init__ goes through object.__setattr__
    per field; the slot descriptors (in field order) fill the same slots: an equal, equally frozen row."""
    row = _new(_cls)
    _s0(row, ts)
    _s1(row, uav_id)
    _s2(row, seq)
    _s3(row, lon)
    _s4(row, lat)
    _s5(row, alt_m)
    _s6(row, alt_ref)
    _s7(row, speed)
    _s8(row, track)
    _s9(row, vspeed)
    _s10(row, battery)
    _s11(row, status)
    _s12(row, clearance)
    _s13(row, received_at)
    return row


def _utc_z(value: object) -> datetime | None:
    """_time's direct form ('...Z', UTC, RFC 3339) parsed and remembered; None for any other value."""
    if type(value) is str and 20 <= len(value) <= 30 and value[-1] == "Z" and value[10] == "T":
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return None
        if ts.tzinfo is timezone.utc and RFC3339.fullmatch(value):
            if len(_TIMES) >= _TIMES_MAX:
                _TIMES.clear()
            _TIMES[value] = ts
            return ts
    return None


_REFS = {r.lower(): r for r in ALT_REFS}
_STATUSES = {st.lower(): st for st in STATUSES}
_CANONICAL_REFS = frozenset(ALT_REFS)  # exact spellings, so the row keeps the same string
_CANONICAL_STATUSES = frozenset(STATUSES)
_OPTIONAL = (("speed_mps", 0.0, 500.0), ("track_deg", 0.0, 360.0), ("vspeed_mps", -200.0, 200.0),
             ("battery_pct", 0.0, 100.0))


def _fix(uav_id: str, obj: object, received_at: datetime) -> TelemetryRow:
    """One fix. Common well-formed values take inline checks; anything else goes through the validation
    helpers, which give the precise reason (NaN fails every comparison, so it never passes a fast check)."""
    if not isinstance(obj, dict):
        raise BadMessage(f"telemetry must be a JSON object, got {type(obj).__name__}")
    get = obj.get
    raw_ts = get("ts")
    ts = received_at if raw_ts is None else _time(raw_ts, received_at)
    seq = get("seq")
    if seq is not None and (type(seq) is not int or not 0 <= seq < 2**63):
        raise BadMessage("field 'seq' must be a non-negative integer")
    lon, lat, alt = get("lon"), get("lat"), get("alt_m")
    lon = float(lon) if type(lon) in _NUM and -180.0 <= lon <= 180.0 else number(obj, "lon", lo=-180, hi=180,
                                                                                    required=True)
    lat = float(lat) if type(lat) in _NUM and -90.0 <= lat <= 90.0 else number(obj, "lat", lo=-90, hi=90,
                                                                                 required=True)
    alt = float(alt) if type(alt) in _NUM and -500.0 <= alt <= 20000.0 else number(obj, "alt_m", lo=-500, hi=20000,
                                                                                     required=True)
    opt = []
    for key, lo, hi in _OPTIONAL:
        v = get(key)
        opt.append(None if v is None else float(v) if type(v) in _NUM and lo <= v <= hi
                   else number(obj, key, lo=lo, hi=hi))
    ref = get("alt_ref")
    alt_ref = "AGL" if ref is None else (_REFS.get(ref.lower()) if type(ref) is str else None) \
        or text(obj, "alt_ref", choices=ALT_REFS)
    st = get("status")
    status = None if st is None else (_STATUSES.get(st.lower()) if type(st) is str else None) \
        or text(obj, "status", choices=STATUSES)
    clearance = get("clearance_id")
    if clearance is not None:
        clearance = text(obj, "clearance_id")
    return TelemetryRow(ts, uav_id, seq, lon, lat, alt, alt_ref, opt[0], opt[1], opt[2], opt[3], status, clearance,
                        received_at)


_NUM = (float, int)


def _time(value: object, received_at: datetime) -> datetime:
    """The usual 'YYYY-MM-DDTHH:MM:SS[.fff]Z' directly; every other form through validation.timestamp."""
    if type(value) is str and 20 <= len(value) <= 30 and value[-1] == "Z" and value[10] == "T":
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return timestamp(value, received_at)
        if ts.tzinfo is timezone.utc and RFC3339.fullmatch(value):
            return check_time(ts, received_at)
    return timestamp(value, received_at)

