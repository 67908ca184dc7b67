"""Support for the ingest no-loss, sharding and fuzz tests: private services, `skylane ingest` subprocesses,
a fast bounded publisher and database counts.

The tests here stop, kill and restart brokers and databases, so they never use the shared test services:
`private_services` starts a Mosquitto and a PostgreSQL of their own (skylane.localservices, other ports,
their own state folder) and stops them afterwards.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psycopg

from protocol.mqttclient import MqttTarget
from protocol.publisher import BoundedPublisher
from skylane import localservices
from skylane.settings import DEFAULT_ZONE_FILE, REPO_ROOT, Settings

from .helpers import free_port, start_test_broker, wait_until

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)  # in the past: fixes may not be ahead of arrival


@contextmanager
def private_services(state_dir: Path) -> Iterator[Settings]:
    """A Mosquitto and a PostgreSQL for one test module only (they may be stopped and restarted)."""
    base = Settings.from_env({
        "SKYLANE_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
        "SKYLANE_MQTT_DEVICE_URL": f"mqtt://127.0.0.1:{free_port()}",
        "SKYLANE_DATABASE_URL": f"postgresql://skylane:skylane@127.0.0.1:{free_port()}/skylane",
        "SKYLANE_STATE_DIR": str(state_dir), "SKYLANE_ZONE_FILE": str(DEFAULT_ZONE_FILE)})
    try:
        settings = start_test_broker(base)
        localservices.postgres_up(settings)
        yield settings
    finally:
        localservices.down(settings)


def system_on(services: Settings) -> Settings:
    """A fresh database and MQTT root on the given (private) services, migrated and seeded."""
    from skylane.wiring import prepare_database
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = services.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    settings = services.with_(database_url=services.database_url.rsplit("/", 1)[0] + "/" + name,
                              mqtt_root=f"t{uuid.uuid4().hex[:8]}/v1",
                              ingest_client_id=f"test-ingest-{uuid.uuid4().hex[:8]}")
    prepare_database(settings)
    return settings


class IngestProcess:
    """`skylane ingest` as a child process (so that it can be killed with SIGKILL)."""

    def __init__(self, settings: Settings, *args: str, log_path: Path | None = None, env: dict | None = None):
        self.settings, self.args = settings, args
        self.log_path = log_path
        self.env = {**os.environ, "SKYLANE_MQTT_URL": settings.mqtt_url, "SKYLANE_DATABASE_URL": settings.database_url,
                    "SKYLANE_STATE_DIR": str(settings.state_dir),
                    "SKYLANE_MQTT_ROOT": settings.mqtt_root, "SKYLANE_INGEST_CLIENT_ID": settings.ingest_client_id,
                    "SKYLANE_INGEST_METRICS_PORT": "0", "SKYLANE_BATCH_MS": "20", "SKYLANE_LOG_LEVEL": "INFO",
                    "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-m", "skylane", "ingest", *self.args], env=self.env,
                                     cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the ingester and any workers it started
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""


def fix_payload(uav: int, seq: int) -> bytes:
    """A fix with a unique key (uav, ts, seq), positions spread over the zone file's area."""
    ts = T0 + timedelta(milliseconds=100 * seq)
    return orjson.dumps({"ts": ts.isoformat().replace("+00:00", "Z"), "seq": seq,
                         "lon": 121.44 + (uav * 37 + seq) % 1000 * 1.1e-4, "lat": 31.01 + (uav * 53 + seq) % 900 * 1e-4,
                         "alt_m": float(20 + (uav + seq) % 150)})


class Publisher:
    """A QoS 1 publisher with a persistent session and a bound on unacknowledged messages, in a thread.

    Survives broker restarts (paho re-sends what was not acknowledged after reconnecting)."""

    def __init__(self, settings: Settings, messages, rate: float | None = None, max_pending: int = 2000):
        target = MqttTarget.parse(settings.mqtt_url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        target.configure(self.client)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(0.2, 2)
        self.bounded = BoundedPublisher(self.client, max_pending=max_pending)
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect(target.host, target.port, keepalive=30, clean_start=False)
        self.client.loop_start()
        assert connected.wait(15), "the publisher could not connect"
        self.messages, self.rate = messages, rate
        self.sent = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            for topic, payload in self.messages:
                if self.stop.is_set():
                    return
                self.bounded.publish(topic, payload, qos=1, stop=self.stop)
                self.sent += 1
                if self.rate and self.sent % 100 == 0:
                    ahead = self.sent / self.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            self.bounded.drain(stop=self.stop)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.done.set()

    def wait(self, timeout: float) -> None:
        assert self.done.wait(timeout), f"publisher did not finish ({self.sent} sent)"
        assert self.error is None, f"publisher failed: {self.error!r}"
        assert self.bounded.drain(timeout=timeout), "the broker did not acknowledge every message"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()


def count(database_url: str, sql: str, *args) -> int:
    try:
        with psycopg.connect(database_url, connect_timeout=3) as conn:
            return conn.execute(sql, args).fetchone()[0]
    except psycopg.OperationalError:
        return -1


def wait_stored(database_url: str, n: int, timeout: float, table: str = "uav_telemetry",
                alive=lambda: True) -> None:
    """Wait until `n` rows are in `table` (fails early when `alive()` turns false)."""
    last = [0]

    def done() -> bool:
        assert alive(), "the ingester exited"
        last[0] = count(database_url, f"SELECT count(*) FROM {table}")
        return last[0] >= n
    try:
        wait_until(done, timeout, f"rows in {table} did not reach {n}", interval=0.25)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {last[0]} stored") from None
