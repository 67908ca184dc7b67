"""The observation contract: `{root}/obs/{source}/{track_id}` topics, validation with reasons, the pipeline's
routing, idempotent storage, and the whole path on the real broker and database (the receiver account
publishes, ingest's account reads, rows land in `observations`)."""
from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timedelta, timezone

import orjson
import psycopg
import pytest

from airspace.zones import ZoneSet
from protocol import modes_encode as encode
from ingest.bridges.adsb import AdsbBridge, Output
from ingest.observations import parse_observations
from ingest.pipeline import Pipeline
from ingest.rows import RawMessage
from ingest.validation import BadMessage
from protocol import topics
from protocol.mqttclient import close_client, connect_client
from storage.schema import migrate
from storage.writes import write_batch

from .helpers import ZONE_FILE, query, wait_until

ROOT = "sky/v1"
NOW = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
ZONES = ZoneSet.from_geojson(json.loads(ZONE_FILE.read_text()))
OBS = {"ts": "2026-11-30T07:59:59.500Z", "source": "adsb", "track_id": "7800ab", "lon": 121.4912, "lat": 31.0456,
       "alt_m": 129.5, "alt_ref": "WGS84", "alt_source": "geometric", "speed_mps": 41.2, "track_deg": 45.0,
       "vspeed_mps": -1.6, "receiver_id": "rx-minhang-1", "rssi": -18.5,
       "identity": {"icao24": "7800ab", "callsign": "B7215", "category": "A7", "category_name": "rotorcraft"}}


def test_topics_build_and_parse_and_wrong_shapes_say_why():
    topic = topics.observation(ROOT, "adsb", "7800ab")
    assert topic == "sky/v1/obs/adsb/7800ab"
    assert topics.parse_observation(ROOT, topic) == topics.ObservationRef("adsb", "7800ab")
    assert topics.parse_observation(ROOT, "sky/v1/uav/D1/telemetry") is None
    for bad, why in (("sky/v1/obs/adsb", "expected"), ("sky/v1/obs/ADSB/7800ab", "source"),
                     ("sky/v1/obs/adsb/78 00", "track id"), ("sky/v1/obs/adsb/a/b", "expected")):
        with pytest.raises(topics.TopicError, match=why):
            topics.parse_observation(ROOT, bad)
    assert topics.remote_id(ROOT, "rx-1") == "sky/v1/rid/rx-1"


def test_a_valid_observation_parses_to_the_row_it_came_from():
    ref = topics.ObservationRef("adsb", "7800ab")
    rows = parse_observations(ref, orjson.dumps(OBS), NOW, 65536)
    assert len(rows) == 1
    row = rows[0]
    assert row.to_dict() == {**OBS, "ts": "2026-11-30T07:59:59.500Z"}
    assert row.received_at == NOW
    # source and track id may be left to the topic; arrays carry several sightings
    lean = {k: v for k, v in OBS.items() if k not in ("source", "track_id", "identity", "receiver_id")}
    rows = parse_observations(ref, orjson.dumps([lean, {**lean, "ts": "2026-11-30T07:59:59.600Z"}]), NOW, 65536)
    assert [r.track_id for r in rows] == ["7800ab", "7800ab"] and rows[0].identity == {} and rows[0].receiver_id is None


@pytest.mark.parametrize("change,reason", [
    ({"track_id": "7800ac"}, "does not match the topic's '7800ab'"),
    ({"source": "rid"}, "does not match the topic's 'adsb'"),
    ({"ts": None}, "'ts'"), ({"lat": 91}, "'lat'=91 out of range"), ({"lon": float("nan")}, None),
    ({"alt_ref": None}, "needs 'alt_ref'"), ({"alt_ref": "QNH"}, "not one of AGL, AMSL, WGS84"),
    ({"alt_source": "radar"}, "not one of baro, gnss, geometric, reported"), ({"speed_mps": -1}, "out of range"),
    ({"track_deg": 400}, "out of range"), ({"receiver_id": "rx 1"}, "'receiver_id'"), ({"rssi": "-70"}, "number"),
    ({"identity": [1]}, "JSON object"), ({"identity": {"a": {"b": 1}}}, "text, a number"),
    ({"identity": {"callsign": "B7\x00215"}}, "control characters"), ({"squawk": "7700"}, "unknown field"),
    ({"ts": "2026-11-30T09:00:00Z"}, "ahead of arrival"),
])
def test_bad_observations_are_refused_with_the_reason(change, reason):
    doc = {**OBS, **change}
    if change.get("ts", 0) is None:
        del doc["ts"]
    body = json.dumps(doc, allow_nan=True).encode()
    with pytest.raises(BadMessage) as exc:
        parse_observations(topics.ObservationRef("adsb", "7800ab"), body, NOW, 65536)
    assert reason is None or reason in str(exc.value), str(exc.value)


