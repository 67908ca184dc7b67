"""The device registry's records: what each drone and sensor is, where, whose, and how often it reports.

Records come from a registry file (JSON list) or from the simulated fleet; the composition root stores
them (storage.catalog.register_devices). The ingester keeps last-seen and online state beside them.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from protocol import topics

from .fleet import DroneSpec, SensorSpec

DEVICE_KINDS = ("uav", "sensor")


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    kind: str
    name: str | None = None
    owner: str | None = None
    sensor_kind: str | None = None
    lon: float | None = None
    lat: float | None = None
    units: dict[str, str] = field(default_factory=dict)
    expected_interval_s: float | None = None
    category: str | None = None  # traffic | energy | municipal | environment | weather (devices.fleet.CATEGORY)
    metrics: list[str] = field(default_factory=list)  # what it reports (units may omit unitless ones)
    properties: dict[str, Any] = field(default_factory=dict)  # e.g. {"corridor_id": "C1"} for a corridor mast
    name_zh: str | None = None  # the name in Chinese (stored in properties.name_zh; the API and dashboard show it)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        name_zh = row.pop("name_zh")
        if name_zh:
            row["properties"] = {**row["properties"], "name_zh": name_zh}
        return row


def fleet_records(drones: list[DroneSpec], sensors: list[SensorSpec], owner: str = "Skylane demo fleet",
                  hz: float = 1.0) -> list[DeviceRecord]:
    """Complete registry records of the simulated fleet (what `skylane simulate --register` stores)."""
    records = [DeviceRecord(d.uav_id, "uav", f"{d.uav_id} ({d.corridor_id}, {d.behaviour})", owner,
                            expected_interval_s=1.0 / hz, properties={"corridor_id": d.corridor_id})
               for d in drones]
    records += [DeviceRecord(s.sensor_id, "sensor", _sensor_name(s), owner, s.kind, s.lon, s.lat,
                             {name: m[0] for name, m in s.metrics.items() if m[0]}, s.interval_s, s.category,
                             list(s.metrics), dict(s.properties)) for s in sensors]
    return records


def _sensor_name(s: SensorSpec) -> str:
    where = s.properties.get("corridor_id") or s.properties.get("vertiport_id")
    return f"{s.kind.replace('_', ' ')} sensor {s.sensor_id}" + (f" on {where}" if where else "")


def parse_registry(doc: Any) -> list[DeviceRecord]:
    """Registry file contents (a JSON list of objects) as records; ValueError names the entry and field."""
    if not isinstance(doc, list):
        raise ValueError("a registry file is a JSON list of device objects")
    records = [_entry(i, item) for i, item in enumerate(doc)]
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if rec.device_id in seen:
            raise ValueError(f"entry {i} ({rec.device_id!r}): field 'device_id': duplicate")
        seen.add(rec.device_id)
    return records


def _entry(i: int, item: Any) -> DeviceRecord:
    if not isinstance(item, dict):
        raise ValueError(f"entry {i}: not an object")

    def fail(fld: str, problem: str) -> NoReturn:
        raise ValueError(f"entry {i} ({item.get('device_id')!r}): field {fld!r}: {problem}")

    unknown = set(item) - set(DeviceRecord.__dataclass_fields__)
    if unknown:
        fail(sorted(unknown)[0], "unknown field")
    dev_id = item.get("device_id")
    if not isinstance(dev_id, str) or not topics.valid_id(dev_id):
        fail("device_id", "1-64 of A-Z a-z 0-9 _ . : -, starting with a letter or digit")
    if item.get("kind") not in DEVICE_KINDS:
        fail("kind", f"one of {DEVICE_KINDS}")
    for key, lo, hi in (("lon", -180, 180), ("lat", -90, 90), ("expected_interval_s", 0.001, 86400 * 7)):
        v = item.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                              or not lo <= v <= hi):
            fail(key, f"a number in [{lo}, {hi}]")
    for key in ("name", "name_zh", "owner", "sensor_kind", "category"):
        if item.get(key) is not None and not isinstance(item[key], str):
            fail(key, "a string")
    units = item.get("units", {})
    if not isinstance(units, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in units.items()):
        fail("units", "an object of metric name: unit")
    metrics = item.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) and 0 < len(m) <= 64 for m in metrics):
        fail("metrics", "a list of metric names (1-64 characters)")
    props = item.get("properties", {})
    if not isinstance(props, dict):
        fail("properties", "an object")
    for key, problem in vendor_property_problems(props):
        fail(f"properties.{key}", problem)
    # the metrics are the union of those named and those given a unit, in the order given
    metrics = list(dict.fromkeys([*metrics, *units]))
    return DeviceRecord(**{**item, "units": units, "metrics": metrics, "properties": props})


# Vendors' identifiers of a device (ingest/dialects read them through RegistryView; protocol/brokerauth gives DJI
# serial numbers their broker accounts) and how a vendor's decoded fields become metrics.
_HEX16 = re.compile(r"[0-9A-Fa-f]{16}")
_MAVLINK = re.compile(r"[A-Za-z0-9_.:/-]{1,80}/([0-9]{1,3})")


def vendor_property_problems(props: dict[str, Any]) -> list[tuple[str, str]]:
    """(property, problem) for each vendor property that is malformed: `dji_sn` (a DJI serial number, also the
    gateway's MQTT user name), `dji_gateway` (the serial number(s) of the RC or dock that relays this aircraft),
    `dev_eui` (16 hex digits), `tts_device_id` ("{application}/{device}" or the device id), `mavlink`
    ("{link}/{system id}", e.g. "udp:14550/1"), `metric_map` ({vendor field: [metric, unit or null]})."""
    out = []
    sn = props.get("dji_sn")
    if sn is not None and (not isinstance(sn, str) or not topics.valid_id(sn) or ":" in sn):
        out.append(("dji_sn", "a DJI serial number (letters, digits, _ . -)"))
    gw = props.get("dji_gateway")
    if gw is not None and not all(isinstance(g, str) and topics.valid_id(g) and ":" not in g
                                  for g in ([gw] if isinstance(gw, str) else gw if isinstance(gw, list) else [None])):
        out.append(("dji_gateway", "a gateway's DJI serial number, or a list of them"))
    if gw is not None and sn is None:
        out.append(("dji_gateway", "needs the aircraft's own dji_sn"))
    eui = props.get("dev_eui")
    if eui is not None and (not isinstance(eui, str) or not _HEX16.fullmatch(eui)):
        out.append(("dev_eui", "16 hex digits"))
    tts = props.get("tts_device_id")
    if tts is not None and (not isinstance(tts, str) or not 0 < len(tts) <= 128 or not tts.isprintable()
                            or "+" in tts or "#" in tts):
        out.append(("tts_device_id", "'{application}/{device}' or the device id"))
    mav = props.get("mavlink")
    match = _MAVLINK.fullmatch(mav) if isinstance(mav, str) else None
    if mav is not None and (match is None or not 1 <= int(match.group(1)) <= 255):
        out.append(("mavlink", "'{link}/{system id 1-255}', e.g. 'udp:14550/1'"))
    fields = props.get("metric_map")
    if fields is not None and (not isinstance(fields, dict) or not all(
            isinstance(v, list) and 1 <= len(v) <= 2 and isinstance(v[0], str) and 0 < len(v[0]) <= 64
            and v[0].isprintable() and (len(v) == 1 or v[1] is None or isinstance(v[1], str)) for v in fields.values())):
        out.append(("metric_map", "an object of vendor field: [metric, unit or null]"))
    return out
