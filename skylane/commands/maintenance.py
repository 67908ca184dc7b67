"""`skylane maintenance [--every S]`: rollups and retention on plain PostgreSQL (TimescaleDB has policies)."""
from __future__ import annotations

import json
import sys
from datetime import timedelta

from protocol.times import parse_rfc3339

from ..settings import Settings
from . import stop_on_signals


def cmd_maintenance(args, settings: Settings) -> int:
    from storage.rollups import run_maintenance

    from ..wiring import prepare_database
    prepare_database(settings)
    try:
        start = parse_rfc3339(args.since) if args.since else None
    except ValueError as exc:
        print(f"skylane maintenance: --since: {exc} (e.g. 2026-05-01T00:00:00Z)", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    while True:
        r = run_maintenance(settings.database_url, window=timedelta(minutes=args.window_min), start=start,
                            retention=not args.no_retention)
        print(json.dumps({"storage": r.storage, "start": r.start.isoformat(), "end": r.end.isoformat(),
                          "rollup_rows": r.rollup_rows, "deleted_rows": r.deleted_rows}), flush=True)
        start = None  # --since only for the first pass (a backfill); then the trailing window
        if not args.every or stop.wait(args.every):
            return 0


def register(sub) -> None:
    s = sub.add_parser("maintenance", help="refresh rollups and apply retention (plain PostgreSQL; "
                                           "TimescaleDB runs policies itself)")
    s.add_argument("--every", type=float, help="repeat every S seconds until Ctrl-C (default: once)")
    s.add_argument("--window-min", type=float, default=120.0,
                   help="refresh the rollups of the last N minutes (late rows inside it are counted)")
    s.add_argument("--since", help="first pass: refresh from this time (ISO 8601), e.g. to backfill")
    s.add_argument("--no-retention", action="store_true", help="only refresh rollups")
    s.set_defaults(func=cmd_maintenance)
