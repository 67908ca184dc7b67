"""Surveillance traffic for the demo and tests, beside the simulated fleet (devices/simulator.py):

- a medical helicopter crossing the Huangpu at 150 m, transmitting real Mode S / ADS-B frames (identification
  with emitter category A7 rotorcraft, CPR airborne positions, velocity), served like a dump1090 raw-frame port
  (AVR lines `*<hex>;`), which `skylane adsb --format avr` reads as it would a real receiver;
- Remote ID broadcasts (ASTM F3411 message packs) of every fourth simulated drone, forwarded as a Remote ID
  receiver forwards them (`{root}/rid/{receiver}`), with the serial numbers the registry knows for them;
- one drone that is not registered, broadcasting Remote ID inside the demonstration zone;
- two registered drones, PAIR-A and PAIR-B, flying head-on along the same line and height every four minutes
  (conflict predicted, then separation lost, then both resolved).
Positions are functions of time only, like the fleet's, so a run can be reproduced and probed at any instant.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import math
import socket
import threading
from dataclasses import dataclass

import orjson

from airspace.vertical import VerticalModel
from protocol import modes_encode, remoteid_encode, topics

from . import payloads
from .flight import Fix
from .geo import LocalFrame
from .registry import DeviceRecord

log = logging.getLogger(__name__)

RID_RECEIVER = "rx-sim-rid"
UNREGISTERED_SERIAL = "1596FUNREG000001"
PAIR_IDS = ("PAIR-A", "PAIR-B")
PAIR_PERIOD_S = 240.0
RID_EVERY = 4  # every fourth simulated drone broadcasts Remote ID


def rid_serial(uav_id: str) -> str:
    """The Remote ID serial number of a simulated drone (ANSI/CTA-2063-A shape: manufacturer code + serial)."""
    return "1596F" + hashlib.sha1(uav_id.encode()).hexdigest()[:11].upper()


@dataclass(frozen=True)
class Helicopter:
    """A loop between two points at a constant height and speed."""

    icao: str = "7801f3"
    callsign: str = "B7613"
    a: tuple[float, float] = (121.445, 31.020)  # Wujing side
    b: tuple[float, float] = (121.530, 31.075)  # Pujiang side, across the Huangpu
    alt_amsl_m: float = 150.0
    speed_mps: float = 45.0

    def at(self, t: float) -> tuple[float, float, float]:
        """(lon, lat, track) at `t` seconds into the loop."""
        frame = LocalFrame(*self.a)
        bx, by = frame.to_xy(*self.b)
        length = math.hypot(bx, by)
        s = (t * self.speed_mps) % (2 * length)
        forward = s <= length
        d = s if forward else 2 * length - s
        lon, lat = frame.to_lonlat(bx * d / length, by * d / length)
        track = math.degrees(math.atan2(bx, by)) % 360 if forward else (math.degrees(math.atan2(bx, by)) + 180) % 360
        return lon, lat, track


class AvrServer:
    """A TCP port serving raw Mode S frames as AVR lines, like dump1090's port 30002, to every connected client."""

    def __init__(self, host: str = "127.0.0.1", port: int = 30302) -> None:
        self.sock = socket.create_server((host, port), reuse_port=False)
        self.port = self.sock.getsockname()[1]
        self.clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="avr-server", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.clients.append(conn)

    def send(self, frames: list[bytes]) -> None:
        data = b"".join(b"*" + f.hex().upper().encode() + b";\n" for f in frames)
        with self._lock:
            for c in list(self.clients):
                try:
                    c.sendall(data)
                except OSError:  # a reader went away: it may come back
                    self.clients.remove(c)
                    c.close()

    def close(self) -> None:
        self._closed.set()
        self.sock.close()
        with self._lock:
            for c in self.clients:
                c.close()
            self.clients.clear()


