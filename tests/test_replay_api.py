"""The replay API in the API app: engineers list recordings and start, steer and stop replays."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from protocol.mqttclient import close_client, connect_client
from replay.evaluate import evaluate, load_zones
from replay.sources import FileSource
from devices.trace import DEFAULT_START
from skylane.settings import DEFAULT_ZONE_FILE
from skylane.wiring import api_config

from .api_support import bearer, make_keys
from .helpers import wait_until
from .replay_support import small_trace, store_trace

pytestmark = pytest.mark.integration


class Listener:
    """Everything published under some topic filters (a stand-in for a live-feed subscriber)."""

    def __init__(self, url: str, filters: list[str]):
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

        def on_message(_c, _u, msg):
            with self._lock:
                self.messages.append((msg.topic, bytes(msg.payload)))
        self.client = connect_client(url, f"replay-listener-{id(self)}", subscriptions=[(f, 1) for f in filters],
                                     on_message=on_message)

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _ in self.messages]

    def close(self) -> None:
        close_client(self.client)


@pytest.fixture
def env(system, zones_geojson, tmp_path):
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    trace = small_trace(rec_dir / "incident.slrec.gz", zones_geojson, drones=5, sensors=2, seconds=60,
                        root=system.mqtt_root)
    (rec_dir / "notes.txt").write_text("not a recording")
    app = create_app(api_config(system.with_(recordings_dir=rec_dir)))
    keys = make_keys(system.database_url)
    with TestClient(app) as client:
        yield client, keys, system, trace
    app.state.replays.stop_all()


def _wait_state(client, h, rid, states, timeout=60):
    return wait_until(lambda: (v := client.get(f"/v1/replays/{rid}", headers=h).json())["state"] in states and v,
                      timeout, f"replay {rid} did not reach {states}")


def test_roles(env):
    client, keys, _, _ = env
    assert client.get("/v1/recordings").status_code == 401
    assert client.get("/v1/recordings", headers=bearer(keys.viewer)).status_code == 403
    assert client.get("/v1/recordings", headers=bearer(keys.operator)).status_code == 403
    assert client.post("/v1/replays", json={"recording": "incident.slrec.gz"},
                       headers=bearer(keys.viewer)).status_code == 403
    for role in ("engineer", "admin"):
        assert client.get("/v1/replays", headers=bearer(keys.for_role(role))).status_code == 200


def test_list_recordings(env):
    client, keys, system, _ = env
    body = client.get("/v1/recordings", headers=bearer(keys.engineer)).json()
    assert [i["name"] for i in body["items"]] == ["incident.slrec.gz"]
    assert body["items"][0]["root"] == system.mqtt_root and body["items"][0]["size_bytes"] > 0


def test_replay_a_recording_under_a_prefix_with_evaluation(env):
    client, keys, system, trace = env
    h = bearer(keys.engineer)
    prefix = "replay/sandbox-r1"
    dst = f"{prefix}/{system.mqtt_root}"
    watch = Listener(system.mqtt_url, [f"{dst}/#", f"{system.mqtt_root}/#"])
    try:
        r = client.post("/v1/replays", json={"recording": "incident.slrec.gz", "rate": "max", "prefix": prefix,
                                             "evaluate": True}, headers=h)
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        assert r.json()["root"] == dst and r.json()["request"]["rate"] == "max"
        view = _wait_state(client, h, rid, {"finished", "failed"})
        assert view["state"] == "finished", view
        expected = evaluate(FileSource(trace), load_zones(DEFAULT_ZONE_FILE))
        n_in = expected.counts["messages"]
        assert view["counters"]["sent"] == n_in
        n_events = len(expected.events)
        try:
            wait_until(lambda: len(watch.topics()) >= n_in + n_events, 30, "replayed messages did not all arrive")
        except AssertionError:
            fams = {}
            for t in watch.topics():
                fams[t.split("/")[len(dst.split("/"))]] = fams.get(t.split("/")[len(dst.split("/"))], 0) + 1
            raise AssertionError(f"got {fams}, want {n_in} in + {n_events} events; {expected.summary()}") from None
        got = watch.topics()
        assert all(t.startswith(dst + "/") for t in got), "nothing may reach the live root"
        assert sum(1 for t in got if t.startswith(f"{dst}/events/")) == n_events
        assert sum(1 for t in got if t.startswith(f"{dst}/uav/")) == expected.counts["telemetry"]
        assert any(t.startswith(f"{dst}/state/uav/") for t in got)
        listed = client.get("/v1/replays", headers=h).json()["items"]
        assert [i["id"] for i in listed] == [rid]
    finally:
        watch.close()
    # the replay withdrew what it left retained (states, statuses): a new subscriber finds nothing there
    late = Listener(system.mqtt_url, [f"{dst}/#"])
    try:
        time.sleep(1.0)
        assert late.topics() == []
    finally:
        late.close()


def test_pause_step_rate_and_stop(env):
    client, keys, system, _ = env
    h = bearer(keys.engineer)
    rid = client.post("/v1/replays", json={"recording": "incident.slrec.gz", "rate": 1, "paused": True},
                      headers=h).json()["id"]
    time.sleep(0.5)
    assert client.get(f"/v1/replays/{rid}", headers=h).json()["counters"].get("sent", 0) == 0
    v = client.post(f"/v1/replays/{rid}/control", json={"action": "step", "steps": 3}, headers=h).json()
    assert v["control"]["paused"]
    wait_until(lambda: client.get(f"/v1/replays/{rid}", headers=h).json()["counters"].get("sent") == 3, 10,
               "three steps did not release three messages")
    assert client.post(f"/v1/replays/{rid}/control", json={"action": "rate", "rate": 0.1},
                       headers=h).json()["control"]["rate"] == 0.1
    assert client.post(f"/v1/replays/{rid}/control", json={"action": "rate", "rate": 5000},
                       headers=h).status_code == 422
    client.post(f"/v1/replays/{rid}/control", json={"action": "resume"}, headers=h)
    stopped = client.delete(f"/v1/replays/{rid}", headers=h).json()
    assert stopped["state"] == "stopped" and stopped["control"]["stopped"]


def test_replay_a_stored_window(env):
    client, keys, system, trace = env
    store_trace(system, trace)
    h = bearer(keys.engineer)
    watch = Listener(system.mqtt_url, ["replay/#"])
    try:
        start = "2026-01-01T08:00:00Z"
        r = client.post("/v1/replays", json={"start": start, "end": "2026-01-01T08:00:30Z", "rate": "max",
                                             "uavs": ["uav-001"]}, headers=h)
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        assert r.json()["root"] == f"replay/{rid}/{system.mqtt_root}"
        view = _wait_state(client, h, rid, {"finished", "failed"})
        assert view["state"] == "finished", view
        mine = f"replay/{rid}/"  # other replays' retained states under replay/# are not this one's

        def received() -> list[str]:
            return [t for t in watch.topics() if t.startswith(mine)]
        tel = [t for t in wait_until(lambda: received() if len(received()) >= view["counters"]["sent"] else None,
                                     20, "window not received") if "/uav/" in t]
        assert len(tel) == 30 and all(t == f"replay/{rid}/{system.mqtt_root}/uav/uav-001/telemetry" for t in tel)
    finally:
        watch.close()
    assert DEFAULT_START  # the window above is the trace's first 30 s


def test_bad_requests(env):
    client, keys, system, _ = env
    h = bearer(keys.engineer)
    post = lambda body: client.post("/v1/replays", json=body, headers=h)  # noqa: E731
    assert post({"recording": "../../etc/passwd"}).status_code == 400
    assert post({"recording": "missing.slrec.gz"}).status_code == 404
    assert post({"recording": "notes.txt"}).status_code == 422
    assert post({"recording": "incident.slrec.gz", "rate": 5000}).status_code == 422
    assert post({"recording": "incident.slrec.gz", "prefix": "bad/#"}).status_code == 422
    assert post({"start": "2026-01-01T08:00:00Z"}).status_code == 422
    assert post({"start": "2026-01-01T08:00:00", "end": "2026-01-01T09:00:00"}).status_code == 422
    assert post({"recording": "incident.slrec.gz", "prefix": system.mqtt_root.split("/")[0]}).status_code == 422
    assert post({"recording": "incident.slrec.gz", "prefix": "sandbox/r1"}).status_code == 422  # not in replay/
    assert client.get("/v1/replays/0123456789ab", headers=h).status_code == 404
    assert client.delete("/v1/replays/xyz", headers=h).status_code == 422


def test_served_by_the_api_process(system, zones_geojson, tmp_path):
    """The API server serves these routes: recordings from its configured directory, roles from api/auth.py."""
    import httpx

    from .helpers import ApiServer
    rec_dir = tmp_path / "recs"
    rec_dir.mkdir()
    small_trace(rec_dir / "one.slrec.gz", zones_geojson, drones=2, sensors=0, seconds=10, root=system.mqtt_root)
    keys = make_keys(system.database_url)
    server = ApiServer(system.with_(recordings_dir=rec_dir))
    try:
        assert httpx.get(server.url + "/v1/recordings").status_code == 401
        assert httpx.get(server.url + "/v1/recordings", headers=bearer(keys.viewer)).status_code == 403
        r = httpx.get(server.url + "/v1/recordings", headers=bearer(keys.engineer))
        assert r.status_code == 200 and [i["name"] for i in r.json()["items"]] == ["one.slrec.gz"]
        r = httpx.post(server.url + "/v1/replays", json={"recording": "one.slrec.gz", "rate": "max"},
                       headers=bearer(keys.admin))
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        wait_until(lambda: httpx.get(f"{server.url}/v1/replays/{rid}", headers=bearer(keys.engineer)).json()["state"]
                   == "finished", 30, "replay did not finish")
    finally:
        server.close()


def test_hostile_recording_names(env):
    client, keys, _, _ = env
    h = bearer(keys.engineer)
    for name in ("a\x00b", "/etc/passwd", "", "x" * 600, "../.."):
        r = client.post("/v1/replays", json={"recording": name}, headers=h)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
