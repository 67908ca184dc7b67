"""Nothing is lost and nothing is stored twice: the ingester killed with SIGKILL, PostgreSQL stopped for
30 s, Mosquitto restarted, all while QoS 1 telemetry flows. Private Mosquitto and PostgreSQL (these tests
stop them), `skylane ingest` as a child process (it is killed)."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import psycopg
import pytest

from bench._mqttblast import BlastPublisher
from ingest.pipeline import BatchOutput
from ingest.telemetry import parse_telemetry
from protocol import topics
from skylane import localservices
from skylane.settings import REPO_ROOT
from storage.writes import write_batch

from .helpers import start_test_broker, wait_until
from .ingest_support import IngestProcess, Publisher, count, fix_payload, private_services, system_on, wait_stored

pytestmark = pytest.mark.integration

UAVS = 200


@pytest.fixture(scope="module")
def private(tmp_path_factory):
    with private_services(tmp_path_factory.mktemp("noloss-services")) as settings:
        yield settings


def _messages(root: str, n: int, uavs: int = UAVS):
    for i in range(n):
        uav, seq = i % uavs, i // uavs
        yield topics.telemetry(root, f"N{uav:04d}"), fix_payload(uav, seq)


def _ready(ing: IngestProcess) -> None:
    wait_until(lambda: "subscribed under" in ing.log(), 60, "the ingester did not subscribe")


def _assert_exactly_once(database_url: str, n: int) -> None:
    assert count(database_url, "SELECT count(*) FROM uav_telemetry") == n
    assert count(database_url, "SELECT count(*) FROM (SELECT DISTINCT uav_id, ts, seq FROM uav_telemetry) k") == n
    assert count(database_url, "SELECT count(*) FROM dead_letters") == 0


def test_writes_are_idempotent(private):
    """The unique keys: a re-delivered fix or reading is not stored twice; a fix without seq is keyed by time."""
    system = system_on(private)
    now = datetime(2026, 11, 27, 8, 0, 5, tzinfo=timezone.utc)
    rows = parse_telemetry("D1", fix_payload(1, 1), now, 65536) + parse_telemetry("D1", fix_payload(1, 2), now, 65536)
    no_seq = parse_telemetry("D2", b'{"ts": "2026-11-27T08:00:00Z", "lon": 121.5, "lat": 31.05, "alt_m": 10}',
                             now, 65536)
    with psycopg.connect(system.database_url) as conn:
        first = write_batch(conn, BatchOutput(telemetry=rows + no_seq))
        again = write_batch(conn, BatchOutput(telemetry=rows + no_seq + rows))  # duplicates within a batch too
    assert (first.telemetry, again.telemetry) == (3, 0)
    assert count(system.database_url, "SELECT count(*) FROM uav_telemetry") == 3


@pytest.mark.slow
def test_kill9_while_100k_messages_flow(private, tmp_path):
    system = system_on(private)
    n = 100_000
    ing = IngestProcess(system, log_path=tmp_path / "ingest.log")
    pub = BlastPublisher(system.mqtt_url, f"pub-{system.ingest_client_id}")  # raw QoS 1, bounded unacknowledged
    try:
        _ready(ing)
        sender = threading.Thread(target=pub.publish_many, args=(_messages(system.mqtt_root, n),), daemon=True)
        sender.start()
        wait_until(lambda: count(system.database_url, "SELECT count(*) FROM uav_telemetry") >= n // 4, 60,
                   f"ingest did not get going: {pub.sent} sent; {ing.log()}")
        ing.kill9()
        killed_at = count(system.database_url, "SELECT count(*) FROM uav_telemetry")
        assert 0 < killed_at < n, "kill -9 must land while messages flow"
        time.sleep(1)
        ing.start()
        sender.join(120)
        assert pub.drain(120) and pub.sent == n, "the broker did not acknowledge every message"
        wait_stored(system.database_url, n, 90, alive=ing.alive)
        time.sleep(0.5)  # anything re-delivered late would show as an extra row
        _assert_exactly_once(system.database_url, n)
    finally:
        pub.close()
        ing.stop()


def _under_load(private, tmp_path, rate: int, fault) -> str:
    """30,000 QoS 1 fixes at `rate`/s into `skylane ingest`; once rows flow, `fault()` (it may assert on the
    ingester); then every message must be stored exactly once. Returns the ingester's log."""
    system = system_on(private)
    n = 30_000
    ing = IngestProcess(system, log_path=tmp_path / "ingest.log")
    pub = None
    try:
        _ready(ing)
        pub = Publisher(system, _messages(system.mqtt_root, n), rate=rate)
        wait_until(lambda: count(system.database_url, "SELECT count(*) FROM uav_telemetry") > rate, 30, "no flow")
        fault(ing)
        pub.wait(60)
        wait_stored(system.database_url, n, 60, alive=ing.alive)
        time.sleep(0.5)
        _assert_exactly_once(system.database_url, n)
        return ing.log()
    finally:
        if pub:
            pub.close()
        ing.stop()


@pytest.mark.slow
def test_postgres_down_for_30s_under_load(private, tmp_path):
    def outage(ing) -> None:
        localservices.postgres_down(private)
        try:
            time.sleep(30)
            assert ing.alive(), ing.log()
        finally:
            localservices.postgres_up(private)

    assert "database write failed" in _under_load(private, tmp_path, 1000, outage)


@pytest.mark.slow
def test_mosquitto_restart_under_load(private, tmp_path):
    def restart(_ing) -> None:
        localservices.mosquitto_down(private)
        time.sleep(2)
        start_test_broker(private)  # as the suite starts it: the same accounts and ACLs

    log = _under_load(private, tmp_path, 2000, restart)
    assert log.count("subscribed under") >= 2, "the ingester did not re-subscribe"
    assert "messages flow again after reconnecting" in log


def test_shipped_mosquitto_config_has_the_tuning():
    shipped = (REPO_ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert localservices.MOSQUITTO_TUNING in shipped
