"""`skylane services up|down|status`: the project-local Mosquitto and PostgreSQL."""
from __future__ import annotations

import sys

from ..settings import Settings


def cmd_services(args, settings: Settings) -> int:
    from .. import localservices as ls
    try:
        if args.action == "up":
            statuses = ls.up(settings)
        elif args.action == "down":
            ls.down(settings)
            statuses = ls.status(settings)
        else:
            statuses = ls.status(settings)
    except ls.ServiceError as exc:
        print(f"skylane services {args.action}: {exc}", file=sys.stderr)
        return 1
    for st in statuses:
        print(st.line())
    if args.action == "up":
        from ..wiring import prepare_database
        print(f"storage: {prepare_database(settings)}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("services", help="start, stop or show the project-local Mosquitto and PostgreSQL")
    s.add_argument("action", choices=["up", "down", "status"])
    s.set_defaults(func=cmd_services)