class SurveillanceSim:
    """The simulator's companion: Remote ID of some drones (`on_fix`), and each tick (`tick`) the helicopter's
    frames to `avr` plus the unregistered drone's broadcasts and the converging pair's telemetry."""

    def __init__(self, root: str, drone_ids: list[str], avr: AvrServer | None = None,
                 helicopter: Helicopter = Helicopter(), vertical: VerticalModel = VerticalModel()) -> None:
        self.root, self.avr, self.helicopter, self.vertical = root, avr, helicopter, vertical
        self.broadcasting = {u for i, u in enumerate(drone_ids) if i % RID_EVERY == 0}
        self._rid_topic = topics.remote_id(root, RID_RECEIVER)
        self._start: float | None = None
        self._seq = 0

    def registry_records(self) -> list[DeviceRecord]:
        """What the registry must know: the converging pair (the broadcasting drones get their `rid_serial`
        through with_rid_serials)."""
        return [DeviceRecord(u, "uav", f"{u} (converging pair)", "Skylane demo fleet", expected_interval_s=1.0)
                for u in PAIR_IDS]

    def with_rid_serials(self, records: list[DeviceRecord]) -> list[DeviceRecord]:
        for rec in records:
            if rec.device_id in self.broadcasting:
                rec.properties["rid_serial"] = rid_serial(rec.device_id)
        return records

    def _rid(self, serial: str, lon: float, lat: float, agl_m: float, fix_speed: float, track: float,
             vspeed: float, airborne: bool) -> tuple[str, bytes]:
        amsl = float(self.vertical.to_amsl(agl_m, "AGL"))
        geo = float(self.vertical.from_amsl(amsl, "WGS84"))
        data = remoteid_encode.pack(remoteid_encode.basic_id(serial),
                                    remoteid_encode.location(lat, lon, geo, agl_m, track_deg=track, speed_mps=fix_speed,
                                                             vspeed_mps=vspeed, airborne=airborne))
        return self._rid_topic, orjson.dumps({"data": base64.b64encode(data).decode(), "rssi": -72,
                                             "mac": "02:" + hashlib.sha1(serial.encode()).hexdigest()[:10]})

    def on_fix(self, uav_id: str, fix: Fix, due: float) -> list[tuple[str, bytes]]:
        """The drone's Remote ID broadcast of the same fix, when it is one of the broadcasting drones."""
        if uav_id not in self.broadcasting:
            return []
        return [self._rid(rid_serial(uav_id), fix.lon, fix.lat, fix.alt_m, fix.speed_mps, fix.track_deg,
                          fix.vspeed_mps, fix.status == "Airborne")]

    def tick(self, due: float) -> list[tuple[str, bytes]]:
        """Messages to publish at `due` (epoch s); the helicopter's frames go to the AVR port."""
        if self._start is None:
            self._start = due
        t = due - self._start
        if self.avr is not None:
            lon, lat, track = self.helicopter.at(t)
            self.avr.send(modes_encode.aircraft_frames(
                self.helicopter.icao, lat, lon, self.helicopter.alt_amsl_m / 0.3048, callsign=self.helicopter.callsign,
                category="A7", groundspeed_kt=self.helicopter.speed_mps / 0.5144, track_deg=track, vrate_fpm=0))
        out = []
        # the unregistered drone: a slow circle of 300 m over the Wujing bank
        frame = LocalFrame(121.475, 31.055)
        angle = (t * 8.0 / 300.0) % (2 * math.pi)
        lon, lat = frame.to_lonlat(300 * math.cos(angle), 300 * math.sin(angle))
        out.append(self._rid(UNREGISTERED_SERIAL, lon, lat, 60.0, 8.0, (90 - math.degrees(angle) + 180) % 360, 0.0,
                             True))
        self._seq += 1
        out += [(topics.telemetry(self.root, uav_id), payloads.encode(payloads.telemetry(fix, self._seq, due)))
                for uav_id, fix in zip(PAIR_IDS, pair_fixes(t))]
        return out


def pair_fixes(t: float) -> tuple[Fix, Fix]:
    """PAIR-A flies east and PAIR-B west along 31.030 N at 80 m, 12 m/s each, from 1.2 km apart: they meet
    50 s into each 240 s cycle, 4 m apart (conflict_predicted about 18 s in, separation_loss about 48 s in, so a
    demo shows both within its first minute), then fly on until the cycle starts again."""
    frame = LocalFrame(121.48, 31.030)
    s = (t % PAIR_PERIOD_S) * 12.0
    xa, xb = -600.0 + s, 600.0 - s
    a, b = frame.to_lonlat(xa, 0.0), frame.to_lonlat(xb, 4.0)
    return (Fix(a[0], a[1], 80.0, 12.0, 90.0, 0.0, "Airborne", 80.0),
            Fix(b[0], b[1], 80.0, 12.0, 270.0, 0.0, "Airborne", 80.0))
