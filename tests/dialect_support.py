"""Support for the dialect and MAVLink bridge tests: registering vendor devices, publishing and watching vendor
topics with the test suite's account, unique vendor identifiers (the dialects' topics are not under a test's own
root, so every test names its devices afresh), and a MAVLink bridge run in a thread."""
from __future__ import annotations

import queue
import socket
import uuid

import psycopg

from devices.registry import DeviceRecord
from protocol.mqttclient import close_client, connect_client
from skylane.settings import Settings

from .helpers import Running, wait_until


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10].upper()}"


def unique_eui() -> str:
    return uuid.uuid4().hex[:16]


def register(settings: Settings, *records: DeviceRecord) -> None:
    from storage import catalog
    with psycopg.connect(settings.database_url) as conn:
        catalog.register_devices(conn, [r.as_row() for r in records])


class Mqtt:
    """The test suite's client: publishes anything and collects what arrives on `watch` filters."""

    def __init__(self, settings: Settings, *watch: str):
        self.got: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = connect_client(settings.mqtt_url, unique("test-dialect-"),
                                     subscriptions=[(f, 1) for f in watch],
                                     on_message=lambda c, u, m: self.got.put((m.topic, m.payload)))

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(10)

    def next(self, timeout: float = 10) -> tuple[str, bytes]:
        return self.got.get(timeout=timeout)

    def close(self) -> None:
        close_client(self.client)


def count(database_url: str, sql: str, *args) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, args).fetchone()[0]


def wait_count(database_url: str, sql: str, *args, at_least: int = 1, timeout: float = 15) -> int:
    return wait_until(lambda: (n := count(database_url, sql, *args)) >= at_least and n, timeout,
                      f"expected {at_least} from {sql} {args}")


def start_bridge(settings: Settings, listen: str | None = None, **options):
    """`skylane bridge mavlink` in a thread, on a free UDP port unless `listen` is given: (bridge, runner, port)."""
    from ingest.bridges.mavlink import MavlinkBridge, parse_listen
    from ingest.dialects import RegistryView
    from storage import catalog

    port = free_udp_port() if listen is None else int(listen.rsplit(":", 1)[1])
    link = parse_listen(listen or f"udp:127.0.0.1:{port}")

    def registry() -> RegistryView:
        with psycopg.connect(settings.database_url) as conn:
            return RegistryView.from_registry(catalog.registry(conn))
    bridge = MavlinkBridge(link, settings.service_url("bridge"), settings.mqtt_root, registry, **options)
    runner = Running(lambda stop: bridge.run(stop))
    return bridge, runner, port


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_udp(port: int, *frames: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for frame in frames:
            s.sendto(frame, ("127.0.0.1", port))
