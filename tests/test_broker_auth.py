"""The broker is a trust boundary: every client authenticates, each account may do only its job, nobody takes
over a service's session, devices may use TLS. Each attack is performed against a private Mosquitto configured
exactly as `skylane services up` configures the project's (two listeners, generated password and ACL files)."""
from __future__ import annotations

import base64
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

from devices.registry import parse_registry
from protocol import brokerauth, topics
from protocol.mqttclient import MqttTarget, close_client, connect_client, with_credentials
from skylane import localservices
from skylane.settings import Settings

from .helpers import free_port

ROOT = "acltest/v1"
REGISTRY = [{"device_id": "W-C1", "kind": "sensor", "sensor_kind": "wind"},
            {"device_id": "W-C2", "kind": "sensor", "sensor_kind": "wind"},
            {"device_id": "T1", "kind": "uav"}, {"device_id": "T2", "kind": "uav"},
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
    assert brokerauth.hash_password("s3cret-pw", base64.b64decode(salt_b64)) == hashed  # byte for byte
    assert brokerauth.verify_password(hashed, "s3cret-pw") and not brokerauth.verify_password(hashed, "wrong")


def test_devices_get_only_their_own_topics_and_no_service_rights():
    secret = b"k" * 32
    devices = {a.username: a for a in brokerauth.device_accounts(parse_registry(REGISTRY[:4]), ROOT, secret)}
    assert set(devices) == {"W-C1", "W-C2", "T1", "T2"}
    w, t1 = devices["W-C1"], devices["T1"]
    assert w.write == (f"{ROOT}/sensor/W-C1/reading", f"{ROOT}/shard/+/sensor/W-C1/reading",
                       f"{ROOT}/device/W-C1/status") and w.read == ()
    assert t1.read == (f"{ROOT}/control/clearance/T1", f"{ROOT}/control/zones", f"{ROOT}/control/zone/+")
    assert not any(t.startswith((f"{ROOT}/control", f"{ROOT}/events", f"{ROOT}/state")) for a in devices.values()
                   for t in a.write)
    services = {a.username: a for a in brokerauth.service_accounts(ROOT, secret)}
    assert set(services) == set(brokerauth.SERVICE_ACCOUNTS.values()) - {"skylane-lns"}  # an outside system's
    writes_control = {u for u, a in services.items() if any("/control" in t for t in a.write)}
    assert writes_control == {"skylane-ingest", "skylane-api", "skylane-admin"}
    # the MAVLink bridge's notices of unregistered vehicles: the bridge writes them, ingest reads them
    mavlink = f"{ROOT}/mavlink/#"
    assert mavlink in services["skylane-bridge"].write and mavlink in services["skylane-ingest"].read
    assert {u for u, a in services.items() if mavlink in a.write} == {"skylane-bridge"}
    # passwords are stable per secret and differ between users and secrets
    again = brokerauth.device_accounts(parse_registry(REGISTRY[:4]), ROOT, secret)
    assert [a.password for a in again] == [devices[a.username].password for a in again]
    assert brokerauth.derive_password(b"x" * 32, "W-C1") != w.password


def test_refuses_ids_that_cannot_be_user_names():
    with pytest.raises(brokerauth.AuthError, match="urn:x"):
        brokerauth.device_accounts([{"device_id": "urn:x", "kind": "sensor"}], ROOT, b"k" * 32)
    with pytest.raises(brokerauth.AuthError, match="skylane-ingest-1"):  # could take over a service's session id
        brokerauth.device_accounts([{"device_id": "skylane-ingest-1", "kind": "uav"}], ROOT, b"k" * 32)


def test_generate_writes_files_that_regenerate_identically(tmp_path):
    out = brokerauth.generate(REGISTRY, ROOT, tmp_path)
    files = (out.services_passwd, out.services_acl, out.devices_passwd, out.devices_acl, out.credentials)
    first = {p: p.read_bytes() for p in files}
    assert out.devices == 4 and out.services == len(brokerauth.SERVICE_ACCOUNTS) - 1  # 'unknown' devices: no account
    assert out.integrations == 1 and "skylane-lns:" in out.devices_passwd.read_text()  # on the device listener
    assert oct(out.credentials.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "secret").stat().st_mode & 0o777) == "0o600"
    brokerauth.generate(REGISTRY, ROOT, tmp_path)
    assert {p: p.read_bytes() for p in first} == first
    assert "T1:" not in out.services_passwd.read_text() and "skylane-api:" not in out.devices_passwd.read_text()


