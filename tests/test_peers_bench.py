"""The benchmarks' peers (bench/peers/) on tiny workloads: each returns figures, and a wrong answer is caught.

No timing is asserted: only that each peer runs, gives numbers, and that the checks the benchmarks rely on
(exactness against the naive reference, counts of stored rows and received messages) fail on a wrong answer.
"""
from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
import psycopg
import pytest

from bench.airspace import exactness_sample, measure_peer, same_pairs
from bench.airspace_zones import make_positions, make_zones
from bench.peers.mosquitto_ws import Stream, client_argv, private_broker


@pytest.fixture(scope="module")
def zones():
    return make_zones(60, seed=5)


@pytest.fixture(scope="module")
def sample(zones):
    return exactness_sample(zones, 2000)


def _without_last_pair(pairs_fn):
    def wrong(lon, lat, alt, t):
        p, z = pairs_fn(lon, lat, alt, t)
        return p[:-1], z[:-1]
    return wrong


def test_strtree_peer_is_exact_and_a_wrong_answer_is_caught(zones, sample):
    from bench.peers.strtree import StrtreeClassifier
    peer = StrtreeClassifier(zones)
    (lon, lat, alt, t), ref = sample
    assert ref and same_pairs(peer.pairs, lon, lat, alt, t, ref)
    assert not same_pairs(_without_last_pair(peer.pairs), lon, lat, alt, t, ref)

    class NoSchedules(StrtreeClassifier):  # forgets the schedules: must be caught
        def __init__(self, zs):
            super().__init__(zs)
            self.scheduled[:] = False
    assert not same_pairs(NoSchedules(zones).pairs, lon, lat, alt, t, ref)

    fig = measure_peer("strtree", zones, make_positions(3000, seed=1), 3000, 1, sample, 1e6, 1e6)
    assert fig["strtree_exact"] is True and fig["strtree_positions_per_s"] > 0 and fig["classify_vs_strtree"] > 0
    assert fig["strtree_positions_per_cpu_s"] > 0 and fig["classify_vs_strtree_cpu"] > 0


@pytest.mark.integration
def test_postgis_peer_is_exact_and_a_wrong_answer_is_caught(services, zones, sample):
    from bench.peers.postgis import PostgisClassifier, ensure_postgis
    url = ensure_postgis(services, log=lambda m: None)  # installs PostGIS when missing (as root)
    peer = PostgisClassifier(url, zones, batch=700)  # several batches: the offsets must be right
    try:
        assert "bench_zones_geom_idx" in peer.plan()  # the GiST index is used
        (lon, lat, alt, t), ref = sample
        c0 = peer.server_cpu_seconds()
        assert same_pairs(peer.pairs, lon, lat, alt, t, ref)
        assert peer.server_cpu_seconds() >= c0  # the backend's CPU is readable here (same machine)
        assert not same_pairs(_without_last_pair(peer.pairs), lon, lat, alt, t, ref)
        peer.QUERY = peer.QUERY.split("WHERE NOT z.scheduled")[0]  # forgets the schedules: must be caught
        assert not same_pairs(peer.pairs, lon, lat, alt, t, ref)
    finally:
        peer.close()


@pytest.mark.integration
def test_bare_consumer_stores_every_message_then_acks(services, fresh_db):
    from bench._mqttblast import BlastPublisher
    from bench.peers.bare_ingest import BareConsumer
    from storage.schema import migrate
    migrate(fresh_db)
    root = f"bare{uuid.uuid4().hex[:8]}/v1"
    n = 600
    consumer = BareConsumer(services.mqtt_url, fresh_db, f"{root}/uav/+/telemetry", f"bare-{uuid.uuid4().hex[:6]}",
                            batch_size=100, batch_ms=10)
    stop = threading.Event()
    runner = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    runner.start()
    assert consumer.subscribed.wait(15)
    pub = BlastPublisher(services.mqtt_url, f"bare-pub-{uuid.uuid4().hex[:6]}")
    t0 = time.perf_counter()
    pub.publish_many((f"{root}/uav/U{i % 7}/telemetry".encode(),
                      orjson.dumps({"ts": f"2026-11-27T00:00:{i // 7 % 60:02d}.{i // 420:03d}Z", "seq": i // 7,
                                    "lon": 121.5, "lat": 31.05, "alt_m": 60.0, "alt_ref": "AGL"}))
                     for i in range(n))
    assert pub.drain(30)
    pub.close()
    deadline = time.monotonic() + 30
    while consumer.stored < n and time.monotonic() < deadline:
        time.sleep(0.02)
    rate = consumer.stored / (time.perf_counter() - t0)
    stop.set()
    runner.join(15)
    with psycopg.connect(fresh_db) as conn:
        stored = conn.execute("SELECT count(*), count(DISTINCT (uav_id, seq)) FROM uav_telemetry").fetchone()
    assert stored == (n, n) and rate > 0
    assert consumer.stored == n  # nothing twice: a lost ack would have brought a re-delivery


