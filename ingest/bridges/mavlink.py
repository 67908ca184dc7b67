"""MAVLink bridge: PX4 / ArduPilot vehicles (or a ground link, mavlink-router, a GCS forwarding its stream) onto the
broker under the project's contract, so ingest stays the one writer (`skylane bridge mavlink`).

Listens (or connects) with pymavlink, MAVLink 1 and 2, several vehicles on one link:

  GLOBAL_POSITION_INT      lat/lon (1e-7 deg), `alt` (mm AMSL: alt_ref AMSL), `relative_alt` (mm above home),
                           vx/vy/vz (cm/s, NED): a fix on {root}/uav/{id}/telemetry, at most --max-hz per vehicle
  HEARTBEAT                armed (base_mode), system_status, type: the fix's status, and the vehicle's presence
                           (retained "online" on {root}/device/{id}/status; "offline" after OFFLINE_AFTER_S without
                           one, or when the bridge stops)
  EXTENDED_SYS_STATE       landed_state (on ground / in air), preferred over the armed state when sent
  SYS_STATUS, BATTERY_STATUS  battery_remaining (%) -> battery_pct
  SYSTEM_TIME              the vehicle's UTC clock: fixes are stamped boot time + offset (else the receive time)
  OPEN_DRONE_ID_*          the autopilot's own Remote ID, encoded back into the ASTM F3411 broadcast
                           (ingest/bridges/mavlink_remoteid.py) and published on the Remote ID path
                           {root}/rid/{receiver_id} (the bridge is that receiver, --receiver-id), with the vehicle
                           as the broadcaster's session; a Location travels in a pack with the last Basic ID

A vehicle is its link and MAVLink system id, "{link}/{sysid}" (link: "udp:14550", "tcp:5760", "serial:ttyUSB0", or
--link), which the registry property `mavlink` maps to a registered UAV (Remote ID needs no registration: it names
the aircraft itself, and an unregistered one is what surveillance looks for). A system id no entry maps is not
published as a UAV: its messages are counted (skylane_bridge_mavlink_unregistered_total) and, at most once per
system id every NOTICE_EVERY_S seconds (and once more when its first position arrives), a notice with the
vehicle's last fix goes to {root}/mavlink/{link}/{sysid}, which ingest's `mavlink` dialect refuses as unregistered
(a dead letter, the `unregistered_device` event; ingest/dialects/mavlink.py), as the other dialects do with vendor
identifiers. Frames that fail MAVLink's CRC or framing are counted and logged, never fatal. A link that
fails (serial unplugged, TCP peer gone) is reopened with backoff; the broker connection reconnects by itself.
"""
from __future__ import annotations

import base64
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath

import orjson
from prometheus_client import Counter

from protocol import topics
from protocol.times import rfc3339

from ..dialects.base import RegistryView
from ..rows import OutMessage
from . import mavlink_remoteid as odid

os.environ.setdefault("MAVLINK20", "1")  # pymavlink's MAVLink 2 dialects (they parse MAVLink 1 frames too)
from pymavlink import mavutil  # noqa: E402

log = logging.getLogger("skylane.bridge.mavlink")

MESSAGES = Counter("skylane_bridge_mavlink_messages_total", "MAVLink messages received", ["type"])
BAD_FRAMES = Counter("skylane_bridge_mavlink_bad_frames_total", "MAVLink frames refused (CRC or framing)")
PUBLISHED = Counter("skylane_bridge_mavlink_published_total", "Messages published onto the broker", ["kind"])
UNREGISTERED = Counter("skylane_bridge_mavlink_unregistered_total",
                       "MAVLink messages from a system id no registry entry maps (not published as a UAV)")
NOTICES = Counter("skylane_bridge_mavlink_unregistered_notices_total",
                  "Notices of unregistered system ids published for ingest (at most one per id per NOTICE_EVERY_S)")
LINK_ERRORS = Counter("skylane_bridge_mavlink_link_errors_total", "Link failures (reopened with backoff)")

