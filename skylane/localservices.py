"""Project-local Mosquitto and PostgreSQL without Docker.

`skylane services up` starts both on the ports named by SKYLANE_MQTT_URL and SKYLANE_DATABASE_URL,
with their data under the git-ignored state folder (.skylane/services). Missing Debian packages are
installed when running as root; otherwise the message says what to install. PostgreSQL refuses to run
as root, so as root both servers run as their Debian service users.
"""
from __future__ import annotations

import glob
import json
import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from protocol import brokerauth
from protocol.mqttclient import parse_mqtt_url

from .settings import Settings

log = logging.getLogger("skylane.services")


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says what to do."""


@dataclass
class ServiceStatus:
    name: str
    address: str
    running: bool
    ours: bool  # a project-local server of this checkout answers (else: external, or nothing)
    detail: str

    def line(self) -> str:
        state = ("running (project-local)" if self.ours else "running (external, not started by Skylane)") \
            if self.running else "stopped"
        return f"{self.name:<11} {self.address:<22} {state:<43} {self.detail}"


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.1)
    return False


def _is_root() -> bool:
    return os.geteuid() == 0


_apt_updated = False


def ensure_packages(binaries: dict[str, str]) -> None:
    """Install the Debian packages whose binaries are missing (as root), else explain."""
    global _apt_updated
    missing = sorted({pkg for binary, pkg in binaries.items() if not _find_binary(binary)})
    if not missing:
        return
    if not _is_root() or not shutil.which("apt-get"):
        raise ServiceError(f"missing {', '.join(missing)}: install with `sudo apt-get install -y {' '.join(missing)}`")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log.info("installing Debian packages: %s", " ".join(missing))
    for _ in range(2):
        if not _apt_updated:
            subprocess.run(["apt-get", "update", "-q"], check=False, env=env, stdout=subprocess.DEVNULL)
            _apt_updated = True
        rc = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env,
                            stdout=subprocess.DEVNULL).returncode
        if rc == 0:
            return
        _apt_updated = False
    raise ServiceError(f"apt-get install {' '.join(missing)} failed")


def _find_binary(name: str) -> str | None:
    if name in ("initdb", "pg_ctl", "postgres"):
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
        return found[-1] if found else shutil.which(name)
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}",) if os.path.exists(p)), None)


def _service_user(name: str) -> pwd.struct_passwd | None:
    """The user a server runs as: itself when not root, its Debian user when root."""
    if not _is_root():
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServiceError(f"user {name!r} does not exist; install the Debian package that creates it") from None


def _reachable_by(user: pwd.struct_passwd | None, path: Path) -> bool:
    if user is None:
        return True
    rc = subprocess.run(["runuser", "-u", user.pw_name, "--", "test", "-x", str(path)], capture_output=True)
    return rc.returncode == 0


def _data_dir(settings: Settings, name: str, user: pwd.struct_passwd | None) -> Path:
    """Data under the state folder; a system folder when the service user cannot reach it (e.g. /root)."""
    base = settings.state_dir / "services"
    base.mkdir(parents=True, exist_ok=True)
    if not _reachable_by(user, base):
        digest = hashlib.sha1(str(base.resolve()).encode()).hexdigest()[:10]
        base = Path("/var/lib/skylane") / digest
        base.mkdir(parents=True, exist_ok=True)
        os.chmod(base.parent, 0o755)
        os.chmod(base, 0o755)
        link = settings.state_dir / "services" / "LOCATION"
        link.write_text(f"service data for this checkout lives in {base} (the service users cannot reach the checkout)\n")
    d = base / name
    d.mkdir(parents=True, exist_ok=True)
    if user is not None:
        os.chown(d, user.pw_uid, user.pw_gid)
        os.chmod(d, 0o700)
    return d


def _run_as(user: pwd.struct_passwd | None, argv: list[str], **kw) -> subprocess.CompletedProcess:
    if user is not None:
        argv = ["runuser", "-u", user.pw_name, "--", *argv]
    return subprocess.run(argv, **kw)


# --------------------------------------------------------------------------------------------- Mosquitto

MOSQUITTO_CONF = """# Skylane project-local broker (generated by `skylane services up`): every client authenticates
{listeners}persistence true
persistence_location {dir}/
pid_file {dir}/mosquitto.pid
log_dest file {dir}/mosquitto.log
log_type error
log_type warning
log_type notice
connection_messages true
{user_line}
{tuning}"""

# Shared with deploy/mosquitto/mosquitto.conf (tests/test_ingest_noloss.py checks that they agree).
MOSQUITTO_TUNING = """# --- No loss at ingest rates (docs/scale-out.md) ---
# Ingest acknowledges a message only after its batch is committed, so many messages are in flight at once:
# the window (for MQTT 3 clients; MQTT 5 clients ask with Receive Maximum) must hold a few batches.
max_inflight_messages 10000
max_inflight_bytes 0
# A persistent session's queue absorbs what arrives while its ingester is down or the database is slow.
# Mosquitto drops QoS 1 messages silently past these limits: sized for a few minutes at 25,000 msg/s,
# bounded in bytes so the broker cannot run out of memory.
max_queued_messages 5000000
max_queued_bytes 2000000000
queue_qos0_messages false
# Sessions (and their queues) outlive a restart of the broker: saved on shutdown and every 30 s.
persistent_client_expiration 7d
autosave_interval 30
autosave_on_changes false
# Largest message: 1 MiB (control messages announce changes, they do not carry the zone set); device
# payloads over SKYLANE_MAX_PAYLOAD_BYTES (64 KiB) become dead letters at the ingester.
max_packet_size 1048576
set_tcp_nodelay true
"""


def _mosquitto_paths(settings: Settings) -> tuple[Path, str, int, pwd.struct_passwd | None]:
    host, port = parse_mqtt_url(settings.mqtt_url)
    user = _service_user("mosquitto")
    return _data_dir(settings, f"mosquitto-{port}", user), host, port, user


def _pid_alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


TLS_FILES = ("ca.crt", "server.crt", "server.key")


def tls_files(settings: Settings) -> tuple[Path, ...] | None:
    """(CA, server certificate, key) made by `skylane mqtt-auth tls`, or None when there are none."""
    files = tuple(settings.mqtt_tls_dir / n for n in TLS_FILES)
    return files if all(f.exists() for f in files) else None


def _broker_tls(settings: Settings) -> tuple[Path, ...] | None:
    """tls_files copied where the broker's user reads them."""
    if tls_files(settings) is None:
        return None
    src, names = settings.mqtt_tls_dir, TLS_FILES
    d = broker_auth_dir(settings) / "tls"
    d.mkdir(parents=True, exist_ok=True)
    user = _service_user("mosquitto")
    for n in names:
        shutil.copyfile(src / n, d / n)
        os.chmod(d / n, 0o640 if n.endswith(".key") else 0o644)
        if user is not None:
            os.chown(d / n, 0, user.pw_gid)
    return tuple(d / n for n in names)


