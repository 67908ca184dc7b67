"""`skylane keys create --role R [--owner O] [--name N] | revoke KEY_ID | list`: API keys."""
from __future__ import annotations

import json
import sys

import psycopg

from ..settings import Settings


def cmd_keys(args, settings: Settings) -> int:
    from storage import auth

    from ..wiring import prepare_database
    prepare_database(settings)
    with psycopg.connect(settings.database_url) as conn:
        if args.action == "create":
            if not args.role:
                print("skylane keys create: --role is required", file=sys.stderr)
                return 2
            try:
                created = auth.create_key(conn, args.role, args.owner, args.name)
            except ValueError as exc:
                print(f"skylane keys create: {exc}", file=sys.stderr)
                return 2
            print(f"key id: {created.key_id}  role: {created.role}  owner: {created.owner or '-'}", file=sys.stderr)
            print("the key below is shown once; store it now (only its hash is kept):", file=sys.stderr)
            print(created.key)
            return 0
        if args.action == "revoke":
            if not args.key_id:
                print("skylane keys revoke: name the KEY_ID (see `skylane keys list`)", file=sys.stderr)
                return 2
            key_id = auth.parse_key_id(args.key_id) or args.key_id  # a whole key works too
            if not auth.revoke_key(conn, key_id):
                print(f"skylane keys revoke: no active key {key_id!r}", file=sys.stderr)
                return 1
            print(f"revoked {key_id} (API processes stop accepting it within a few seconds)")
            return 0
        for row in auth.list_keys(conn, include_revoked=args.all):
            print(json.dumps(row, ensure_ascii=False))
    return 0


def register(sub) -> None:
    s = sub.add_parser("keys", help="create, revoke or list API keys (roles: viewer, operator, engineer, admin)")
    s.add_argument("action", choices=["create", "revoke", "list"])
    s.add_argument("key_id", nargs="?", help="with revoke: the key id (or the whole key)")
    s.add_argument("--role", choices=["viewer", "operator", "engineer", "admin"], help="with create")
    s.add_argument("--owner", help="with create: the devices.owner an operator key acts for (required for operators)")
    s.add_argument("--name", help="with create: a label, e.g. who holds the key")
    s.add_argument("--all", action="store_true", help="with list: include revoked keys")
    s.set_defaults(func=cmd_keys)


def demo_keys(settings: Settings) -> dict[str, str]:
    """A fresh key per role for `skylane demo` (earlier demo keys revoked); role -> key."""
    from storage.auth import ensure_demo_keys
    with psycopg.connect(settings.database_url) as conn:
        return ensure_demo_keys(conn)


def demo_keys_text(keys: dict[str, str]) -> str:
    """The lines the demo prints: one key per role, to paste into the dashboard's sign-in."""
    rows = "\n".join(f"    {role:<9} {key}" for role, key in keys.items())
    return f"  API keys for this demo run (new ones each start; paste one into the dashboard):\n{rows}\n"
