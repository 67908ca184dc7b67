"""Incident reports over HTTP (engineers and admins): `GET /v1/recordings/{name}/report[?uav=][&lang=]`.

The recording (a name in the recordings directory, as for replays) is evaluated against the stored zones with
the live monitor policy, as evaluated replays are, and answered as one self-contained HTML page
(replay/report.py) in the caller's language: `?lang=` (zh-CN or en), else `Accept-Language`; zones by their
Chinese names (`name_zh`) in Chinese. The dashboard's button comes with the replay panel.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from i18n import Msg, normalize
from protocol import topics
from replay.report import build_report
from replay.sources import FileSource

from .auth import FORBIDDEN, UNAUTHORIZED, require
from .localize import lang_of
from .models import Problem
from .replay_routes import _recording_path, _recordings_dir, evaluation_pipeline

router = APIRouter(tags=["replays"], dependencies=[Depends(require("engineer", "admin"))])


@router.get("/v1/recordings/{name:path}/report", responses={  # errors stay JSON: the default class
    200: {"content": {"text/html": {}}, "description": "the report: one HTML page, no external resources"},
    401: UNAUTHORIZED, 403: FORBIDDEN, 404: {"model": Problem, "description": "no such recording"},
    422: {"model": Problem}})
def recording_report(name: str, request: Request,
                     uav: Annotated[str | None, Query(pattern=f"^{topics.ID_PATTERN}$")] = None,
                     lang: Annotated[str | None, Query(max_length=35, description="the report's language: zh-CN or "
                                                       "en (default: Accept-Language)")] = None) -> HTMLResponse:
    """The incident report of a recording: map with the tracks and zones, timeline of the evaluated events,
    the sensor values that mattered. Opens offline and prints on A4."""
    language = normalize(lang) if lang else lang_of(request)
    path = _recording_path(_recordings_dir(request), name)
    try:
        source = FileSource(path, parallel=False)
    except FileNotFoundError:
        raise HTTPException(404, Msg("api.reports.no_recording", name=name)) from None
    except (OSError, ValueError) as exc:  # replay.recordfile.RecordFormatError: not a recording
        raise HTTPException(422, Msg("api.reports.not_a_recording", name=name, detail=str(exc))) from None
    source.label = name  # the recording as the caller named it, not where the server keeps it
    pipeline = evaluation_pipeline(request, source.root, source.starts_at())  # as live ingest builds its own
    page = build_report(source, pipeline.monitor.zones, uav=uav, language=language, pipeline=pipeline)
    filename = path.name.split(".")[0] + ".report.html"
    return HTMLResponse(page, headers={"Content-Disposition": f'inline; filename="{filename}"',
                                       "Content-Language": language, "Vary": "Accept-Language"})
