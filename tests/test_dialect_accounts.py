"""Broker accounts of the dialects, performed against a private Mosquitto configured as `skylane services up`
configures the project's: a DJI gateway connects as its serial number and publishes only its own topics and those of
the aircraft registered under it, reads only its own replies; the LoRaWAN integration account publishes the network
servers' topics and nothing of Skylane's; the bridge account publishes device topics and Remote ID only."""
from __future__ import annotations

import queue
import shutil
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.registry import parse_registry
from protocol import brokerauth, topics
from protocol.mqttclient import MqttTarget, close_client, connect_client
from skylane import localservices
from skylane.settings import Settings

from .helpers import free_port

ROOT = "dialacl/v1"
REGISTRY = [
    {"device_id": "M30-1", "kind": "uav", "properties": {"dji_sn": "1581F5AAA", "dji_gateway": "DOCKSN1"}},
    {"device_id": "M30-2", "kind": "uav", "properties": {"dji_sn": "1581F5BBB", "dji_gateway": "RCSN2"}},
    {"device_id": "DOCK-1", "kind": "sensor", "properties": {"dji_sn": "DOCKSN1"}},
    {"device_id": "AQ-1", "kind": "sensor", "properties": {"dev_eui": "0101010101010101"}},
]


def test_dji_gateways_get_accounts_named_by_serial_number():
    accounts = {a.username: a for a in brokerauth.device_accounts(parse_registry(REGISTRY), ROOT, b"k" * 32)}
    assert set(accounts) == {"M30-1", "M30-2", "DOCK-1", "AQ-1", "1581F5AAA", "1581F5BBB", "DOCKSN1", "RCSN2"}
    dock = accounts["DOCKSN1"]
    assert "thing/product/1581F5AAA/osd" in dock.write and "thing/product/1581F5BBB/osd" not in dock.write
    assert "sys/product/DOCKSN1/status" in dock.write and dock.read[0] == "sys/product/DOCKSN1/status_reply"
    assert "thing/product/1581F5BBB/osd" in accounts["RCSN2"].write  # a gateway only an aircraft names
    assert not any(t.startswith(ROOT) for t in dock.write)
    services = {a.username: a for a in brokerauth.service_accounts(ROOT, b"k" * 32)}
    assert set(brokerauth.DIALECT_TOPICS) <= set(services["skylane-ingest"].read)
    assert "sys/product/+/status_reply" in services["skylane-ingest"].write
    assert "skylane-lns" not in services  # an outside system: on the device listener, not among the services
    [lns] = brokerauth.integration_accounts(b"k" * 32)
    assert lns.username == "skylane-lns" and lns.write == brokerauth.LNS_WRITE and "replay/#" not in lns.read
    assert f"{ROOT}/rid/#" in services["skylane-bridge"].write
    assert not any("/control" in t or "/events" in t for t in services["skylane-bridge"].write)
    with pytest.raises(brokerauth.AuthError, match="skylane-x"):
        brokerauth.device_accounts([{"device_id": "A", "kind": "uav", "properties": {"dji_sn": "skylane-x"}}], ROOT,
                                   b"k" * 32)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if not shutil.which("mosquitto") and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto not installed")
    state = tmp_path_factory.mktemp("dialect-acl")
    settings = Settings.from_env({"SKYLANE_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
                                  "SKYLANE_MQTT_DEVICE_URL": f"mqtt://127.0.0.1:{free_port()}",
                                  "SKYLANE_MQTT_TLS_PORT": str(free_port()), "SKYLANE_MQTT_ROOT": ROOT,
                                  "SKYLANE_STATE_DIR": str(state)})
    localservices.mosquitto_up(settings)
    localservices.write_broker_auth(settings, REGISTRY)
    localservices.reload_broker(settings)
    time.sleep(0.5)
    yield settings
    localservices.mosquitto_down(settings)


def _client(url: str, client_id: str):
    """A connected client whose PUBACK reason codes are collected (mid -> reason)."""
    target = MqttTarget.parse(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    target.configure(c)
    acks: dict[int, object] = {}
    ready = threading.Event()
    c.on_connect = lambda *a: ready.set()
    c.on_publish = lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason)
    c.connect(target.host, target.port)
    c.loop_start()
    assert ready.wait(10)
    return c, acks


def _refused(c, acks, topic_list) -> list[str]:
    mids = {c.publish(t, b"{}", qos=1).mid: t for t in topic_list}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(m in acks for m in mids):
        time.sleep(0.05)
    return [t for m, t in mids.items() if acks[m].value == 135]  # MQTT 5 PUBACK "Not authorized"


@pytest.mark.integration
def test_a_dji_gateway_publishes_only_its_own_and_its_aircrafts_topics(broker):
    got: queue.Queue = queue.Queue()
    watch = connect_client(broker.service_url("ingest"), "watch-dji", subscriptions=[("thing/product/+/osd", 1)],
                           on_message=lambda _c, _u, m: got.put(m.topic))
    dock, acks = _client(broker.device_url("DOCKSN1"), "anything")  # client id = user name on this listener
    try:
        allowed = ["thing/product/DOCKSN1/osd", "thing/product/1581F5AAA/osd", "sys/product/DOCKSN1/status"]
        forged = ["thing/product/1581F5BBB/osd", "sys/product/RCSN2/status", topics.telemetry(ROOT, "M30-1"),
                  "application/x/device/0101010101010101/event/up", "sys/product/DOCKSN1/status_reply"]
        assert _refused(dock, acks, allowed + forged) == forged
        seen = set()
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            try:
                seen.add(got.get(timeout=0.2))
            except queue.Empty:
                pass
        assert seen == {"thing/product/DOCKSN1/osd", "thing/product/1581F5AAA/osd"}
    finally:
        close_client(dock)
        close_client(watch)


