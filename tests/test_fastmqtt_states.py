"""Live states published in one write (ingest.fastmqtt.FastClient.publish_states) reach a subscriber on a real
Mosquitto as retained QoS 0 messages, byte for byte and in order, an empty payload withdrawing one; nothing is
queued while disconnected."""
from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt
import pytest

from ingest.fastmqtt import FastClient
from protocol.mqttclient import MqttTarget, close_client, connect_client

from .helpers import wait_until

pytestmark = pytest.mark.integration


def _fast_client(url: str) -> FastClient:
    c = FastClient(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-fast-{uuid.uuid4().hex[:6]}",
                   protocol=mqtt.MQTTv5, on_fast_message=lambda *a: None)
    target = MqttTarget.parse(url)
    target.configure(c)
    c.connect(target.host, target.port)
    c.loop_start()
    return c


def test_states_in_one_write_arrive_retained_in_order_and_an_empty_one_withdraws(system):
    root = system.mqtt_root
    states = [(f"{root}/state/uav/S{i:03d}", ('{"i": %d, "name": "无人机"}' % i).encode()) for i in range(300)]
    got: list[tuple[str, bytes, bool]] = []
    lock = threading.Lock()

    def on_message(_c, _u, msg):
        with lock:
            got.append((msg.topic, bytes(msg.payload), msg.retain))
    fast = _fast_client(system.mqtt_url)
    try:
        wait_until(fast.is_connected, 10, "fast client did not connect")
        live = connect_client(system.mqtt_url, "t-fast-live", subscriptions=[(f"{root}/state/#", 0)],
                              on_message=on_message)
        try:
            assert fast.publish_states(states) == 300
            wait_until(lambda: len(got) >= 300, 10, "not every state arrived")
            assert [(t, p) for t, p, _ in got] == states  # same bytes, same order (live: retain flag cleared)
        finally:
            close_client(live)
        assert fast.publish_states([(states[0][0], b"")]) == 1  # withdraw S000
        fast.publish(f"{root}/marker", b"1", qos=1).wait_for_publish(10)  # same connection: the withdrawal is in
        late: list[tuple[str, bytes, bool]] = []
        later = connect_client(system.mqtt_url, "t-fast-late", subscriptions=[(f"{root}/state/#", 0)],
                               on_message=lambda _c, _u, msg: late.append((msg.topic, bytes(msg.payload), msg.retain)))
        try:
            wait_until(lambda: len(late) >= 299, 10, "retained states not delivered to a late subscriber")
            assert all(r for _, _, r in late) and {t for t, _, _ in late} == {t for t, _ in states[1:]}
        finally:
            close_client(later)
        fast.disconnect()
        wait_until(lambda: not fast.is_connected(), 10, "did not disconnect")
        assert fast.publish_states(states) == 0
    finally:
        fast.loop_stop()