NOTICE_EVERY_S = 60.0  # an unregistered system id is announced at most this often (plus once at its first fix)
OFFLINE_AFTER_S = 5.0  # no HEARTBEAT for this long (MAVLink sends 1 Hz): the vehicle is offline
ARMED = 128  # MAV_MODE_FLAG_SAFETY_ARMED
CRITICAL, EMERGENCY_STATE = 5, 6  # MAV_STATE_CRITICAL, MAV_STATE_EMERGENCY
ON_GROUND = 1  # MAV_LANDED_STATE_ON_GROUND (2 in air, 3 taking off, 4 landing)
GCS, INVALID_AUTOPILOT = 6, 8  # MAV_TYPE_GCS, MAV_AUTOPILOT_INVALID: heartbeats of ground stations, not vehicles
AIRBORNE_ABOVE_HOME_M = 1.0  # without EXTENDED_SYS_STATE: armed and this far above home is airborne
UNKNOWN_HDG = 65535
EPOCH_2000_US = 946_684_800 * 1_000_000


@dataclass(frozen=True)
class Link:
    """Where to get MAVLink from: the pymavlink device string, its baud rate and the link's name in the registry."""
    device: str
    name: str
    baud: int = 57600


def parse_listen(spec: str, name: str | None = None) -> Link:
    """`udp:HOST:PORT` (listen), `tcp:HOST:PORT` (connect to a vehicle or router serving TCP, e.g. SITL's 5760),
    `tcpin:HOST:PORT` (listen), `serial:DEVICE[:BAUD]`; ValueError saying what is expected otherwise."""
    kind, _, rest = spec.partition(":")
    if kind in ("udp", "tcp", "tcpin"):
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--listen {spec!r}: expected {kind}:HOST:PORT")
        device = {"udp": "udpin", "tcp": "tcp", "tcpin": "tcpin"}[kind] + f":{host}:{port}"
        return Link(device, name or f"{'udp' if kind == 'udp' else 'tcp'}:{port}")
    if kind == "serial" and rest:
        device, _, baud = rest.partition(":")
        if baud and not baud.isdigit():
            raise ValueError(f"--listen {spec!r}: expected serial:DEVICE[:BAUD]")
        return Link(device, name or f"serial:{PurePath(device).name}", int(baud) if baud else 57600)
    raise ValueError(f"--listen {spec!r}: expected udp:HOST:PORT, tcp:HOST:PORT, tcpin:HOST:PORT or "
                     "serial:DEVICE[:BAUD]")


@dataclass
class Vehicle:
    device_id: str
    armed: bool = False
    system_status: int | None = None
    landed: int | None = None
    battery_pct: float | None = None
    boot_offset_s: float | None = None  # UTC epoch seconds at the vehicle's boot (SYSTEM_TIME)
    heartbeat_at: float | None = None  # the translator's clock (epoch seconds) at the last HEARTBEAT
    online: bool = False
    fix_sent_at: float = -math.inf


@dataclass
class Unmapped:
    """A system id no registry entry maps: its state (for its last fix) and what was taken since the last notice."""
    state: Vehicle
    notice_at: float = -math.inf
    noticed_fix: bool = False  # the last notice carried a fix
    messages: int = 0
    types: set[str] | None = None
    fix: dict | None = None


