"""`skylane devices register FILE | list | fleet`: the registry of drones and sensors.

A registry entry: device_id, kind (uav | sensor), name, owner, sensor_kind, category (traffic, energy,
municipal, environment, weather), lon/lat, units ({metric: unit}), metrics, expected_interval_s and
properties (e.g. {"corridor_id": "C1"} for a corridor wind mast, {"limits": {"wind_gust": 14}} to move a
threshold rule's limit for this sensor). `fleet` prints the simulated fleet's records as a registry file.
"""
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
    if args.action == "fleet":
        from devices.fleet import make_fleet
        from devices.registry import fleet_records

        from ..wiring import read_zone_file
        drones, sensors = make_fleet(read_zone_file(settings), args.drones, args.sensors, args.seed)
        print(json.dumps([r.as_row() for r in fleet_records(drones, sensors, hz=args.hz)], indent=1,
                         ensure_ascii=False))
        return 0
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
    s = sub.add_parser("devices", help="register devices from a JSON file, list the registry, or print the "
                                       "simulated fleet as a registry file")
    s.add_argument("action", choices=["register", "list", "fleet"])
    s.add_argument("file", nargs="?", help="with register: a JSON list of device objects")
    s.add_argument("--kind", choices=["uav", "sensor", "unknown"], help="with list: only this kind")
    s.add_argument("--drones", type=int, default=12, help="with fleet: simulated drones")
    s.add_argument("--sensors", type=int, default=30, help="with fleet: simulated sensors")
    s.add_argument("--seed", type=int, default=17, help="with fleet: the simulator's seed")
    s.add_argument("--hz", type=float, default=1.0, help="with fleet: telemetry rate per drone")
    s.set_defaults(func=cmd_devices)
