"""Request and response models of the REST API (they make the OpenAPI document complete).

Response models of broker- or registry-shaped objects allow extra members: the MQTT contract may gain
fields without breaking API clients. Every limit (waypoints, note length, ...) is declared here so the
OpenAPI document states it and a violation is a 422 naming the field.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol import topics

MAX_WAYPOINTS = 200
DEFAULT_SPEED_MPS = 10.0
MIN_SPEED_MPS = 0.5  # slower "flights" would put their times centuries out (and past the calendar)


class Problem(BaseModel):
    """Every 4xx/5xx body: `detail` says what was wrong (a string, or FastAPI's validation list)."""

    detail: str | list[dict[str, Any]]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Me(BaseModel):
    key_id: str
    role: Literal["viewer", "operator", "engineer", "admin"]
    owner: str | None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unavailable"]
    mqtt: Literal["connected", "disconnected"]


class ZoneProperties(Open):
    id: str
    name: str
    kind: str
    lower_m: float
    upper_m: float | None = Field(description="null: no upper limit")
    alt_ref: str
    state: Literal["active", "suspended", "inactive"]


class ZoneFeature(Open):
    type: Literal["Feature"]
    id: str
    geometry: dict[str, Any]
    properties: ZoneProperties


class ZoneCollection(Open):
    type: Literal["FeatureCollection"]
    features: list[ZoneFeature]


class ZoneImportProblem(BaseModel):
    """One problem of one published feature and what the import did (airspace.formats.report)."""

    index: int = Field(description="the feature's position in the document")
    id: Any = Field(description="the feature's published identifier")
    field: str = Field(description="path of the member at fault, e.g. geometry[0].horizontalProjection")
    problem: str
    action: Literal["repaired", "skipped"] = Field(description="repaired: imported as `repair` says; skipped: not "
                                                               "imported")
    repair: str | None = None
    area_published_m2: float | None = None
    area_imported_m2: float | None = None
    area_changed_m2: float | None = None


class ZoneImportReport(BaseModel):
    format: str
    features: int = Field(description="features in the document")
    zones: int = Field(description="zones imported (a feature with several volumes gives one per volume)")
    repaired: int = Field(description="features imported repaired")
    skipped: int = Field(description="features not imported")
    problems: list[ZoneImportProblem]


class ZoneUploadResult(BaseModel):
    format: str
    stored: int
    deactivated: list[str]
    active_zones: int
    published: bool = Field(description="the new zone set went out on {root}/control/zones")
    report: ZoneImportReport | None = None
    kept: list[str] = Field(default_factory=list, description="with replace: stored zones of skipped features, "
                                                              "kept as they were")


class ZoneState(Open):
    zone_id: str
    state: Literal["active", "suspended"]
    reason: str
    by: str
    at: str


class UavState(Open):
    uav_id: str
    lon: float | None = None
    lat: float | None = None
    ts: str | None = None


class TrackPoint(Open):
    ts: str
    lon: float
    lat: float
    alt_m: float
    alt_ref: str


class Track(BaseModel):
    uav_id: str
    start: str
    end: str
    points: list[TrackPoint]


class Ack(BaseModel):
    by: str = Field(description="key id of who acknowledged")
    at: str
    note: str | None


class AckIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)


class AckResult(BaseModel):
    event_id: str
    ack: Ack
    created: bool = Field(description="false when the event had been acknowledged already (first ack kept)")


class Event(BaseModel):
    id: str
    kind: str
    uav_id: str
    zone_id: str | None
    ts: str
    detail: dict[str, Any]
    ack: Ack | None
    description: str | None = Field(default=None, description="what happened, in the caller's language "
                                                                "(Accept-Language: zh-CN or en)")


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page; null at the end")


class Device(Open):
    device_id: str
    kind: str
    owner: str | None = None


class SensorLatest(Open):
    sensor_id: str
    ts: str | None = None
    values: dict[str, Any] = {}


class Reading(BaseModel):
    ts: str
    metric: str
    value: float | None
    vtext: str | None
    unit: str | None


class ReadingBucket(BaseModel):
    bucket: str
    metric: str
    avg: float | None
    min: float | None
    max: float | None
    n: int
    unit: str | None


class Readings(BaseModel):
    sensor_id: str
    start: str
    end: str
    bucket_s: int | None
    storage: str = Field(description="timescaledb (time_bucket) or postgresql (date_bin)")
    readings: list[Reading] = Field(description="raw readings (without bucket_s)")
    buckets: list[ReadingBucket] = Field(description="aggregates per bucket and metric (with bucket_s)")


class WaypointIn(BaseModel):
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    alt_m: float = Field(ge=-500, le=10000, allow_inf_nan=False)
    t: datetime | None = Field(default=None, description="with a UTC offset; give it for every waypoint or none")


class ClearanceRequest(BaseModel):
    uav_id: str | None = Field(default=None, pattern=f"^{topics.ID_PATTERN}$",
                               description="required for operators: one of their drones")
    alt_ref: Literal["AGL", "AMSL", "WGS84"] = "AGL"
    waypoints: list[WaypointIn] = Field(min_length=2, max_length=MAX_WAYPOINTS)
    departure: datetime | None = Field(default=None, description="untimed waypoints: departure time (default now)")
    speed_mps: float | None = Field(default=None, ge=MIN_SPEED_MPS, le=100, allow_inf_nan=False,
                                    description=f"untimed waypoints: ground speed (default {DEFAULT_SPEED_MPS:g} m/s)")
    ua_class: Literal["micro", "light", "small", "medium", "large"] | None = None


class ClearanceResponse(BaseModel):
    decision: Literal["approved", "denied"]
    reasons: list[dict[str, Any]]
    suggestions: list[dict[str, Any]]
    clearance_id: str
    uav_id: str | None
    start_time: str
    end_time: str
    route: list[dict[str, Any]] = Field(description="the waypoints with alt_amsl and time")
    zones: list[str] = Field(description="zones needing clearance the route passes through")
    published: bool = Field(description="an approved clearance went out on {root}/control/clearance/{uav_id}")
    source: dict[str, Any] | None = Field(default=None, description="route files: what was read (format, file, "
                                                                    "waypoints, alt_ref and where it came from, speeds)")


class Clearance(BaseModel):
    id: str
    created_at: str
    uav_id: str | None
    owner: str | None
    requested_by: str | None
    decision: Literal["approved", "denied", "cancelled", "superseded"]
    alt_ref: str
    route: list[dict[str, Any]]
    start_time: str | None
    end_time: str | None
    ua_class: str | None
    reasons: list[dict[str, Any]]
    suggestions: list[Any]
    superseded_by: str | None = Field(default=None, description="decision `superseded`: the drone's later "
                                                                "approval that replaced this one")


class DeadLetter(BaseModel):
    id: int
    topic: str
    received_at: str
    reason: str
    payload: str
    payload_base64: str
