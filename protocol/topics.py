"""Topic names of the MQTT contract, built and parsed in one place so every part agrees.

Inbound (devices -> Skylane):
  {root}/uav/{uav_id}/telemetry        drone position fixes (JSON object, or a JSON array of them)
  {root}/sensor/{sensor_id}/reading    SenML (RFC 8428) pack or compact {"ts", "values": {...}}
  {root}/device/{device_id}/status     retained "online" / "offline" (last will)
  {root}/obs/{source}/{track_id}       surveillance observations (ingest.rows.ObservationRow.to_dict(), or an
                                       array of them): ADS-B bridges, other surveillance sources
  {root}/rid/{receiver_id}             Remote ID broadcasts a receiver picked up (ingest/dialects/remoteid.py)
  {root}/mavlink/{link}/{sysid}        the MAVLink bridge's notice of a vehicle no registry entry maps
                                       (ingest/dialects/mavlink.py: a dead letter and unregistered_device)
Outbound (Skylane -> consumers):
  {root}/events/{kind}/{uav_id}        airspace events
  {root}/state/uav/{uav_id}            latest position of a UAV (retained)
  {root}/state/sensor/{sensor_id}      latest reading of a sensor (retained)
  {root}/state/traffic/{track_id}      latest state of a fused aircraft track (retained; empty: track dropped)
Control (operators, API and ingest -> every ingest worker; retained, QoS 1, no shared subscription):
  {root}/control/zones                 the whole zone set (internal GeoJSON FeatureCollection)
  {root}/control/zone/{zone_id}        a zone's run-time state {"state": "active"|"suspended", "reason",
                                       "by", "at", optional "sensor_id", "metric", "value", "reading_ts"}
  {root}/control/clearance/{uav_id}    the UAV's approved clearance (airspace.separation.ApprovedClearance
                                       .to_dict()); an empty retained payload withdraws it
"""
from __future__ import annotations

import zlib

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

DEFAULT_ROOT = "skylane/v1"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
ID_PATTERN = _ID.pattern  # for API parameters


@dataclass(frozen=True, slots=True)
class TopicRef:
    """A parsed inbound topic: what kind of message it carries and for which device."""

    kind: str  # "telemetry" | "reading" | "status"
    device_id: str


class TopicError(ValueError):
    """The topic does not match the contract; the message goes to the dead letters."""


def valid_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))


MAX_ZONE_ID = 100


def overlaps(root: str, other: str) -> bool:
    """Whether two topic roots share topics (one is the other, or lies under it)."""
    return root == other or root.startswith(other + "/") or other.startswith(root + "/")


def zone_id_problem(value: object) -> str | None:
    """Why `value` cannot be a zone id, or None. Zone ids come from authorities' files (spaces, accents, '#',
    '/' occur), so they are freer than device ids: printable, at most MAX_ZONE_ID characters (in topics they
    are encoded by zone_level)."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a non-empty string, got {value!r}"
    if len(value) > MAX_ZONE_ID:
        return f"longer than {MAX_ZONE_ID} characters"
    if not value.isprintable():
        return f"{value[:40]!r} contains a control character"
    return None


def telemetry(root: str, uav_id: str) -> str:
    return f"{root}/uav/{uav_id}/telemetry"


def reading(root: str, sensor_id: str) -> str:
    return f"{root}/sensor/{sensor_id}/reading"


def status(root: str, device_id: str) -> str:
    return f"{root}/device/{device_id}/status"


def event(root: str, kind: str, uav_id: str) -> str:
    return f"{root}/events/{kind}/{uav_id}"


def uav_state(root: str, uav_id: str) -> str:
    return f"{root}/state/uav/{uav_id}"


def sensor_state(root: str, sensor_id: str) -> str:
    return f"{root}/state/sensor/{sensor_id}"


def traffic_state(root: str, track_id: str) -> str:
    """{root}/state/traffic/{track_id}: one track of the air picture (airspace.traffic), e.g. icao:780a3b."""
    return f"{root}/state/traffic/{track_id}"


def control_zones(root: str) -> str:
    return f"{root}/control/zones"


def control_zone(root: str, zone_id: str) -> str:
    """{root}/control/zone/{zone id as one topic level: see zone_level}."""
    return f"{root}/control/zone/{zone_level(zone_id)}"


def control_zone_filter(root: str) -> str:
    """Every zone's control topic (a subscription)."""
    return f"{root}/control/zone/+"


def zone_level(zone_id: str) -> str:
    """A zone id as one topic level. Zone ids come from authorities' files and may hold '/', '+' or '#' (which a
    topic level cannot): those and '%' are percent-encoded, everything else stays readable."""
    return zone_id.replace("%", "%25").replace("/", "%2F").replace("+", "%2B").replace("#", "%23")


def zone_id_of_level(level: str) -> str:
    """The zone id of a topic level made by zone_level."""
    return unquote(level)


def control_clearance(root: str, uav_id: str) -> str:
    return f"{root}/control/clearance/{uav_id}"


def control_registry(root: str) -> str:
    """Announces that the device registry changed (ingest reloads it from the store)."""
    return f"{root}/control/registry"


def control_filters(root: str) -> list[str]:
    """Control subscriptions: every ingest worker takes all of them (never in a share group)."""
    return [control_zones(root), f"{root}/control/zone/+", f"{root}/control/clearance/+", control_registry(root)]


@dataclass(frozen=True, slots=True)
class ControlRef:
    """A parsed control topic: "zones" or "registry" (id None), "zone" (zone id) or "clearance" (UAV id)."""

    kind: str
    target: str | None