def broker_listeners(settings: Settings, tls: tuple[Path, ...] | None) -> list[brokerauth.Listener]:
    """The service listener, the device listener and, with `tls` (CA, certificate, key), the device listener
    over TLS."""
    s_host, s_port = parse_mqtt_url(settings.mqtt_url)
    d_host, d_port = parse_mqtt_url(settings.mqtt_device_url)
    if (s_host, s_port) == (d_host, d_port):
        raise ServiceError(f"SKYLANE_MQTT_URL and SKYLANE_MQTT_DEVICE_URL name the same listener {s_host}:{s_port}; "
                           "services and devices need a listener each")
    out = [brokerauth.Listener(s_port, s_host, False), brokerauth.Listener(d_port, d_host, True)]
    if tls is not None:
        out.append(brokerauth.Listener(settings.mqtt_tls_port, d_host, True, tls))
    return out


def broker_auth_dir(settings: Settings) -> Path:
    """The project-local broker's password and ACL files (and a copy of its TLS files): beside its data, where
    the broker's user can read them."""
    return _mosquitto_paths(settings)[0] / "auth"


def write_broker_auth(settings: Settings, records=None, extra_services=None) -> None:
    """The broker's password and ACL files in broker_auth_dir (the secret is made on first use). With
    `records` (registry rows), the device listener's files from them; without, the service listener's files
    (Skylane's accounts plus `extra_services`, which are kept for later calls that give none: a test suite's
    account), and empty device files if there are none yet. Readable by the broker's user, not by others."""
    d = broker_auth_dir(settings)
    d.mkdir(parents=True, exist_ok=True)
    secret = brokerauth.load_or_create_secret(settings.secret_path)
    if records is not None:
        brokerauth.generate_devices(d, records, settings.mqtt_root, secret)
    else:
        kept = d / "services.extra.json"
        if extra_services is None:
            extra = [brokerauth.Account(**a) for a in json.loads(kept.read_text())] if kept.exists() else []
        else:
            extra = list(extra_services)
            kept.write_text(json.dumps([{**a.__dict__, "read": list(a.read), "write": list(a.write)}
                                        for a in extra]))
            kept.chmod(0o600)
        brokerauth.generate_services(d, settings.mqtt_root, secret, extra)
        if not (d / "devices.passwd").exists():
            brokerauth.generate_devices(d, [], settings.mqtt_root, secret)
    user = _service_user("mosquitto")
    os.chmod(d, 0o755)
    for name in ("services.passwd", "devices.passwd"):
        if user is not None and os.geteuid() == 0:
            os.chown(d / name, 0, user.pw_gid)


