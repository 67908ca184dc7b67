"""Bad input through the real broker and database: the ingester keeps running, every bad message becomes a
dead-letter row with its reason, every good message around them is stored. Plus the payload size and
per-device rate limits (dead letters with a reason, never silently dropped)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.consumer import Ingester
from ingest.limits import RateLimiter
from ingest.sharding import SHARDS, shard_of
from protocol import topics
from skylane.wiring import make_ingester

from .helpers import Running, query, start_ingester, wait_until
from .ingest_support import Publisher, count, fix_payload

pytestmark = pytest.mark.integration

GOOD = {"lat": 31.05, "lon": 121.5, "alt_m": 60.0}
_int64 = st.integers(-(2**63), 2**63 - 1)  # JSON numbers orjson can write
_num_junk = st.one_of(st.text(max_size=8), st.booleans(), st.lists(_int64, max_size=2), st.none(),
                      st.dictionaries(st.text(max_size=3), _int64, max_size=2))
_far = st.one_of(st.integers(-10**15, 946_684_799_999),  # epoch ms before 2000
                 st.integers(int((datetime.now(timezone.utc) + timedelta(hours=1)).timestamp() * 1000), 10**16),
                 st.sampled_from(["1899-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"]))
_out_of_range = st.one_of(
    st.builds(lambda v: {**GOOD, "lat": v}, st.floats(90.0001, 1e300) | st.floats(-1e300, -90.0001)),
    st.builds(lambda v: {**GOOD, "lon": v}, st.floats(180.0001, 1e300) | st.floats(-1e300, -180.0001)),
    st.builds(lambda v: {**GOOD, "alt_m": v}, st.floats(20000.1, 1e300)))
BAD_PAYLOADS = st.one_of(
    st.binary(max_size=300),                                                  # anything at all
    st.text(max_size=80).map(lambda t: ('{"lat": ' + t).encode()),             # malformed JSON
    st.builds(lambda k, v: orjson.dumps({**GOOD, k: v}), st.sampled_from(["lat", "lon", "alt_m"]),
              _num_junk),                                                      # wrong types
    st.builds(lambda k, v: orjson.dumps({**GOOD, k: v}), st.sampled_from(["seq", "ts", "status", "alt_ref"]),
              _num_junk.filter(lambda v: v is not None)),                      # (these may be absent, not null)
    st.sampled_from([b'{"lat": NaN, "lon": 121.5, "alt_m": 1}', b'{"lat": 31, "lon": Infinity, "alt_m": 1}',
                     b'{"lat": 31, "lon": 121.5, "alt_m": 1e999}', b'{"lat": 31, "lon": 121.5, "alt_m": -1e999}']),
    _out_of_range.map(orjson.dumps),
    _far.map(lambda t: orjson.dumps({**GOOD, "ts": t})),
    st.integers(65537, 120_000).map(lambda n: b'{"pad": "' + b"x" * n + b'"}'),  # oversize
    st.sampled_from([b"", b"[]", b"null", b"[1, 2]", b'"online"']),
)
BAD_TOPICS = st.sampled_from([
    "{root}/uav/{id}/garbage", "{root}/uav/{id}", "{root}/uav/{id}/telemetry/extra", "{root}/sensor/{id}/telemetry",
    "{root}/device/{id}/status/now", "{root}/uav/-{id}/telemetry", "{root}/uav/{id}~x/telemetry",
    "{root}/shard/x{id}/uav/{id}/telemetry", "{root}/shard/{wrong}/uav/{id}/telemetry",
    "{root}/shard/{shard}/uav/{id}/nonsense",
])


def _ts() -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")


@st.composite
def traffic(draw):
    """A mix of good fixes (unknown devices: accepted) and bad messages, each with its own device id."""
    items = []
    for _ in range(draw(st.integers(3, 12))):
        dev = f"Z{uuid.uuid4().hex[:10]}"
        choice = draw(st.sampled_from(["good", "payload", "topic"]))
        if choice == "good":
            items.append(("good", dev, "{root}/uav/{id}/telemetry", orjson.dumps({**GOOD, "ts": _ts(), "seq": 1})))
        elif choice == "payload":
            items.append(("bad", dev, "{root}/uav/{id}/telemetry", draw(BAD_PAYLOADS)))
        else:
            items.append(("bad", dev, draw(BAD_TOPICS), orjson.dumps({**GOOD, "ts": _ts()})))
    return items


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=traffic())
def test_fuzzed_traffic_is_stored_or_dead_lettered(system, ingester, batch):
    root = system.mqtt_root
    msgs = []
    for _, dev, shape, payload in batch:
        topic = shape.format(root=root, id=dev, shard=shard_of(dev), wrong=(shard_of(dev) + 1) % SHARDS)
        msgs.append((topic, payload))
    pub = Publisher(system, iter(msgs))
    try:
        pub.wait(30)
    finally:
        pub.close()
    good = [dev for kind, dev, _, _ in batch if kind == "good"]
    bad = [dev for kind, dev, _, _ in batch if kind == "bad"]

    def accounted() -> bool:
        stored = {r[0] for r in query(system.database_url, "SELECT uav_id FROM uav_telemetry WHERE uav_id = ANY(%s)",
                                      good)}
        dead = query(system.database_url, "SELECT topic, reason FROM dead_letters WHERE "
                     "EXISTS (SELECT 1 FROM unnest(%s::text[]) d WHERE position(d IN topic) > 0)", bad)
        return stored == set(good) and len(dead) >= len(bad)
    wait_until(accounted, 20, f"not every message of {[(k, t[:80], p[:60]) for (k, _, _, p), (t, _) in zip(batch, msgs)]} "
               "was stored or dead-lettered")
    for dev in bad:
        [(reason,)] = query(system.database_url, "SELECT reason FROM dead_letters WHERE position(%s IN topic) > 0", dev)
        assert reason.strip(), "a dead letter needs its reason"
    assert ingester.connected.is_set()


def _ingester(system, **kw) -> tuple[Ingester, Running]:
    ing = make_ingester(system, **kw)
    runner = Running(lambda stop: ing.run(stop))
    assert ing.connected.wait(15)
    return ing, runner


def test_device_over_its_rate_is_dead_lettered_and_others_go_on(system):
    ing, runner = _ingester(system, rate_limiter=RateLimiter(rate=0.001, burst=10))  # practically no refill
    root = system.mqtt_root
    msgs = [(topics.telemetry(root, "FLOOD"), fix_payload(1, k)) for k in range(30)]
    msgs += [(topics.telemetry(root, "CALM"), fix_payload(2, k)) for k in range(5)]
    pub = Publisher(system, iter(msgs))
    try:
        pub.wait(30)
        wait_until(lambda: count(system.database_url, "SELECT count(*) FROM uav_telemetry") +
                   count(system.database_url, "SELECT count(*) FROM dead_letters") >= 35, 20, "not all accounted for")
    finally:
        pub.close()
        runner.close()
    stored = dict(query(system.database_url, "SELECT uav_id, count(*) FROM uav_telemetry GROUP BY uav_id"))
    assert stored == {"FLOOD": 10, "CALM": 5}
    reasons = query(system.database_url, "SELECT topic, reason FROM dead_letters")
    assert len(reasons) == 20
    assert all(t == topics.telemetry(root, "FLOOD") and r.startswith("rate limit: device 'FLOOD' over")
               for t, r in reasons)


def test_oversize_payload_is_a_truncated_dead_letter(system):
    ing, runner = _ingester(system, max_payload_bytes=1000)
    root = system.mqtt_root
    big = orjson.dumps({**GOOD, "pad": "x" * 5000})
    pub = Publisher(system, iter([(topics.telemetry(root, "BIG"), big), (topics.telemetry(root, "OK"), fix_payload(3, 1))]))
    try:
        pub.wait(30)
        wait_until(lambda: query(system.database_url, "SELECT 1 FROM uav_telemetry WHERE uav_id = 'OK'"), 20,
                   "the good message after the oversize one was not stored")
        wait_until(lambda: query(system.database_url, "SELECT 1 FROM dead_letters"), 10, "no dead letter")
    finally:
        pub.close()
        runner.close()
    [(payload, reason)] = query(system.database_url, "SELECT payload, reason FROM dead_letters")
    assert bytes(payload) == big[:1000]
    assert reason == f"payload of {len(big)} bytes exceeds the 1000-byte limit (stored truncated to 1000 bytes)"


def test_the_ingester_survives_a_flood_of_junk_and_stores_the_good_in_between(system):
    ing, runner = start_ingester(system)
    root = system.mqtt_root
    msgs = []
    for k in range(300):
        msgs.append((topics.telemetry(root, f"J{k % 7}"), bytes([k % 256]) * (k % 50)))
        msgs.append((topics.telemetry(root, "GOOD"), fix_payload(4, k)))
    pub = Publisher(system, iter(msgs))
    try:
        pub.wait(30)
        wait_until(lambda: count(system.database_url, "SELECT count(*) FROM uav_telemetry WHERE uav_id = 'GOOD'")
                   == 300, 30, "good messages between the junk were not all stored")
        wait_until(lambda: count(system.database_url, "SELECT count(*) FROM dead_letters") == 300, 10,
                   "not every junk message is a dead letter")
    finally:
        pub.close()
        runner.close()


def test_a_queued_backlog_passes_but_a_flood_is_refused_even_while_catching_up(system):
    """After a restart the session's backlog arrives at once: that is the ingester catching up, not the device
    flooding, so a device may then use up to an hour of its rate on top of the burst (10 + 0.01 x 3600 = 46
    records). More than that is refused even in a backlog (a flood must not hide behind a reconnect); live
    traffic past the burst is refused again once caught up."""
    limiter = dict(rate=0.01, burst=10, catch_up_s=3600)
    ing, runner = _ingester(system, rate_limiter=RateLimiter(**limiter))
    runner.close()  # the session stays: what is published now queues in it
    root = system.mqtt_root
    backlog = [(topics.telemetry(root, "BACKLOG"), fix_payload(5, k)) for k in range(30)]
    backlog += [(topics.telemetry(root, "FLOOD"), fix_payload(6, k)) for k in range(100)]
    pub = Publisher(system, iter(backlog))
    pub.wait(30)
    pub.close()
    ing, runner = _ingester(system, rate_limiter=RateLimiter(**limiter))
    try:
        wait_until(lambda: count(system.database_url, "SELECT count(*) FROM uav_telemetry") +
                   count(system.database_url, "SELECT count(*) FROM dead_letters") >= 130, 20, "backlog not accounted for")
        wait_until(lambda: not ing.catching_up, 10, "the ingester never caught up")
        pub = Publisher(system, iter([(topics.telemetry(root, "LIVE"), fix_payload(7, k)) for k in range(30)]))
        pub.wait(30)
        pub.close()
        wait_until(lambda: count(system.database_url, "SELECT count(*) FROM uav_telemetry") +
                   count(system.database_url, "SELECT count(*) FROM dead_letters") >= 160, 20, "not all accounted for")
    finally:
        runner.close()
    stored = dict(query(system.database_url, "SELECT uav_id, count(*) FROM uav_telemetry GROUP BY uav_id"))
    assert stored == {"BACKLOG": 30, "FLOOD": 46, "LIVE": 10}
    assert count(system.database_url, "SELECT count(*) FROM dead_letters WHERE position('rate limit' IN reason) = 1") \
        == 54 + 20


def test_the_rate_limit_counts_records_not_messages(system):
    """A pack of fixes costs one token per fix: packing does not get a device past its rate."""
    ing, runner = _ingester(system, rate_limiter=RateLimiter(rate=0.001, burst=10))
    root = system.mqtt_root
    pack = b"[" + b",".join(fix_payload(8, k) for k in range(30)) + b"]"
    small = b"[" + b",".join(fix_payload(9, k) for k in range(5)) + b"]"
    pub = Publisher(system, iter([(topics.telemetry(root, "PACKER"), pack), (topics.telemetry(root, "SMALL"), small)]))
    try:
        pub.wait(30)
        wait_until(lambda: count(system.database_url, "SELECT count(*) FROM uav_telemetry WHERE uav_id = 'SMALL'") == 5,
                   20, "the small pack was not stored")
        wait_until(lambda: count(system.database_url, "SELECT count(*) FROM dead_letters") == 1, 10, "no dead letter")
    finally:
        pub.close()
        runner.close()
    assert count(system.database_url, "SELECT count(*) FROM uav_telemetry WHERE uav_id = 'PACKER'") == 0
    [(topic, reason)] = query(system.database_url, "SELECT topic, reason FROM dead_letters")
    assert topic == topics.telemetry(root, "PACKER") and reason.startswith("rate limit: device 'PACKER' over 0.001 records/s")
