"""Drone telemetry: one fix per message (or a JSON array of fixes), validated and normalised."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from airspace.events import rfc3339

from .validation import BadMessage, load_json, number, text, timestamp

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


def _fix(uav_id: str, obj: object, received_at: datetime) -> TelemetryRow:
    if not isinstance(obj, dict):
        raise BadMessage(f"telemetry must be a JSON object, got {type(obj).__name__}")
    ts = timestamp(obj["ts"], received_at) if obj.get("ts") is not None else received_at
    seq = obj.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63):
        raise BadMessage("field 'seq' must be a non-negative integer")
    alt_ref = text(obj, "alt_ref", choices=ALT_REFS) or "AGL"
    return TelemetryRow(
        ts=ts, uav_id=uav_id, seq=seq,
        lon=number(obj, "lon", lo=-180, hi=180, required=True),
        lat=number(obj, "lat", lo=-90, hi=90, required=True),
        alt_m=number(obj, "alt_m", lo=-500, hi=20000, required=True),
        alt_ref=alt_ref,
        speed_mps=number(obj, "speed_mps", lo=0, hi=500),
        track_deg=number(obj, "track_deg", lo=0, hi=360),
        vspeed_mps=number(obj, "vspeed_mps", lo=-200, hi=200),
        battery_pct=number(obj, "battery_pct", lo=0, hi=100),
        status=text(obj, "status", choices=STATUSES),
        clearance_id=text(obj, "clearance_id"),
        received_at=received_at,
    )
