"""History over the API: events with filters and keyset pagination, acknowledgements, sensor readings in
time buckets (date_bin on PostgreSQL, time_bucket on TimescaleDB), latest sensor values, clearances."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon

from .api_support import C2, Client, keys, retained  # noqa: F401  (fixture)
from .helpers import query

pytestmark = pytest.mark.integration
NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def seeded(system):
    with psycopg.connect(system.database_url) as conn:
        conn.execute("INSERT INTO devices (device_id, kind, owner) VALUES ('A1', 'uav', 'op-alpha'), "
                     "('B1', 'uav', 'op-beta'), ('S1', 'sensor', 'city')")
        # 25 events, several sharing a timestamp (the cursor must not skip or repeat those)
        conn.cursor().executemany("INSERT INTO airspace_events (ts, id, kind, uav_id, zone_id) VALUES (%s, %s, %s, %s, 'C1')",
                         [(NOW - timedelta(seconds=i // 3), uuid.uuid4(), "zone_enter" if i % 2 else "no_fly_violation",
                           "A1" if i % 5 else "B1") for i in range(25)])
        conn.execute("INSERT INTO sensor_readings (ts, sensor_id, metric, value, unit, received_at) "
                     "SELECT %s - make_interval(secs => g), 'S1', 'pm25', g, 'ug/m3', now() "
                     "FROM generate_series(1, 600) g", (NOW,))
        conn.execute("INSERT INTO sensor_readings (ts, sensor_id, metric, value, unit, received_at) "
                     "VALUES (%s, 'S1', 'noise', 55.5, 'dB', now())", (NOW - timedelta(seconds=1),))
    return system


def test_events_pages_walk_everything_once_newest_first(api, keys, seeded):  # noqa: F811
    admin = Client(api.url, keys.admin)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = admin.get("/v1/events", params=params).json()
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 7 and len(seen) == 25 and len({e["id"] for e in seen}) == 25
    keys_order = [(e["ts"], e["id"]) for e in seen]
    assert keys_order == sorted(keys_order, reverse=True)
    only = admin.get("/v1/events", params={"kind": "zone_enter", "uav_id": "A1"}).json()["items"]
    assert only and all(e["kind"] == "zone_enter" and e["uav_id"] == "A1" for e in only)
    assert admin.get("/v1/events", params={"cursor": "bm9wZQ"}).status_code == 422
    op = Client(api.url, keys.operator).get("/v1/events", params={"limit": 1000}).json()["items"]
    assert {e["uav_id"] for e in op} == {"A1"} and len(op) == 20
    from storage import auth
    with psycopg.connect(seeded.database_url) as conn:  # an owner on a viewer key does not narrow anything
        viewer_with_owner = auth.create_key(conn, "viewer", "op-beta").key
    everything = Client(api.url, viewer_with_owner).get("/v1/events", params={"limit": 1000}).json()["items"]
    assert len(everything) == 25


def test_ack_records_who_and_when_and_keeps_the_first(api, keys, seeded):  # noqa: F811
    admin = Client(api.url, keys.admin)
    event = admin.get("/v1/events", params={"uav_id": "A1", "limit": 1}).json()["items"][0]
    assert event["ack"] is None
    op = Client(api.url, keys.operator)
    first = op.post(f"/v1/events/{event['id']}/ack", json={"note": "pilot called"})
    assert first.status_code == 200 and first.json()["created"] is True
    me = op.get("/v1/me").json()
    assert first.json()["ack"]["by"] == me["key_id"] and first.json()["ack"]["note"] == "pilot called"
    again = Client(api.url, keys.engineer).post(f"/v1/events/{event['id']}/ack")
    assert again.json()["created"] is False and again.json()["ack"]["by"] == me["key_id"]
    listed = admin.get(f"/v1/events/{event['id']}").json()
    assert listed["ack"]["by"] == me["key_id"] and listed["ack"]["at"]
    assert query(seeded.database_url, "SELECT role, owner FROM event_acks") == [("operator", "op-alpha")]
    assert admin.post(f"/v1/events/{uuid.uuid4()}/ack").status_code == 404
    assert admin.post(f"/v1/events/{event['id']}/ack", json={"note": "x" * 501}).status_code == 422


def test_readings_raw_and_bucketed(api, keys, seeded):  # noqa: F811
    viewer = Client(api.url, keys.viewer)
    window = {"start": (NOW - timedelta(minutes=10)).isoformat(), "end": NOW.isoformat()}
    raw = viewer.get("/v1/sensors/S1/readings", params={**window, "metric": "pm25"}).json()
    assert raw["bucket_s"] is None and raw["buckets"] == [] and len(raw["readings"]) == 600
    assert [r["value"] for r in raw["readings"][:3]] == [600, 599, 598]  # oldest first
    b = viewer.get("/v1/sensors/S1/readings", params={**window, "metric": "pm25", "bucket_s": 60}).json()
    assert b["storage"] in ("postgresql", "timescaledb") and b["readings"] == []
    assert sum(x["n"] for x in b["buckets"]) == 600
    assert all(datetime.fromisoformat(x["bucket"]).second == 0 for x in b["buckets"])
    for x in b["buckets"]:  # each bucket: values g with ts = NOW - g s in [bucket, bucket + 60)
        start = datetime.fromisoformat(x["bucket"])
        values = [g for g in range(1, 601) if start <= NOW - timedelta(seconds=g) < start + timedelta(seconds=60)]
        assert (x["min"], x["max"], x["n"]) == (min(values), max(values), len(values))
        assert x["avg"] == pytest.approx(sum(values) / len(values))
    both = viewer.get("/v1/sensors/S1/readings", params={**window, "bucket_s": 600}).json()
    assert {x["metric"] for x in both["buckets"]} == {"pm25", "noise"}
    assert viewer.get("/v1/sensors/S1/readings", params={"bucket_s": 1, "start": (NOW - timedelta(days=30)).isoformat(),
                                                        "end": NOW.isoformat()}).status_code == 422
    assert viewer.get("/v1/sensors/S1/readings", params={"start": (NOW - timedelta(days=40)).isoformat(),
                                                        "end": NOW.isoformat()}).status_code == 422


def test_sensors_latest_per_sensor(api, keys, seeded):  # noqa: F811
    sensors = {s["sensor_id"]: s for s in Client(api.url, keys.viewer).get("/v1/sensors").json()}
    s1 = sensors["S1"]
    assert s1["values"] == {"pm25": 1, "noise": 55.5} and s1["registered"] is True
    assert s1["units"] == {"pm25": "ug/m3", "noise": "dB"}


def test_operator_clearance_stored_in_full_and_announced(api, keys, seeded):  # noqa: F811
    op = Client(api.url, keys.operator)
    start = NOW + timedelta(minutes=5)
    r = op.post("/v1/clearances", json={"uav_id": "A1", "waypoints": C2, "departure": start.isoformat(),
                                        "speed_mps": 12, "ua_class": "small"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "approved" and body["published"] is True
    stored = op.get(f"/v1/clearances/{body['clearance_id']}").json()
    assert stored["owner"] == "op-alpha" and stored["ua_class"] == "small" and len(stored["route"]) == 3
    assert datetime.fromisoformat(stored["start_time"]) == start
    flight_s = (datetime.fromisoformat(stored["end_time"]) - start).total_seconds()
    assert flight_s == pytest.approx(sum(_leg_m(a, b) for a, b in zip(C2, C2[1:])) / 12, rel=0.01)
    me = op.get("/v1/me").json()
    assert stored["requested_by"] == me["key_id"]
    msg = retained(seeded, f"{seeded.mqtt_root}/control/clearance/A1")
    assert msg["clearance_id"] == body["clearance_id"] and msg["uav_id"] == "A1"
    assert [(w["lon"], w["lat"]) for w in msg["waypoints"]] == [(w["lon"], w["lat"]) for w in C2]
    assert datetime.fromisoformat(msg["waypoints"][0]["t"]) == start
    # operators must name one of their drones; windows are bounded
    assert op.post("/v1/clearances", json={"waypoints": C2}).status_code == 422
    assert op.post("/v1/clearances", json={"uav_id": "B1", "waypoints": C2}).status_code == 403
    too_long = {"uav_id": "A1", "waypoints": [{**w, "t": (start + timedelta(hours=13 * k)).isoformat()}
                                              for k, w in enumerate(C2)]}
    assert "at most 24 h" in op.post("/v1/clearances", json=too_long).json()["detail"]
    naive = {"uav_id": "A1", "waypoints": C2, "departure": "2026-11-27T08:00:00"}
    assert "UTC offset" in op.post("/v1/clearances", json=naive).json()["detail"]
    partly = {"uav_id": "A1", "waypoints": [{**C2[0], "t": start.isoformat()}, *C2[1:]]}
    assert "every waypoint or for none" in op.post("/v1/clearances", json=partly).json()["detail"]


def test_deconfliction_against_approved_clearances(api, keys, seeded):  # noqa: F811
    """A second drone on the same route at the same time conflicts with the first one's approved clearance."""
    admin = Client(api.url, keys.admin)
    start = (NOW + timedelta(minutes=10)).isoformat()
    first = admin.post("/v1/clearances", json={"uav_id": "A1", "waypoints": C2, "departure": start}).json()
    assert first["decision"] == "approved", first
    second = admin.post("/v1/clearances", json={"uav_id": "B1", "waypoints": C2, "departure": start}).json()
    assert second["decision"] == "denied"
    assert "separation_conflict" in {r["code"] for r in second["reasons"]}
    later = (NOW + timedelta(hours=3)).isoformat()
    assert admin.post("/v1/clearances", json={"uav_id": "B1", "waypoints": C2, "departure": later}
                      ).json()["decision"] == "approved"
    # the same drone's new clearance replaces its own earlier one: no conflict with itself
    assert admin.post("/v1/clearances", json={"uav_id": "A1", "waypoints": C2, "departure": start}
                      ).json()["decision"] == "approved"


