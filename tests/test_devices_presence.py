"""Device presence through MQTT last wills, on the shared Mosquitto: with device_wills each simulated device
announces a retained "online" and leaves a will, so a simulator killed with SIGKILL turns every device
"offline" (the broker publishes the wills), and a clean stop says "offline" for each device itself."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

from devices.fleet import make_fleet
from protocol.mqttclient import close_client, connect_client
from devices.simulator import Simulator

from .helpers import ZONE_FILE, wait_until

SCRIPT = textwrap.dedent("""
    import json, sys, threading
    from devices.fleet import make_fleet
    from devices.simulator import Simulator
    zones = json.load(open(sys.argv[3]))
    drones, sensors = make_fleet(zones, 2, 4, seed=1, rate_scale=20)
    sim = Simulator(sys.argv[1], sys.argv[2], drones, sensors, hz=2.0, device_wills=True)
    sim.run(threading.Event())
""")


def _watch(url: str, root: str):
    state: dict[str, bytes] = {}

    def on_message(_c, _u, msg):
        state[msg.topic.split("/")[-2]] = msg.payload
    return state, connect_client(url, f"presence-watch-{uuid.uuid4().hex[:8]}",
                                 subscriptions=[(f"{root}/device/+/status", 1)], on_message=on_message)


def _fleet(services, zones_geojson, n_drones: int, n_sensors: int, seed: int):
    """A fresh root, the fleet, its device ids, and a watcher of their statuses."""
    root = f"t{uuid.uuid4().hex[:8]}/v1"
    drones, sensors = make_fleet(zones_geojson, n_drones, n_sensors, seed=seed, rate_scale=20)
    return root, drones, sensors, {d.uav_id for d in drones} | {s.sensor_id for s in sensors}, \
        *_watch(services.mqtt_url, root)


@pytest.mark.integration
def test_killed_simulator_leaves_every_device_offline(services, zones_geojson):
    root, _, _, ids, state, watcher = _fleet(services, zones_geojson, 2, 4, seed=1)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, services.mqtt_url, root, str(ZONE_FILE)],
                            cwd=os.getcwd(), start_new_session=True)
    try:
        wait_until(lambda: all(state.get(i) == b"online" for i in ids), 30, f"devices not online: {state}")
        os.kill(proc.pid, signal.SIGKILL)  # no DISCONNECT: only the broker can tell
        proc.wait(10)
        wait_until(lambda: all(state.get(i) == b"offline" for i in ids), 20, f"wills not published: {state}")
    finally:
        if proc.poll() is None:
            proc.kill()
        close_client(watcher)
    # the retained statuses stay offline for a late subscriber too
    late, client = _watch(services.mqtt_url, root)
    try:
        wait_until(lambda: {i: late.get(i) for i in ids} == {i: b"offline" for i in ids}, 10, f"retained: {late}")
    finally:
        close_client(client)


@pytest.mark.integration
def test_clean_stop_says_offline_for_each_device(services, zones_geojson):
    root, drones, sensors, ids, state, watcher = _fleet(services, zones_geojson, 1, 3, seed=2)
    sim = Simulator(services.mqtt_url, root, drones, sensors, hz=2.0, device_wills=True)
    stop = threading.Event()
    t = threading.Thread(target=sim.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_until(lambda: all(state.get(i) == b"online" for i in ids), 30, f"devices not online: {state}")
        stop.set()
        t.join(30)
        wait_until(lambda: all(state.get(i) == b"offline" for i in ids), 10, f"not offline: {state}")
        assert state.get(sim.client_id) == b"offline"
    finally:
        stop.set()
        close_client(watcher)
