"""POST /v1/clearances with a route file: the content type picks the parser (airspace.route_files), query
parameters give what the file does not say (uav_id, departure, speed_mps, alt_ref, alt_m), and the result is
the same ClearanceRequest a JSON body makes, so one decision path serves both.

    application/json                                a ClearanceRequest (as before; query parameters unused)
    application/vnd.google-earth.kmz, application/zip   DJI KMZ (wpmz/waylines.wpml, wpmz/template.kml) or a KMZ
                                                    holding a .kml
    application/vnd.google-earth.kml+xml, application/xml, text/xml   KML, or a bare DJI waylines.wpml / template.kml
    application/geo+json                            GeoJSON LineString or Point features
    text/plain                                      QGC WPL 110 (Mission Planner .waypoints)
    application/octet-stream                        any of these, recognised by its first bytes
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from pydantic import ValidationError

from airspace.route_files import RouteFileError, parse_route_file, plan_waypoints
from protocol import topics

from .localize import Msg
from .models import DEFAULT_SPEED_MPS, MIN_SPEED_MPS, ClearanceRequest

CONTENT_TYPES = {
    "application/json": "json",
    "application/vnd.google-earth.kmz": "kmz",
    "application/zip": "kmz",
    "application/vnd.google-earth.kml+xml": "kml",
    "application/xml": "kml",
    "text/xml": "kml",
    "application/geo+json": "geojson",
    "text/plain": "wpl",
    "application/octet-stream": None,
}


def _inline(schema: dict) -> dict:
    """A pydantic JSON schema with its $defs inlined (the OpenAPI body of a hand-read request)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.rsplit("/", 1)[-1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


_FILE = {"type": "string", "format": "binary"}
OPENAPI = {"requestBody": {"required": True, "description": "a JSON clearance request, or a route file (the content "
                                                            "type names its format; see docs/flight-planning.md)",
                           "content": {"application/json": {"schema": _inline(ClearanceRequest.model_json_schema())},
                                       **{ct: {"schema": _FILE} for ct in CONTENT_TYPES if ct != "application/json"}}}}


class RouteParams:
    """Query parameters for a route file (what the file does not say)."""

    def __init__(self,
                 uav_id: Annotated[str | None, Query(pattern=f"^{topics.ID_PATTERN}$",
                                                     description="route files: the drone")] = None,
                 departure: Annotated[datetime | None, Query(description="route files: departure, RFC 3339 with "
                                                                         "offset (default now)")] = None,
                 speed_mps: Annotated[float | None, Query(ge=MIN_SPEED_MPS, le=100, description=(
                     "route files: one ground speed for the whole route (default: the file's speeds, else "
                     f"{DEFAULT_SPEED_MPS:g} m/s)"))] = None,
                 alt_ref: Annotated[Literal["AGL", "AMSL", "WGS84"] | None, Query(
                     description="route files: the heights' reference where the file states none")] = None,
                 alt_m: Annotated[float | None, Query(ge=-500, le=10000, description=(
                     "route files without heights: the altitude of every waypoint (in alt_ref)"))] = None,
                 ua_class: Annotated[Literal["micro", "light", "small", "medium", "large"] | None, Query()] = None):
        self.uav_id, self.departure, self.speed_mps = uav_id, departure, speed_mps
        self.alt_ref, self.alt_m, self.ua_class = alt_ref, alt_m, ua_class


def content_kind(request: Request) -> str | None:
    """'json', a route format, or None (recognise by the bytes); 415 for a type not taken."""
    raw = request.headers.get("content-type") or "application/json"
    ctype = raw.split(";", 1)[0].strip().lower()
    if ctype not in CONTENT_TYPES:
        raise HTTPException(415, Msg("api.clearance.content_type", content_type=ctype[:80],
                                     types=", ".join(CONTENT_TYPES)))
    return CONTENT_TYPES[ctype]


async def clearance_request(request: Request, params: RouteParams) -> tuple[ClearanceRequest, dict | None]:
    """The request's body as a ClearanceRequest, and (route files) what was read from the file."""
    kind = content_kind(request)
    body = await request.body()
    if kind == "json":
        try:
            return ClearanceRequest.model_validate_json(body or b"null"), None
        except ValidationError as exc:
            raise RequestValidationError([_printable({**e, "loc": ("body", *e["loc"])})
                                          for e in exc.errors(include_url=False)],
                                         body=body[:2000].decode("utf-8", "replace")) from None
    if params.departure is not None and params.departure.tzinfo is None:
        raise HTTPException(422, Msg("api.needs_offset", name="departure"))
    name = _filename(request) or "request body"
    departure = params.departure or datetime.now(timezone.utc)
    try:
        rf = parse_route_file(body, kind, name)
        planned = plan_waypoints(rf, alt_ref=params.alt_ref, alt_m=params.alt_m, departure=departure.timestamp(),
                                 speed_mps=params.speed_mps)
    except RouteFileError as exc:
        raise HTTPException(422, Msg("api.clearance.route_file",
                                     detail=Msg(f"route_file.{exc.code}", **exc.params))) from None
    wps = [{"lon": lon, "lat": lat, "alt_m": alt} for lon, lat, alt in planned.waypoints]
    if planned.times is not None:
        for w, t in zip(wps, planned.times):
            w["t"] = datetime.fromtimestamp(t, timezone.utc)
    req = {"uav_id": params.uav_id, "alt_ref": planned.alt_ref, "waypoints": wps, "ua_class": params.ua_class}
    if planned.times is None:
        req.update(departure=departure, speed_mps=planned.speed_mps or DEFAULT_SPEED_MPS)
    try:
        out = ClearanceRequest.model_validate(req)
    except ValidationError as exc:  # e.g. a height outside the API's range
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                                     ) from None
    return out, {**rf.summary(), "alt_ref": planned.alt_ref, "alt_ref_from": planned.alt_ref_from,
                 "timed_by": "file speeds" if planned.times is not None else "speed_mps"}


def _printable(error: dict) -> dict:
    """A validation error whose echoed input is text (bytes that are not UTF-8 made the 422 itself a 500)."""
    value = error.get("input")
    return {**error, "input": value[:2000].decode("utf-8", "replace")} if isinstance(value, bytes) else error


def _filename(request: Request) -> str | None:
    """The file name a client sent in Content-Disposition (for the error messages), if any."""
    disp = request.headers.get("content-disposition", "")
    for part in disp.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value:
            return value.strip('"')[:120]
    return None