def test_the_pipeline_routes_observations_and_bad_ones_become_dead_letters():
    pipe = Pipeline(ZONES, ROOT, max_payload_bytes=1 << 20)
    good = RawMessage(topics.observation(ROOT, "adsb", "7800ab"), orjson.dumps(OBS), NOW)
    bad = RawMessage(topics.observation(ROOT, "adsb", "7800ab"), orjson.dumps({**OBS, "lat": 200}), NOW)
    shape = RawMessage(f"{ROOT}/obs/adsb", orjson.dumps(OBS), NOW)
    many = RawMessage(topics.observation(ROOT, "adsb", "7800ab"), orjson.dumps([OBS] * 1001), NOW)
    out = pipe.process([good, bad, shape, many])
    assert [o.track_id for o in out.observations] == ["7800ab"]
    assert [d.reason for d in out.dead_letters] == [
        "field 'lat'=200 out of range [-90, 90]", "bad topic: expected {root}/obs/<source>/<track_id>",
        "more than 1000 observations in one message"]
    assert out.telemetry == [] and out.events == []


def test_observations_are_stored_once_however_often_they_are_delivered(fresh_db):
    migrate(fresh_db)
    pipe = Pipeline(ZONES, ROOT)
    rows = [{**OBS, "ts": (NOW - timedelta(seconds=k)).isoformat()} for k in range(3)]
    unnamed = {k: v for k, v in OBS.items() if k != "receiver_id"}
    msgs = [RawMessage(topics.observation(ROOT, "adsb", "7800ab"), orjson.dumps(rows), NOW),
            RawMessage(topics.observation(ROOT, "adsb", "7800ab"), orjson.dumps(unnamed), NOW)]
    with psycopg.connect(fresh_db) as conn:
        first = write_batch(conn, pipe.process(msgs))
        again = write_batch(conn, pipe.process(msgs))  # a re-delivery after a crash before the ack
    assert (first.observations, again.observations) == (4, 0)
    stored = query(fresh_db, "SELECT source, track_id, receiver_id, alt_ref, alt_source, identity, lat FROM observations "
                             "ORDER BY receiver_id, ts")
    assert len(stored) == 4
    assert stored[0][:5] == ("adsb", "7800ab", "", "WGS84", "geometric")  # no receiver named: '' in the key
    assert stored[1][2] == "rx-minhang-1" and stored[1][5] == OBS["identity"] and stored[1][6] == 31.0456


@pytest.mark.integration
def test_the_receiver_account_publishes_observations_that_ingest_reads_and_stores(system):
    """The whole contract on the real broker: `skylane adsb`'s account publishes frames' observations and the
    receiver's presence; ingest's account reads them; the pipeline stores them (the consumer subscribes to
    protocol.topics.observation_filters once wired, see docs/surveillance.md)."""
    root = system.mqtt_root
    got: list[RawMessage] = []
    done = threading.Event()

    def on_message(_c, _u, m):
        got.append(RawMessage(m.topic, m.payload, datetime.now(timezone.utc)))
        if sum(1 for g in got if "/obs/" in g.topic) >= 2:
            done.set()

    reader = connect_client(system.service_url("ingest"), "test-obs-reader",
                            subscriptions=[(f"{root}/obs/#", 1), (f"{root}/device/+/status", 1)],
                            on_message=on_message)
    sender = connect_client(system.service_url("receiver"), "test-obs-receiver")
    try:
        bridge = AdsbBridge(Output(lambda t, p, r: sender.publish(t, p, qos=1, retain=r).wait_for_publish(5), root),
                            "rx-minhang-1")
        bridge.data_arrived()  # presence: online
        now = datetime.now(timezone.utc).timestamp()
        for n, icao in enumerate(("7800a1", "7800a2")):
            frames = encode.aircraft_frames(icao, 31.05 + n / 100, 121.47, 500, callsign=f"HELI{n}", category="A7")
            bridge.frames([now] * len(frames), frames)
        assert done.wait(15), f"ingest's account did not get the observations: {[g.topic for g in got]}"
        # the receiver account may not write outside its topics: a control message is refused by the broker
        info = sender.publish(f"{root}/control/zones", b'{"version": 999}', qos=1)
        info.wait_for_publish(5)
        assert info.rc == 0 and not any(g.topic.endswith("/control/zones") for g in got)
    finally:
        close_client(sender)
        close_client(reader)
    out = Pipeline(ZONES, root).process(got)
    assert out.dead_letters == []
    assert sorted(o.track_id for o in out.observations) == ["7800a1", "7800a2"]
    assert [(s.device_id, s.online) for s in out.statuses] == [("rx-minhang-1", True)]
    with psycopg.connect(system.database_url) as conn:
        write_batch(conn, out)
    rows = query(system.database_url, "SELECT track_id, identity->>'category_name' FROM observations ORDER BY 1")
    assert rows == [("7800a1", "rotorcraft"), ("7800a2", "rotorcraft")]


