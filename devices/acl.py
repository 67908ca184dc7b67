"""MQTT accounts for Mosquitto, generated from the device registry: a password file and an ACL file.

Every registered device is a user named after its id that may publish only to its own topics:
  uav     {root}/uav/{id}/telemetry, {root}/shard/+/uav/{id}/telemetry, {root}/device/{id}/status
          (and may read {root}/control/#: zone updates and suspensions)
  sensor  {root}/sensor/{id}/reading, {root}/shard/+/sensor/{id}/reading, {root}/device/{id}/status
(the status topic carries its retained "online" and its last will "offline", both checked by the broker).
The services have accounts of their own:
  skylane-ingest    reads everything under the root; writes events, state and control topics
  skylane-api       reads events, state, control and device status; writes control (zone suspensions)
  skylane-recorder  reads everything under the root (skylane record)
  skylane-sim       only with include_simulator: the simulator carries many devices on one connection,
                    so it may write every device topic (a test tool; never in production)
An unknown client, or a known one with a wrong password, is refused at CONNECT (allow_anonymous false).

Passwords are derived from a secret (HMAC-SHA256 of the user name), so regenerating after a registry
change keeps every existing device's password; the secret file is therefore as sensitive as all
passwords together. The password file uses Mosquitto 2's own format (what `mosquitto_passwd` writes):
`user:$7$101$<base64 salt, 12 bytes>$<base64 PBKDF2-HMAC-SHA512(password, salt, 101 iterations, 64 bytes)>`.
Device ids may contain ':', which the password file cannot hold in a user name: such devices are refused
with their ids named (give them another id).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol import topics

PBKDF2_ITERATIONS = 101  # Mosquitto 2.0's mosquitto_passwd default for $7$
SALT_BYTES = 12
HASH_BYTES = 64
SECRET_BYTES = 32

INGEST_USER = "skylane-ingest"
API_USER = "skylane-api"
RECORDER_USER = "skylane-recorder"
SIMULATOR_USER = "skylane-sim"


class AclError(ValueError):
    """The registry cannot be turned into accounts; the message names the devices."""


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    role: str  # "uav" | "sensor" | "service"
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------- passwords

def derive_password(secret: bytes, username: str) -> str:
    """A 32-character password for `username`, stable for a given secret."""
    mac = hmac.new(secret, f"skylane-mqtt-password|{username}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode()[:32]


def hash_password(password: str, salt: bytes) -> str:
    """Mosquitto's `$7$` hash (PBKDF2-HMAC-SHA512, 101 iterations, 64 bytes)."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, HASH_BYTES)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(hashed: str, password: str) -> bool:
    """Check a password against a `$7$` hash (the broker's check, for tests and `mqtt-auth check`)."""
    try:
        _, kind, iterations, salt_b64, digest_b64 = hashed.split("$")
        if kind != "7":
            return False
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    except ValueError:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(iterations), len(digest))
    return hmac.compare_digest(got, digest)


def _salt(secret: bytes, username: str) -> bytes:
    """Deterministic salt (unique per user and secret): the same registry gives byte-identical files."""
    return hmac.new(secret, f"skylane-mqtt-salt|{username}".encode(), hashlib.sha256).digest()[:SALT_BYTES]


# -------------------------------------------------------------------------------------------- accounts

def _get(rec: Any, key: str) -> Any:
    return rec.get(key) if isinstance(rec, Mapping) else getattr(rec, key, None)


