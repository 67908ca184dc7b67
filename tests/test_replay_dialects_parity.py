"""A replay mirrors live ingest beyond Skylane's own contract: a session with Remote ID broadcasts (of a registered
drone heard only by Remote ID, and of an unregistered one inside the demonstration zone) and a registered DJI
aircraft's OSD, recorded while live ingest ran with those dialects, gives the same events through
`skylane replay --evaluate` and through an evaluated API replay as live ingest stored: the same dialects, the same
device registry (read from the store), the same stored zones, and no dead letters in the replays. The DJI topics
are not under the root: a re-rooted API replay does not publish them, but its pipeline takes them (replay.player)."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import httpx
import orjson
import pytest

from airspace.vertical import VerticalModel
from devices.registry import DeviceRecord
from protocol import remoteid_encode, topics
from protocol.mqttclient import close_client, connect_client
from protocol.times import rfc3339
from replay.recorder import record
from skylane.wiring import recording_context

from .api_support import bearer, make_keys
from .dialect_support import Mqtt, count, register, unique
from .helpers import ApiServer, Running, query, start_ingester, wait_until
from .test_dialect_dji import flying_osd

pytestmark = pytest.mark.integration
SECONDS = 40
VERTICAL = VerticalModel()


def rid_broadcast(serial: str, lon: float, lat: float, at: float) -> bytes:
    """A Remote ID receiver's forward of one message pack (Basic ID + Location), heard at `at` (epoch s)."""
    agl = 60.0
    geo = float(VERTICAL.from_amsl(float(VERTICAL.to_amsl(agl, "AGL")), "WGS84"))
    data = remoteid_encode.pack(remoteid_encode.basic_id(serial),
                                remoteid_encode.location(lat, lon, geo, agl, track_deg=90.0, speed_mps=4.0,
                                                         vspeed_mps=0.0, airborne=True))
    return orjson.dumps({"data": base64.b64encode(data).decode(), "rssi": -70, "received_at": int(at * 1000),
                         "mac": "02:" + serial[-10:].lower()})


def session(root: str, sn: str, registered: str, unregistered: str, t0: float) -> list[tuple[str, bytes]]:
    """SECONDS of traffic, one second apart in event time: both Remote ID drones and the DJI aircraft, over the
    Wujing bank inside the demonstration zone."""
    out = []
    for s in range(SECONDS):
        at = t0 + s
        out.append((topics.remote_id(root, "rx-parity"), rid_broadcast(registered, 121.470 + s * 4e-5, 31.050, at)))
        out.append((topics.remote_id(root, "rx-parity"), rid_broadcast(unregistered, 121.475, 31.055 + s * 4e-5, at)))
        out.append((f"thing/product/{sn}/osd", flying_osd(121.480 + s * 4e-5, 31.058, 70.0, at=_utc(at))))
    return out


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, timezone.utc)


def stored_events(settings) -> list[dict]:
    rows = query(settings.database_url, "SELECT id, kind, uav_id, zone_id, ts, detail FROM airspace_events")
    return sorted(({"id": str(i), "kind": k, "uav_id": u, "zone_id": z, "ts": rfc3339(ts), "detail": d}
                   for i, k, u, z, ts, d in rows), key=lambda e: (e["ts"], e["uav_id"], e["kind"], e["zone_id"] or "",
                                                                 e["id"]))


def unregistered_ids(events) -> set[str]:
    return {e["uav_id"] for e in events if e["kind"] == "unregistered_aircraft"}


class EventWatch:
    """Event payloads published under root/events/#."""

    def __init__(self, settings, root: str):
        self.events: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.client = connect_client(settings.mqtt_url, unique("t-parity-"), subscriptions=[(f"{root}/events/#", 1)],
                                     on_message=self._on)

    def _on(self, _c, _u, msg) -> None:
        ev = orjson.loads(msg.payload)
        with self._lock:
            self.events[ev["id"]] = ev

    def ids(self) -> set[str]:
        with self._lock:
            return set(self.events)

    def close(self) -> None:
        close_client(self.client)


