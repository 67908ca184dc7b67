"""Drones and sensors: registry, live state, a UAV's track, sensor readings in time buckets.

Operators see only the drones whose registry owner is their key's owner (others are 404 to them, as
if absent); sensors belong to the city and are visible to every role.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from storage import history, queries
from storage.schema import storage_kind

from .auth import ROLES, UNAUTHORIZED, Principal, require
from .context import ApiContext, Ctx, DeviceId, window
from .localize import Msg
from .models import Device, Problem, Readings, SensorLatest, Track, UavState

router = APIRouter()
Reader = Annotated[Principal, Depends(require(*ROLES))]
ERRORS = {401: UNAUTHORIZED, 422: {"model": Problem}}
NOT_FOUND = {404: {"model": Problem, "description": "unknown, or not one of the operator's drones"}}
MAX_BUCKETS = 10000
READINGS_WINDOW = timedelta(days=31)


def check_visible(ctx: ApiContext, who: Principal, uav_id: str) -> None:
    """404 for an operator asking about a drone that is not theirs (its existence is not revealed)."""
    if who.is_operator and uav_id not in ctx.owned_uavs(who.owner or ""):
        raise HTTPException(404, Msg("api.drone.not_yours", uav_id=uav_id))


@router.get("/v1/devices", response_model=list[Device], tags=["devices"], responses=ERRORS)
def get_devices(ctx: Ctx, who: Reader, kind: Literal["uav", "sensor", "unknown"] | None = None,
                limit: Annotated[int, Query(ge=1, le=10000)] = 1000):
    """The registry; operators get their own drones (and no sensors' owners' other devices)."""
    with ctx.pool.connection() as conn:
        if who.is_operator:
            own = queries.devices(conn, kind, who.owner, limit)
            city = queries.devices(conn, "sensor", None, limit) if kind in (None, "sensor") else []
            merged = {d["device_id"]: d for d in [*own, *city]}
            return [merged[k] for k in sorted(merged)][:limit]
        return queries.devices(conn, kind, None, limit)


@router.get("/v1/devices/{device_id}", response_model=Device, tags=["devices"], responses={**ERRORS, **NOT_FOUND})
def get_device(ctx: Ctx, who: Reader, device_id: DeviceId):
    with ctx.pool.connection() as conn:
        found = queries.device(conn, device_id)
    if found is None or (who.is_operator and found["kind"] != "sensor" and found.get("owner") != who.owner):
        raise HTTPException(404, Msg("api.device.not_yours" if who.is_operator else "api.device.not_found",
                                     device_id=device_id))
    return found


@router.get("/v1/uavs", response_model=list[UavState], tags=["live"], responses=ERRORS)
def get_uavs(ctx: Ctx, who: Reader):
    """Latest state of every UAV: from the live feed (retained state topics), else the last hour in the database."""
    if ctx.hub.uavs:
        states = sorted(ctx.hub.uavs.values(), key=lambda s: s["uav_id"])
    else:
        with ctx.pool.connection() as conn:
            states = queries.latest_states(conn, datetime.now(timezone.utc) - timedelta(hours=1))
    if who.is_operator:
        own = ctx.owned_uavs(who.owner or "")
        states = [s for s in states if s["uav_id"] in own]
    return states


@router.get("/v1/uavs/{uav_id}/track", response_model=Track, tags=["history"], responses={**ERRORS, **NOT_FOUND})
def get_track(ctx: Ctx, who: Reader, uav_id: DeviceId, start: datetime | None = None, end: datetime | None = None,
              limit: Annotated[int, Query(ge=1, le=100000)] = 10000):
    """Fixes of one UAV in [start, end) (default: the last hour; at most 7 days), oldest first."""
    start, end = window(start, end, timedelta(hours=1))
    check_visible(ctx, who, uav_id)
    with ctx.pool.connection() as conn:
        return {"uav_id": uav_id, "start": start.isoformat(), "end": end.isoformat(),
                "points": queries.track(conn, uav_id, start, end, limit)}


@router.get("/v1/sensors", response_model=list[SensorLatest], tags=["sensors"], responses=ERRORS)
def get_sensors(ctx: Ctx, _: Reader):
    """Latest values per sensor (live feed, else the database's last hour), with registry kind and place."""
    with ctx.pool.connection() as conn:
        registry = {d["device_id"]: d for d in queries.devices(conn, "sensor", None, 100000)}
        latest = ({s: dict(v) for s, v in ctx.hub.sensors.items()} if ctx.hub.sensors else
                  {r["sensor_id"]: r for r in history.latest_readings(conn, datetime.now(timezone.utc)
                                                                       - timedelta(hours=1))})
    out = []
    for sensor_id in sorted(set(registry) | set(latest)):
        reg = registry.get(sensor_id, {})
        state = latest.get(sensor_id, {})
        out.append({"values": {}, **state, "sensor_id": sensor_id, "sensor_kind": reg.get("sensor_kind"),
                    "name": reg.get("name"), "name_zh": (reg.get("properties") or {}).get("name_zh"),
                    "lon": reg.get("lon"), "lat": reg.get("lat"),
                    "online": reg.get("online"), "registered": bool(reg)})
    return out


@router.get("/v1/sensors/{sensor_id}/readings", response_model=Readings, tags=["sensors", "history"],
            responses=ERRORS)
def get_readings(ctx: Ctx, _: Reader, sensor_id: DeviceId, start: datetime | None = None, end: datetime | None = None,
                 metric: Annotated[str | None, Query(pattern="^[A-Za-z0-9_.:/-]{1,64}$")] = None,
                 bucket_s: Annotated[int | None, Query(ge=1, le=86400, description="bucket width, seconds")] = None,
                 limit: Annotated[int, Query(ge=1, le=MAX_BUCKETS)] = 5000):
    """Raw readings, or avg/min/max/count per bucket (time_bucket on TimescaleDB, date_bin otherwise).

    Default window: the last 24 h; at most 31 days, and at most 10,000 buckets (window / bucket_s)."""
    start, end = window(start, end, timedelta(hours=24), READINGS_WINDOW)
    if bucket_s is not None and (end - start).total_seconds() / bucket_s > MAX_BUCKETS:
        raise HTTPException(422, Msg("api.readings.too_many_buckets", limit=MAX_BUCKETS))
    with ctx.pool.connection() as conn:
        kind = storage_kind(conn)
        rows = history.readings(conn, sensor_id, start, end, metric=metric, bucket_s=bucket_s, storage=kind,
                                limit=limit)
    return {"sensor_id": sensor_id, "start": start.isoformat(), "end": end.isoformat(), "bucket_s": bucket_s,
            "storage": kind, "readings": rows if bucket_s is None else [],
            "buckets": rows if bucket_s is not None else []}
