"""The air picture over REST: every aircraft Skylane tracks, from every source (its own telemetry, Remote ID,
ADS-B, the vendors' dialects), fused into one track each by ingest (airspace/tracks.py) and published retained
on `{root}/state/traffic/{track_id}`; this API process keeps the latest of each from the broker (api/live.py).

Operators see every aircraft (every one in the sky matters to their flights), but another operator's drone
without who it is (api.subscribers.others_drone_hidden)."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query

from .auth import ROLES, UNAUTHORIZED, Principal, require
from .context import Ctx
from .localize import Msg
from .models import Problem
from .subscribers import others_drone_hidden

router = APIRouter(tags=["live"])
Reader = Annotated[Principal, Depends(require(*ROLES))]


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise HTTPException(422, Msg("api.traffic.bbox")) from None
    if not (x0 <= x1 and y0 <= y1):
        raise HTTPException(422, Msg("api.traffic.bbox"))
    return x0, y0, x1, y1


@router.get("/v1/traffic", responses={401: UNAUTHORIZED, 422: {"model": Problem}},
            summary="Every tracked aircraft with its sources (the air picture)")
def get_traffic(ctx: Ctx, who: Reader,
                bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
                kind: Annotated[Literal["drone", "manned"] | None, Query()] = None,
                source: Annotated[str | None, Query(pattern="^[a-z0-9_]{1,32}$",
                                                    description="only tracks seen by this source, e.g. adsb, rid")] = None,
                ) -> dict[str, Any]:
    box = _bbox(bbox)
    tracks = []
    owns = (lambda uav: uav in ctx.owned_uavs(who.owner or "")) if who.is_operator else None
    for track in sorted(ctx.hub.traffic.values(), key=lambda t: str(t.get("track_id"))):
        if kind is not None and track.get("kind") != kind:
            continue
        if source is not None and source not in (track.get("sources") or {}):
            continue
        lon, lat = track.get("lon"), track.get("lat")
        if box is not None and not (lon is not None and lat is not None and box[0] <= lon <= box[2]
                                    and box[1] <= lat <= box[3]):
            continue
        tracks.append(others_drone_hidden(track, owns) if owns is not None else track)
    return {"items": tracks}