@pytest.mark.integration
def test_the_integration_and_bridge_accounts_do_only_their_job(broker):
    lns, acks = _client(broker.device_url("skylane-lns"), "chirpstack-1")
    try:
        assert _refused(lns, acks, ["application/a/device/0101010101010101/event/up", "v3/app@t/devices/d/up",
                                    topics.telemetry(ROOT, "M30-1"), topics.control_zones(ROOT),
                                    "thing/product/1581F5AAA/osd", "replay/x"]) == [
            topics.telemetry(ROOT, "M30-1"), topics.control_zones(ROOT), "thing/product/1581F5AAA/osd", "replay/x"]
    finally:
        close_client(lns)
    bridge, acks = _client(broker.service_url("bridge"), "bridge-1")
    try:
        assert _refused(bridge, acks, [topics.telemetry(ROOT, "M30-1"), topics.status(ROOT, "M30-1"),
                                       topics.remote_id(ROOT, "mavlink-udp-14550"), topics.control_zones(ROOT),
                                       f"{ROOT}/events/no_fly_violation/M30-1", "thing/product/1581F5AAA/osd"]) == [
            topics.control_zones(ROOT), f"{ROOT}/events/no_fly_violation/M30-1", "thing/product/1581F5AAA/osd"]
    finally:
        close_client(bridge)


@pytest.mark.parametrize("props, field", [
    ({"dji_sn": "15 81"}, "dji_sn"), ({"dji_sn": "A", "dji_gateway": ["ok", 3]}, "dji_gateway"),
    ({"dji_gateway": "GW"}, "dji_gateway"), ({"dev_eui": "0101"}, "dev_eui"), ({"dev_eui": 5}, "dev_eui"),
    ({"tts_device_id": "app/#"}, "tts_device_id"), ({"mavlink": "udp:14550"}, "mavlink"),
    ({"mavlink": "udp:14550/256"}, "mavlink"), ({"metric_map": {"t": "temperature"}}, "metric_map"),
    ({"metric_map": {"t": ["", "Cel"]}}, "metric_map"),
])
def test_malformed_vendor_properties_are_refused_naming_the_field(props, field):
    with pytest.raises(ValueError, match=rf"field 'properties\.{field}'"):
        parse_registry([{"device_id": "D1", "kind": "uav", "properties": props}])


def test_well_formed_vendor_properties_are_kept():
    (rec,) = parse_registry([{"device_id": "D1", "kind": "sensor", "properties": {
        "dji_sn": "7CTDM3D00BVQHK", "dev_eui": "A84041000181C061", "tts_device_id": "app@tenant/dev-1",
        "mavlink": "serial:ttyUSB0/255", "metric_map": {"gust": ["wind_gust", "m/s"], "n": ["count"]}}}])
    assert rec.properties["mavlink"] == "serial:ttyUSB0/255"


@pytest.mark.integration
def test_the_network_servers_account_cannot_take_over_a_services_session(broker):
    """On the service listener a client chooses its id, so an outside system's account there could connect as
    `skylane-ingest-1` and knock ingest off (or consume its queued session). It lives on the device listener,
    where the broker makes the client id the user name: the victim stays connected."""
    events: queue.Queue = queue.Queue()
    victim = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="skylane-ingest-1", protocol=mqtt.MQTTv5)
    target = MqttTarget.parse(broker.service_url("ingest"))
    target.configure(victim)
    victim.on_connect = lambda *a: events.put("connected")
    victim.on_disconnect = lambda *a: events.put("disconnected")
    victim.connect(target.host, target.port)
    victim.loop_start()
    try:
        assert events.get(timeout=10) == "connected"
        assert _connack(broker.mqtt_url, "skylane-lns", broker.device_url("skylane-lns"), "skylane-ingest-1") \
            == "Not authorized"  # no account on the service listener
        lns, _ = _client(broker.device_url("skylane-lns"), "skylane-ingest-1")  # same id, the device listener
        try:
            time.sleep(1.0)
            assert events.empty() and victim.is_connected()  # nobody was knocked off
        finally:
            close_client(lns)
    finally:
        victim.loop_stop()
        victim.disconnect()


def _connack(listener_url: str, user: str, url_with_password: str, client_id: str) -> str:
    """The CONNACK reason a client with `user`'s password gets from the listener at `listener_url`."""
    password = MqttTarget.parse(url_with_password).password
    target = MqttTarget.parse(listener_url)
    got: queue.Queue = queue.Queue()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda _c, _u, _f, reason, _p: got.put(str(reason))
    c.connect(target.host, target.port)
    c.loop_start()
    try:
        return got.get(timeout=10)
    finally:
        c.loop_stop()
        c.disconnect()
