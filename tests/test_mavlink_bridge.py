"""`skylane bridge mavlink` with real MAVLink 2 traffic made by pymavlink: several vehicles on one UDP link reach the
database through the broker and ingest like native devices, presence follows their heartbeats, unregistered system
ids and CRC failures are counted and never stop the bridge, and a failed TCP link is reopened."""
from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time

import pytest

from devices.flight import Fix
from devices.registry import DeviceRecord
from devices.vendor_payloads import MavlinkVehicle
from ingest.bridges.mavlink import BAD_FRAMES, NOTICE_EVERY_S, NOTICES, UNREGISTERED, MavlinkTranslator, parse_listen
from protocol import topics

from .dialect_support import Mqtt, count, register, send_udp, start_bridge, wait_count
from .helpers import free_port, query, start_ingester, wait_until

NO_FLY = (121.4885, 31.044)  # inside R-BR-MP (prohibited, 0-150 m AGL)
CRUISE = (121.50, 31.05)


def _fix(lon: float, lat: float, alt_agl: float = 50.0, status: str = "Airborne") -> Fix:
    return Fix(lon, lat, alt_agl, 8.0, 45.0, 0.5, status, 76.0)


def test_listen_specs_and_link_names():
    assert parse_listen("udp:0.0.0.0:14550").device == "udpin:0.0.0.0:14550"
    assert parse_listen("udp:0.0.0.0:14550").name == "udp:14550"
    assert parse_listen("tcp:127.0.0.1:5760").name == "tcp:5760"
    assert parse_listen("tcpin:0.0.0.0:5761").device == "tcpin:0.0.0.0:5761"
    assert (parse_listen("serial:/dev/ttyACM0:115200").name, parse_listen("serial:/dev/ttyACM0:115200").baud) == (
        "serial:ttyACM0", 115200)
    assert parse_listen("udp:0.0.0.0:14550", "radio-1").name == "radio-1"
    for bad in ("udp:14550", "bogus:1:2", "tcp:host:port", "serial:"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_the_translator_maps_heartbeat_position_battery_and_landed_state():
    from pymavlink.dialects.v20 import common
    now = time.time()
    v = MavlinkVehicle(7, now - 60)
    parser = common.MAVLink(None)
    t = MavlinkTranslator("r/v1", "udp:1", {"udp:1/7": "MAV7"}.get, max_hz=0)
    out = [m for frame in v.frames(_fix(*CRUISE), now) for msg in parser.parse_buffer(frame) or []
           for m in t.handle(msg, now)]
    assert [(m.topic, m.retain) for m in out] == [("r/v1/device/MAV7/status", True), ("r/v1/uav/MAV7/telemetry", False)]
    fix = json.loads(out[1].payload)
    assert fix["alt_ref"] == "AMSL" and fix["alt_m"] == pytest.approx(54.0)  # 50 m AGL + the 4 m ground
    assert (fix["status"], fix["battery_pct"], fix["speed_mps"], fix["track_deg"]) == ("Airborne", 76.0, 8.0, 45.0)
    assert abs(fix["vspeed_mps"] - 0.5) < 1e-9  # MAVLink's vz is down
    ground = [m for frame in v.frames(_fix(*CRUISE, 0.0, "Ground"), now + 1) for msg in parser.parse_buffer(frame) or []
              for m in t.handle(msg, now + 1)]
    assert json.loads(ground[0].payload)["status"] == "Ground"  # EXTENDED_SYS_STATE: on the ground
    assert [m.payload for m in t.tick(now + 10)] == [b"offline"]  # heartbeats stopped


def test_an_unregistered_system_id_is_announced_for_ingest_at_most_once_a_minute():
    """Nothing of an unmapped system id is published as a UAV; its messages are counted and a notice (with its last
    fix once it has one) goes to {root}/mavlink/{link}/{sysid}: at first sight, at its first fix, then at most once
    per NOTICE_EVERY_S, however fast it sends. Once the registry maps it, it is a UAV like the others."""
    from pymavlink.dialects.v20 import common
    now = time.time()
    v = MavlinkVehicle(9, now - 60)
    parser = common.MAVLink(None)
    registry: dict[str, str] = {}
    t = MavlinkTranslator("r/v1", "udp:1", registry.get, max_hz=0)
    before = (UNREGISTERED._value.get(), NOTICES._value.get())

    def send(frames, at):
        return [m for frame in frames for msg in parser.parse_buffer(frame) or [] for m in t.handle(msg, at)]
    first = send([v.heartbeat(True)], now)
    assert [m.topic for m in first] == ["r/v1/mavlink/udp:1/9"]
    notice = json.loads(first[0].payload)
    assert notice == {"mavlink": "udp:1/9", "received_at": notice["received_at"], "messages": 1, "types": ["HEARTBEAT"]}
    with_fix = send(v.frames(_fix(*CRUISE), now + 0.1), now + 0.1)  # its first position: announced again, with it
    assert [m.topic for m in with_fix] == ["r/v1/mavlink/udp:1/9"]
    fix = json.loads(with_fix[0].payload)["fix"]
    assert (fix["lat"], fix["lon"], fix["alt_ref"], fix["battery_pct"]) == (CRUISE[1], CRUISE[0], "AMSL", 76.0)
    quiet = [m for k in range(1, 50) for m in send(v.frames(_fix(*CRUISE), now + k), now + k)]
    assert quiet == []  # 49 s of frames: nothing more
    later = send(v.frames(_fix(*NO_FLY), now + NOTICE_EVERY_S + 1), now + NOTICE_EVERY_S + 1)
    assert len(later) == 1 and json.loads(later[0].payload)["fix"]["lat"] == CRUISE[1]  # its last fix then
    assert json.loads(later[0].payload)["messages"] == 49 * 5 + 1
    assert NOTICES._value.get() - before[1] == 3 and UNREGISTERED._value.get() - before[0] > 100
    registry["udp:1/9"] = "MAV9"  # registered: published as the UAV
    topics_now = {m.topic for m in send(v.frames(_fix(*CRUISE), now + 200), now + 200)}
    assert topics_now == {"r/v1/device/MAV9/status", "r/v1/uav/MAV9/telemetry"}


def test_ingest_refuses_a_notice_as_unregistered_or_takes_its_fix_once_registered(zones_geojson):
    from airspace.zones import ZoneSet
    from datetime import datetime, timezone
    from ingest.dialects import RegistryView
    from ingest.dialects.mavlink import MavlinkDialect
    from ingest.dialects.vendor import UNREGISTERED as DIALECT_UNREGISTERED
    from ingest.pipeline import RawMessage, build_pipeline
    now = datetime.now(timezone.utc)
    notice = {"mavlink": "udp:1/9", "received_at": "x", "messages": 3, "types": ["HEARTBEAT"],
              "fix": {"ts": now.isoformat(), "lat": CRUISE[1], "lon": CRUISE[0], "alt_m": 54.0, "alt_ref": "AMSL"}}
    msg = RawMessage("r/v1/mavlink/udp:1/9", json.dumps(notice).encode(), now)
    pipe = build_pipeline(ZoneSet.from_geojson(zones_geojson), "r/v1", dialects=[MavlinkDialect()],
                          registry=RegistryView())
    before = DIALECT_UNREGISTERED.labels("mavlink")._value.get()
    out = pipe.process([msg, msg])
    assert [d.reason for d in out.dead_letters] == [
        "unregistered MAVLink vehicle udp:1/9: no registry entry has mavlink = 'udp:1/9'"] * 2
    assert [(e.event.kind, e.event.uav_id, e.event.detail["dialect"]) for e in out.events] == [
        ("unregistered_device", "udp:1/9", "mavlink")]  # once per vehicle
    assert DIALECT_UNREGISTERED.labels("mavlink")._value.get() == before + 2 and out.telemetry == []
    pipe.update_registry([{"device_id": "MAV9", "kind": "uav", "properties": {"mavlink": "udp:1/9"}}])
    taken = pipe.process([msg])
    assert taken.dead_letters == [] and [(r.uav_id, r.lat) for r in taken.telemetry] == [("MAV9", CRUISE[1])]
    bad = pipe.process([RawMessage("r/v1/mavlink/udp:1/9", b'{"mavlink": "udp:1/8"}', now)])
    assert "must be the vehicle's" in bad.dead_letters[0].reason


@pytest.mark.integration
def test_an_unregistered_vehicle_over_udp_is_a_dead_letter_and_an_event_not_lost(system):
    """Real MAVLink 2 over UDP from a system id nobody registered: the bridge announces it, ingest (the `mavlink`
    dialect) stores a dead letter naming it and one unregistered_device event; no telemetry under any id."""
    from protocol.brokerauth import derive_password, load_or_create_secret

    from .helpers import TEST_ACCOUNT
    # the suite's account for the bridge and ingest: a broker started before R/mavlink/# was granted to skylane-bridge
    # and skylane-ingest keeps its old ACL until it re-reads it (tests/test_broker_auth.py checks the grants)
    settings = system.with_(dialects=("mavlink",), mqtt_username=TEST_ACCOUNT,
                            mqtt_password=derive_password(load_or_create_secret(system.secret_path), TEST_ACCOUNT))
    ing, ingest = start_ingester(settings)
    bridge, runner, port = start_bridge(settings, refresh_s=0.5)
    try:
        assert bridge.connected.wait(10)
        now = time.time()
        stranger = MavlinkVehicle(9, now - 30)
        for k in range(5):
            send_udp(port, *stranger.frames(_fix(*CRUISE), now + k * 0.1))
            time.sleep(0.1)
        db = settings.database_url
        wait_count(db, "SELECT count(*) FROM dead_letters WHERE reason LIKE %s",
                   f"unregistered MAVLink vehicle udp:{port}/9:%", at_least=2)  # at first sight, then with its fix
        wait_count(db, "SELECT count(*) FROM airspace_events WHERE kind = 'unregistered_device' AND uav_id = %s",
                   f"udp:{port}/9")
        dead = [json.loads(bytes(p)) for (p,) in query(db, "SELECT payload FROM dead_letters ORDER BY id")]
        assert dead[-1]["fix"]["lat"] == CRUISE[1] and dead[-1]["mavlink"] == f"udp:{port}/9"
        assert count(db, "SELECT count(*) FROM uav_telemetry") == 0
        assert count(db, "SELECT count(*) FROM dead_letters") == 2  # rate-limited: not one per MAVLink message
    finally:
        runner.close()
        ingest.close()


@pytest.mark.integration
def test_vehicles_on_one_udp_link_reach_the_database_like_native_ones(system):
    ing, ingest = start_ingester(system)
    bridge, runner, port = start_bridge(system, refresh_s=0.5)
    register(system, DeviceRecord("MAV-1", "uav", properties={"mavlink": f"udp:{port}/1"}),
             DeviceRecord("MAV-2", "uav", properties={"mavlink": f"udp:{port}/2"}))
    watch = Mqtt(system, topics.status(system.mqtt_root, "+"))
    unregistered = UNREGISTERED._value.get()
    try:
        assert bridge.connected.wait(10)
        wait_until(lambda: bridge.translator.lookup(f"udp:{port}/2"), 10, "the bridge did not re-read the registry")
        now = time.time()
        one, two, stranger = MavlinkVehicle(1, now - 30), MavlinkVehicle(2, now - 30), MavlinkVehicle(9, now - 30)
        for k in range(3):
            send_udp(port, *one.frames(_fix(*NO_FLY), now + k * 0.2), *two.frames(_fix(*CRUISE), now + k * 0.2),
                     *stranger.frames(_fix(*CRUISE), now + k * 0.2))
            time.sleep(0.2)
        db = system.database_url
        wait_count(db, "SELECT count(*) FROM airspace_events WHERE uav_id = 'MAV-1' AND kind = 'no_fly_violation'")
        wait_count(db, "SELECT count(*) FROM uav_telemetry WHERE uav_id = 'MAV-2' AND alt_ref = 'AMSL'")
        assert count(db, "SELECT count(*) FROM uav_telemetry WHERE uav_id NOT IN ('MAV-1', 'MAV-2')") == 0
        assert UNREGISTERED._value.get() > unregistered
        wait_count(db, "SELECT count(*) FROM devices WHERE device_id IN ('MAV-1', 'MAV-2') AND online", at_least=2)
    finally:
        runner.close()
        watch_offline = wait_until(lambda: [t for t, p in list(watch.got.queue) if p == b"offline"], 10,
                                   "the bridge said nothing when it stopped")
        watch.close()
        ingest.close()
    assert sorted(watch_offline) == [topics.status(system.mqtt_root, "MAV-1"), topics.status(system.mqtt_root, "MAV-2")]


@pytest.mark.integration
def test_crc_failures_and_garbage_are_counted_and_the_bridge_goes_on(system):
    bridge, runner, port = start_bridge(system, refresh_s=0.5)
    register(system, DeviceRecord("MAV-C", "uav", properties={"mavlink": f"udp:{port}/4"}))
    watch = Mqtt(system, topics.telemetry(system.mqtt_root, "MAV-C"))
    try:
        assert bridge.connected.wait(10)
        wait_until(lambda: bridge.translator.lookup(f"udp:{port}/4"), 10, "the bridge did not re-read the registry")
        v = MavlinkVehicle(4, time.time() - 30)
        bad_before = BAD_FRAMES._value.get()
        good = v.position(_fix(*CRUISE), time.time())
        corrupted = bytearray(good)
        corrupted[-1] ^= 0xFF  # the CRC's last byte
        send_udp(port, bytes(corrupted), os.urandom(64), b"\xfd\xff" + os.urandom(20), good[:12])
        wait_until(lambda: BAD_FRAMES._value.get() > bad_before, 10, "bad frames not counted")
        got = None
        for _ in range(50):  # the parser resynchronises within a few frames of the garbage
            send_udp(port, v.heartbeat(True), v.position(_fix(*CRUISE), time.time()))
            try:
                got = watch.next(0.2)
                break
            except queue.Empty:
                continue
        assert got is not None, "no fix after the bad frames"
        topic, payload = got
        assert topic == topics.telemetry(system.mqtt_root, "MAV-C") and json.loads(payload)["lat"] == CRUISE[1]
        assert runner.thread.is_alive()
    finally:
        watch.close()
        runner.close()


@pytest.mark.integration
def test_a_failed_tcp_link_is_reopened_and_a_restarted_bridge_goes_on(system):
    """The bridge connects to a vehicle serving TCP (as SITL does on 5760); the vehicle drops the connection, the
    bridge connects again; then the bridge itself restarts on the same link and the fixes keep coming."""
    port = free_port()
    register(system, DeviceRecord("MAV-T", "uav", properties={"mavlink": f"tcp:{port}/5"}))
    watch = Mqtt(system, topics.telemetry(system.mqtt_root, "MAV-T"))
    v = MavlinkVehicle(5, time.time() - 30)
    seen: list[float] = []

    def serve_once(server: socket.socket, lat: float) -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(v.heartbeat(True) + v.position(_fix(121.5, lat), time.time()))
            seen.append(json.loads(watch.next(15)[1])["lat"])
    try:
        for run in range(2):
            server = socket.create_server(("127.0.0.1", port))  # (a new one: the last bridge's reconnect is gone)
            server.settimeout(20)
            bridge, runner, _ = start_bridge(system, listen=f"tcp:127.0.0.1:{port}", max_hz=0)
            try:
                for lat in (31.051 + run / 100, 31.052 + run / 100):  # the second after the vehicle hung up
                    t = threading.Thread(target=serve_once, args=(server, lat))
                    t.start()
                    t.join(30)
            finally:
                runner.close()
                server.close()
    finally:
        watch.close()
    assert seen == [31.051, 31.052, 31.061, 31.062]


def test_an_autopilots_remote_id_becomes_the_broadcast_it_describes():
    """OPEN_DRONE_ID_BASIC_ID and _LOCATION (pymavlink) through the translator decode, with the Remote ID dialect's
    own decoder, to the same serial, position, speed and heights; MESSAGE_PACK is passed on as a pack."""
    import base64

    from pymavlink.dialects.v20 import common

    from ingest.dialects import remoteid
    now = time.time()
    v = MavlinkVehicle(6, now - 10)
    parser = common.MAVLink(None)
    t = MavlinkTranslator("r/v1", "udp:1", lambda key: None, receiver_id="rx-gcs")  # no registration needed
    out = [m for frame in v.remote_id(_fix(*CRUISE), now, "1596A303716430A") for msg in parser.parse_buffer(frame)
           for m in t.handle(msg, now)]
    assert [m.topic for m in out] == ["r/v1/rid/rx-gcs"] * 2
    body = json.loads(out[1].payload)
    assert body["session"] == "mavlink.udp:1.6"
    basic, loc = remoteid.decode(base64.b64decode(body["data"]))  # the Location packed with the Basic ID
    assert (basic["uas_id"], basic["id_type"], loc["status"]) == ("1596A303716430A", "serial_number", "airborne")
    assert loc["lat"] == pytest.approx(CRUISE[1], abs=1e-7) and loc["lon"] == pytest.approx(CRUISE[0], abs=1e-7)
    assert (loc["speed_mps"], loc["track_deg"], loc["height_m"], loc["geodetic_alt_m"]) == (8.0, 45.0, 50.0, 64.0)
    raw = [base64.b64decode(json.loads(m.payload)["data"]) for m in out]
    pack = v.mav.open_drone_id_message_pack_encode(0, 0, [0] * 20, 25, 2, list((raw[0] + raw[1][-25:]).ljust(225,
                                                                                                            b"\0")))
    (forwarded,) = t.handle(parser.parse_buffer(pack.pack(v.mav))[0], now)
    assert remoteid.decode(base64.b64decode(json.loads(forwarded.payload)["data"])) == [basic, loc]


@pytest.mark.integration
def test_remote_id_from_an_autopilot_reaches_the_air_picture(system):
    ing, ingest = start_ingester(system.with_(dialects=("remoteid",)))
    bridge, runner, port = start_bridge(system, refresh_s=0.5)
    try:
        assert bridge.connected.wait(10)
        v = MavlinkVehicle(8, time.time() - 30)
        serial = "1596TEST" + str(port)
        for _ in range(3):
            send_udp(port, *v.remote_id(_fix(*CRUISE), time.time(), serial))
            time.sleep(0.2)
        wait_count(system.database_url, "SELECT count(*) FROM observations WHERE source = 'rid' AND track_id = %s",
                   serial)
    finally:
        runner.close()
        ingest.close()