@lru_cache(maxsize=1 << 16)
def parse_control(root: str, topic: str) -> ControlRef | None:
    """A control topic parsed; None when the topic is not under {root}/control/; TopicError if malformed.

    Cached per (root, topic), like parse_inbound: a device sends on the same topic all day (errors are
    not cached, so a stream of distinct bad topics costs time, never memory)."""
    prefix = f"{root}/control/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    if parts == ["zones"]:
        return ControlRef("zones", None)
    if parts == ["registry"]:
        return ControlRef("registry", None)
    if len(parts) == 2 and parts[0] == "zone":
        zone_id = zone_id_of_level(parts[1])
        if (problem := zone_id_problem(zone_id)) is not None:
            raise TopicError(f"invalid zone id: {problem}")
        return ControlRef("zone", zone_id)
    if len(parts) == 2 and parts[0] == "clearance":
        if not valid_id(parts[1]):
            raise TopicError(f"invalid clearance id {parts[1][:80]!r} (1-64 of A-Z a-z 0-9 _ . : -, "
                             "starting with a letter or digit)")
        return ControlRef("clearance", parts[1])
    raise TopicError("expected {root}/control/zones, {root}/control/zone/<id> or {root}/control/clearance/<uav_id>")


OBS_SOURCE = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def observation(root: str, source: str, track_id: str) -> str:
    """{root}/obs/{source}/{track_id}: one surveillance source's sightings of one aircraft (QoS 1)."""
    return f"{root}/obs/{source}/{track_id}"


def observation_filters(root: str) -> list[str]:
    """What an ingester subscribes to for observations (the worker that takes the unsharded topics)."""
    return [f"{root}/obs/#"]


@dataclass(frozen=True, slots=True)
class ObservationRef:
    """A parsed observation topic: the source (adsb, rid, ...) and its track id of the aircraft."""

    source: str
    track_id: str
    kind: str = "observation"


@lru_cache(maxsize=1 << 16)
def parse_observation(root: str, topic: str) -> ObservationRef | None:
    """An observation topic parsed; None when the topic is not under {root}/obs/; TopicError if malformed."""
    prefix = f"{root}/obs/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    if len(parts) != 2:
        raise TopicError("expected {root}/obs/<source>/<track_id>")
    if not OBS_SOURCE.fullmatch(parts[0]):
        raise TopicError(f"invalid observation source {parts[0][:40]!r} (1-32 of a-z 0-9 _ -, starting with a letter)")
    if not valid_id(parts[1]):
        raise TopicError(f"invalid track id {parts[1][:80]!r} (1-64 of A-Z a-z 0-9 _ . : -, starting with a letter "
                         "or digit)")
    return ObservationRef(parts[0], parts[1])


def remote_id(root: str, receiver_id: str) -> str:
    """{root}/rid/{receiver_id}: Remote ID broadcasts as one receiver picked them up (QoS 1)."""
    return f"{root}/rid/{receiver_id}"


def mavlink_unregistered(root: str, link_level: str, sysid: int) -> str:
    """{root}/mavlink/{link}/{sysid}: the MAVLink bridge's notice of a vehicle (link name as an id, system id) that
    no registry entry maps; ingest's `mavlink` dialect refuses it as unregistered (a dead letter and the
    `unregistered_device` event) or, once the registry maps it, takes its fix."""
    return f"{root}/mavlink/{link_level}/{sysid}"


def inbound_filters(root: str) -> list[str]:
    """Subscriptions an ingester needs."""
    return [f"{root}/uav/+/telemetry", f"{root}/sensor/+/reading", f"{root}/device/+/status"]


def outbound_filters(root: str) -> list[str]:
    """Subscriptions a live-feed server needs."""
    return [f"{root}/events/#", f"{root}/state/#"]


_SUFFIX = {"uav": "telemetry", "sensor": "reading", "device": "status"}


@lru_cache(maxsize=1 << 16)
def parse_inbound(root: str, topic: str) -> TopicRef:
    """Parse an inbound topic or raise TopicError with the reason (cached per topic: TopicRef is frozen)."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic outside root {root!r}")
    parts = topic[len(prefix):].split("/")
    if len(parts) != 3:
        raise TopicError("expected {root}/<uav|sensor|device>/<id>/<telemetry|reading|status>")
    family, device_id, suffix = parts
    if _SUFFIX.get(family) != suffix:
        raise TopicError(f"unknown topic shape {family}/.../{suffix}")
    if not valid_id(device_id):
        raise TopicError(f"invalid device id {device_id[:80]!r} (1-64 of A-Z a-z 0-9 _ . : -, "
                         "starting with a letter or digit)")
    return TopicRef(kind=suffix, device_id=device_id)


def remap(topic: str, old_root: str, new_root: str) -> str:
    """Move a topic under another root (replays never write into live topics)."""
    if topic == old_root or topic.startswith(old_root + "/"):
        return new_root + topic[len(old_root):]
    return topic


# Topic sharding (ingest/sharding.py has the worker side): a device that wants to be spread over ingest workers
# publishes under {root}/shard/{s}/..., s = shard_of(device id). Part of the device contract, so fixed.
SHARDS = 64


def shard_of(device_id: str, shards: int = SHARDS) -> int:
    """The device's shard: CRC-32 of its id (stable across processes, languages and restarts)."""
    return zlib.crc32(device_id.encode()) % shards


def sharded_topic(root: str, topic: str, shards: int = SHARDS) -> str:
    """`{root}/fam/{id}/suffix` -> `{root}/shard/{s}/fam/{id}/suffix` (what a sharding device publishes)."""
    rest = topic[len(root) + 1:]
    return f"{root}/shard/{shard_of(rest.split('/', 2)[1], shards)}/{rest}"
