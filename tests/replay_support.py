"""Helpers for the replay tests: small synthetic traces and a database filled without a broker."""
from __future__ import annotations

import psycopg

from ingest.pipeline import build_pipeline
from replay.evaluate import load_zones
from replay.player import play
from replay.sinks import PipelineSink
from replay.sources import FileSource
from devices.trace import make_trace
from replay.timing import PlaybackControl
from skylane.settings import DEFAULT_ZONE_FILE, Settings
from storage.writes import write_batch


def small_trace(path, zones_geojson, *, drones=8, sensors=3, seconds=120, hz=1.0, seed=7, root="skylane/v1"):
    make_trace(path, zones_geojson, drones=drones, sensors=sensors, seconds=seconds, hz=hz, seed=seed, root=root)
    return path


def store_trace(settings: Settings, path) -> int:
    """Run a recording through the ingest pipeline and store its output, as the ingester would."""
    source = FileSource(path)
    with psycopg.connect(settings.database_url) as conn:
        sink = PipelineSink(build_pipeline(load_zones(DEFAULT_ZONE_FILE), source.root), batch_size=2000,
                            on_output=lambda out: write_batch(conn, out))
        play(source, sink, root_to=source.root, control=PlaybackControl("max"))
    return sink.counts["telemetry"]
