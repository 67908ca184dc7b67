"""Recordings and replays over HTTP (engineers and admins).

GET /v1/recordings lists the record files in the recordings directory; POST /v1/replays starts a
replay of one of them, or of a stored window (start + end), into a remapped topic root in a
background thread; GET /v1/replays and /v1/replays/{id} show progress; POST
/v1/replays/{id}/control pauses, resumes, steps or changes the rate; DELETE /v1/replays/{id}
stops it. A replay is published under ``{prefix}/{recorded root}`` (default prefix
``replay/{id}``), never onto the live root; with ``evaluate`` the airspace core also runs in
this process and its events and states are published under that root too, so a live feed
subscribed there shows the replay as it happens.

Configuration comes from the app's ApiConfig (`recordings_dir`, the pipeline's policies and dialects); evaluated
replays build their pipeline as live ingest does (ingest.stored: the stored zones, registry, zone states and
clearances, as of the replay's start), take the vendors' topics outside the root in process (replay.player), and
publish what ingest would (ingest.outputs.batch_messages) under the replay root only.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field, field_validator, model_validator

from ingest.outputs import batch_messages
from ingest.pipeline import Pipeline
from ingest.stored import read_stored, stored_pipeline
from protocol import topics
from protocol.brokerauth import SERVICE_ACCOUNTS
from protocol.times import rfc3339
from replay.dbexport import DbSource
from replay.player import play
from replay.recordfile import RecordFormatError, read_header
from replay.recordset import is_record_file
from replay.sinks import BrokerSink, PipelineSink, Sink, TeeSink
from replay.sources import FileSource, Selection, Source, replay_start
from replay.timing import MAX, PlaybackControl, parse_rate

from .auth import require
from .context import get_ctx
from .localize import Msg

log = logging.getLogger("skylane.api.replay")
MAX_RUNNING = 4
KEEP_FINISHED = 50
REPLAY_PREFIX_PATTERN = r"^replay(/[A-Za-z0-9_.:-]{1,64}){1,6}$"
ReplayId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{12}$")]

router = APIRouter(tags=["replays"], dependencies=[Depends(require("engineer", "admin"))])


def _manager(request: Request) -> ReplayManager:
    return request.app.state.replays


class ReplayRequest(BaseModel):
    recording: str | None = Field(None, min_length=1, max_length=500,
                                  description="a file (or rotated set / directory) in the recordings dir")
    start: datetime | None = Field(None, description="with `recording`: skip before (receive time); "
                                                     "without: the stored window's start (event time)")
    end: datetime | None = Field(None, description="end of the window (exclusive)")
    rate: float | Literal["max"] = Field(1.0, description="0.1 to 1000 (x real time), or 'max'")
    prefix: str | None = Field(None, pattern=REPLAY_PREFIX_PATTERN,
                               description="publish under {prefix}/{recorded root}, a prefix under replay/ (the "
                                           "broker's replay tree); default replay/{id}")
    loop: bool = False
    uavs: list[Annotated[str, Field(pattern=f"^{topics.ID_PATTERN}$")]] = Field(default_factory=list, max_length=1000)
    sensors: list[Annotated[str, Field(pattern=f"^{topics.ID_PATTERN}$")]] = Field(default_factory=list,
                                                                                   max_length=1000)
    evaluate: bool = Field(False, description="also run the airspace core here and publish its events and "
                                              "states under the replay root")
    paused: bool = False

    @field_validator("rate")
    @classmethod
    def _rate(cls, v):
        return parse_rate(v)

    @model_validator(mode="after")
    def _source(self):
        if self.recording is None and (self.start is None or self.end is None):
            raise ValueError("give a recording, or start and end of a stored window")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a UTC offset (e.g. 'Z')")
        if self.start and self.end and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ControlRequest(BaseModel):
    action: Literal["pause", "resume", "step", "rate"]
    rate: float | Literal["max"] | None = None
    steps: int = Field(1, ge=1, le=100_000)


@dataclass
class ReplayJob:
    id: str
    request: dict
    source_label: str
    dst: str
    control: PlaybackControl
    created: float = field(default_factory=time.time)
    state: str = "starting"  # starting | running | finished | stopped | failed
    error: str | None = None
    status: dict = field(default_factory=dict)
    thread: threading.Thread | None = None
    finished: float | None = None
    evaluation: PipelineSink | None = None  # an evaluated replay's pipeline: its counts are shown


    def view(self) -> dict[str, Any]:
        st = self.status
        timing = st.get("timing")
        return {
            "id": self.id, "state": self.state, "error": self.error, "source": self.source_label, "root": self.dst,
            "request": self.request, "control": self.control.state(),
            "created": rfc3339(self.created), "finished": rfc3339(self.finished) if self.finished else None,
            "fraction": st.get("fraction"), "position": rfc3339(st["t"]) if st.get("t") else None,
            "counters": st.get("counters", {}),
            "max_late_ms": round(timing.max_late_s * 1e3, 3) if timing is not None else None,
            "evaluation": None if self.evaluation is None else {
                **dict(self.evaluation.counts), "dead_letter_reasons": dict(self.evaluation.dead_reasons)},
        }


class ReplayManager:
    """The replays of one API process, each in its own thread."""

    def __init__(self) -> None:
        self.jobs: dict[str, ReplayJob] = {}
        self._lock = threading.Lock()

    def running(self) -> int:
        return sum(1 for j in self.jobs.values() if j.state in ("starting", "running"))

    def start(self, job: ReplayJob, source: Source, sink: Sink, selection: Selection, loop: bool) -> None:
        with self._lock:
            if self.running() >= MAX_RUNNING:
                raise HTTPException(429, Msg("api.replay.too_many", n=MAX_RUNNING))
            self.jobs[job.id] = job
            done = sorted((j for j in self.jobs.values() if j.finished is not None), key=lambda j: j.finished or 0)
            for old in done[:max(0, len(done) - KEEP_FINISHED)]:
                self.jobs.pop(old.id, None)
        job.thread = threading.Thread(target=self._run, args=(job, source, sink, selection, loop),
                                      name=f"replay-{job.id}", daemon=True)
        job.thread.start()

    def _run(self, job: ReplayJob, source: Source, sink: Sink, selection: Selection, loop: bool) -> None:
        def on_status(st: dict) -> None:
            job.status = st
            if job.state == "starting":
                job.state = "running"
        try:
            job.state = "running"
            res = play(source, sink, control=job.control, selection=selection, root_from=source.root,
                       root_to=job.dst, loop=loop, on_status=on_status)
            job.state = "stopped" if res.stopped else "finished"
        except Exception as exc:  # reported on the job, never crashes the API
            log.exception("replay %s failed", job.id)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.time()

    def get(self, replay_id: str) -> ReplayJob:
        job = self.jobs.get(replay_id)
        if job is None:
            raise HTTPException(404, Msg("api.replay.not_found", id=replay_id))
        return job

    def stop_all(self) -> None:
        for job in list(self.jobs.values()):
            job.control.stop()
        for job in list(self.jobs.values()):
            if job.thread is not None:
                job.thread.join(10)


def _recordings_dir(request: Request) -> Path:
    folder = get_ctx(request).config.recordings_dir
    if folder is None:
        raise HTTPException(404, Msg("api.replay.no_dir"))
    return folder


def _recording_path(folder: Path, name: str) -> Path:
    base = folder.resolve()
    try:
        path = (base / name).resolve()
    except (OSError, ValueError) as exc:  # e.g. an embedded NUL
        raise HTTPException(400, Msg("api.replay.bad_name", detail=str(exc))) from None
    if base != path and base not in path.parents:
        raise HTTPException(400, Msg("api.replay.outside"))
    return path


@router.get("/v1/recordings", summary="Record files available for replay")
def list_recordings(request: Request) -> dict:
    items = []
    folder = _recordings_dir(request)
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if not is_record_file(p):
                continue
            st = p.stat()
            item: dict[str, Any] = {"name": str(p.relative_to(folder)), "size_bytes": st.st_size,
                                    "modified": rfc3339(st.st_mtime)}
            try:
                head = read_header(p)
                item.update(root=head.root, created=head.created, filters=list(head.filters), part=head.part,
                            session=head.session)
            except RecordFormatError as exc:
                item["problem"] = str(exc)
            items.append(item)
    return {"directory": str(folder), "items": items}


def evaluation_pipeline(request: Request, root: str, start: float | None) -> Pipeline:
    """The pipeline as live ingest builds its own (ingest.stored): the stored zones, registry, zone states and
    clearances as of the replay's start (None: now), the settings' policies and dialects."""
    ctx = get_ctx(request)
    at = datetime.now(timezone.utc) if start is None else datetime.fromtimestamp(start, timezone.utc)
    with ctx.pool.connection() as conn:
        truth = read_stored(conn, at, starting_now=False)
    return stored_pipeline(truth, ctx.config.pipeline_config(), root)


def _publish_outputs(sink: BrokerSink, root: str, issuer: str):
    """The pipeline's decisions on the replay root, exactly as the ingester publishes them live; nothing outside
    it (a dialect's replies, e.g. DJI's status_reply, would reach the real gateway)."""
    prefix = root + "/"

    def publish(out) -> None:
        for msg in batch_messages(out, root, issuer):
            if msg.topic.startswith(prefix):
                sink.publish(msg.topic, msg.payload, msg.qos, msg.retain)
    return publish


@router.post("/v1/replays", status_code=201, summary="Start a replay into a remapped topic root")
def start_replay(body: ReplayRequest, request: Request) -> dict:
    cfg = get_ctx(request).config
    replay_id = uuid.uuid4().hex[:12]
    try:
        if body.recording is not None:
            source: Source = FileSource(_recording_path(_recordings_dir(request), body.recording), parallel=False)
            selection = Selection(start=body.start.timestamp() if body.start else None,
                                  end=body.end.timestamp() if body.end else None,
                                  uavs=frozenset(body.uavs), sensors=frozenset(body.sensors))
        else:
            assert body.start is not None and body.end is not None
            source = DbSource(cfg.database_url, body.start.timestamp(), body.end.timestamp(), root=cfg.mqtt_root,
                              uavs=body.uavs, sensors=body.sensors)
            selection = Selection()
    except FileNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except (RecordFormatError, ValueError, OSError) as exc:
        raise HTTPException(422, str(exc)) from None
    prefix = body.prefix or f"replay/{replay_id}"
    dst = f"{prefix}/{source.root}"
    live = cfg.mqtt_root
    if topics.overlaps(dst, live):
        raise HTTPException(422, Msg("api.replay.live_root", prefix=prefix, live=live))
    broker = BrokerSink(cfg.mqtt_url, client_id=f"skylane-api-replay-{replay_id}", connect_timeout_s=10,
                        clear_retained=True)
    sink: Sink = broker
    evaluation = None
    if body.evaluate:
        evaluation = PipelineSink(evaluation_pipeline(request, dst, replay_start(source, selection)), batch_size=2000,
                                  on_output=_publish_outputs(broker, dst, SERVICE_ACCOUNTS["ingest"]),
                                  keep_events=False)
        sink = TeeSink(broker, evaluation)
    control = PlaybackControl(body.rate, paused=body.paused)
    shown = {**body.model_dump(mode="json"), "rate": "max" if body.rate == MAX else body.rate}
    job = ReplayJob(replay_id, shown, source.label, dst, control, evaluation=evaluation)
    _manager(request).start(job, source, sink, selection, body.loop)
    return job.view()


@router.get("/v1/replays", summary="Replays of this API process")
def list_replays(request: Request) -> dict:
    jobs = sorted(_manager(request).jobs.values(), key=lambda j: j.created, reverse=True)
    return {"items": [j.view() for j in jobs]}


@router.get("/v1/replays/{replay_id}", summary="One replay's progress")
def get_replay(replay_id: ReplayId, request: Request) -> dict:
    return _manager(request).get(replay_id).view()


@router.post("/v1/replays/{replay_id}/control", summary="Pause, resume, single-step or change the rate")
def control_replay(replay_id: ReplayId, body: ControlRequest, request: Request) -> dict:
    job = _manager(request).get(replay_id)
    c = job.control
    if body.action == "pause":
        c.pause()
    elif body.action == "resume":
        c.resume()
    elif body.action == "step":
        c.step(body.steps)
    else:
        if body.rate is None:
            raise HTTPException(422, Msg("api.replay.rate_needed"))
        try:
            c.set_rate(body.rate)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    return job.view()


@router.delete("/v1/replays/{replay_id}", summary="Stop a replay")
def stop_replay(replay_id: ReplayId, request: Request) -> dict:
    job = _manager(request).get(replay_id)
    job.control.stop()
    if job.thread is not None:
        job.thread.join(10)
    return job.view()


__all__ = ["router", "ReplayManager"]
