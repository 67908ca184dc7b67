"""MQTT helpers that need no broker: URL parsing, unreachable brokers, bounded publishing."""
from __future__ import annotations

import socket
import threading

import pytest

from protocol.mqttclient import connect_client, connect_with_retry, parse_mqtt_url
from protocol.publisher import BoundedPublisher


@pytest.mark.parametrize("url,expected", [
    ("mqtt://localhost:1884", ("localhost", 1884)),
    ("mqtt://broker.example", ("broker.example", 1883)),
    ("tcp://127.0.0.1:18830", ("127.0.0.1", 18830)),
    ("mqtt://[::1]:1999", ("::1", 1999)),
    ("127.0.0.1:1885", ("127.0.0.1", 1885)),
    ("mqtts://broker.example", ("broker.example", 8883)),
    ("mqtts://u:p%40ss@host:8884?ca=/tmp/ca.crt", ("host", 8884)),
])
def test_parse_mqtt_url(url, expected):
    assert parse_mqtt_url(url) == expected


def test_an_url_carries_its_account_and_tls_and_never_shows_the_password():
    from protocol.mqttclient import MqttTarget, with_credentials
    t = MqttTarget.parse("mqtts://ingest:s%2Fcr%40t@host:8884?ca=/tmp/ca.crt")
    assert (t.username, t.password, t.tls, t.ca_file) == ("ingest", "s/cr@t", True, "/tmp/ca.crt")
    assert str(t) == "mqtts://ingest@host:8884" and "cr" not in str(t)
    url = with_credentials("mqtt://old:pw@h:1884", "skylane-api", "p@ss/w:rd")
    assert MqttTarget.parse(url).password == "p@ss/w:rd" and MqttTarget.parse(url).username == "skylane-api"


@pytest.mark.parametrize("url", ["ws://host:8883", "http://host", "mqtt://:1883", "mqtt://host:notaport"])
def test_parse_mqtt_url_rejects(url):
    with pytest.raises(ValueError):
        parse_mqtt_url(url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_broker_raises_connection_error_naming_the_url():
    url = f"mqtt://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConnectionError, match=url.replace(".", r"\.")):
        connect_client(url, "t-unreachable", timeout=2.0)


def test_connect_with_retry_returns_none_once_stopped():
    stop = threading.Event()
    stop.set()
    assert connect_with_retry(f"mqtt://127.0.0.1:{_closed_port()}", "t-stopped", stop) is None


class _Info:
    def __init__(self) -> None:
        self.done = False

    def is_published(self) -> bool:
        return self.done


class _FakeClient:
    max_inflight_messages = 2

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.infos: list[_Info] = []
        self.on_publish = None

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, qos))
        info = _Info()
        self.infos.append(info)
        return info


def test_bounded_publisher_waits_for_acks_beyond_the_bound():
    client = _FakeClient()
    pub = BoundedPublisher(client, max_pending=3)  # type: ignore[arg-type]
    for i in range(3):
        assert pub.publish(f"t/{i}", b"x", qos=1) is not None
    assert pub.pending() == 3
    stop = threading.Event()
    stop.set()
    assert pub.publish("t/3", b"x", qos=1, stop=stop) is None  # full: would block
    assert len(client.sent) == 3
    client.infos[0].done = True
    assert pub.publish("t/3", b"x", qos=1, stop=stop) is not None
    assert pub.pending() == 3
    assert not pub.drain(timeout=0.01)
    for info in client.infos:
        info.done = True
    assert pub.drain(timeout=1.0) and pub.pending() == 0


def test_qos0_waits_for_held_back_qos1_to_keep_order():
    client = _FakeClient()
    pub = BoundedPublisher(client, max_pending=10)  # type: ignore[arg-type]
    for i in range(3):  # one more than the in-flight window: paho would hold one back
        pub.publish(f"t/{i}", b"x", qos=1)
    stop = threading.Event()
    stop.set()
    assert pub.publish("t/q0", b"x", qos=0, stop=stop) is None
    client.infos[0].done = True
    assert pub.publish("t/q0", b"x", qos=0, stop=stop) is not None
    assert client.sent[-1] == ("t/q0", 0)