class MavlinkTranslator:
    """MAVLink messages in, the contract's messages out. No I/O: the clock comes in with each message, and
    `lookup("{link}/{sysid}")` gives the registered UAV (None: unregistered)."""

    def __init__(self, root: str, link: str, lookup: Callable[[str], str | None], max_hz: float = 10.0,
                 receiver_id: str | None = None):
        self.root, self.link, self.lookup = root, link, lookup
        self.min_interval = 1.0 / max_hz if max_hz > 0 else 0.0
        self.vehicles: dict[int, Vehicle] = {}
        self._unmapped: dict[int, Unmapped] = {}
        self.receiver_id = receiver_id or as_id(f"mavlink-{link}")
        self._basic_ids: dict[int, bytes] = {}  # system id -> its last Basic ID broadcast

    def vehicle(self, sysid: int, now: float) -> Vehicle | None:
        v = self.vehicles.get(sysid)
        device_id = self.lookup(f"{self.link}/{sysid}")
        if device_id is None:
            return None
        self._unmapped.pop(sysid, None)
        if v is None or v.device_id != device_id:
            v = self.vehicles[sysid] = Vehicle(device_id)
        return v

    def handle(self, msg, now: float) -> list[OutMessage]:
        """What one received message publishes (epoch seconds `now`)."""
        kind = msg.get_type()
        MESSAGES.labels(kind).inc()
        if kind == "BAD_DATA":
            BAD_FRAMES.inc()
            log.debug("bad MAVLink frame: %s", getattr(msg, "reason", ""))
            return []
        if kind in odid.ENCODERS:
            return self._remote_id(msg, kind, now)
        handler = self._HANDLERS.get(kind)
        if handler is None:
            return []
        if kind == "HEARTBEAT" and (msg.type == GCS or msg.autopilot == INVALID_AUTOPILOT):
            return []  # a ground station's or a companion component's heartbeat, not the vehicle's
        sysid = msg.get_srcSystem()
        v = self.vehicle(sysid, now)
        return self._unregistered(sysid, kind, handler, msg, now) if v is None else handler(self, v, msg, now)

    def _unregistered(self, sysid: int, kind: str, handler, msg, now: float) -> list[OutMessage]:
        """A message of a system id no entry maps: counted, its fix kept, and a notice for ingest at most once per
        NOTICE_EVERY_S (and when the first fix arrives after a notice without one)."""
        UNREGISTERED.inc()
        u = self._unmapped.get(sysid)
        if u is None:
            u = self._unmapped[sysid] = Unmapped(Vehicle(""), types=set())
        u.messages += 1
        u.types.add(kind)
        if kind == "GLOBAL_POSITION_INT":
            u.fix = self._fix(u.state, msg, now) or u.fix
        else:
            handler(self, u.state, msg, now)  # state only (armed, battery, clock); nothing is published for it
        if now - u.notice_at < NOTICE_EVERY_S and (u.noticed_fix or u.fix is None):
            return []
        key = f"{self.link}/{sysid}"
        if u.notice_at == -math.inf:
            log.warning("MAVLink system %d on %s maps to no registered UAV (registry property mavlink = %r): "
                        "announced to ingest as unregistered, not published as a UAV", sysid, self.link, key)
        body = {"mavlink": key, "received_at": rfc3339(now), "messages": u.messages, "types": sorted(u.types)}
        if u.fix is not None:
            body["fix"] = u.fix
        u.notice_at, u.noticed_fix, u.messages, u.types = now, u.fix is not None, 0, set()
        NOTICES.inc()
        return [OutMessage(topics.mavlink_unregistered(self.root, as_id(self.link), sysid), orjson.dumps(body), 1,
                           False)]

    def _heartbeat(self, v: Vehicle, msg, now: float) -> list[OutMessage]:
        v.armed = bool(msg.base_mode & ARMED)
        v.system_status = msg.system_status
        v.heartbeat_at = now
        if v.online:
            return []
        v.online = True
        return [self._status(v, True)]

    def _position(self, v: Vehicle, msg, now: float) -> list[OutMessage]:
        if msg.lat == 0 and msg.lon == 0:
            return []  # no position yet (no GNSS fix)
        if now - v.fix_sent_at < self.min_interval:
            return []
        v.fix_sent_at = now
        PUBLISHED.labels("telemetry").inc()
        return [OutMessage(topics.telemetry(self.root, v.device_id), orjson.dumps(self._fix(v, msg, now)), 1, False)]

    def _fix(self, v: Vehicle, msg, now: float) -> dict | None:
        """A GLOBAL_POSITION_INT as the contract's fix (None: no position yet)."""
        if msg.lat == 0 and msg.lon == 0:
            return None
        ts = now
        if v.boot_offset_s is not None and abs(v.boot_offset_s + msg.time_boot_ms / 1000.0 - now) < 300:
            ts = v.boot_offset_s + msg.time_boot_ms / 1000.0
        vx, vy = msg.vx / 100.0, msg.vy / 100.0
        speed = math.hypot(vx, vy)
        if speed >= 0.5:
            track = math.degrees(math.atan2(vy, vx)) % 360.0
        else:
            track = None if msg.hdg == UNKNOWN_HDG else (msg.hdg / 100.0) % 360.0
        fix = {"ts": rfc3339(ts), "lat": msg.lat / 1e7, "lon": msg.lon / 1e7, "alt_m": round(msg.alt / 1000.0, 3),
               "alt_ref": "AMSL", "speed_mps": round(speed, 2), "vspeed_mps": round(-msg.vz / 100.0, 2),
               "status": self._flight_status(v, msg.relative_alt / 1000.0)}
        if track is not None:
            fix["track_deg"] = round(track, 1)
        if v.battery_pct is not None:
            fix["battery_pct"] = v.battery_pct
        return fix

    @staticmethod
    def _flight_status(v: Vehicle, above_home_m: float) -> str:
        if v.system_status in (CRITICAL, EMERGENCY_STATE):
            return "Emergency"
        if v.landed is not None and v.landed > 0:
            return "Ground" if v.landed == ON_GROUND else "Airborne"
        return "Airborne" if v.armed and above_home_m > AIRBORNE_ABOVE_HOME_M else "Ground"

    def _landed(self, v: Vehicle, msg, now: float) -> list[OutMessage]:
        v.landed = msg.landed_state
        return []

    def _battery(self, v: Vehicle, msg, now: float) -> list[OutMessage]:
        if msg.get_type() == "BATTERY_STATUS" and msg.id != 0:
            return []  # the primary battery only
        if 0 <= msg.battery_remaining <= 100:
            v.battery_pct = float(msg.battery_remaining)
        return []

    def _system_time(self, v: Vehicle, msg, now: float) -> list[OutMessage]:
        if msg.time_unix_usec > EPOCH_2000_US:
            v.boot_offset_s = msg.time_unix_usec / 1e6 - msg.time_boot_ms / 1000.0
        return []

    def _remote_id(self, msg, kind: str, now: float) -> list[OutMessage]:
        """An OPEN_DRONE_ID message as the broadcast a receiver would have heard (module docstring)."""
        sysid = msg.get_srcSystem()
        data = odid.ENCODERS[kind](msg)
        if data is None:
            return []
        if kind == "OPEN_DRONE_ID_BASIC_ID":
            self._basic_ids[sysid] = data
        elif kind == "OPEN_DRONE_ID_LOCATION" and sysid in self._basic_ids:
            data = odid.pack([self._basic_ids[sysid], data])
        body = {"received_at": rfc3339(now), "session": as_id(f"mavlink.{self.link}.{sysid}"),
                "data": base64.b64encode(data).decode()}
        PUBLISHED.labels("remote_id").inc()
        return [OutMessage(topics.remote_id(self.root, self.receiver_id), orjson.dumps(body), 1, False)]

    _HANDLERS = {"HEARTBEAT": _heartbeat, "GLOBAL_POSITION_INT": _position, "EXTENDED_SYS_STATE": _landed,
                 "SYS_STATUS": _battery, "BATTERY_STATUS": _battery, "SYSTEM_TIME": _system_time}

    def tick(self, now: float) -> list[OutMessage]:
        """Vehicles whose heartbeats stopped: offline."""
        out = []
        for v in self.vehicles.values():
            if v.online and v.heartbeat_at is not None and now - v.heartbeat_at > OFFLINE_AFTER_S:
                v.online = False
                out.append(self._status(v, False))
        return out

    def close(self) -> list[OutMessage]:
        """Every vehicle still online goes offline (the bridge stops: nobody vouches for them any more)."""
        out = [self._status(v, False) for v in self.vehicles.values() if v.online]
        for v in self.vehicles.values():
            v.online = False
        return out

    def _status(self, v: Vehicle, online: bool) -> OutMessage:
        PUBLISHED.labels("status").inc()
        return OutMessage(topics.status(self.root, v.device_id), b"online" if online else b"offline", 1, True)