def _leg_m(a: dict, b: dict) -> float:
    import math
    dx = (b["lon"] - a["lon"]) * m_per_deg_lon(a["lat"])
    dy = (b["lat"] - a["lat"]) * M_PER_DEG_LAT
    return math.hypot(dx, dy, b["alt_m"] - a["alt_m"])


def test_denied_clearance_is_not_announced(api, keys, seeded):  # noqa: F811
    admin = Client(api.url, keys.admin)
    high = [{**w, "alt_m": 400} for w in C2]
    body = admin.post("/v1/clearances", json={"uav_id": "B1", "waypoints": high}).json()
    assert body["decision"] == "denied" and body["published"] is False and body["reasons"]
    assert retained(seeded, f"{seeded.mqtt_root}/control/clearance/B1", timeout=1.5) is None
    listed = admin.get("/v1/clearances", params={"decision": "denied"}).json()
    assert [c["id"] for c in listed] == [body["clearance_id"]]


def test_cancel_withdraws_the_announcement_of_the_newest_only(api, keys, seeded):  # noqa: F811
    op = Client(api.url, keys.operator)
    start, later = (NOW + timedelta(minutes=20)).isoformat(), (NOW + timedelta(hours=3)).isoformat()
    old = op.post("/v1/clearances", json={"uav_id": "A1", "waypoints": C2, "departure": start}).json()
    new = op.post("/v1/clearances", json={"uav_id": "A1", "waypoints": C2, "departure": later}).json()
    assert old["decision"] == new["decision"] == "approved"  # not overlapping: the later does not supersede
    r = op.delete(f"/v1/clearances/{old['clearance_id']}")
    assert r.status_code == 200 and r.json()["decision"] == "cancelled"
    assert retained(seeded, f"{seeded.mqtt_root}/control/clearance/A1")["clearance_id"] == new["clearance_id"]
    assert op.delete(f"/v1/clearances/{old['clearance_id']}").status_code == 409
    assert op.delete(f"/v1/clearances/{new['clearance_id']}").status_code == 200
    assert retained(seeded, f"{seeded.mqtt_root}/control/clearance/A1", timeout=1.5) is None
    assert Client(api.url, keys.other_operator).delete(f"/v1/clearances/{new['clearance_id']}").status_code == 404
    # a cancelled clearance no longer blocks another drone's flight at that time
    other = Client(api.url, keys.admin).post("/v1/clearances", json={"uav_id": "B1", "waypoints": C2,
                                                                      "departure": start}).json()
    assert other["decision"] == "approved", other["reasons"]


