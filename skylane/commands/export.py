"""`skylane export --start T --end T [--uav ID ...] [--sensor ID ...] -o FILE`: a stored window as a recording."""
from __future__ import annotations

import logging
import sys

from ..settings import Settings

log = logging.getLogger("skylane")


def cmd_export(args, settings: Settings) -> int:
    from replay.dbexport import export
    from replay.sources import parse_time
    try:
        start, end = parse_time(args.start), parse_time(args.end)
        if start is None or end is None or end <= start:
            raise ValueError("--end must be after --start")
    except ValueError as exc:
        print(f"skylane export: {exc}", file=sys.stderr)
        return 2

    def progress(n: int) -> None:
        print(f"\rexported {n} messages", end="", file=sys.stderr, flush=True)

    n = export(settings.database_url, args.output, start, end, root=settings.mqtt_root, uavs=args.uav,
               sensors=args.sensor, progress=progress)
    print(file=sys.stderr)
    log.info("exported %d messages (%s .. %s) to %s", n, args.start, args.end, args.output)
    return 0


def register(sub) -> None:
    s = sub.add_parser("export", help="write stored telemetry and readings of a window as a recording")
    s.add_argument("--start", required=True, help="RFC 3339 or epoch seconds (event time, inclusive)")
    s.add_argument("--end", required=True, help="RFC 3339 or epoch seconds (exclusive)")
    s.add_argument("--uav", action="append", help="only this UAV's telemetry (repeatable)")
    s.add_argument("--sensor", action="append", help="only this sensor's readings (repeatable)")
    s.add_argument("-o", "--output", required=True, help="NAME.slrec.gz (or .slrec)")
    s.set_defaults(func=cmd_export)
