"""Scale-out in small: two ingest workers split the devices by topic shard; each UAV is handled by one
worker (its per-flight state stays whole) and nothing is lost or stored twice."""
from __future__ import annotations

import threading
from collections import defaultdict

import pytest

from ingest.limits import RateLimiter
from ingest.sharding import SHARDS, Assignment, ShardError, shard_of, sharded_topic, unshard
from protocol import topics
from skylane.wiring import make_ingester

from .helpers import Running, query, wait_until
from .ingest_support import IngestProcess, Publisher, count, fix_payload, wait_stored

ROOT = "city/v1"


def test_every_shard_has_exactly_one_worker():
    for n in (1, 2, 3, 7, SHARDS):
        owners = [w for w in range(n) for _ in Assignment(w, n).owned()]
        assert sorted(s for w in range(n) for s in Assignment(w, n).owned()) == list(range(SHARDS))
        assert len(owners) == SHARDS
        assert sum(Assignment(w, n).takes_unsharded() for w in range(n)) == 1


def test_filters_and_the_ones_left_over_from_another_assignment():
    a = Assignment(1, 2)
    assert f"{ROOT}/shard/1/#" in a.filters(ROOT) and f"{ROOT}/shard/0/#" not in a.filters(ROOT)
    assert not set(a.filters(ROOT)) & set(a.foreign_filters(ROOT))
    assert f"{ROOT}/shard/0/#" in a.foreign_filters(ROOT)  # owned under workers=1: given up now
    assert f"{ROOT}/uav/+/telemetry" in a.foreign_filters(ROOT)  # the pre-shard subscriptions
    shared = Assignment(0, 2, shared=True)
    assert all(f.startswith("$share/skylane-ingest-0/") for f in shared.filters(ROOT))
    assert f"{ROOT}/shard/0/#" in shared.foreign_filters(ROOT)  # the unshared variant of its own shard
    with pytest.raises(ValueError):
        Assignment(2, 2)


def test_shard_topics():
    topic = sharded_topic(ROOT, topics.telemetry(ROOT, "D7"))
    assert topic == f"{ROOT}/shard/{shard_of('D7')}/uav/D7/telemetry"
    assert unshard(ROOT, topic) == topics.telemetry(ROOT, "D7")
    assert unshard(ROOT, topics.telemetry(ROOT, "D7")) == topics.telemetry(ROOT, "D7")
    wrong = (shard_of("D7") + 1) % SHARDS
    with pytest.raises(ShardError, match="belongs to shard"):
        unshard(ROOT, f"{ROOT}/shard/{wrong}/uav/D7/telemetry")
    for bad in ("x", "-1", str(SHARDS), ""):
        with pytest.raises(ShardError, match="is not 0"):
            unshard(ROOT, f"{ROOT}/shard/{bad}/uav/D7/telemetry")


