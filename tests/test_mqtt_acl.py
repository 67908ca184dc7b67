"""Device security: generated Mosquitto password and ACL files, proven on a private Mosquitto.

A device may publish only to its own topics (a forged message never reaches a subscriber that may read
everything), its last will is its own status, the services have their own accounts, and an unknown
client is refused at CONNECT."""
from __future__ import annotations

import json
import os
import pwd
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices import acl
from devices.registry import parse_registry
from protocol import topics
from skylane.localservices import wait_port

from .helpers import free_port, wait_until

ROOT = "acltest/v1"
REGISTRY = [{"device_id": "W-C1", "kind": "sensor", "sensor_kind": "wind"},
            {"device_id": "W-C2", "kind": "sensor", "sensor_kind": "wind"},
            {"device_id": "uav-001", "kind": "uav"},
            {"device_id": "seen-only", "kind": "unknown"}]


# ------------------------------------------------------------------------------------------ unit tests

def test_hash_is_mosquitto_passwd_format():
    if not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto_passwd not installed")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "pw"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "alice", "s3cret-pw"], check=True)
        user, hashed = path.read_text().strip().split(":", 1)
    _, kind, iterations, salt_b64, _digest = hashed.split("$")
    assert (user, kind, iterations) == ("alice", "7", "101")
    import base64
    assert acl.hash_password("s3cret-pw", base64.b64decode(salt_b64)) == hashed  # byte for byte
    assert acl.verify_password(hashed, "s3cret-pw") and not acl.verify_password(hashed, "wrong")


def test_accounts_give_each_device_only_its_own_topics():
    secret = b"k" * 32
    accounts = {a.username: a for a in acl.build_accounts(parse_registry(REGISTRY[:3]), ROOT, secret)}
    assert set(accounts) == {"skylane-ingest", "skylane-api", "skylane-recorder", "W-C1", "W-C2", "uav-001"}
    w = accounts["W-C1"]
    assert w.write == (f"{ROOT}/sensor/W-C1/reading", f"{ROOT}/shard/+/sensor/W-C1/reading",
                       f"{ROOT}/device/W-C1/status") and w.read == ()
    assert f"{ROOT}/uav/uav-001/telemetry" in accounts["uav-001"].write
    assert all("W-C2" not in t for t in w.write)
    assert accounts["skylane-ingest"].read == (f"{ROOT}/#",)
    assert all(not t.startswith((f"{ROOT}/uav", f"{ROOT}/sensor")) for t in accounts["skylane-api"].write)
    # passwords are stable per secret and differ between users and secrets
    again = acl.build_accounts(parse_registry(REGISTRY[:3]), ROOT, secret)
    assert [a.password for a in again] == [a.password for a in accounts.values()]
    assert len({a.password for a in again}) == len(again)
    assert acl.derive_password(b"x" * 32, "W-C1") != w.password


def test_refuses_ids_that_cannot_be_user_names():
    with pytest.raises(acl.AclError, match="urn:x"):
        acl.build_accounts([{"device_id": "urn:x", "kind": "sensor"}], ROOT, b"k" * 32)
    with pytest.raises(acl.AclError, match="skylane-api"):
        acl.build_accounts([{"device_id": "skylane-api", "kind": "uav"}], ROOT, b"k" * 32)


def test_generate_writes_files_that_regenerate_identically(tmp_path):
    out = acl.generate(REGISTRY, ROOT, tmp_path)
    first = {p: p.read_bytes() for p in (out.passwd, out.acl, out.credentials)}
    assert out.devices == 3 and out.accounts == 6  # 'unknown' devices get no account
    assert oct(out.credentials.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "secret").stat().st_mode & 0o777) == "0o600"
    acl.generate(REGISTRY, ROOT, tmp_path)
    assert {p: p.read_bytes() for p in first} == first
    creds = json.loads(out.credentials.read_text())
    lines = dict(line.split(":", 1) for line in out.passwd.read_text().splitlines())
    assert all(acl.verify_password(lines[u], pw) for u, pw in creds.items())
    assert f"password_file {out.passwd.resolve()}" in out.conf.read_text()


# ----------------------------------------------------------------------------- against a real Mosquitto

class PrivateBroker:
    """A Mosquitto of this test only: own port, own config with authentication (never the shared one)."""

    def __init__(self, auth_dir: Path):
        self.port = free_port()
        self.dir = auth_dir
        conf = auth_dir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\n" + (auth_dir / "mosquitto-auth.conf").read_text()
                        + "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
                        "log_type notice\n")
        self.log = open(auth_dir / "broker.log", "wb")
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if not wait_port("127.0.0.1", self.port, 15):
            self.close()
            raise AssertionError(f"private mosquitto did not start: {(auth_dir / 'broker.log').read_text()}")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def auth_broker():
    if not shutil.which("mosquitto") and not os.path.exists("/usr/sbin/mosquitto"):
        pytest.skip("mosquitto not installed")
    d = Path(tempfile.mkdtemp(prefix="skylane-acl-", dir="/tmp"))
    os.chmod(d, 0o755)  # as root, Mosquitto drops to its own user, which must read the files
    out = acl.generate(REGISTRY, ROOT, d / "auth")
    os.chmod(d / "auth", 0o755)
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("mosquitto")
            os.chown(out.passwd, 0, user.pw_gid)
        except KeyError:
            os.chmod(out.passwd, 0o644)
    broker = PrivateBroker(d / "auth")
    yield broker, json.loads(out.credentials.read_text())
    broker.close()
    shutil.rmtree(d, ignore_errors=True)


