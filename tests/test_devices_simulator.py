"""The simulator's message stream, against a fake client (no broker, no timing assertions)."""
from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict

import orjson
import pytest

import devices.simulator as simulator_mod
from devices.fleet import make_fleet
from .memclient import MemoryClient
from devices.simulator import Simulator
from protocol import topics

ROOT = "test/sim"


@pytest.fixture()
def run_sim(monkeypatch, zones_geojson):
    def run(**kw):
        fake = MemoryClient()
        seen = {}

        def connect(url, client_id, stop, **kwargs):
            seen.update(url=url, client_id=client_id, **kwargs)
            return fake

        monkeypatch.setattr(simulator_mod, "connect_with_retry", connect)
        drones, sensors = make_fleet(zones_geojson, 4, 5, seed=1, rate_scale=50.0)
        sim = Simulator("mqtt://127.0.0.1:1", ROOT, drones, sensors, hz=20.0, **kw)
        stats = sim.run(threading.Event(), duration_s=0.4)
        return sim, fake, seen, stats

    return run


def test_stream_follows_the_contract(run_sim):
    sim, fake, seen, stats = run_sim()
    assert seen["will"].topic == topics.status(ROOT, sim.client_id) and seen["will"].retain
    msgs = [(m.topic, m.payload, m.qos, m.retain) for m in fake.published]
    status = [m for m in msgs if "/device/" in m[0]]
    n_devices = 4 + 5 + 1
    assert [m[1] for m in status[:n_devices]] == [b"online"] * n_devices
    assert [m[1] for m in status[-n_devices:]] == [b"offline"] * n_devices
    assert all(m[3] and m[2] == 1 for m in status)

    seqs = defaultdict(list)
    for topic, payload, qos, retain in msgs:
        ref = topics.parse_inbound(ROOT, topic)
        if ref.kind == "telemetry":
            body = orjson.loads(payload)
            assert body["alt_ref"] == "AGL" and body["clearance_id"] is None
            assert not retain and qos == 1
            seqs[ref.device_id].append(body["seq"])
        elif ref.kind == "reading":
            pack = orjson.loads(payload)
            assert pack[0]["bn"] == f"urn:dev:skylane:{ref.device_id}:"
    assert set(seqs) == {d.uav_id for d in sim.drones}
    for s in seqs.values():
        assert all(b == a + 1 for a, b in zip(s, s[1:]))
    assert stats.telemetry == sum(len(s) for s in seqs.values())
    assert stats.readings == sum(1 for m in msgs if m[0].endswith("/reading"))
    assert fake.closed


def test_qos_is_configurable(run_sim):
    _, fake, _, _ = run_sim(qos=0)
    assert {m.qos for m in fake.published if m.topic.endswith("/telemetry")} == {0}


@pytest.mark.parametrize("kw", [{"hz": 0}, {"qos": 3}])
def test_rejects_bad_settings(kw, zones_geojson):
    drones, sensors = make_fleet(zones_geojson, 2, 2, seed=1)
    with pytest.raises(ValueError):
        Simulator("mqtt://127.0.0.1:1", ROOT, drones, sensors, **kw)


def test_rejects_ids_outside_the_topic_contract(zones_geojson):
    drones, sensors = make_fleet(zones_geojson, 2, 0, seed=1)
    with pytest.raises(ValueError, match="invalid device ids"):
        Simulator("mqtt://127.0.0.1:1", ROOT, [dataclasses.replace(drones[0], uav_id="bad/id")], [])
    with pytest.raises(ValueError, match="unique"):
        Simulator("mqtt://127.0.0.1:1", ROOT, [drones[0], drones[0]], [])


def test_sharded_fleet_spreads_over_workers_one_worker_per_device(run_sim):
    """`skylane simulate --sharded`: every device publishes under its own shard, so N workers split the fleet."""
    from ingest.sharding import Assignment
    sim, fake, _, _ = run_sim(sharded=True)
    data = [m.topic for m in fake.published if "/device/" not in m.topic]
    assert data and all(t.startswith(f"{ROOT}/shard/") for t in data)
    owners = defaultdict(set)
    for t in data:
        shard, rest = int(t.split("/")[3]), t.split("/", 4)[4]
        device = rest.split("/")[1]
        assert shard == topics.shard_of(device)
        owners[device] |= {w for w in range(2) if shard in Assignment(w, 2).owned()}
    assert all(len(ws) == 1 for ws in owners.values())  # each device handled by exactly one worker
    assert set().union(*owners.values()) == {0, 1}        # and the fleet uses both
