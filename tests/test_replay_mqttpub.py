"""The replay's lean MQTT publisher: packet encoding, PUBACK parsing, and delivery on the real broker."""
from __future__ import annotations

import socket
import threading
import uuid

import pytest

from protocol.mqttclient import close_client, connect_client
from protocol.mqttwire import encode_varint as _remaining_length
from replay.mqttpub import FastPublisher, MqttError, connect_packet, publish_packet

from .helpers import wait_until


def test_remaining_length_encoding():
    assert _remaining_length(0) == b"\x00" and _remaining_length(127) == b"\x7f"
    assert _remaining_length(128) == b"\x80\x01" and _remaining_length(16383) == b"\xff\x7f"
    assert _remaining_length(2_097_152) == b"\x80\x80\x80\x01"


def test_packets():
    pkt = publish_packet(b"a/b", b"hi", 1, True, 0x1234)
    assert pkt == b"\x33\x09\x00\x03a/b\x12\x34hi"
    assert publish_packet(b"a", b"", 0, False, 0) == b"\x30\x03\x00\x01a"
    assert publish_packet(b"a", b"", 1, False, 1, dup=True)[0] == 0x3A
    assert connect_packet("c", 30)[:2] == b"\x10\x0d"


class _Parser(FastPublisher):
    def __init__(self):  # no connection: only the parser is under test
        self.unacked = {i: b"" for i in range(1, 6)}
        self._acked = threading.Condition()


def test_pubacks_are_retired_across_partial_reads():
    p = _Parser()
    stream = b"\x40\x02\x00\x01" + b"\xd0\x00" + b"\x40\x02\x00\x02" + b"\x40\x03\x00\x03\x00" + b"\x40\x02\x00\x05"
    rest = b""
    for i in range(0, len(stream), 3):  # arrives in 3-byte pieces
        rest = p._handle(rest + stream[i:i + 3])
    assert rest == b"" and set(p.unacked) == {4}


@pytest.mark.integration
def test_every_message_arrives_in_order_with_bounded_pending(services):
    root = f"t{uuid.uuid4().hex[:8]}"
    got: list[bytes] = []
    sub = connect_client(services.mqtt_url, f"{root}-sub", subscriptions=[(f"{root}/#", 1)],
                         on_message=lambda c, u, m: got.append(bytes(m.payload)))
    pub = FastPublisher(services.mqtt_url, f"{root}-pub", max_pending=50)
    peak = 0
    try:
        for i in range(3000):
            assert pub.publish(f"{root}/uav/u{i % 7}/telemetry", b"%d" % i, qos=1)
            peak = max(peak, pub.pending())
        assert pub.publish(f"{root}/device/x/status", b"online", qos=0, retain=True)
        assert pub.drain(timeout=30)
        wait_until(lambda: len(got) == 3001, 30, "not everything arrived")
    finally:
        pub.close()
        close_client(sub)
    assert got[:3000] == [b"%d" % i for i in range(3000)] and got[3000] == b"online"
    assert peak <= 50
    with pytest.raises(ValueError):
        FastPublisher.publish(pub, "a/+/b", b"")


@pytest.mark.integration
def test_a_dropped_connection_is_resumed_and_nothing_is_lost(services):
    root = f"t{uuid.uuid4().hex[:8]}"
    got: set[bytes] = set()
    sub = connect_client(services.mqtt_url, f"{root}-sub", subscriptions=[(f"{root}/#", 1)],
                         on_message=lambda c, u, m: got.add(bytes(m.payload)))
    pub = FastPublisher(services.mqtt_url, f"{root}-pub", max_pending=500)
    try:
        for i in range(6000):
            pub.publish(f"{root}/uav/u/telemetry", b"%d" % i, qos=1)
            if i == 3000:
                pub.flush()
                pub._sock.shutdown(socket.SHUT_RDWR)  # the link dies with messages unacknowledged
        assert pub.drain(timeout=30)
        assert pub.reconnects >= 1
        wait_until(lambda: len(got) == 6000, 30, "messages were lost across the reconnect")
    finally:
        pub.close()
        close_client(sub)


def test_unreachable_broker_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MqttError, match=f"127.0.0.1:{port}"):
        FastPublisher(f"mqtt://127.0.0.1:{port}", "x", connect_timeout=2)