def reload_broker(settings: Settings) -> bool:
    """Ask the project-local broker to re-read its password and ACL files (SIGHUP); False if not ours."""
    pid = _pid_alive(_mosquitto_paths(settings)[0] / "mosquitto.pid")
    if pid is None:
        return False
    os.kill(pid, signal.SIGHUP)
    return True


def mosquitto_up(settings: Settings, extra_accounts=None) -> ServiceStatus:
    """Start (or reconfigure) the project-local broker; `extra_accounts`: service-listener accounts beyond
    Skylane's own (the test suite's)."""
    ensure_packages({"mosquitto": "mosquitto", "mosquitto_pub": "mosquitto-clients"})
    d, host, port, user = _mosquitto_paths(settings)
    listeners = broker_listeners(settings, _broker_tls(settings))
    write_broker_auth(settings, extra_services=extra_accounts)
    conf = d / "mosquitto.conf"
    text = MOSQUITTO_CONF.format(listeners=brokerauth.render_listeners(listeners, broker_auth_dir(settings)), dir=d,
                                 tuning=MOSQUITTO_TUNING, user_line=f"user {user.pw_name}" if user else "")
    running = _pid_alive(d / "mosquitto.pid")
    if running and port_open(host, port):
        if conf.exists() and conf.read_text() == text:
            reload_broker(settings)  # the accounts' files may be new
            return mosquitto_status(settings)
        log.info("the broker's configuration changed (listeners, authentication): restarting it")
        mosquitto_down(settings)  # sessions and retained messages persist across the restart
    elif port_open(host, port):
        log.warning("a broker not started by Skylane already listens on %s:%d: using it", host, port)
        return mosquitto_status(settings)
    conf.write_text(text)
    rc = subprocess.run([_find_binary("mosquitto"), "-c", str(conf), "-d"], capture_output=True, text=True)
    if rc.returncode != 0 or not all(wait_port(lis.host, lis.port, 15) for lis in listeners):
        tail = _tail(d / "mosquitto.log")
        raise ServiceError(f"mosquitto did not start on {host}:{port}: {rc.stderr.strip()} {tail}")
    return mosquitto_status(settings)


def mosquitto_down(settings: Settings) -> None:
    d, host, port, _ = _mosquitto_paths(settings)
    pid = _pid_alive(d / "mosquitto.pid")
    if pid:
        os.kill(pid, signal.SIGTERM)
        _wait_gone(pid, 15)


def mosquitto_status(settings: Settings) -> ServiceStatus:
    d, host, port, _ = _mosquitto_paths(settings)
    ours = _pid_alive(d / "mosquitto.pid") is not None
    return ServiceStatus("mosquitto", f"{host}:{port}", port_open(host, port), ours, f"data {d}")


# -------------------------------------------------------------------------------------------- PostgreSQL

POSTGRES_CONF = """
# --- Skylane project-local settings (generated by `skylane services up`) ---
listen_addresses = '{host}'
port = {port}
unix_socket_directories = ''
max_connections = 100
shared_buffers = 256MB
max_wal_size = 2GB
"""
# Added when the server has TimescaleDB installed, so a local database takes the production path (hypertables,
# compression, policies); a database made before on plain PostgreSQL is converted at its next start.
TIMESCALE_PRELOAD = "shared_preload_libraries = 'timescaledb'  # skylane: TimescaleDB is installed\n"


def timescale_installed(postgres_binary: str | None = None) -> bool:
    """TimescaleDB's loader library beside the server that runs (<prefix>/lib/timescaledb.so, e.g. Debian's
    /usr/lib/postgresql/15/lib)."""
    binary = postgres_binary or _find_binary("postgres")
    return bool(binary) and (Path(binary).resolve().parent.parent / "lib" / "timescaledb.so").exists()


