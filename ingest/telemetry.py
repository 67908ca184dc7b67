"""Drone telemetry: one fix per message (or a JSON array of fixes), validated and normalised."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from airspace.events import rfc3339

from .validation import RFC3339, BadMessage, check_time, load_json, number, text, timestamp

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
    doc = load_json(payload, max_bytes)
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


_REFS = {r.lower(): r for r in ALT_REFS}
_STATUSES = {st.lower(): st for st in STATUSES}
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
