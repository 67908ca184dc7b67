"""InterUSS geospatial_map v1 automated-testing interface, so standard UTM test tooling (uss_qualifier)
can check Skylane's geo-awareness.

Mounted like InterUSS's mock_uss: `GET /geospatial_map/v1/status` and `POST /geospatial_map/v1/map/queries`.
Each check is a list of filter sets; a check is `Present` when some zone in force (suspended zones
excluded) matches every filter of at least one filter set:

- `volumes4d`: the volume's outline (circle or polygon) intersects the zone's outline, the altitude
  ranges overlap once both are in metres AMSL (W84 = ellipsoid height, SFC = above ground; missing
  bounds are open), and the time range overlaps the zone's schedule (a zone without one is permanent);
- `position`: the zone's outline contains the point (and its band the altitude, when given);
- `after` / `before`: the zone is in force at some time in that range;
- `resulting_operational_impact`: Block = prohibited zones, Advise = authorisation/conditional ones;
- `ed269`: `acceptable_restrictions` against the zone's restriction, `u_space_class` against its property.

The request models follow the schema as uas-standards types it (the InterUSS client): `Time.format` defaults
to RFC3339, a circle's `center`/`radius` and a check's `filter_sets` may be absent (that check answers `Error`
with the reason), times are RFC 3339 with an offset (`parse_rfc3339`; a time without one is a 422). A radius in
feet is accepted too (the schema allows only M; feet are read as feet, not refused).

`restriction_source` and `operation_rule_set` are not modelled: such a check answers `UnsupportedFilter`.
Requests need an API key of any role (the suite's bearer token).

A request holds at most MAX_VOLUMES volumes, MAX_FILTER_SETS filter sets and MAX_VERTICES polygon vertices in
all, counted on the parsed JSON before any model is built (`bounded`): the worst body within the 1 MiB request limit
then costs well under a second of CPU against the shipped airspace (tests/test_api_interuss_limits.py).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

import numpy as np
import orjson
import shapely
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import AliasChoices, BaseModel, BeforeValidator, Field
from starlette.concurrency import run_in_threadpool

from airspace.zones import Zone, ZoneSet
from protocol.times import parse_rfc3339

from .auth import ROLES, UNAUTHORIZED, Principal, require
from .context import Ctx
from .models import Problem

API_NAME = "Geospatial Map Provider Automated Testing Interface"
API_VERSION = "v0.2.2"
EARTH_RADIUS_M = 6_371_008.8
CIRCLE_SEGMENTS = 64
HORIZON = timedelta(days=366)  # an open-ended time range is looked at this far
BLOCK = frozenset({"PROHIBITED"})
ADVISE = frozenset({"REQ_AUTHORISATION", "CONDITIONAL"})
MAX_VOLUMES = 1_000  # volumes4d in one request, all checks and filter sets together
MAX_FILTER_SETS = 1_000  # filter sets in one request
MAX_VERTICES = 20_000  # polygon vertices in one request

router = APIRouter(prefix="/geospatial_map/v1", tags=["interuss"])


class LatLngPoint(BaseModel):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lng: float = Field(ge=-180, le=180, allow_inf_nan=False)


FEET = 0.3048  # metres per international foot


class Radius(BaseModel):
    value: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)
    units: Literal["M", "FT"] = "M"

    @property
    def metres(self) -> float:
        return self.value * (FEET if self.units == "FT" else 1.0)


class Altitude(BaseModel):
    value: float = Field(ge=-30000, le=330000, allow_inf_nan=False)
    reference: Literal["W84", "SFC"]
    units: Literal["M", "FT"]

    @property
    def metres(self) -> float:
        return self.value * (FEET if self.units == "FT" else 1.0)


def _wire_time(value):
    """A date-time on the wire through the project's one parser: RFC 3339 with an offset ('Z'); a time without one,
    a bare date or a number is refused with the reason (it used to be read silently as UTC)."""
    return value if isinstance(value, datetime) and value.utcoffset() is not None else parse_rfc3339(value)


WireTime = Annotated[datetime, BeforeValidator(_wire_time)]


class Circle(BaseModel):
    """`center` and `radius` are optional in the schema (uas-standards `Circle`): a circle without one is answered
    `Error` for its check, not refused for the whole request."""
    center: LatLngPoint | None = None
    radius: Radius | None = None


class Polygon(BaseModel):
    vertices: list[LatLngPoint] = Field(min_length=3, max_length=1000)


class Volume3D(BaseModel):
    outline_circle: Circle | None = None
    outline_polygon: Polygon | None = None
    altitude_lower: Altitude | None = None
    altitude_upper: Altitude | None = None


class Time(BaseModel):
    value: WireTime
    format: Literal["RFC3339"] = "RFC3339"  # the schema's default (uas-standards `Time`)


class Volume4D(BaseModel):
    volume: Volume3D
    time_start: Time | None = None
    time_end: Time | None = None


class Position(BaseModel):
    location: LatLngPoint
    altitude: Altitude | None = None


class ED269Filters(BaseModel):
    u_space_class: str | None = Field(default=None, max_length=100)
    acceptable_restrictions: list[Literal["PROHIBITED", "REQ_AUTHORISATION", "CONDITIONAL", "NO_RESTRICTION"]] | None = (
        Field(default=None, max_length=4))


class FilterSet(BaseModel):
    position: Position | None = None
    volumes4d: list[Volume4D] | None = Field(default=None, max_length=100)
    after: WireTime | None = None
    before: WireTime | None = None
    restriction_source: str | None = Field(default=None, max_length=200)
    operation_rule_set: str | None = Field(default=None, max_length=200)
    resulting_operational_impact: Literal["Block", "Advise", "BlockOrAdvise"] | None = None
    ed269: ED269Filters | None = None


class Check(BaseModel):
    """`filter_sets` is optional in the schema (its `required` names `filterSets`, a spelling of the same field,
    and uas-standards leaves it optional): a check without it is answered `Error` saying so."""
    filter_sets: list[FilterSet] | None = Field(default=None, validation_alias=AliasChoices("filter_sets", "filterSets"),
                                                max_length=100)


class QueryRequest(BaseModel):
    checks: list[Check] = Field(max_length=100)


def _items(obj, *names: str) -> list:
    """The list under the first of `names` in `obj` (a dict), else [] (the model reports a wrong type)."""
    if isinstance(obj, dict):
        for name in names:
            value = obj.get(name)
            if isinstance(value, list):
                return value
    return []


def _size(data) -> tuple[int, int, int]:
    """(volumes, filter sets, polygon vertices) of a raw request body."""
    volumes = filter_sets = vertices = 0
    for check in _items(data, "checks"):
        for fs in _items(check, "filter_sets", "filterSets"):
            filter_sets += 1
            for v in _items(fs, "volumes4d"):
                volumes += 1
                volume = v.get("volume") if isinstance(v, dict) else None
                vertices += len(_items(volume.get("outline_polygon") if isinstance(volume, dict) else None,
                                       "vertices"))
    return volumes, filter_sets, vertices


class CheckResult(BaseModel):
    features_selection_outcome: Literal["Present", "Absent", "UnsupportedFilter", "Error"]
    message: str | None = None


class QueryReply(BaseModel):
    results: list[CheckResult]


class Status(BaseModel):
    status: Literal["Starting", "Ready"]
    api_name: str
    api_version: str


class Unsupported(ValueError):
    """A filter this USS does not model."""


class BadVolume(ValueError):
    """A volume that describes no area (e.g. a self-crossing polygon, no outline)."""


def _epoch(ts: datetime) -> float:
    return ts.timestamp()  # aware: WireTime


def circle_outline(lat: float, lng: float, radius_m: float) -> shapely.Polygon:
    """A circle on the sphere as a lon/lat polygon (exact enough for the few-km volumes of UTM tests)."""
    bearing = np.linspace(0, 2 * np.pi, CIRCLE_SEGMENTS, endpoint=False)
    d = radius_m / EARTH_RADIUS_M
    p1, l1 = math.radians(lat), math.radians(lng)
    p2 = np.arcsin(math.sin(p1) * np.cos(d) + math.cos(p1) * np.sin(d) * np.cos(bearing))
    l2 = l1 + np.arctan2(np.sin(bearing) * np.sin(d) * math.cos(p1), np.cos(d) - math.sin(p1) * np.sin(p2))
    return shapely.Polygon(np.column_stack([np.degrees(l2), np.degrees(p2)]))


def outline(vol: Volume3D) -> shapely.Geometry:
    if (vol.outline_circle is None) == (vol.outline_polygon is None):
        raise BadVolume("a volume needs exactly one of outline_circle and outline_polygon")
    if vol.outline_circle is not None:
        c = vol.outline_circle
        if c.center is None or c.radius is None:
            raise BadVolume("outline_circle needs both a center and a radius")
        return circle_outline(c.center.lat, c.center.lng, c.radius.metres)
    geom = shapely.Polygon([(v.lng, v.lat) for v in vol.outline_polygon.vertices])
    if not geom.is_valid or geom.area == 0:
        raise BadVolume(f"outline_polygon is not a valid area: {shapely.is_valid_reason(geom)}")
    return geom


def _to_amsl(zones: ZoneSet, alt: Altitude | None, default: float) -> float:
    if alt is None:
        return default
    return float(zones.vertical.to_amsl(alt.metres, "WGS84" if alt.reference == "W84" else "AGL"))


def _in_force(zone: Zone, t0: float, t1: float) -> bool:
    """The zone applies at some time in [t0, t1] (t0 == t1: one instant; any span is cheap)."""
    schedule = zone.schedule
    if schedule is None:
        return True
    return schedule.in_force_within(t0, t1)


def _in_force_among(zones: ZoneSet, among: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Bool per zone: one of `among` in force at some time in [t0, t1]; schedules are read only there."""
    out = among.copy()
    for j in np.flatnonzero(among):
        out[j] = _in_force(zones.zones[j], t0, t1)
    return out