# ----------------------------------------------------------------------------- against a real Mosquitto

@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A private broker as `skylane services up` runs it (own state dir and ports), with the registry's
    device accounts and, after `skylane mqtt-auth tls`, its TLS device listener."""
    if not shutil.which("mosquitto") and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed")
    state = tmp_path_factory.mktemp("broker-auth")
    settings = Settings.from_env({"SKYLANE_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
                                  "SKYLANE_MQTT_DEVICE_URL": f"mqtt://127.0.0.1:{free_port()}",
                                  "SKYLANE_MQTT_TLS_PORT": str(free_port()), "SKYLANE_MQTT_ROOT": ROOT,
                                  "SKYLANE_STATE_DIR": str(state)})
    r = subprocess.run([sys.executable, "-m", "skylane", "mqtt-auth", "tls"], capture_output=True, text=True,
                       env={"SKYLANE_STATE_DIR": str(state), "PATH": "/usr/bin:/bin:/usr/sbin"}, timeout=60)
    assert r.returncode == 0, r.stderr
    localservices.mosquitto_up(settings)
    localservices.write_broker_auth(settings, REGISTRY)  # registry rows, an "unknown" one among them
    localservices.reload_broker(settings)
    time.sleep(0.5)
    yield settings
    localservices.mosquitto_down(settings)


def _connect(url: str, client_id: str, will: tuple[str, bytes] | None = None, clean: bool = True):
    """(client, CONNACK reason code) without raising on refusal; the client's loop runs."""
    target = MqttTarget.parse(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    target.configure(c)
    if will:
        c.will_set(will[0], will[1], qos=1, retain=True)
    done, result = threading.Event(), {}

    def on_connect(_c, _u, _f, reason, _p):
        result["rc"] = reason
        done.set()

    def on_disconnect(_c, _u, _f, reason, _p):
        result.setdefault("rc", reason)
        result.setdefault("gone", reason)
        done.set()
    c.on_connect, c.on_disconnect = on_connect, on_disconnect
    c.connect(target.host, target.port, 30, clean_start=clean)
    c.loop_start()
    assert done.wait(10), "no CONNACK"
    return c, result


def _watch(url: str, name: str, filt: str):
    got: queue.Queue = queue.Queue()
    c = connect_client(url, name, subscriptions=[(filt, 1)], on_message=lambda _c, _u, m: got.put((m.topic, m.payload)))
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


@pytest.mark.integration
def test_anonymous_clients_and_wrong_passwords_are_refused_on_every_listener(broker):
    for url in (broker.mqtt_url, broker.mqtt_device_url, broker.device_url("T1").replace("T1:", "T1:wrong")):
        c, result = _connect(url, f"anon-{time.monotonic_ns()}")
        assert result["rc"].is_failure and result["rc"].value in (134, 135), (url, result)  # bad password / not authorized
        c.loop_stop()
    # a device account does not exist on the service listener, nor a service account on the device listener
    t1 = MqttTarget.parse(broker.device_url("T1"))
    for url in (with_credentials(broker.mqtt_url, "T1", t1.password),
                with_credentials(broker.mqtt_device_url, *broker.mqtt_account("api"))):
        c, result = _connect(url, f"wrong-listener-{time.monotonic_ns()}")
        assert result["rc"].is_failure, url
        c.loop_stop()


@pytest.mark.integration
def test_a_device_publishes_only_its_own_topics_and_reads_only_its_own_clearance(broker):
    ingest, got = _watch(broker.service_url("ingest"), "watch-ingest", f"{ROOT}/#")
    snoop: queue.Queue = queue.Queue()
    t1, result = _connect(broker.device_url("T1"), "T1")
    assert not result["rc"].is_failure
    t1.on_message = lambda _c, _u, m: snoop.put(m.topic)
    t1.subscribe(f"{ROOT}/#", qos=1)
    acks: dict[int, object] = {}
    t1.on_publish = lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason)
    time.sleep(0.3)
    forged = [topics.control_zones(ROOT), topics.control_zone(ROOT, "C1"), topics.control_clearance(ROOT, "T1"),
              f"{ROOT}/events/no_fly_violation/T2", f"{ROOT}/state/uav/T2", topics.telemetry(ROOT, "T2"),
              topics.status(ROOT, "W-C1")]
    mids = [t1.publish(t, b'{"type": "FeatureCollection", "features": []}', qos=1).mid for t in forged]
    own = topics.telemetry(ROOT, "T1")
    t1.publish(own, b"sentinel", qos=1).wait_for_publish(10)
    assert _drain(got, (own, b"sentinel")) == [(own, b"sentinel")]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(m in acks for m in mids):
        time.sleep(0.05)
    assert all(acks[m].value == 135 for m in mids), acks  # MQTT 5 PUBACK "Not authorized": never delivered
    # the API's clearances: T1 reads its own, never another operator's approved route
    api = connect_client(broker.service_url("api"), "api-publisher")
    for uav in ("T2", "T1"):
        api.publish(topics.control_clearance(ROOT, uav), f"route of {uav}".encode(), qos=1).wait_for_publish(10)
    _drain(got, (topics.control_clearance(ROOT, "T1"), b"route of T1"))
    time.sleep(0.5)
    assert list(snoop.queue) == [topics.control_clearance(ROOT, "T1")]
    for c in (api, ingest):
        close_client(c)
    t1.disconnect()
    t1.loop_stop()


