"""Clearance rules, each performed as an attack over HTTP:

- a drone's earlier approvals must not keep holding airspace once a later one replaces them (superseded);
- one operator must not reserve the airspace with endless approvals (a quota of open approvals);
- clearance requests queued behind the decision lock must not take the database pool the rest of the API
  needs (a burst of decisions while the lock is held elsewhere).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from api.routes_clearances import DECISION_LOCK

from .api_support import C2, Client, keys, retained  # noqa: F401  (fixture)
from .feeds_support import api_server

pytestmark = pytest.mark.integration
NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def seeded(system):
    with psycopg.connect(system.database_url) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, owner) VALUES ('A1', 'uav', 'op-alpha'), "
                     "('A2', 'uav', 'op-alpha'), ('A3', 'uav', 'op-alpha'), ('B1', 'uav', 'op-beta')")
    return system


def _at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


def _route(uav: str, departure: str) -> dict:
    return {"uav_id": uav, "waypoints": C2, "departure": departure}


LATER = 4 / 60  # 4 minutes later: the ~12-minute flights overlap in time, but are more than 60 s apart anywhere


def test_a_later_approval_supersedes_the_drones_earlier_overlapping_ones(api, keys, seeded):  # noqa: F811
    op, other = Client(api.url, keys.operator), Client(api.url, keys.other_operator)
    first = op.post("/v1/clearances", json=_route("A1", _at(1))).json()
    elsewhere = op.post("/v1/clearances", json=_route("A1", _at(6))).json()  # later in the day: no overlap
    second = op.post("/v1/clearances", json=_route("A1", _at(1 + LATER))).json()  # replaces the first
    assert first["decision"] == elsewhere["decision"] == second["decision"] == "approved"
    old = op.get(f"/v1/clearances/{first['clearance_id']}").json()
    assert (old["decision"], old["superseded_by"]) == ("superseded", second["clearance_id"])
    assert op.get(f"/v1/clearances/{elsewhere['clearance_id']}").json()["decision"] == "approved"
    approved = {c["id"] for c in op.get("/v1/clearances", params={"decision": "approved"}).json()}
    assert approved == {elsewhere["clearance_id"], second["clearance_id"]}
    msg = retained(seeded, f"{seeded.mqtt_root}/control/clearance/A1")
    assert msg["clearance_id"] == second["clearance_id"]  # the monitor holds the drone to the latest
    # the replaced route no longer holds the airspace: another operator's drone may fly it at that time
    theirs = other.post("/v1/clearances", json=_route("B1", _at(1))).json()
    assert theirs["decision"] == "approved", theirs["reasons"]
    # a superseded clearance is not cancelled again; cancelling the latest re-announces what is left
    assert op.delete(f"/v1/clearances/{first['clearance_id']}").status_code == 409
    assert op.delete(f"/v1/clearances/{second['clearance_id']}").status_code == 200
    msg = retained(seeded, f"{seeded.mqtt_root}/control/clearance/A1")
    assert msg["clearance_id"] == elsewhere["clearance_id"]


def test_an_operator_cannot_hold_more_open_approvals_than_the_quota(seeded, keys):  # noqa: F811
    server = api_server(seeded, clearance_max_open=2)
    try:
        op, admin = Client(server.url, keys.operator), Client(server.url, keys.admin)
        a1 = op.post("/v1/clearances", json=_route("A1", _at(1))).json()
        a2 = admin.post("/v1/clearances", json=_route("A2", _at(2))).json()  # admins' requests count for them
        assert a1["decision"] == a2["decision"] == "approved"
        r = op.post("/v1/clearances", json=_route("A3", _at(3)))
        assert r.status_code == 429, r.text
        assert "2 open approved clearances" in r.json()["detail"] and "limit is 2" in r.json()["detail"]
        assert admin.post("/v1/clearances", json=_route("A3", _at(3))).status_code == 429
        # replacing one of them is not one more
        again = op.post("/v1/clearances", json=_route("A1", _at(1 + LATER)))
        assert again.status_code == 200 and again.json()["decision"] == "approved", again.text
        # other operators have their own quota
        b1 = Client(server.url, keys.other_operator).post("/v1/clearances", json=_route("B1", _at(3))).json()
        assert b1["decision"] == "approved"
        # a cancelled one frees its place
        assert op.delete(f"/v1/clearances/{a2['clearance_id']}").status_code == 200
        assert op.post("/v1/clearances", json=_route("A3", _at(4))).json()["decision"] == "approved"
    finally:
        server.close()


def test_queued_decisions_do_not_take_the_pool_the_other_requests_need(seeded, keys):  # noqa: F811
    """Pool of 2; another API process holds the decision lock for longer than the pool's timeout (5 s) while
    six clearance requests arrive: reads keep being answered, and every decision is made once the lock is
    free."""
    server = api_server(seeded, pool_max_size=2)
    admin = Client(server.url, keys.admin)
    held, release = threading.Event(), threading.Event()

    def hold_lock() -> None:  # as another API process deciding slowly would
        with psycopg.connect(seeded.database_url) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (DECISION_LOCK,))
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    try:
        assert held.wait(10)
        with ThreadPoolExecutor(6) as pool:
            decisions = [pool.submit(admin.post, "/v1/clearances", json=_route(f"RUSH{k}", _at(2 + k)))
                         for k in range(6)]
            time.sleep(0.5)  # the decisions are queued behind the lock
            reads = [admin.get("/v1/events", timeout=30) for _ in range(3)]
            time.sleep(6.0)  # longer than the pool's 5 s timeout
            reads.append(admin.get("/v1/clearances", timeout=30))
            assert not any(d.done() for d in decisions), "a decision was made while the lock was held"
            release.set()
            answers = [d.result(timeout=60) for d in decisions]
        assert [r.status_code for r in reads] == [200] * 4, [r.text for r in reads]
        assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
        assert {r.json()["decision"] for r in answers} == {"approved"}
        assert admin.get("/v1/health").status_code == 200
    finally:
        release.set()
        holder.join(10)
        server.close()
