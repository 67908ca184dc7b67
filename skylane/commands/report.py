"""`skylane report RECORDING -o FILE.html [--zones FILE] [--uav ID] [--lang zh-CN|en]`: the incident report of a
recording.

One self-contained HTML page (replay/report_html.py): map with the tracks and zones, altitude profile,
timeline of the evaluated events, the sensor values that mattered. Opens offline, prints on A4. `--lang`: the
page's language (default English, whatever the shell's LANG says, so a script's output does not change with
the machine it runs on; the API's report follows the caller's Accept-Language instead).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from i18n import LANGS

from ..settings import Settings

log = logging.getLogger("skylane")


def cmd_report(args, settings: Settings) -> int:
    from replay.report import build_report
    from replay.sources import FileSource

    from .recording import _evaluation_pipeline
    try:
        source = FileSource(args.recording)
        pipeline = _evaluation_pipeline(args, settings, source.root, source.starts_at())  # as live ingest's
        html = build_report(source, pipeline.monitor.zones, uav=args.uav, title=args.title, language=args.lang,
                            pipeline=pipeline)
    except (OSError, ValueError) as exc:  # replay.recordfile.RecordFormatError too
        print(f"skylane report: {exc}", file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.write(html)
    else:
        Path(args.output).write_text(html, encoding="utf-8")
        log.info("report of %s written to %s (%d KiB)", source.label, args.output, len(html.encode()) // 1024)
    return 0


def register(sub) -> None:
    s = sub.add_parser("report", help="an incident report (self-contained HTML) of a recording")
    s.add_argument("recording", nargs="+", help="record file(s), a rotated set's name, or a directory")
    s.add_argument("-o", "--output", required=True, help="FILE.html ('-': standard output)")
    s.add_argument("--zones", type=Path, help="evaluate against this airspace instead of SKYLANE_ZONE_FILE")
    s.add_argument("--uav", help="only this drone's events and track")
    s.add_argument("--title", help="the report's title (default: the recording's name)")
    s.add_argument("--lang", choices=LANGS, default="en", help="the report's language (default: en)")
    s.set_defaults(func=cmd_report)