@pytest.mark.integration
def test_services_may_do_only_their_job(broker):
    ingest, got = _watch(broker.service_url("ingest"), "watch-ingest-2", f"{ROOT}/#")
    denied = {"simulator": [topics.control_zones(ROOT), f"{ROOT}/events/x/T1"],
              "recorder": [topics.control_zone(ROOT, "C1"), f"{ROOT}/state/uav/T1"],
              "api": [topics.telemetry(ROOT, "T1"), f"{ROOT}/events/x/T1"],
              "admin": [topics.telemetry(ROOT, "T1"), f"{ROOT}/state/uav/T1"]}
    for role, forbidden in denied.items():
        c, result = _connect(broker.service_url(role), f"svc-{role}")
        assert not result["rc"].is_failure, role
        acks: dict[int, object] = {}
        c.on_publish = lambda _c, _u, mid, reason, _p, _a=acks: _a.__setitem__(mid, reason)
        mids = [c.publish(t, b"x", qos=1).mid for t in forbidden]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(m in acks for m in mids):
            time.sleep(0.05)
        assert all(acks[m].value == 135 for m in mids), (role, acks)
        c.disconnect()
        c.loop_stop()
    sim = connect_client(broker.service_url("simulator"), "svc-sim-ok")
    sim.publish(topics.telemetry(ROOT, "T9"), b"simulated", qos=1).wait_for_publish(10)
    assert _drain(got, (topics.telemetry(ROOT, "T9"), b"simulated"))[0] == (topics.telemetry(ROOT, "T9"), b"simulated")
    close_client(sim)
    close_client(ingest)


@pytest.mark.integration
def test_nobody_takes_over_a_service_session(broker):
    """Today's attack: connect as `skylane-ingest-1` and consume its queue. On the device listener the client id
    is the user name, so the session named `skylane-ingest-1` stays the ingester's, connected and fed."""
    ingest = connect_client(broker.service_url("ingest"), "skylane-ingest-1", clean_start=False, session_expiry=3600,
                            subscriptions=[(f"{ROOT}/uav/+/telemetry", 1)])
    kicked = threading.Event()
    ingest.on_disconnect = lambda *_a: kicked.set()
    got: queue.Queue = queue.Queue()
    ingest.on_message = lambda _c, _u, m: got.put((m.topic, m.payload))
    intruder, result = _connect(broker.device_url("T1"), "skylane-ingest-1", clean=False)
    assert not result["rc"].is_failure  # T1 may connect ... but as "T1", not as the ingester
    assert not kicked.wait(1.0), "the ingester was disconnected by a device using its client id"
    intruder.publish(topics.telemetry(ROOT, "T1"), b"still ours", qos=1).wait_for_publish(10)
    assert got.get(timeout=10) == (topics.telemetry(ROOT, "T1"), b"still ours")
    intruder.disconnect()
    intruder.loop_stop()
    close_client(ingest)