def device_topics(root: str, device_id: str, kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read, write) topics of one device."""
    if kind == "uav":
        write = (topics.telemetry(root, device_id), f"{root}/shard/+/uav/{device_id}/telemetry")
        read: tuple[str, ...] = (f"{root}/control/#",)
    else:
        write = (topics.reading(root, device_id), f"{root}/shard/+/sensor/{device_id}/reading")
        read = ()
    return read, (*write, topics.status(root, device_id))


def service_accounts(root: str, secret: bytes, include_simulator: bool = False) -> list[Account]:
    outbound = tuple(topics.outbound_filters(root)) + (f"{root}/control/#",)
    services = [
        Account(INGEST_USER, derive_password(secret, INGEST_USER), "service", (f"{root}/#",), outbound),
        Account(API_USER, derive_password(secret, API_USER), "service", outbound + (f"{root}/device/+/status",),
                (f"{root}/control/#",)),
        Account(RECORDER_USER, derive_password(secret, RECORDER_USER), "service", (f"{root}/#",), ()),
    ]
    if include_simulator:
        services.append(Account(SIMULATOR_USER, derive_password(secret, SIMULATOR_USER), "service", (),
                                (f"{root}/uav/+/telemetry", f"{root}/sensor/+/reading", f"{root}/device/+/status",
                                 f"{root}/shard/#")))
    return services


def build_accounts(records: Iterable[Any], root: str, secret: bytes,
                   include_simulator: bool = False) -> list[Account]:
    """Accounts of the services and of every registered device (registry rows or DeviceRecords)."""
    services = service_accounts(root, secret, include_simulator)
    reserved = {a.username for a in services}
    devices, bad = [], []
    for rec in records:
        dev_id, kind = _get(rec, "device_id"), _get(rec, "kind")
        if kind not in ("uav", "sensor"):
            continue  # 'unknown': seen on the broker but never registered: no account
        if not isinstance(dev_id, str) or not topics.valid_id(dev_id) or ":" in dev_id or dev_id in reserved:
            bad.append(str(dev_id))
            continue
        read, write = device_topics(root, dev_id, kind)
        devices.append(Account(dev_id, derive_password(secret, dev_id), kind, read, write))
    if bad:
        raise AclError(f"{len(bad)} device ids cannot be MQTT user names (':' or a service name): "
                       f"{', '.join(sorted(bad)[:10])}")
    return services + sorted(devices, key=lambda a: a.username)


# ------------------------------------------------------------------------------------------- rendering

def render_passwd(accounts: Iterable[Account], secret: bytes) -> str:
    return "".join(f"{a.username}:{hash_password(a.password, _salt(secret, a.username))}\n" for a in accounts)


def render_acl(accounts: Iterable[Account], root: str) -> str:
    lines = [f"# Skylane MQTT ACL for root {root!r}, generated by `skylane mqtt-auth generate`: do not edit.",
             "# Mosquitto denies whatever is not granted here; anonymous clients are refused at CONNECT.", ""]
    for a in accounts:
        lines.append(f"user {a.username}")
        both = [t for t in a.read if t in a.write]
        lines += [f"topic readwrite {t}" for t in both]
        lines += [f"topic read {t}" for t in a.read if t not in both]
        lines += [f"topic write {t}" for t in a.write if t not in both]
        lines.append("")
    return "\n".join(lines)


def render_conf(out_dir: Path) -> str:
    """The broker settings that turn authentication on (include it, or copy the lines into mosquitto.conf)."""
    return (f"# generated by `skylane mqtt-auth generate`\nallow_anonymous false\n"
            f"password_file {out_dir.resolve() / 'passwd'}\nacl_file {out_dir.resolve() / 'acl'}\n")


@dataclass(frozen=True)
class Generated:
    passwd: Path
    acl: Path
    conf: Path
    credentials: Path
    accounts: int
    devices: int


def load_or_create_secret(path: Path) -> bytes:
    """The password secret: read it, or create it (0600) on first use."""
    if path.exists():
        secret = base64.b64decode(path.read_text().strip())
        if len(secret) < 16:
            raise AclError(f"{path}: the secret is shorter than 16 bytes")
        return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(secret).decode() + "\n")
    return secret


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)  # the broker never reads a half-written file


def generate(records: Iterable[Any], root: str, out_dir: Path, secret_file: Path | None = None,
             include_simulator: bool = False) -> Generated:
    """Write passwd, acl, mosquitto-auth.conf and credentials.json (user -> password, 0600, for provisioning
    devices and configuring the services) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    secret = load_or_create_secret(secret_file or out_dir / "secret")
    accounts = build_accounts(records, root, secret, include_simulator)
    paths = Generated(out_dir / "passwd", out_dir / "acl", out_dir / "mosquitto-auth.conf",
                      out_dir / "credentials.json", len(accounts), sum(a.role != "service" for a in accounts))
    _write(paths.passwd, render_passwd(accounts, secret), 0o640)
    _write(paths.acl, render_acl(accounts, root), 0o644)
    _write(paths.conf, render_conf(out_dir), 0o644)
    _write(paths.credentials, json.dumps({a.username: a.password for a in accounts}, indent=1) + "\n", 0o600)
    return paths
