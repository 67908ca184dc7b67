"""A replay mirrors live ingest: the same recording through the ingester (live root) and through an evaluated
API replay (its own root) gives the same topics and payloads: events, sensor events, zone controls and the
latest state of every drone and sensor (both publish through ingest.outputs.batch_messages)."""
from __future__ import annotations

import threading
import time

import httpx
import pytest

from devices.fleet import make_fleet
from devices.registry import fleet_records
from protocol.mqttclient import close_client, connect_client
from replay.player import replay
from skylane.wiring import register_devices

from .api_support import bearer, make_keys
from .helpers import ApiServer, query, start_ingester, wait_until
from .replay_support import small_trace

pytestmark = pytest.mark.integration


def wait_until_quietly(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())
FAMILIES = ("events", "state", "control")


class Outputs:
    """Everything published under root/{events,state,control}/#, keyed by the topic below the root."""

    def __init__(self, url: str, root: str, name: str):
        self.root, self._lock = root, threading.Lock()
        self.events: set[tuple[str, bytes]] = set()
        self.latest: dict[str, bytes] = {}
        self.client = connect_client(url, name, subscriptions=[(f"{root}/{f}/#", 1) for f in FAMILIES],
                                     on_message=self._on)

    def _on(self, _c, _u, msg) -> None:
        rest = msg.topic[len(self.root) + 1:]
        with self._lock:
            if rest.startswith("events/"):
                self.events.add((rest, bytes(msg.payload)))
            elif msg.payload:  # (an empty one withdraws a retained message: an API replay does so at its end)
                self.latest[rest] = bytes(msg.payload)

    def snapshot(self) -> tuple[set, dict]:
        with self._lock:
            return set(self.events), dict(self.latest)

    def settled(self, quiet_s: float = 1.0, timeout: float = 20.0) -> tuple[set, dict]:
        """The snapshot once nothing new has arrived for quiet_s (messages published just before the ingester
        closed may still be on their way to this subscriber)."""
        def unchanged():
            before = self.snapshot()
            time.sleep(quiet_s)
            return before == self.snapshot()
        wait_until(unchanged, timeout, "the outputs never settled")
        return self.snapshot()

    def close(self) -> None:
        close_client(self.client)


def _difference(got: tuple[set, dict], want: tuple[set, dict]) -> str:
    (ge, gl), (we, wl) = got, want
    return (f"events only in the replay: {sorted(t for t, _ in ge - we)[:5]}, only live: {sorted(t for t, _ in we - ge)[:5]}; "
            f"states differing: {sorted(k for k in set(gl) | set(wl) if gl.get(k) != wl.get(k))[:5]}")


def test_an_api_replay_publishes_what_live_ingest_published(system, zones_geojson, tmp_path):
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    trace = small_trace(rec_dir / "mirror.slrec.gz", zones_geojson, drones=6, sensors=12, seconds=120, seed=11,
                        root=system.mqtt_root)
    drones, sensors = make_fleet(zones_geojson, 6, 12, seed=11)
    register_devices(system, fleet_records(drones, sensors))

    live = Outputs(system.mqtt_url, system.mqtt_root, "t-mirror-live")
    _, ingest = start_ingester(system, idle_tick_s=0)  # no wall-clock ticks: event time only, as in a replay
    try:
        sent = replay(trace, system.mqtt_url, rate="max", root_from=system.mqtt_root, root_to=system.mqtt_root)
        wait_until(lambda: query(system.database_url, "SELECT count(*) FROM uav_telemetry")[0][0] == 6 * 120, 30,
                   "live ingest did not store the recording")
        stored_events = query(system.database_url, "SELECT count(*) FROM airspace_events")[0][0]
        wait_until(lambda: len(live.snapshot()[0]) >= stored_events, 10, "live events not all published")
    finally:
        ingest.close()
    live_events, live_latest = live.settled()
    live.close()
    assert sent >= 6 * 120 and stored_events > 0
    assert any(t.startswith("state/sensor/") for t in live_latest) and any("sensor_" in t for t, _ in live_events)

    keys = make_keys(system.database_url)
    api = ApiServer(system.with_(recordings_dir=rec_dir))
    prefix = "replay/mirror"
    replayed = Outputs(system.mqtt_url, f"{prefix}/{system.mqtt_root}", "t-mirror-replay")  # before it starts
    try:
        r = httpx.post(api.url + "/v1/replays", headers=bearer(keys.engineer),
                       json={"recording": "mirror.slrec.gz", "rate": "max", "evaluate": True, "prefix": prefix})
        assert r.status_code == 201, r.text
        wait_until(lambda: httpx.get(f"{api.url}/v1/replays/{r.json()['id']}", headers=bearer(keys.engineer))
                   .json()["state"] == "finished", 60, "replay did not finish")
        if not wait_until_quietly(lambda: replayed.snapshot() == (live_events, live_latest), 15):
            pytest.fail("the replay's events and states differ from live ones: "
                        + _difference(replayed.snapshot(), (live_events, live_latest)))
    finally:
        replayed.close()
        api.app.state.replays.stop_all()
        api.close()