def u_space_classes(zone: Zone) -> set[str]:
    """The zone's U-space classes: its own property, or the `uSpaceClass` of the ED-269/ED-318 zone it was
    imported from (a string or a list in real files)."""
    p = zone.properties
    source = p.get("source") if isinstance(p.get("source"), dict) else {}
    value = (p.get("u_space_class") or p.get("uSpaceClass") or (source.get("zone") or {}).get("uSpaceClass")
             or (source.get("properties") or {}).get("uSpaceClass"))  # ED-269, ED-318
    values = value if isinstance(value, list) else [value]
    return {v for v in values if isinstance(v, str)}


def _matches(zones: ZoneSet, fs: FilterSet, now: float) -> np.ndarray:
    """Bool per zone: the zone satisfies every filter of the set."""
    if fs.restriction_source is not None:
        raise Unsupported("restriction_source is not modelled: Skylane keeps one airspace source")
    if fs.operation_rule_set is not None:
        raise Unsupported("operation_rule_set is not modelled: one rule set applies in the demonstration zone")
    n = len(zones)
    ok = np.ones(n, dtype=bool)
    geoms = zones.geometries
    if fs.position is not None:
        p = fs.position
        ok &= shapely.intersects_xy(geoms, p.location.lng, p.location.lat)
        if p.altitude is not None:
            a = _to_amsl(zones, p.altitude, 0.0)
            ok &= (zones.lower_amsl <= a) & (a <= zones.upper_amsl)
    if fs.volumes4d is not None:
        any_volume = np.zeros(n, dtype=bool)
        for v in fs.volumes4d:
            lo = _to_amsl(zones, v.volume.altitude_lower, -math.inf)
            hi = _to_amsl(zones, v.volume.altitude_upper, math.inf)
            if lo > hi:
                raise BadVolume("altitude_lower is above altitude_upper")
            t0 = _epoch(v.time_start.value) if v.time_start else now
            t1 = _epoch(v.time_end.value) if v.time_end else t0 + HORIZON.total_seconds()
            if t0 > t1:
                raise BadVolume("time_start is after time_end")
            hit = shapely.intersects(geoms, outline(v.volume)) & (zones.lower_amsl <= hi) & (zones.upper_amsl >= lo)
            any_volume |= _in_force_among(zones, hit & ~any_volume, t0, t1)
        ok &= any_volume
    if fs.after is not None or fs.before is not None:
        t1 = _epoch(fs.before) if fs.before else _epoch(fs.after) + HORIZON.total_seconds()
        t0 = _epoch(fs.after) if fs.after else min(now, t1) - HORIZON.total_seconds()
        ok = _in_force_among(zones, ok, t0, t1) if t0 <= t1 else np.zeros(n, dtype=bool)
    if fs.resulting_operational_impact is not None:
        wanted = {"Block": BLOCK, "Advise": ADVISE, "BlockOrAdvise": BLOCK | ADVISE}[fs.resulting_operational_impact]
        ok &= np.array([z.restriction in wanted for z in zones.zones], dtype=bool)
    if fs.ed269 is not None:
        if fs.ed269.acceptable_restrictions:
            allowed = set(fs.ed269.acceptable_restrictions)
            ok &= np.array([z.restriction in allowed for z in zones.zones], dtype=bool)
        if fs.ed269.u_space_class is not None:
            ok &= np.array([fs.ed269.u_space_class in u_space_classes(z) for z in zones.zones], dtype=bool)
    return ok


