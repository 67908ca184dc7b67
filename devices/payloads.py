"""Message bodies of the MQTT contract, built in one place so simulator and tests agree."""
from __future__ import annotations

from typing import Any

import orjson

from protocol.times import rfc3339

from .flight import Fix
from .sensors import Reading

ONLINE = b"online"
OFFLINE = b"offline"


def telemetry(fix: Fix, seq: int, epoch_s: float) -> dict[str, Any]:
    """One drone position fix (altitudes above ground; no clearance is simulated)."""
    return {
        "ts": rfc3339(epoch_s),
        "lat": fix.lat,
        "lon": fix.lon,
        "alt_m": fix.alt_m,
        "alt_ref": "AGL",
        "seq": seq,
        "speed_mps": fix.speed_mps,
        "track_deg": fix.track_deg,
        "vspeed_mps": fix.vspeed_mps,
        "battery_pct": fix.battery_pct,
        "status": fix.status,
        "clearance_id": None,
    }


def senml_pack(sensor_id: str, epoch_s: float, reading: Reading) -> list[dict[str, Any]]:
    """An RFC 8428 pack: base name and base time on the first record, one record per metric
    (booleans as "vb", without a unit)."""
    pack: list[dict[str, Any]] = []
    for name, (unit, value) in reading.items():
        rec: dict[str, Any] = {"n": name, "vb": value} if isinstance(value, bool) else {"n": name, "v": value}
        if unit:
            rec["u"] = unit
        pack.append(rec)
    if not pack:
        raise ValueError(f"{sensor_id}: a SenML pack needs at least one record")
    pack[0] = {"bn": f"urn:dev:skylane:{sensor_id}:", "bt": round(epoch_s, 3), **pack[0]}
    return pack


def compact(epoch_s: float, reading: Reading) -> dict[str, Any]:
    """The compact form {"ts", "values", "units"} (booleans as 0/1, as the ingester stores them)."""
    return {"ts": rfc3339(epoch_s),
            "values": {n: (int(v) if isinstance(v, bool) else v) for n, (_u, v) in reading.items()},
            "units": {n: u for n, (u, _v) in reading.items() if u}}


def encode(body: Any) -> bytes:
    return orjson.dumps(body)