@pytest.mark.integration
def test_remote_id_through_the_live_ingester_into_the_database(system):
    """A registered Remote ID receiver's broadcasts, through the running ingester with the dialect enabled."""
    from .helpers import start_ingester
    from .test_remoteid_decoding import basic_id, location, pack
    settings = system.with_(dialects=("remoteid",))
    ing, runner = start_ingester(settings)
    sender = connect_client(settings.service_url("receiver"), "test-rid-receiver")
    try:
        data = pack(basic_id("1596A303716430A"), location(31.0456, 121.4912, geo=80.0, track=90, speed=5.0))
        body = orjson.dumps({"data": base64.b64encode(data).decode(), "rssi": -70, "mac": "aa:bb:cc:00:11:22"})
        sender.publish(topics.remote_id(settings.mqtt_root, "rx-rid-1"), body, qos=1).wait_for_publish(5)
        sender.publish(topics.remote_id(settings.mqtt_root, "rx-rid-1"), b'{"data": "8hkE"}', qos=1).wait_for_publish(5)
        wait_until(lambda: query(settings.database_url, "SELECT count(*) FROM observations")[0][0] == 1, 20,
                   "the Remote ID observation was not stored")
        wait_until(lambda: query(settings.database_url, "SELECT count(*) FROM dead_letters")[0][0] == 1, 20,
                   "the truncated pack is no dead letter")
    finally:
        close_client(sender)
        runner.close()
    assert query(settings.database_url, "SELECT source, track_id, receiver_id, alt_ref FROM observations") == \
        [("rid", "1596A303716430A", "rx-rid-1", "WGS84")]
    assert "message pack truncated" in query(settings.database_url, "SELECT reason FROM dead_letters")[0][0]


def test_receiver_accounts_write_only_surveillance_topics_and_a_registered_receiver_only_its_own():
    from protocol import brokerauth
    secret = b"s" * 32
    receiver = next(a for a in brokerauth.service_accounts(ROOT, secret) if a.username == "skylane-receiver")
    assert receiver.read == ("replay/#",)
    assert receiver.write == (f"{ROOT}/obs/#", f"{ROOT}/rid/#", f"{ROOT}/device/+/status", "replay/#")
    ingest = next(a for a in brokerauth.service_accounts(ROOT, secret) if a.username == "skylane-ingest")
    assert f"{ROOT}/obs/#" in ingest.read and f"{ROOT}/rid/#" in ingest.read
    records = [{"device_id": "RX-7", "kind": "sensor", "properties": {"rid_receiver": True}},
               {"device_id": "W-C1", "kind": "sensor", "properties": {}}]
    accounts = {a.username: a for a in brokerauth.device_accounts(records, ROOT, secret)}
    assert f"{ROOT}/rid/RX-7" in accounts["RX-7"].write and f"{ROOT}/device/RX-7/status" in accounts["RX-7"].write
    assert not any("/rid/" in t for t in accounts["W-C1"].write)


@pytest.mark.integration
def test_adsb_observations_reach_the_database_through_the_running_ingester(system, ingester):
    """The bridge's observations on the broker are taken by the ingester itself (its subscriptions include
    the observation contract) and stored."""
    root = system.mqtt_root
    sender = connect_client(system.service_url("receiver"), "test-obs-live")
    try:
        bridge = AdsbBridge(Output(lambda t, p, r: sender.publish(t, p, qos=1, retain=r).wait_for_publish(5), root),
                            "rx-minhang-2")
        now = datetime.now(timezone.utc).timestamp()
        frames = encode.aircraft_frames("7800b1", 31.05, 121.47, 500, callsign="HELI9", category="A7")
        bridge.frames([now] * len(frames), frames)
        wait_until(lambda: query(system.database_url, "SELECT count(*) FROM observations")[0][0] >= 1, 15,
                   "the running ingester did not store the bridge's observations")
    finally:
        close_client(sender)
    assert query(system.database_url, "SELECT DISTINCT track_id FROM observations") == [("7800b1",)]