def as_id(text: str) -> str:
    """`text` as a contract id (1-64 of A-Z a-z 0-9 _ . : -): other characters become '-'."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "-", text).lstrip("-_.:")[:64] or "mavlink"


class MavlinkBridge:
    """The translator between a MAVLink link and the broker, until stopped. `registry()` returns the current
    RegistryView (re-read every `refresh_s`, so vehicles registered later are picked up)."""

    def __init__(self, link: Link, mqtt_url: str, root: str, registry: Callable[[], RegistryView], *,
                 max_hz: float = 10.0, refresh_s: float = 30.0, clock: Callable[[], float] = time.time,
                 receiver_id: str | None = None):
        self.link, self.mqtt_url, self.root = link, mqtt_url, root
        self._registry_source, self.refresh_s, self.clock = registry, refresh_s, clock
        self._registry = RegistryView()
        self._registry_at = -math.inf
        self._refresh()
        self.translator = MavlinkTranslator(root, link.name, self._lookup, max_hz, receiver_id)
        self.connected = threading.Event()  # the link is open (listening or connected)

    def _lookup(self, key: str) -> str | None:
        return self._registry.device("mavlink", key)

    def _refresh(self) -> None:
        if time.monotonic() - self._registry_at < self.refresh_s:
            return
        self._registry_at = time.monotonic()
        try:
            self._registry = self._registry_source()
        except Exception as exc:  # the database away: keep the last registry
            log.warning("registry not read (%s); keeping the last one (%d vehicles)", exc,
                        sum(1 for key, _ in self._registry.by_key if key == "mavlink"))

    def _open(self, stop: threading.Event):
        delay = 1.0
        while not stop.is_set():
            try:
                conn = mavutil.mavlink_connection(self.link.device, baud=self.link.baud, source_system=255,
                                                  robust_parsing=True, autoreconnect=True, retries=0)
                log.info("MAVLink link %s open (%s)", self.link.name, self.link.device)
                self.connected.set()
                return conn
            except Exception as exc:  # OSError, serial errors, a refused TCP connection
                LINK_ERRORS.inc()
                log.warning("MAVLink link %s (%s) not open: %s; retrying in %.0f s", self.link.name,
                            self.link.device, exc, delay)
            if stop.wait(delay):
                break
            delay = min(delay * 2, 30.0)
        return None

    def run(self, stop: threading.Event) -> None:
        from protocol.mqttclient import close_client, connect_with_retry
        from protocol.publisher import BoundedPublisher
        client = connect_with_retry(self.mqtt_url, f"skylane-bridge-mavlink-{uuid.uuid4().hex[:8]}", stop)
        if client is None:
            return
        pub = BoundedPublisher(client, 5000)

        def send(msgs: list[OutMessage]) -> None:
            for m in msgs:
                pub.publish(m.topic, m.payload, qos=m.qos, retain=m.retain, stop=stop, timeout=10)
        try:
            while not stop.is_set():
                conn = self._open(stop)
                if conn is None:
                    break
                try:
                    self._pump(conn, send, stop)
                except Exception as exc:  # the link failed: reopen it (the vehicles' state is kept)
                    LINK_ERRORS.inc()
                    log.warning("MAVLink link %s failed (%s: %s); reopening", self.link.name, type(exc).__name__,
                                exc)
                    stop.wait(1.0)
                finally:
                    self.connected.clear()
                    _close(conn)
        finally:
            send(self.translator.close())
            pub.drain(timeout=10)
            close_client(client)

    def _pump(self, conn, send: Callable[[list[OutMessage]], None], stop: threading.Event) -> None:
        last_tick = 0.0
        while not stop.is_set():
            msg = conn.recv_match(blocking=True, timeout=0.25)
            now = self.clock()
            if msg is not None:
                try:
                    send(self.translator.handle(msg, now))
                except (AttributeError, TypeError, ValueError) as exc:  # a message with fields out of shape
                    BAD_FRAMES.inc()
                    log.warning("MAVLink %s not translated: %s", msg.get_type(), exc)
            if now - last_tick >= 1.0:
                last_tick = now
                send(self.translator.tick(now))
                self._refresh()


def _close(conn) -> None:
    try:
        conn.close()
    except Exception:  # closing a failed link: nothing more to do
        pass
