"""`skylane record|replay`: raw MQTT traffic to a file and back, or through the airspace core.

  skylane record FILE [--topic F ...] [--duration S] [--rotate-size 100M] [--rotate-seconds 3600]
  skylane replay FILE|DIR ... [--rate R|max] [--start T --end T | --offset S] [--loop]
                 [--topic F] [--uav ID] [--sensor ID] [--to-root ROOT | --live] [--paused]
  skylane replay --from-db --start T --end T [...]          a stored window instead of a file
  skylane replay FILE --evaluate [-o EVENTS] [--expect EVENTS] [--zones ZONEFILE] [--batch-size N]
  skylane replay FILE --target pipeline [--rate R]           in-process, events printed as they happen
"""
from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

from ..settings import Settings
from . import stop_on_signals

log = logging.getLogger("skylane")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'500k', '100M', '1G', '2048' -> bytes (powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"size {text!r}: a number with an optional k, M, G or T")
    unit = m.group(2).lower()
    return int(float(m.group(1)) * (1024 ** ("kmgt".index(unit) + 1) if unit else 1))


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '1h', '1d' -> seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"duration {text!r}: a number with an optional s, m, h or d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2).lower()]


def _arg(parser_type):
    """argparse type wrapper turning ValueError into a usage error with our message."""
    import argparse

    def conv(text: str):
        try:
            return parser_type(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    conv.__name__ = parser_type.__name__
    return conv


def cmd_record(args, settings: Settings) -> int:
    from replay.recorder import record

    from ..wiring import recording_context
    filters = args.topic or None
    n = record(settings.service_url("recorder"), args.file, settings.mqtt_root, filters=filters, stop=stop_on_signals(),
               duration_s=args.duration, append=args.append, rotate_bytes=args.rotate_size,
               rotate_seconds=args.rotate_seconds, context=recording_context(settings))
    log.info("recorded %d messages to %s", n, args.file)
    return 0


def _selection(args):
    from replay.sources import Selection, parse_time
    return Selection(start=parse_time(args.start), end=parse_time(args.end), offset_s=args.offset,
                     topics=tuple(args.topic or ()), uavs=frozenset(args.uav or ()),
                     sensors=frozenset(args.sensor or ()), outputs=args.include_outputs,
                     controls=not getattr(args, "live", False))


def _source(args, settings: Settings):
    from replay.sources import FileSource, parse_time
    if args.from_db:
        if args.files:
            raise ValueError("give either record files or --from-db, not both")
        if args.start is None or args.end is None:
            raise ValueError("--from-db needs --start and --end")
        from replay.dbexport import DbSource
        return DbSource(settings.database_url, parse_time(args.start), parse_time(args.end),  # type: ignore[arg-type]
                        uavs=args.uav, sensors=args.sensor, root=settings.mqtt_root)
    if not args.files:
        raise ValueError("name a recording (file, rotated set or directory), or use --from-db")
    return FileSource(args.files)


def _interactive(args, label: str, control):
    """(progress bar, key reader) for this run; either may be None."""
    from replay.console import HELP, KeyReader, ProgressBar
    bar = None if args.no_progress else ProgressBar(label)
    keys = None
    if not args.no_keys and KeyReader.available():
        keys = KeyReader(control, on_key=(bar.redraw if bar else None)).start()
        print(HELP, file=sys.stderr)
    return bar, keys


def cmd_replay(args, settings: Settings) -> int:
    from replay.timing import PlaybackControl, parse_rate
    try:
        rate = parse_rate(args.rate if args.rate is not None else ("max" if args.evaluate else 1.0))
        source = _source(args, settings)
        selection = _selection(args)
    except (ValueError, OSError) as exc:
        print(f"skylane replay: {exc}", file=sys.stderr)
        return 2
    control = PlaybackControl(rate, paused=args.paused, stop_event=stop_on_signals())
    if args.evaluate or args.target == "pipeline":
        return _run_pipeline(args, settings, source, selection, control)
    return _run_broker(args, settings, source, selection, control)


def _run_broker(args, settings: Settings, source, selection, control) -> int:
    from protocol.topics import overlaps
    from replay.player import default_root, play
    from replay.sinks import BrokerSink
    src = args.from_root or source.root
    dst = settings.mqtt_root if args.live else (args.to_root or default_root(src, args.prefix))
    if overlaps(dst, settings.mqtt_root) and not args.live:
        print(f"skylane replay: {dst!r} is the live root or under it; add --live to replay device traffic onto "
              "live topics", file=sys.stderr)
        return 2
    if args.live and args.include_outputs:
        print("skylane replay: --include-outputs cannot go onto the live root: events and states there are ingest's "
              "(a live replay sends device traffic; ingest decides again)", file=sys.stderr)
        return 2
    sink = BrokerSink(settings.service_url("recorder"), max_pending=args.max_pending)
    bar, keys = _interactive(args, "replay", control)
    log.info("replaying %s into %s under %s/ (rate %s)", source.label, settings.mqtt_url, dst,
             control.state()["rate"])
    try:
        res = play(source, sink, control=control, selection=selection, root_from=src, root_to=dst, loop=args.loop,
                   on_status=bar.update if bar else None)
    except ConnectionError as exc:  # the broker never answered (replay.mqttpub.MqttError names it)
        print(f"skylane replay: {exc}", file=sys.stderr)
        return 1
    finally:
        if keys:
            keys.close()
        if bar:
            bar.close()
    t = res.timing
    log.info("replayed %d messages from %s under %s/ (%s); timing: max late %.3f ms, last %.3f ms",
             sink.published, source.label, dst, " ".join(f"{k}={v}" for k, v in res.counters.items() if v),
             t.max_late_s * 1e3, t.last_late_s * 1e3)
    return 0


def _run_pipeline(args, settings: Settings, source, selection, control) -> int:
    from replay.evaluate import Evaluation, canonical, diff_events, read_events, write_events
    from replay.player import play
    from replay.sinks import PipelineSink
    from replay.sources import replay_start

    from ..wiring import context_differences, recording_context
    try:
        expected = read_events(args.expect) if args.expect else None
        root = args.from_root or source.root
        pipeline = _evaluation_pipeline(args, settings, root, replay_start(source, selection))
    except (OSError, ValueError) as exc:
        print(f"skylane replay: {exc}", file=sys.stderr)
        return 2
    for line in context_differences(getattr(source, "header", None), recording_context(settings, zones=False)):
        print(f"skylane replay: {line}", file=sys.stderr)

    def show(out) -> None:  # watching (not evaluating): each batch's events as they are decided
        for ev in out.events:
            print(json.dumps(ev.to_dict(), ensure_ascii=False), flush=True)

    sink = PipelineSink(pipeline, batch_size=args.batch_size, on_output=None if args.evaluate else show)
    bar, keys = _interactive(args, "evaluate" if args.evaluate else "replay", control)
    try:
        res = play(source, sink, control=control, selection=selection, root_from=root, root_to=root,
                   loop=args.loop and not args.evaluate, on_status=bar.update if bar else None)
    finally:
        if keys:
            keys.close()
        if bar:
            bar.close()
    ev = Evaluation(canonical(e.to_dict() for e in sink.events), dict(sink.counts), dict(sink.dead_reasons),
                    list(sink.zone_decisions))
    log.info("evaluated %s: %s", source.label, json.dumps({**ev.summary(), **{
        k: v for k, v in res.counters.items() if v and k not in ("sent",)}}))
    if args.evaluate:
        if args.output:
            write_events(ev.events, sys.stdout if args.output == "-" else args.output)
        elif expected is None:
            write_events(ev.events, sys.stdout)
    if expected is not None:
        diff = diff_events(expected, ev.events, str(args.expect), "replay")
        if diff:
            print("\n".join(diff))
            return 1
        print(f"OK: {len(ev.events)} events, identical to {args.expect}")
    return 0


def _evaluation_pipeline(args, settings: Settings, root: str, start: float | None):
    """The pipeline as live ingest builds it (ingest.stored): the stored zones, registry, zone states and
    clearances as of the replay's start, the settings' policies and dialects; `--zones` replaces the airspace.
    When the store does not answer: the zone file (or --zones), an empty registry, nothing restored (said)."""
    from datetime import datetime, timezone

    import psycopg

    from ingest.stored import StoredTruth, read_stored, stored_pipeline
    from replay.evaluate import load_zones

    from ..wiring import pipeline_config
    zones = load_zones(args.zones) if args.zones else None
    at = datetime.now(timezone.utc) if start is None else datetime.fromtimestamp(start, timezone.utc)
    try:
        with psycopg.connect(settings.database_url, connect_timeout=3) as conn:
            truth = read_stored(conn, at, starting_now=False)
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("the store did not answer (%s): evaluating against %s without the device registry or stored "
                    "zone states and clearances", reason, args.zones or settings.zone_file)
        truth, zones = StoredTruth(), zones or load_zones(settings.zone_file)
    return stored_pipeline(truth, pipeline_config(settings), root, zones=zones)


def register(sub) -> None:
    s = sub.add_parser("record", help="record raw MQTT traffic to a file (JSON lines, gzip members)")
    s.add_argument("file", help="NAME.slrec.gz (or .slrec, uncompressed); rotated: NAME.00001.slrec.gz, ...")
    s.add_argument("--topic", action="append", help="topic filter (repeatable; default ROOT/#)")
    s.add_argument("--duration", type=_arg(parse_duration), help="how long to record (default: until Ctrl-C)")
    s.add_argument("--rotate-size", type=_arg(parse_size), help="start a new part past this size, e.g. 100M")
    s.add_argument("--rotate-seconds", type=_arg(parse_duration), help="start a new part this often, e.g. 1h")
    s.add_argument("--append", action="store_true", help="continue FILE instead of replacing it")
    s.set_defaults(func=cmd_record)

    s = sub.add_parser("replay", help="replay a recording or a stored window: into the broker, or evaluate it")
    s.add_argument("files", nargs="*", metavar="FILE", help="record file(s), a rotated set's name, or a directory")
    s.add_argument("--from-db", action="store_true", help="replay stored telemetry and readings (--start/--end)")
    s.add_argument("--rate", help="0.1 to 1000 (x real time), or max; default 1 (max with --evaluate)")
    s.add_argument("--start", help="from this time (RFC 3339 or epoch s; receive time for files)")
    s.add_argument("--end", help="until this time (exclusive)")
    s.add_argument("--offset", type=_arg(parse_duration), help="skip this much from the start of the recording")
    s.add_argument("--loop", action="store_true", help="start over at the end, until stopped")
    s.add_argument("--topic", action="append", help="only topics matching this MQTT filter (repeatable)")
    s.add_argument("--uav", action="append", help="only this UAV's telemetry (repeatable)")
    s.add_argument("--sensor", action="append", help="only this sensor's readings (repeatable)")
    s.add_argument("--include-outputs", action="store_true", help="also replay recorded events/ and state/ topics")
    s.add_argument("--from-root", help="root to take from the recording (default: the one in its header)")
    s.add_argument("--to-root", help="publish under this root (default: PREFIX/<recorded root>)")
    s.add_argument("--prefix", default="replay", help="default remapping prefix (default: replay)")
    s.add_argument("--live", action="store_true", help="publish onto the live root itself (SKYLANE_MQTT_ROOT)")
    s.add_argument("--target", choices=["broker", "pipeline"], default="broker",
                   help="broker (default) or the ingest pipeline in this process, printing events")
    s.add_argument("--evaluate", action="store_true", help="run the airspace core on event time, write events")
    s.add_argument("-o", "--output", help="with --evaluate: events file (JSON lines; '-' = stdout)")
    s.add_argument("--expect", help="compare the events with this file; exit 1 and print a diff if they differ")
    s.add_argument("--zones", type=Path, help="evaluate against this airspace instead of the stored zones (without "
                                              "a database: SKYLANE_ZONE_FILE)")
    s.add_argument("--batch-size", type=int, default=10_000, help="pipeline batch size (events do not depend on it)")
    s.add_argument("--max-pending", type=int, default=2000, help="unacknowledged QoS 1 publishes at most")
    s.add_argument("--paused", action="store_true", help="start paused (step with n, resume with space)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--no-keys", action="store_true", help="ignore the keyboard even on a terminal")
    s.set_defaults(func=cmd_replay)
