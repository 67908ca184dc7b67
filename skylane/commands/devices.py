"""`skylane devices register FILE | list`: the registry of drones and sensors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg

from ..settings import Settings


def cmd_devices(args, settings: Settings) -> int:
    from devices.registry import parse_registry
    from storage import catalog

    from ..wiring import prepare_database, register_devices
    prepare_database(settings)
    if args.action == "register":
        if not args.file:
            print("skylane devices register: name the registry file", file=sys.stderr)
            return 2
        try:
            records = parse_registry(json.loads(Path(args.file).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            print(f"skylane devices register: {args.file}: {exc}", file=sys.stderr)
            return 1
        print(f"registered {register_devices(settings, records)} devices")
        return 0
    with psycopg.connect(settings.database_url) as conn:
        for row in catalog.list_devices(conn, args.kind, 100000):
            print(json.dumps(row, ensure_ascii=False))
    return 0


def register(sub) -> None:
    s = sub.add_parser("devices", help="register devices from a JSON file, or list the registry")
    s.add_argument("action", choices=["register", "list"])
    s.add_argument("file", nargs="?", help="with register: a JSON list of device objects")
    s.add_argument("--kind", choices=["uav", "sensor", "unknown"], help="with list: only this kind")
    s.set_defaults(func=cmd_devices)