def _client(port: int, username: str | None, password: str | None, will: tuple[str, bytes] | None = None,
            client_id: str | None = None):
    """Connect and return (client, CONNACK reason code) without raising on refusal."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"acl-{username}-{time.monotonic_ns()}",
                    protocol=mqtt.MQTTv5)
    if username is not None:
        c.username_pw_set(username, password)
    if will:
        c.will_set(will[0], will[1], qos=1, retain=True)
    done = threading.Event()
    result: dict = {}

    def on_connect(_c, _u, _f, reason, _p):
        result["rc"] = reason
        done.set()

    def on_disconnect(_c, _u, _f, reason, _p):
        result.setdefault("rc", reason)
        done.set()

    c.on_connect, c.on_disconnect = on_connect, on_disconnect
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    assert done.wait(10), "no CONNACK"
    return c, result["rc"]


def _subscriber(port: int, creds: dict):
    got: queue.Queue = queue.Queue()
    c, rc = _client(port, "skylane-ingest", creds["skylane-ingest"])
    assert not rc.is_failure
    subscribed = threading.Event()
    c.on_message = lambda _c, _u, m: got.put((m.topic, m.payload))
    c.on_subscribe = lambda *_a: subscribed.set()
    c.subscribe(f"{ROOT}/#", qos=1)
    assert subscribed.wait(10)
    return c, got


def _drain(got: queue.Queue, until: tuple[str, bytes], timeout: float = 10.0) -> list[tuple[str, bytes]]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = got.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(item)
        if item == until:
            return seen
    raise AssertionError(f"sentinel {until} not received; got {seen}")


def _stop(*clients):
    for c in clients:
        c.disconnect()
        c.loop_stop()


@pytest.mark.integration
def test_a_device_cannot_publish_as_another(auth_broker):
    broker, creds = auth_broker
    sub, got = _subscriber(broker.port, creds)
    dev, rc = _client(broker.port, "W-C1", creds["W-C1"])
    assert not rc.is_failure
    acks: dict[int, object] = {}
    dev.on_publish = lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason)
    own = topics.reading(ROOT, "W-C1")
    forged = [topics.reading(ROOT, "W-C2"), topics.status(ROOT, "W-C2"), topics.telemetry(ROOT, "uav-001"),
              topics.telemetry(ROOT, "W-C1"), f"{ROOT}/events/sensor/W-C2", f"{ROOT}/control/zone/C1",
              f"{ROOT}/shard/3/sensor/W-C2/reading"]
    mids = [dev.publish(t, b"forged", qos=1).mid for t in forged]
    dev.publish(f"{ROOT}/shard/3/sensor/W-C1/reading", b"mine, sharded", qos=1)
    dev.publish(own, b"sentinel", qos=1).wait_for_publish(10)
    seen = _drain(got, (own, b"sentinel"))
    assert seen == [(f"{ROOT}/shard/3/sensor/W-C1/reading", b"mine, sharded"), (own, b"sentinel")]
    wait_until(lambda: all(m in acks for m in mids), 10, "no PUBACK for the forged messages")
    assert all(acks[m].value == 135 for m in mids), acks  # MQTT 5: PUBACK "Not authorized"
    # a service account is not a device either
    api, rc = _client(broker.port, "skylane-api", creds["skylane-api"])
    assert not rc.is_failure
    api.publish(topics.reading(ROOT, "W-C1"), b"forged by api", qos=1).wait_for_publish(10)
    api.publish(f"{ROOT}/control/zone/C1", b'{"state": "suspended"}', qos=1).wait_for_publish(10)
    dev.publish(own, b"sentinel 2", qos=1).wait_for_publish(10)
    assert _drain(got, (own, b"sentinel 2")) == [(f"{ROOT}/control/zone/C1", b'{"state": "suspended"}'),
                                                 (own, b"sentinel 2")]
    _stop(dev, api, sub)


@pytest.mark.integration
def test_unknown_clients_and_wrong_passwords_are_refused(auth_broker):
    broker, creds = auth_broker
    for user, password in [("intruder", "guess"), (None, None), ("W-C1", creds["W-C2"]),
                           ("seen-only", acl.derive_password(b"", "seen-only"))]:
        c, rc = _client(broker.port, user, password)
        assert rc.is_failure and rc.value in (134, 135), (user, rc)  # bad user name or password / not authorized
        c.loop_stop()
    ok, rc = _client(broker.port, "uav-001", creds["uav-001"])
    assert not rc.is_failure
    _stop(ok)


@pytest.mark.integration
def test_last_will_marks_the_device_offline_and_cannot_be_forged(auth_broker):
    broker, creds = auth_broker
    sub, got = _subscriber(broker.port, creds)
    own_status = topics.status(ROOT, "W-C1")
    dev, rc = _client(broker.port, "W-C1", creds["W-C1"], will=(own_status, b"offline"))
    assert not rc.is_failure
    dev.publish(own_status, b"online", qos=1, retain=True).wait_for_publish(10)
    liar, rc = _client(broker.port, "W-C2", creds["W-C2"], will=(own_status, b"offline"))  # will for W-C1
    assert not rc.is_failure
    for c in (dev, liar):  # vanish without DISCONNECT: the broker publishes the wills
        c.loop_stop()
        c.socket().close()
    seen = _drain(got, (own_status, b"offline"))
    assert seen == [(own_status, b"online"), (own_status, b"offline")]
    time.sleep(1.0)  # the liar's will would arrive about now
    assert got.empty(), list(got.queue)
    _stop(sub)


@pytest.mark.integration
def test_cli_generates_from_a_registry_file(tmp_path):
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps(REGISTRY[:3]))
    env = dict(os.environ, SKYLANE_MQTT_ROOT=ROOT)
    r = subprocess.run([sys.executable, "-m", "skylane", "mqtt-auth", "generate", "--out", str(tmp_path / "a"),
                        "--registry", str(reg), "--with-simulator"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "7 accounts (3 devices, 4 services)" in r.stdout
    assert "user skylane-sim" in (tmp_path / "a" / "acl").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"device_id": "urn:dev:1", "kind": "sensor"}]))
    r = subprocess.run([sys.executable, "-m", "skylane", "mqtt-auth", "generate", "--out", str(tmp_path / "b"),
                        "--registry", str(bad)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "urn:dev:1" in r.stderr


@pytest.mark.integration
def test_cli_generates_from_the_database_registry(fresh_db, tmp_path):
    env = dict(os.environ, SKYLANE_MQTT_ROOT=ROOT, SKYLANE_DATABASE_URL=fresh_db)
    fleet = tmp_path / "fleet.json"
    for argv in (["devices", "fleet", "--drones", "2", "--sensors", "3"], ["devices", "register", str(fleet)],
                 ["mqtt-auth", "generate", "--out", str(tmp_path / "auth")]):
        r = subprocess.run([sys.executable, "-m", "skylane", *argv], capture_output=True, text=True, env=env,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        if argv[1] == "fleet":
            fleet.write_text(r.stdout)
    assert "8 accounts (5 devices, 3 services)" in r.stdout
    text = (tmp_path / "auth" / "acl").read_text()
    assert f"user W-C1\ntopic write {ROOT}/sensor/W-C1/reading\n" in text
    assert f"user uav-001\ntopic read {ROOT}/control/#\ntopic write {ROOT}/uav/uav-001/telemetry\n" in text


@pytest.mark.integration
def test_a_device_cannot_read_others_traffic(auth_broker):
    """Mosquitto 2.0 grants any SUBSCRIBE and checks read access per delivered message: a sensor that
    subscribes to everything receives nothing it may not read; a drone receives its control topics."""
    broker, creds = auth_broker
    sub, got = _subscriber(broker.port, creds)
    snoop: queue.Queue = queue.Queue()
    spies = []
    for user, filt in (("W-C1", f"{ROOT}/#"), ("uav-001", f"{ROOT}/#")):
        c, rc = _client(broker.port, user, creds[user])
        assert not rc.is_failure
        done = threading.Event()
        c.on_subscribe = lambda *_a, _d=done: _d.set()
        c.on_message = lambda _c, _u, m, _who=user: snoop.put((_who, m.topic))
        c.subscribe(filt, qos=1)
        assert done.wait(10)
        spies.append(c)
    other, rc = _client(broker.port, "W-C2", creds["W-C2"])
    api, rc2 = _client(broker.port, "skylane-api", creds["skylane-api"])
    assert not rc.is_failure and not rc2.is_failure
    other.publish(topics.reading(ROOT, "W-C2"), b"private", qos=1).wait_for_publish(10)
    api.publish(f"{ROOT}/control/zone/C1", b"suspend", qos=1).wait_for_publish(10)
    _drain(got, (f"{ROOT}/control/zone/C1", b"suspend"))  # both went through the broker
    time.sleep(0.5)
    assert sorted(snoop.queue) == [("uav-001", f"{ROOT}/control/zone/C1")]
    _stop(*spies, other, api, sub)