def test_rate_limiter_token_bucket():
    lim = RateLimiter(rate=10, burst=5)
    assert [lim.allow("a", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert lim.allow("b", 0.0)  # per device
    assert not lim.allow("a", 0.05) and lim.allow("a", 0.1)  # 10/s refills one token in 0.1 s
    assert all(RateLimiter(rate=0).allow("a", 0.0) for _ in range(10_000))


@pytest.mark.integration
def test_two_workers_split_the_uavs_and_store_everything_once(system):
    """In-process workers, so the test sees which one handled each fix."""
    root, n_uavs, per_uav = system.mqtt_root, 60, 40
    handled: dict[int, set[str]] = defaultdict(set)
    lock = threading.Lock()
    runners, workers = [], []
    for w in range(2):
        ing = make_ingester(system, f"{system.ingest_client_id}-w{w}", assignment=Assignment(w, 2))
        real = ing.prepare

        def observed(batch, _w=w, _real=real):
            raw, out, t0 = _real(batch)
            with lock:
                handled[_w].update(r.uav_id for r in out.telemetry)
            return raw, out, t0
        ing.prepare = observed
        workers.append(ing)
        runners.append(Running(lambda stop, _i=ing: _i.run(stop)))
    for ing in workers:
        assert ing.connected.wait(15)
    msgs = [(sharded_topic(root, topics.telemetry(root, f"S{u:03d}")), fix_payload(u, k))
            for k in range(per_uav) for u in range(n_uavs)]
    msgs += [(topics.telemetry(root, "PLAIN1"), fix_payload(999, k)) for k in range(10)]  # unsharded: worker 0
    wrong = (shard_of("S000") + 1) % SHARDS
    msgs.append((f"{root}/shard/{wrong}/uav/S000/telemetry", fix_payload(0, 999)))  # the other worker refuses it
    pub = Publisher(system, iter(msgs))
    try:
        pub.wait(60)
        total = n_uavs * per_uav + 10
        wait_stored(system.database_url, total, 60)
        wait_until(lambda: query(system.database_url, "SELECT reason FROM dead_letters"), 10, "no dead letter")
    finally:
        pub.close()
        for r in runners:
            r.close()
    assert count(system.database_url, "SELECT count(*) FROM uav_telemetry") == total
    assert count(system.database_url, "SELECT count(DISTINCT (uav_id, ts, seq)) FROM uav_telemetry") == total
    assert handled[0] and handled[1], "both workers must have had work"
    assert not handled[0] & handled[1], f"UAVs handled by both workers: {sorted(handled[0] & handled[1])[:5]}"
    for u in range(n_uavs):
        assert f"S{u:03d}" in handled[shard_of(f"S{u:03d}") % 2]
    assert "PLAIN1" in handled[0]
    [(reason,)] = query(system.database_url, "SELECT reason FROM dead_letters")
    assert "belongs to shard" in reason


@pytest.mark.integration
def test_skylane_ingest_workers_2(system, tmp_path):
    """The CLI: `skylane ingest --workers 2` starts two workers that together take every shard."""
    ing = IngestProcess(system, "--workers", "2", log_path=tmp_path / "ingest.log")
    pub = None
    try:
        wait_until(lambda: "worker 0 of 2" in ing.log() and "worker 1 of 2" in ing.log(), 60,
                   "the two workers did not subscribe")
        root = system.mqtt_root
        pub = Publisher(system, ((sharded_topic(root, topics.telemetry(root, f"C{u:03d}")), fix_payload(u, k))
                                 for k in range(50) for u in range(100)))
        pub.wait(60)
        wait_stored(system.database_url, 5000, 60, alive=ing.alive)
        assert count(system.database_url, "SELECT count(*) FROM uav_telemetry") == 5000
    finally:
        if pub:
            pub.close()
        assert ing.stop() == 0, ing.log()


@pytest.mark.integration
def test_scaling_down_drains_the_removed_workers_sessions(system, tmp_path):
    """Two workers, then one: what the broker had queued for the removed worker is stored, and its session
    (which would otherwise keep queueing its shards for days) is ended."""
    from ingest.consumer import SESSION_EXPIRY_S
    from ingest.fastmqtt import session_exists
    log_path = tmp_path / "ingest.log"
    two = IngestProcess(system, "--workers", "2", log_path=log_path)
    wait_until(lambda: "worker 0 of 2" in two.log() and "worker 1 of 2" in two.log(), 60, "two workers")
    assert two.stop() == 0
    root = system.mqtt_root
    pub = Publisher(system, ((sharded_topic(root, topics.telemetry(root, f"R{u:03d}")), fix_payload(u, k))
                             for k in range(20) for u in range(50)))  # queued in both sessions
    pub.wait(60)
    pub.close()
    assert count(system.database_url, "SELECT count(*) FROM uav_telemetry") == 0
    one = IngestProcess(system, log_path=log_path)
    try:
        wait_stored(system.database_url, 1000, 60, alive=one.alive)
        wait_until(lambda: "drained and ended the session of retired worker 1" in one.log(), 30, "no retirement")
        assert count(system.database_url, "SELECT count(*) FROM uav_telemetry") == 1000
        assert not session_exists(system.service_url("ingest"), f"{system.ingest_client_id}-w1", SESSION_EXPIRY_S)
    finally:
        assert one.stop() == 0, one.log()