def test_operator_conflict_reasons_do_not_reveal_other_operators_drones(api, keys, seeded):  # noqa: F811
    """A separation conflict with another operator's flight is reported, but not whose drone or clearance it is
    (operators see their own drones and clearances only); admins still see both."""
    start = (NOW + timedelta(minutes=40)).isoformat()
    theirs = Client(api.url, keys.other_operator).post(
        "/v1/clearances", json={"uav_id": "B1", "waypoints": C2, "departure": start}).json()
    assert theirs["decision"] == "approved", theirs
    op = Client(api.url, keys.operator)
    mine = op.post("/v1/clearances", json={"uav_id": "A1", "waypoints": C2, "departure": start}).json()
    assert mine["decision"] == "denied"
    conflicts = [r for r in mine["reasons"] if r["code"] == "separation_conflict"]
    assert conflicts and all(r["conflict"]["uav_id"] is None and r["conflict"]["clearance_id"] is None
                             for r in conflicts)
    for shown in (mine, op.get(f"/v1/clearances/{mine['clearance_id']}").json(),
                  next(c for c in op.get("/v1/clearances").json() if c["id"] == mine["clearance_id"])):
        text = str(shown["reasons"]) + str(shown["suggestions"])
        assert "B1" not in text and theirs["clearance_id"] not in text
    full = Client(api.url, keys.admin).get(f"/v1/clearances/{mine['clearance_id']}").json()
    assert theirs["clearance_id"] in str(full["reasons"]) and "B1" in str(full["reasons"])


