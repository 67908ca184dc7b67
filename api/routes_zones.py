"""Zones: read by every role, changed by admins (upload, replace one, delete, suspend/activate).

Every change is stored first, then announced on the retained control topics so every ingest worker
switches at once (`{root}/control/zones` after an upload or delete, `{root}/control/zone/{id}` for a
state change). A failed announcement is a 503 (the change is stored; repeating the request is safe).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from airspace import dynamic
from airspace.formats import ImportResult, export_zones, import_zones, kept_for_skipped, report
from airspace.zones import ZoneFormatError, ZoneSet
from protocol import topics
from protocol.times import rfc3339
from storage import catalog, queries
from storage.controls import zone_set_version

from .auth import FORBIDDEN, ROLES, UNAUTHORIZED, Principal, require
from .context import ApiContext, Ctx, ZoneView
from .control import ControlUnavailable
from .localize import Msg
from .models import Problem, ZoneCollection, ZoneFeature, ZoneState, ZoneUploadResult

log = logging.getLogger("skylane.api.zones")
router = APIRouter(tags=["zones"])
ZoneId = Annotated[str, Path(min_length=1, max_length=topics.MAX_ZONE_ID,
                             description="a zone id (percent-encoded in the path)")]
Reader = Annotated[Principal, Depends(require(*ROLES))]
Admin = Annotated[Principal, Depends(require("admin"))]
READ_ERRORS = {401: UNAUTHORIZED, 422: {"model": Problem}}
WRITE_ERRORS = {401: UNAUTHORIZED, 403: FORBIDDEN, 422: {"model": Problem, "description": "names feature and field"},
                413: {"model": Problem}, 503: {"model": Problem, "description": "stored, not yet announced"}}
FORMATS = ("geojson", "ed269", "ed318")
MAX_ZONES = 5000


def _feature(view: ZoneView, feat: dict, now: float) -> dict:
    zone = view.zones.get(feat["properties"].get("id") or feat.get("id"))
    props = {**feat["properties"], "id": zone.id, "name": zone.name, "kind": zone.kind, "lower_m": zone.lower_m,
             "upper_m": None if zone.upper_m == math.inf else zone.upper_m, "alt_ref": zone.alt_ref, "state": view.state_of(zone.id, now)}
    if zone.id in view.states:
        s = view.states[zone.id]
        props.update(state_reason=s.get("reason", ""), state_by=s.get("by"), state_at=s.get("at"))
    return {"type": "Feature", "id": zone.id, "geometry": feat["geometry"], "properties": props}


@router.get("/v1/zones", response_model=ZoneCollection, responses=READ_ERRORS)
def get_zones(ctx: Ctx, _: Reader, kind: Annotated[str | None, Query(pattern="^[a-z_]{1,40}$")] = None):
    """Active zones as GeoJSON; properties.state is active, suspended, or inactive (outside its schedule)."""
    view, now = ctx.zones(), time.time()
    feats = [_feature(view, f, now) for f in view.geojson["features"]]
    return {"type": "FeatureCollection", "features": [f for f in feats if kind is None or f["properties"]["kind"] == kind]}


@router.get("/v1/zones/export", responses={**READ_ERRORS, 200: {
    "description": "the active zones as an ED-269, ED-318 or GeoJSON document",
    "content": {"application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}}}}})
def export(ctx: Ctx, _: Reader, format: Annotated[Literal["geojson", "ed269", "ed318"], Query()] = "geojson"):
    """The active zones in a standard format (zones imported from one keep their published form)."""
    return JSONResponse(export_zones(ctx.zones().zones, format),
                        headers={"Content-Disposition": f'attachment; filename="zones.{format}.json"'})


@router.get("/v1/zones/{zone_id:path}", response_model=ZoneFeature, responses={**READ_ERRORS, 404: {"model": Problem}})
def get_zone(ctx: Ctx, _: Reader, zone_id: ZoneId):
    view = ctx.zones()
    for f in view.geojson["features"]:
        if (f["properties"].get("id") or f.get("id")) == zone_id:
            return _feature(view, f, time.time())
    raise HTTPException(404, Msg("api.zone.not_found", zone_id=zone_id))


def _parse(body: dict | list, fmt: str | None) -> tuple[ZoneSet, str]:
    """The uploaded document as a ZoneSet, refused on any problem (422 naming feature and field)."""
    return _import(body, fmt, strict=True).zones, fmt or "detected"


def _import(body: dict | list, fmt: str | None, strict: bool) -> ImportResult:
    """The uploaded document imported feature by feature (airspace.formats.import_zones); 422 naming feature
    and field when the document, or with `strict` any feature, is not acceptable, or no zone is left."""
    try:
        result = import_zones(body, fmt, strict=strict)
    except ZoneFormatError as exc:
        raise HTTPException(422, Msg("api.zone.bad_file", detail=str(exc))) from None
    except (ValueError, TypeError, KeyError) as exc:  # a parser refusing odd input in its own words
        log.info("zone upload refused: %s", exc)
        raise HTTPException(422, Msg("api.zone.unreadable", detail=str(exc))) from None
    if len(result.zones) == 0:
        raise HTTPException(422, Msg("api.zone.bad_file", detail="; ".join(
            [Msg("api.zone.no_zones")] + [str(p) for p in result.problems[:20]])))
    if len(result.zones) > MAX_ZONES:
        raise HTTPException(422, Msg("api.zone.too_many", limit=MAX_ZONES, n=len(result.zones)))
    return result


def _stored(ctx: ApiContext) -> dict:
    with ctx.pool.connection() as conn:
        return catalog.load_zones(conn)


def _internal(zs: ZoneSet) -> dict:
    """The internal FeatureCollection, with the columns the store indexes present in each feature."""
    doc = zs.to_geojson()
    for feat, zone in zip(doc["features"], zs):
        p = feat["properties"]
        for key, value in (("id", zone.id), ("name", zone.name), ("kind", zone.kind), ("lower_m", zone.lower_m),
                           ("upper_m", zone.upper_m), ("alt_ref", zone.alt_ref)):
            p.setdefault(key, value)
        feat["id"] = zone.id
    return doc


def _store_and_announce(ctx: ApiContext, doc: dict, replace: bool) -> dict:
    with ctx.pool.connection() as conn:
        with conn.transaction():
            result = queries.store_zones(conn, doc, replace)
            active = catalog.load_zones(conn)
            try:
                whole = ZoneSet.from_geojson(active)  # ids unique and every stored zone still valid
            except ZoneFormatError as exc:
                raise HTTPException(422, Msg("api.zone.set_invalid", detail=str(exc))) from None
        version = zone_set_version(conn)
    ctx.zone_view.invalidate()
    _announce(ctx, topics.control_zones(ctx.config.mqtt_root), {"version": version})
    return {**result, "active_zones": len(whole), "published": True}


def _announce(ctx: ApiContext, topic: str, body: dict) -> None:
    try:
        ctx.control.publish(topic, body)
    except ControlUnavailable as exc:
        raise HTTPException(503, Msg("api.zone.not_announced", detail=str(exc))) from None


@router.post("/v1/zones", response_model=ZoneUploadResult, responses=WRITE_ERRORS)
async def upload_zones(ctx: Ctx, _: Admin, body: Annotated[dict[str, Any] | list[Any], Body(
        description="GeoJSON FeatureCollection, ED-269 document (the UASZoneList wrapper or the bare list of "
                    "UASZone objects) or ED-318 document (JSON)")],
        format: Annotated[Literal["geojson", "ed269", "ed318"] | None, Query(
            description="detected when omitted")] = None,
        replace: Annotated[bool, Query(description="deactivate stored zones missing from the upload (a skipped "
                                                   "feature's stored zones stay)")] = False,
        strict: Annotated[bool, Query(description="refuse the document on any problem (422 naming the first)")] = False):
    """Add or update zones from a document (admin): every valid feature is imported, an invalid outline repaired
    where that is unambiguous, any other bad feature skipped alone; `report` lists each problem (feature index,
    id, field, problem, action repaired/skipped). With strict, any problem refuses the document."""
    result = await run_in_threadpool(_import, body, format, strict)  # a 16 MiB file takes a while: not on the loop
    doc = _internal(result.zones)
    kept = kept_for_skipped(result, await run_in_threadpool(_stored, ctx)) if replace and result.indices("skipped") else []
    doc["features"] += kept
    out = await run_in_threadpool(_store_and_announce, ctx, doc, replace)
    return {**out, "format": format or "detected", "report": report(result), "kept": [f["id"] for f in kept]}


@router.put("/v1/zones/{zone_id:path}/state", response_model=ZoneState,
            responses={**WRITE_ERRORS, 404: {"model": Problem}})
async def set_zone_state(ctx: Ctx, who: Admin, zone_id: ZoneId, body: Annotated[dict[str, Any], Body(
        description='{"state": "active"|"suspended", "reason": "..."} (reason optional, at most 500 characters)',
        examples=[{"state": "suspended", "reason": "bridge inspection"}])]):
    """Suspend or re-activate a zone (admin): stored, then the retained control message goes out."""
    try:  # the control payload's own validator; the stored time replaces this `at`
        wanted = dynamic.ZoneState.from_payload(zone_id, {**body, "by": f"key:{who.key_id}",
                                                          "at": rfc3339(time.time())})
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None

    def work() -> dict:
        with ctx.pool.connection() as conn:
            if not queries.zone_exists(conn, zone_id):
                raise HTTPException(404, Msg("api.zone.not_found", zone_id=zone_id))
            state = queries.set_zone_state(conn, zone_id, wanted.state, wanted.reason, wanted.by)
        ctx.zone_view.invalidate()
        _announce(ctx, topics.control_zone(ctx.config.mqtt_root, zone_id), state)
        return {"zone_id": zone_id, **state}
    return await run_in_threadpool(work)


@router.put("/v1/zones/{zone_id:path}", response_model=ZoneFeature, responses={**WRITE_ERRORS, 404: {"model": Problem}})
async def put_zone(ctx: Ctx, _: Admin, zone_id: ZoneId,
                   feature: Annotated[dict[str, Any], Body(description="one GeoJSON Feature (internal zone format)")]):
    """Create or replace one zone (admin); the feature's id must match the path (or be absent)."""
    props = feature.get("properties")
    if isinstance(props, dict) and props.get("id", zone_id) != zone_id:
        raise HTTPException(422, Msg("api.zone.id_mismatch", given=props.get("id"), zone_id=zone_id))
    if isinstance(props, dict):
        feature = {**feature, "properties": {**props, "id": zone_id}}
    zs, _fmt = _parse({"type": "FeatureCollection", "features": [feature]}, "geojson")
    await run_in_threadpool(_store_and_announce, ctx, _internal(zs), False)
    return get_zone(ctx, _, zone_id)


@router.delete("/v1/zones/{zone_id:path}", status_code=204, responses={**WRITE_ERRORS, 404: {"model": Problem}})
async def delete_zone(ctx: Ctx, _: Admin, zone_id: ZoneId):
    """Deactivate a zone (admin); it stops constraining flights once ingest has the new set."""
    def work() -> None:
        with ctx.pool.connection() as conn:
            if not queries.deactivate_zone(conn, zone_id):
                raise HTTPException(404, Msg("api.zone.not_found", zone_id=zone_id))
            version = zone_set_version(conn)
        ctx.zone_view.invalidate()
        _announce(ctx, topics.control_zones(ctx.config.mqtt_root), {"version": version})
    await run_in_threadpool(work)
    return Response(status_code=204)
