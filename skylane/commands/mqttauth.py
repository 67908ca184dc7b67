"""`skylane mqtt-auth generate --out DIR`: Mosquitto password and ACL files from the device registry."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import psycopg

from ..settings import Settings


def _records(args, settings: Settings) -> list:
    if args.registry:
        from devices.registry import parse_registry
        return parse_registry(json.loads(Path(args.registry).read_text(encoding="utf-8")))
    from storage import catalog

    from ..wiring import prepare_database
    prepare_database(settings)
    with psycopg.connect(settings.database_url) as conn:
        return catalog.registry(conn)


def cmd_mqtt_auth(args, settings: Settings) -> int:
    from devices.acl import AclError, generate
    try:
        records = _records(args, settings)
        out = generate(records, settings.mqtt_root, Path(args.out),
                       Path(args.secret_file) if args.secret_file else None, args.with_simulator)
    except (OSError, ValueError) as exc:  # AclError and registry errors are ValueErrors
        kind = "registry" if not isinstance(exc, AclError) else "accounts"
        print(f"skylane mqtt-auth: {kind}: {exc}", file=sys.stderr)
        return 1
    print(f"{out.accounts} accounts ({out.devices} devices, {out.accounts - out.devices} services) for root "
          f"{settings.mqtt_root!r}:\n  {out.passwd}\n  {out.acl}\n  {out.credentials} (passwords: keep secret)\n"
          f"  {out.conf} (include it in mosquitto.conf, then reload the broker: kill -HUP)")
    return 0


def register(sub) -> None:
    s = sub.add_parser("mqtt-auth", help="generate Mosquitto password and ACL files from the device registry")
    s.add_argument("action", choices=["generate"])
    s.add_argument("--out", required=True, help="folder for passwd, acl, mosquitto-auth.conf, credentials.json")
    s.add_argument("--registry", help="a registry JSON file instead of the database's registry")
    s.add_argument("--secret-file", help="password secret (default OUT/secret; created when missing)")
    s.add_argument("--with-simulator", action="store_true",
                   help="add the skylane-sim account that may publish for every device (demo and tests only)")
    s.set_defaults(func=cmd_mqtt_auth)