def test_simultaneous_conflicting_clearances_are_not_both_approved(api, keys, seeded):  # noqa: F811
    """Deconfliction reads the approved clearances, checks, then stores: two requests for the same airspace at
    the same time must not both pass between the read and the write."""
    from concurrent.futures import ThreadPoolExecutor
    admin = Client(api.url, keys.admin)
    start = (NOW + timedelta(hours=2)).isoformat()
    # C2 is used for all four drones: same route, same departure, so any two of them conflict
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda k: admin.post("/v1/clearances", json={
            "uav_id": f"RACE{k}", "waypoints": C2, "departure": start}).json(), range(4)))
    decisions = sorted(r["decision"] for r in replies)
    assert decisions == ["approved", "denied", "denied", "denied"], replies


def test_deconfliction_never_silently_drops_approved_clearances(api, keys, seeded):  # noqa: F811
    """More overlapping approved clearances than the read takes: refused loudly, never checked against a part."""
    from storage import clearances
    admin = Client(api.url, keys.admin)
    start = NOW + timedelta(hours=5)
    for k in range(3):
        body = admin.post("/v1/clearances", json={"uav_id": f"OVL{k}", "waypoints": C2,
                                                  "departure": (start + timedelta(hours=k)).isoformat()}).json()
        assert body["decision"] == "approved", body
    with psycopg.connect(seeded.database_url) as conn:
        assert len(clearances.approved_overlapping(conn, start, start + timedelta(days=1), limit=3)) == 3
        with pytest.raises(clearances.TooManyApproved):
            clearances.approved_overlapping(conn, start, start + timedelta(days=1), limit=2)