def preload_timescale(conf: Path, installed: bool) -> bool:
    """Append TIMESCALE_PRELOAD to a stopped server's postgresql.conf when TimescaleDB is installed and nothing
    sets shared_preload_libraries yet (an operator's own line wins); True when added (effective at start)."""
    text = conf.read_text()
    if not installed or any(line.split("=", 1)[0].strip() == "shared_preload_libraries"
                            for line in text.splitlines() if not line.lstrip().startswith("#")):
        return False
    with open(conf, "a") as fh:
        fh.write(("" if text.endswith("\n") else "\n") + TIMESCALE_PRELOAD)
    log.info("TimescaleDB is installed: %s preloads it", conf)
    return True


def _postgres_paths(settings: Settings):
    db = settings.database
    user = _service_user("postgres")
    return _data_dir(settings, f"postgres-{db.port}", user), db, user


def postgres_up(settings: Settings) -> ServiceStatus:
    ensure_packages({"initdb": "postgresql", "pg_ctl": "postgresql"})
    d, db, user = _postgres_paths(settings)
    if not db.is_local:
        raise ServiceError(f"SKYLANE_DATABASE_URL points at {db.host}, not this machine: nothing to start")
    running = _pid_alive(d / "postmaster.pid")
    if not running and port_open(db.host, db.port):
        if _can_connect(settings):
            log.warning("a PostgreSQL not started by Skylane already serves %s:%d: using it", db.host, db.port)
            return postgres_status(settings)
        raise ServiceError(f"port {db.port} is taken by another program; choose another port in SKYLANE_DATABASE_URL")
    if not (d / "PG_VERSION").exists():
        fd, name = tempfile.mkstemp(prefix="skylane-pw-")
        os.close(fd)
        pwfile = Path(name)
        pwfile.write_text(db.password + "\n")
        if user:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        rc = _run_as(user, [_find_binary("initdb"), "-D", str(d), "-U", db.user, f"--pwfile={pwfile}",
                            "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--no-locale"],
                     capture_output=True, text=True)
        pwfile.unlink(missing_ok=True)
        if rc.returncode != 0:
            raise ServiceError(f"initdb failed: {rc.stderr.strip()[-800:]}")
        with open(d / "postgresql.conf", "a") as fh:
            fh.write(POSTGRES_CONF.format(host=db.host if db.host != "localhost" else "127.0.0.1", port=db.port))
    if not running:
        preload_timescale(d / "postgresql.conf", timescale_installed())
        rc = _run_as(user, [_find_binary("pg_ctl"), "-D", str(d), "-l", str(d / "postgres.log"), "-w", "-t", "60",
                            "start"], capture_output=True, text=True)
        if rc.returncode != 0:
            raise ServiceError(f"PostgreSQL did not start: {rc.stderr.strip()} {_tail(d / 'postgres.log')}")
    _create_database(settings)
    return postgres_status(settings)


def _can_connect(settings: Settings) -> bool:
    import psycopg
    try:
        psycopg.connect(settings.database_url, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


def _create_database(settings: Settings) -> None:
    import psycopg
    from psycopg import sql
    db = settings.database
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    for _ in range(50):
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.dbname,)).fetchone():
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.dbname)))
                return
        except psycopg.OperationalError:
            time.sleep(0.2)
    raise ServiceError(f"could not connect to PostgreSQL at {db.host}:{db.port} as {db.user}")


def postgres_down(settings: Settings) -> None:
    d, db, user = _postgres_paths(settings)
    if _pid_alive(d / "postmaster.pid"):
        _run_as(user, [_find_binary("pg_ctl"), "-D", str(d), "-m", "fast", "-w", "stop"], capture_output=True)


def postgres_status(settings: Settings) -> ServiceStatus:
    d, db, _ = _postgres_paths(settings)
    ours = _pid_alive(d / "postmaster.pid") is not None
    return ServiceStatus("postgresql", f"{db.host}:{db.port}", port_open(db.host, db.port), ours, f"data {d}")


# ----------------------------------------------------------------------------------------------- helpers

def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)


def _tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


def data_dirs(settings: Settings) -> tuple[Path, Path]:
    """(Mosquitto's, PostgreSQL's) data folders; each holds its server's pid file."""
    return _mosquitto_paths(settings)[0], _postgres_paths(settings)[0]


def up(settings: Settings) -> list[ServiceStatus]:
    return [mosquitto_up(settings), postgres_up(settings)]


def down(settings: Settings) -> None:
    mosquitto_down(settings)
    postgres_down(settings)


def status(settings: Settings) -> list[ServiceStatus]:
    return [mosquitto_status(settings), postgres_status(settings)]