def test_remote_id_and_dji_replay_like_live_ingest(system, tmp_path):
    settings = system.with_(dialects=("remoteid", "dji"))
    root = settings.mqtt_root
    sn, drone, dji = unique("1581F5P"), unique("RID-"), unique("DJI-")
    registered, unregistered = unique("1596FREG"), unique("1596FUNR")
    register(settings, DeviceRecord(drone, "uav", properties={"rid_serial": registered}),
             DeviceRecord(dji, "uav", properties={"dji_sn": sn}))
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    path = rec_dir / "parity.slrec.gz"

    # live: ingest with the dialects while the recorder keeps the root and the aircraft's vendor topics
    _, ingest = start_ingester(settings, idle_tick_s=0)
    subscribed = threading.Event()
    recorder = Running(lambda stop: record(settings.mqtt_url, path, root, filters=[f"{root}/#", f"thing/product/{sn}/#"],
                                           stop=stop, ready=subscribed, context=recording_context(settings)))
    assert subscribed.wait(10)
    mqtt = Mqtt(settings)
    try:
        for topic, payload in session(root, sn, registered, unregistered, time.time() - 300):
            mqtt.publish(topic, payload)
        wait_until(lambda: count(settings.database_url, "SELECT count(*) FROM uav_telemetry WHERE uav_id = %s", dji)
                   == SECONDS, 30, "live ingest did not store the DJI aircraft's fixes")
        wait_until(lambda: unregistered_ids(stored_events(settings)), 20, "live ingest raised no unregistered_aircraft")
        time.sleep(1.0)  # the last batch's events
    finally:
        mqtt.close()
        recorder.close()
        ingest.close()
    live = stored_events(settings)
    assert unregistered_ids(live) == {f"rid:{unregistered}"}, unregistered_ids(live)  # the registered one: never
    assert count(settings.database_url, "SELECT count(*) FROM dead_letters") == 0

    # skylane replay --evaluate: the same events, byte for byte, and no dead letters
    env = {**os.environ, "SKYLANE_DATABASE_URL": settings.database_url, "SKYLANE_DIALECTS": "remoteid,dji",
           "SKYLANE_STATE_DIR": str(settings.state_dir), "SKYLANE_MQTT_ROOT": root}
    out = subprocess.run([sys.executable, "-m", "skylane", "replay", str(path), "--evaluate", "-o", "-",
                          "--no-progress", "--no-keys"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    evaluated = [orjson.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert unregistered_ids(evaluated) == {f"rid:{unregistered}"}
    assert evaluated == live
    assert '"dead_letters": 0' in out.stderr, out.stderr

    # an evaluated API replay under its own root: the same events published there, no dead letters
    keys = make_keys(settings.database_url)
    api = ApiServer(settings.with_(recordings_dir=rec_dir))
    prefix = "replay/parity"
    watch = EventWatch(settings, f"{prefix}/{root}")
    try:
        r = httpx.post(api.url + "/v1/replays", headers=bearer(keys.engineer),
                       json={"recording": path.name, "rate": "max", "evaluate": True, "prefix": prefix})
        assert r.status_code == 201, r.text
        url = f"{api.url}/v1/replays/{r.json()['id']}"
        wait_until(lambda: httpx.get(url, headers=bearer(keys.engineer)).json()["state"] == "finished", 60,
                   "replay did not finish")
        job = httpx.get(url, headers=bearer(keys.engineer)).json()
        assert job["evaluation"]["dead_letters"] == 0, job["evaluation"]
        assert job["counters"].get("evaluated_outside_root") == SECONDS  # the DJI OSD: evaluated, not published
        assert job["evaluation"]["telemetry"] == SECONDS
        want = {e["id"] for e in live}
        try:
            wait_until(lambda: watch.ids() == want, 15, "replay events differ")
        except AssertionError:
            pytest.fail(f"events only in the replay: {sorted(watch.ids() - want)[:5]}, "
                        f"only live: {sorted(want - watch.ids())[:5]}")
        assert unregistered_ids(watch.events.values()) == {f"rid:{unregistered}"}
    finally:
        watch.close()
        api.app.state.replays.stop_all()
        api.close()