def evaluate(zones: ZoneSet, request: QueryRequest, now: float) -> QueryReply:
    """One result per check, in order (pure: zones and the time come in as data)."""
    results = []
    for check in request.checks:
        if check.filter_sets is None:
            results.append(CheckResult(features_selection_outcome="Error",
                                       message="the check has no filter_sets: nothing to select features by"))
            continue
        try:
            present = any(bool(_matches(zones, fs, now).any()) for fs in check.filter_sets)
            results.append(CheckResult(features_selection_outcome="Present" if present else "Absent"))
        except Unsupported as exc:
            results.append(CheckResult(features_selection_outcome="UnsupportedFilter", message=str(exc)))
        except BadVolume as exc:
            results.append(CheckResult(features_selection_outcome="Error", message=str(exc)))
    return QueryReply(results=results)


Caller = Annotated[Principal, Depends(require(*ROLES))]


async def bounded(request: Request, _: Caller) -> None:
    """422 for a request beyond the per-request bounds, counted on the parsed JSON before any model is built
    (what costs CPU is the number of volumes, filter sets and vertices, each compared with every zone); the
    refusal names the bound and does not echo the body."""
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return  # the request model reports it
    volumes, filter_sets, vertices = _size(data)
    for what, n, limit in (("volumes4d", volumes, MAX_VOLUMES), ("filter sets", filter_sets, MAX_FILTER_SETS),
                           ("polygon vertices", vertices, MAX_VERTICES)):
        if n > limit:
            raise HTTPException(422, f"a request holds at most {limit:,} {what} in all its checks; this one has "
                                     f"{n:,}: split it into several requests")


@router.get("/status", response_model=Status, responses={401: UNAUTHORIZED})
def status(ctx: Ctx, _: Caller):
    """Ready once the zones can be read from the store."""
    try:
        ctx.zones()
        state = "Ready"
    except Exception:  # database not reachable yet: the test driver should wait
        state = "Starting"
    return Status(status=state, api_name=API_NAME, api_version=API_VERSION)


@router.post("/map/queries", response_model=QueryReply, response_model_exclude_none=True,
             responses={401: UNAUTHORIZED, 422: {"model": Problem}}, dependencies=[Depends(bounded)])
async def map_queries(ctx: Ctx, _: Caller, request: QueryRequest):
    """Present/Absent (or UnsupportedFilter/Error with a message) per check. At most 1,000 volumes4d,
    1,000 filter sets and 20,000 polygon vertices per request (422 beyond)."""
    def work() -> QueryReply:
        now = datetime.now(timezone.utc).timestamp()
        return evaluate(ctx.zones().usable(now), request, now)
    return await run_in_threadpool(work)