@pytest.mark.integration
def test_last_will_marks_the_device_offline_and_cannot_be_forged(broker):
    watch, got = _watch(broker.service_url("ingest"), "watch-wills", f"{ROOT}/device/#")
    own_status = topics.status(ROOT, "W-C1")
    dev, result = _connect(broker.device_url("W-C1"), "W-C1", will=(own_status, b"offline"))
    assert not result["rc"].is_failure
    dev.publish(own_status, b"online", qos=1, retain=True).wait_for_publish(10)
    liar, result = _connect(broker.device_url("W-C2"), "W-C2", will=(own_status, b"offline"))  # will for W-C1
    assert not result["rc"].is_failure
    for c in (dev, liar):  # vanish without DISCONNECT: the broker publishes the wills
        c.loop_stop()
        c.socket().close()
    assert _drain(got, (own_status, b"offline")) == [(own_status, b"online"), (own_status, b"offline")]
    time.sleep(1.0)  # the liar's will would arrive about now
    assert got.empty(), list(got.queue)
    close_client(watch)


@pytest.mark.integration
def test_devices_connect_over_tls_with_the_ca_and_not_without_it(broker):
    tls = broker.mqtt_tls_dir
    device = MqttTarget.parse(broker.device_url("T2"))
    ok = f"mqtts://T2:{device.password}@localhost:{broker.mqtt_tls_port}?ca={tls / 'ca.crt'}"
    client = connect_client(ok, "T2")
    assert client.is_connected()
    watch, got = _watch(broker.service_url("ingest"), "watch-tls", f"{ROOT}/uav/#")
    client.publish(topics.telemetry(ROOT, "T2"), b"over tls", qos=1).wait_for_publish(10)
    assert got.get(timeout=10) == (topics.telemetry(ROOT, "T2"), b"over tls")
    close_client(client)
    close_client(watch)
    with pytest.raises(ConnectionError):  # the system's CAs do not know the demo CA: no silent downgrade
        connect_client(f"mqtts://T2:{device.password}@localhost:{broker.mqtt_tls_port}", "T2", timeout=5)


@pytest.mark.integration
def test_cli_generates_both_listeners_files_from_a_registry_file(tmp_path):
    import json
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps(REGISTRY[:3]))
    env = {"SKYLANE_MQTT_ROOT": ROOT, "SKYLANE_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin:/usr/sbin"}
    r = subprocess.run([sys.executable, "-m", "skylane", "mqtt-auth", "generate", "--out", str(tmp_path / "a"),
                        "--registry", str(reg)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"{len(brokerauth.SERVICE_ACCOUNTS) - 1} service, 3 device and 1 integration accounts" in r.stdout
    assert "use_username_as_clientid true" in (tmp_path / "a" / "mosquitto-listeners.conf").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"device_id": "urn:dev:1", "kind": "sensor"}]))
    r = subprocess.run([sys.executable, "-m", "skylane", "mqtt-auth", "generate", "--out", str(tmp_path / "b"),
                        "--registry", str(bad)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "urn:dev:1" in r.stderr


def test_the_shipped_broker_and_compose_admit_no_anonymous_client():
    import yaml

    from skylane.settings import REPO_ROOT
    conf = (REPO_ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    active = [line.strip() for line in conf if line.strip() and not line.startswith("#")]
    listeners = [i for i, line in enumerate(active) if line.startswith("listener ")]
    assert len(listeners) == 2 and "allow_anonymous true" not in active
    for start, end in zip(listeners, listeners[1:] + [len(active)]):
        block = active[start:end]
        assert "allow_anonymous false" in block and any(x.startswith("password_file ") for x in block)
        assert any(x.startswith("acl_file ") for x in block)
    device_block = active[listeners[1]:]
    assert active[listeners[1]].startswith("listener 1883") and "use_username_as_clientid true" in device_block
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    assert compose["secrets"]["mqtt_secret"] == {"file": "./secrets/mqtt-secret"}  # no file, no start
    for name in ("ingest", "api", "simulator", "mqtt-auth"):
        assert "mqtt_secret" in compose["services"][name]["secrets"], name
    assert compose["services"]["mosquitto"]["ports"] == ["1883:1883"]  # the service listener stays inside