def test_mqtt_recorder_peer_replays_and_the_subscriber_counts_losses(tmp_path: Path):
    from bench.peers import mqtt_recorder
    from bench.peers.counting_sub import CountingSubscriber
    mqtt_recorder.ensure_installed(log=lambda m: None)
    rows = [(f"bench/t/uav/U{i % 5}/telemetry", orjson.dumps({"i": i}), 1, False) for i in range(300)]
    with private_broker() as (mqtt_port, _ws):
        sub = CountingSubscriber("127.0.0.1", mqtt_port, "bench/#", "bench/probe")
        try:
            n, b64 = mqtt_recorder.write_csv(tmp_path / "r.csv", rows)
            assert (n, b64) == (300, False)
            t0 = time.time()
            wall = mqtt_recorder.run_replay(tmp_path / "r.csv", "127.0.0.1", mqtt_port, b64=b64)
            got = sub.settle(t0, n, quiet_s=1.0, timeout=30)
            w = sub.window(t0, time.time())
            assert wall > 0 and 0 < got <= n and w["received"] == got
            # a replay that loses messages: the count since then says how many
            t1 = time.time()
            mqtt_recorder.write_csv(tmp_path / "short.csv", rows[:250])
            mqtt_recorder.run_replay(tmp_path / "short.csv", "127.0.0.1", mqtt_port)
            assert sub.settle(t1, n, quiet_s=1.0, timeout=30) <= 250
        finally:
            sub.close()


def test_websocket_stream_parser_reassembles_split_frames():
    def server_frame(payload: bytes) -> bytes:  # unmasked, as a server sends
        n = len(payload)
        return bytes([0x82]) + (bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, "big")) + payload
    pubs = [b"\x30" + bytes([2 + 3 + len(p)]) + b"\x00\x03a/b" + p for p in (b'{"x":1}', b'{"y":2}')]
    big = b'{"z":"' + b"q" * 300 + b'"}'
    body = b"\x00\x03a/b" + big
    pubs.append(b"\x30" + bytes([(len(body) & 0x7F) | 0x80, len(body) >> 7]) + body)
    wire = server_frame(b"\x90\x03\x00\x01\x00") + server_frame(pubs[0] + pubs[1][:4]) + server_frame(pubs[1][4:]) \
        + server_frame(pubs[2])
    s = Stream()
    out = [p for i in range(len(wire)) for p in s.feed(wire[i:i + 1])]  # one byte at a time
    assert out == [b'{"x":1}', b'{"y":2}', big] and s.acks == [0x90]


def test_mosquitto_websocket_peer_delivers_and_measures():
    from protocol.mqttclient import close_client, connect_client
    with private_broker() as (mqtt_port, ws_port):
        c = subprocess.Popen(client_argv(ws_port, "r/state/uav/+", 3), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        try:
            assert c.stdout.readline().strip() == "ready"
            pub = connect_client(f"mqtt://127.0.0.1:{mqtt_port}", f"ws-pub-{uuid.uuid4().hex[:6]}")
            for i in range(50):
                body = {"bench_t": time.time(), "uav_id": f"U{i % 4}"}
                if i < 10:
                    body["warm"] = True  # not measured
                pub.publish(f"r/state/uav/U{i % 4}", orjson.dumps(body), qos=0)
            time.sleep(0.5)
            close_client(pub)
            out, _ = c.communicate("stop\n", timeout=30)
        finally:
            if c.poll() is None:
                c.kill()
    import json
    res = json.loads(out.strip().splitlines()[-1])
    assert res["connected"] == 3 and res["failed"] == 0 and res["received"] == 3 * 40
    assert sum(res["hist"].values()) == 120 and np.isfinite([float(k) for k in res["hist"]]).all()
