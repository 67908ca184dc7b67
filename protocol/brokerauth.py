"""Who may connect to the broker and what each account may do: Mosquitto password and ACL files.

Mosquitto runs two listeners (`per_listener_settings true`), each with its own password and ACL file:

- the **device listener** (1883; TLS on 8883 when certificates exist) holds one account per registered
  device, named after its id, with `use_username_as_clientid`: a device's client id is its user name, so
  nobody can take over another client's session there;
- the **service listener** (1884, bound to the services' network only) holds Skylane's own accounts:
  ingest, api, recorder (record and replay), simulator (many simulated devices on one connection), admin
  (command-line tools) and the bridges. No device or outside system has an account on it, so none can connect
  as, or take over the persistent session of, a service.
- systems outside Skylane (skylane-lns, a LoRaWAN network server's integration) connect to the device listener:
  their client id is their user name too.

Least privilege (root `R`, replay roots under `replay/`):

| account | read | write |
|---|---|---|
| a drone `D` | `R/control/clearance/D`, `R/control/zones`, `R/control/zone/+` | `R/uav/D/telemetry`, `R/shard/+/uav/D/telemetry`, `R/device/D/status` |
| a sensor `S` | nothing | `R/sensor/S/reading`, `R/shard/+/sensor/S/reading`, `R/device/S/status` |
| skylane-ingest | `R/{uav,sensor,device,shard,obs,rid,mavlink}/#`, `R/control/#` | `R/events/#`, `R/state/#`, `R/control/zone/#` |
| skylane-api | `R/events/#`, `R/state/#`, `R/control/#`, `R/device/+/status` | `R/control/#` |
| skylane-recorder | `R/#`, the dialect topics | device topics, the dialects' device topics (`skylane replay --live`) |
| skylane-sim | DJI status replies | device topics, the dialects' device topics (`skylane simulate --dialect`) |
| skylane-admin | `R/control/#` | `R/control/#` |
| skylane-receiver (`skylane adsb`, surveillance bridges) | nothing | `R/obs/#`, `R/rid/#`, `R/device/+/status` (its receivers' presence) |
| a registered Remote ID receiver `X` (`"rid_receiver": true`) | as its kind | as its kind, and `R/rid/X` |
| skylane-bridge (`skylane bridge mavlink`) | nothing | device topics, `R/rid/#` (autopilots' own Remote ID), `R/mavlink/#` (unregistered vehicles' notices) |
| skylane-lns (a LoRaWAN network server's MQTT integration; device listener) | its command topics | `application/#`, `v3/#` |
| DJI gateway `SN` (a dock, or an RC running DJI Pilot 2; device listener) | its `sys/product/SN/status_reply` and `thing/product/SN/{services,events_reply,requests_reply,property/set}` | `sys/product/SN/status`, `thing/product/SN/{osd,state,events,requests,services_reply,property/set_reply}`, and `thing/product/A/{osd,state,events}` of each aircraft `A` that names it as `dji_gateway` |
Every service account may read and write `replay/#` (replays and the
pipelines that evaluate them). Only service accounts publish `control/#`, `events/#` and `state/#`. The ingest
account also reads the input dialects' topics (DIALECT_TOPICS) and answers DJI gateways on their status_reply.

Passwords are HMAC-SHA256(secret, user name): one secret (mode 0600) gives every account's password, so
regenerating after a registry change keeps every existing password. The password files are Mosquitto 2's
own format (`mosquitto_passwd`): `user:$7$101$<salt>$<PBKDF2-HMAC-SHA512>`.
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

from . import topics

PBKDF2_ITERATIONS = 101  # Mosquitto 2.0's mosquitto_passwd default for $7$
SALT_BYTES = 12
HASH_BYTES = 64
SECRET_BYTES = 32
REPLAY_TREE = "replay/#"

# role -> account name of Skylane's own clients
SERVICE_ACCOUNTS = {"ingest": "skylane-ingest", "api": "skylane-api", "recorder": "skylane-recorder",
                    "simulator": "skylane-sim", "admin": "skylane-admin", "bridge": "skylane-bridge",
                    "lns": "skylane-lns",
                    "receiver": "skylane-receiver"}  # surveillance bridges (skylane adsb) and Remote ID receivers
SERVICE_USERS = frozenset(SERVICE_ACCOUNTS.values())
# control messages may only come from these (the ingester checks the issuer too)
CONTROL_ISSUERS = frozenset({SERVICE_ACCOUNTS["ingest"], SERVICE_ACCOUNTS["api"], SERVICE_ACCOUNTS["admin"]})


# The input dialects' topics (ingest/dialects), outside the root: what the ingest account subscribes to
DIALECT_TOPICS = ("thing/product/+/osd", "thing/product/+/state", "sys/product/+/status",  # DJI Cloud API
                  "application/+/device/+/event/up", "application/+/device/+/event/join",  # ChirpStack v4
                  "application/+/device/+/event/status",
                  "v3/+/devices/+/up", "v3/+/devices/+/join")  # The Things Stack v3
DJI_REPLIES = ("sys/product/+/status_reply",)  # ingest answers update_topo there
# what devices and network servers publish in those dialects (the simulator speaks them; live replays resend them)
DIALECT_DEVICE_TOPICS = ("thing/product/+/osd", "thing/product/+/state", "sys/product/+/status", "application/#",
                         "v3/#")
LNS_WRITE = ("application/#", "v3/#")  # a network server's integration publishes its events ...
LNS_READ = ("application/+/device/+/command/#", "v3/+/devices/+/down/#")  # ... and subscribes to its commands
DJI_GATEWAY_WRITE = ("osd", "state", "events", "requests", "services_reply", "property/set_reply")
DJI_GATEWAY_READ = ("services", "events_reply", "requests_reply", "property/set")
DJI_RELAYED = ("osd", "state", "events")  # what a gateway publishes for the aircraft under it


class AuthError(ValueError):
    """The registry cannot be turned into accounts, or a secret is unusable; the message says which."""


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
    """Check a password against a `$7$` hash (the broker's check, for tests and tools)."""
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


def load_secret(path: Path) -> bytes:
    """The password secret in `path` (AuthError when missing or too short)."""
    try:
        secret = base64.b64decode(path.read_text().strip())
    except OSError as exc:
        raise AuthError(f"no MQTT secret at {path} ({exc.strerror}): run `skylane mqtt-auth generate` or "
                        f"`skylane services up`, or set SKYLANE_MQTT_USERNAME and SKYLANE_MQTT_PASSWORD") from None
    except ValueError:
        raise AuthError(f"{path}: not a base64 secret") from None
    if len(secret) < 16:
        raise AuthError(f"{path}: the secret is shorter than 16 bytes")
    return secret


def load_or_create_secret(path: Path) -> bytes:
    """The password secret: read it, or create it (0600) on first use."""
    if path.exists():
        return load_secret(path)
    secret = secrets.token_bytes(SECRET_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(secret).decode() + "\n")
    return secret


# -------------------------------------------------------------------------------------------- accounts

def _get(rec: Any, key: str) -> Any:
    return rec.get(key) if isinstance(rec, Mapping) else getattr(rec, key, None)


def device_filters(root: str) -> tuple[str, ...]:
    """Every topic a device publishes on (what the simulator and a live replay may write)."""
    return (f"{root}/uav/+/telemetry", f"{root}/sensor/+/reading", f"{root}/device/+/status", f"{root}/shard/#")


def device_topics(root: str, device_id: str, kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read, write) topics of one device."""
    if kind == "uav":
        write = (topics.telemetry(root, device_id), f"{root}/shard/+/uav/{device_id}/telemetry")
        read: tuple[str, ...] = (topics.control_clearance(root, device_id), topics.control_zones(root),
                                 topics.control_zone_filter(root))
    else:
        write = (topics.reading(root, device_id), f"{root}/shard/+/sensor/{device_id}/reading")
        read = ()
    return read, (*write, topics.status(root, device_id))


def service_accounts(root: str, secret: bytes) -> list[Account]:
    """Skylane's own accounts (see the module's table)."""
    control = f"{root}/control/#"
    outputs = (f"{root}/events/#", f"{root}/state/#")
    devices = device_filters(root)
    families = tuple(f"{root}/{family}/#" for family in ("uav", "sensor", "device", "shard", "obs", "rid"))
    grants = {  # ingest reads whole device families: wrong topic shapes become dead letters, not unseen
        "ingest": (families + (control, f"{root}/mavlink/#") + DIALECT_TOPICS, outputs + (f"{root}/control/zone/#",) + DJI_REPLIES),
        "api": (outputs + (control, f"{root}/device/+/status"), (control,)),
        "recorder": ((f"{root}/#",) + DIALECT_TOPICS, devices + DIALECT_DEVICE_TOPICS),
        "simulator": (DJI_REPLIES, devices + DIALECT_DEVICE_TOPICS + (f"{root}/rid/#",)),  # + simulated RID receivers
        "admin": ((control,), (control,)),
        "receiver": ((), (f"{root}/obs/#", f"{root}/rid/#", f"{root}/device/+/status")),
        "bridge": ((), devices + (f"{root}/rid/#", f"{root}/mavlink/#")),
    }
    return [Account(SERVICE_ACCOUNTS[role], derive_password(secret, SERVICE_ACCOUNTS[role]), "service",
                    read + (REPLAY_TREE,), write + (REPLAY_TREE,)) for role, (read, write) in grants.items()]


def integration_accounts(secret: bytes) -> list[Account]:
    """Accounts of systems outside Skylane (a LoRaWAN network server's integration). They live on the device
    listener, where the client id is the user name: such a system can neither take over a service's persistent
    session (as it could on the service listener, where Skylane's own clients choose their ids) nor reach the
    replay tree."""
    grants = {"lns": (LNS_READ, LNS_WRITE)}
    return [Account(SERVICE_ACCOUNTS[role], derive_password(secret, SERVICE_ACCOUNTS[role]), "integration", read,
                    write) for role, (read, write) in grants.items()]


def device_accounts(records: Iterable[Any], root: str, secret: bytes) -> list[Account]:
    """An account per registered drone and sensor (registry rows or DeviceRecords), and per DJI gateway serial
    number (dji_topics), sorted by name."""
    devices, bad = [], []
    for rec in records:
        dev_id, kind = _get(rec, "device_id"), _get(rec, "kind")
        if kind not in ("uav", "sensor"):
            continue  # 'unknown': seen on the broker but never registered: no account
        if not isinstance(dev_id, str) or not topics.valid_id(dev_id) or ":" in dev_id \
                or dev_id.startswith("skylane-"):
            bad.append(str(dev_id))
            continue
        read, write = device_topics(root, dev_id, kind)
        if (_get(rec, "properties") or {}).get("rid_receiver") is True:  # forwards what it hears, as itself only
            write += (topics.remote_id(root, dev_id),)
        devices.append(Account(dev_id, derive_password(secret, dev_id), kind, read, write))
    for sn, (read, write) in dji_topics(records).items():
        if not topics.valid_id(sn) or ":" in sn or sn.startswith("skylane-"):
            bad.append(sn)
            continue
        same = next((i for i, a in enumerate(devices) if a.username == sn), None)
        if same is None:
            devices.append(Account(sn, derive_password(secret, sn), "dji", read, write))
        else:  # a device registered under its serial number: one account with both contracts' topics
            a = devices[same]
            devices[same] = Account(sn, a.password, a.role, a.read + read, a.write + write)
    if bad:
        raise AuthError(f"{len(bad)} device ids or DJI serial numbers cannot be MQTT user names (':' or the reserved "
                        f"prefix 'skylane-'): {', '.join(sorted(bad)[:10])}")
    return sorted(devices, key=lambda a: a.username)


def dji_topics(records: Iterable[Any]) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """SN -> (read, write) of every DJI gateway: each registry entry's `dji_sn` (docks and RCs connect as their SN;
    an aircraft registered with its SN may publish its own topics too), and each `dji_gateway` an aircraft names,
    which may also publish that aircraft's osd, state and events (DJI's gateways relay their aircraft)."""
    own: dict[str, None] = {}
    relays: dict[str, list[str]] = {}
    for rec in records:
        if _get(rec, "kind") not in ("uav", "sensor"):
            continue
        props = _get(rec, "properties") or {}
        sn = props.get("dji_sn")
        if isinstance(sn, str) and sn:
            own[sn] = None
            gateways = props.get("dji_gateway")
            for gw in [gateways] if isinstance(gateways, str) else gateways or []:
                if isinstance(gw, str) and gw:
                    relays.setdefault(gw, []).append(sn)
    out = {}
    for sn in sorted({*own, *relays}):
        read = (f"sys/product/{sn}/status_reply",) + tuple(f"thing/product/{sn}/{t}" for t in DJI_GATEWAY_READ)
        write = (f"sys/product/{sn}/status",) + tuple(f"thing/product/{sn}/{t}" for t in DJI_GATEWAY_WRITE)
        write += tuple(f"thing/product/{a}/{t}" for a in relays.get(sn, []) if a != sn for t in DJI_RELAYED)
        out[sn] = (read, write)
    return out


# ------------------------------------------------------------------------------------------- rendering

def render_passwd(accounts: Iterable[Account], secret: bytes) -> str:
    return "".join(f"{a.username}:{hash_password(a.password, _salt(secret, a.username))}\n" for a in accounts)


def render_acl(accounts: Iterable[Account], root: str, listener: str) -> str:
    lines = [f"# Skylane MQTT ACL of the {listener} listener for root {root!r}, generated by Skylane: do not edit.",
             "# Mosquitto denies whatever is not granted here; anonymous clients are refused at CONNECT.", ""]
    for a in accounts:
        lines.append(f"user {a.username}")
        both = [t for t in a.read if t in a.write]
        lines += [f"topic readwrite {t}" for t in both]
        lines += [f"topic read {t}" for t in a.read if t not in both]
        lines += [f"topic write {t}" for t in a.write if t not in both]
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class Listener:
    """One Mosquitto listener: where, and whether it is the device (client id = user name) one."""
    port: int
    host: str
    devices: bool
    tls: tuple[Path, Path, Path] | None = None  # (CA, certificate, key)


def render_listeners(listeners: Iterable[Listener], auth_dir: Path) -> str:
    """The listener blocks of mosquitto.conf, each with its own password and ACL file."""
    out = ["per_listener_settings true"]
    for lis in listeners:
        kind = "devices" if lis.devices else "services"
        out += [f"listener {lis.port} {lis.host}", "allow_anonymous false",
                f"password_file {auth_dir.resolve() / (kind + '.passwd')}",
                f"acl_file {auth_dir.resolve() / (kind + '.acl')}"]
        if lis.devices:
            out.append("use_username_as_clientid true")
        if lis.tls is not None:
            ca, cert, key = lis.tls
            out += [f"cafile {ca.resolve()}", f"certfile {cert.resolve()}", f"keyfile {key.resolve()}",
                    "tls_version tlsv1.2"]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Generated:
    services_passwd: Path
    services_acl: Path
    devices_passwd: Path
    devices_acl: Path
    credentials: Path
    services: int
    devices: int
    integrations: int = 0  # outside systems' accounts, on the device listener


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)  # the broker never reads a half-written file


def generate_services(out_dir: Path, root: str, secret: bytes, extra: Iterable[Account] = ()) -> list[Account]:
    """Write services.passwd and services.acl (Skylane's accounts, plus `extra` ones: e.g. a test suite's)."""
    accounts = service_accounts(root, secret) + list(extra)
    _write(out_dir / "services.passwd", render_passwd(accounts, secret), 0o640)
    _write(out_dir / "services.acl", render_acl(accounts, root, "service"), 0o644)
    return accounts


def generate_devices(out_dir: Path, records: Iterable[Any], root: str, secret: bytes) -> list[Account]:
    """Write devices.passwd and devices.acl: one account per registered device, and the integrations'."""
    accounts = device_accounts(records, root, secret) + integration_accounts(secret)
    _write(out_dir / "devices.passwd", render_passwd(accounts, secret), 0o640)
    _write(out_dir / "devices.acl", render_acl(accounts, root, "device"), 0o644)
    return accounts


def generate(records: Iterable[Any], root: str, out_dir: Path, secret_file: Path | None = None) -> Generated:
    """Write both listeners' files and credentials.json (user -> password, 0600, for provisioning devices and
    configuring the services) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    secret = load_or_create_secret(secret_file or out_dir / "secret")
    services = generate_services(out_dir, root, secret)
    devices = generate_devices(out_dir, records, root, secret)
    _write(out_dir / "credentials.json", json.dumps({a.username: a.password for a in services + devices},
                                                    indent=1) + "\n", 0o600)
    outside = sum(a.role == "integration" for a in devices)
    return Generated(out_dir / "services.passwd", out_dir / "services.acl", out_dir / "devices.passwd",
                     out_dir / "devices.acl", out_dir / "credentials.json", len(services), len(devices) - outside,
                     outside)
