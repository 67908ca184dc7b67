"""Per-aircraft state of an ADS-B receiver's stream: decoded messages in, observations (the contract) out.

Positions (CPR, protocol/cpr.py), in this order:
1. an airborne message and the other format's last message of the same aircraft, received at most `pair_s`
   (10 s) apart: global decoding, unambiguous; a pair straddling a longitude-zone boundary (the two formats
   give different NL) is not decoded, the next message is;
2. otherwise local decoding against the aircraft's own last position, if at most `local_age_s` old;
3. otherwise local decoding against the receiver's position (`receiver`, `--lat/--lon`), airborne only within
   `max_range_km` of it (local decoding is exact within 180 NM, half a zone).
Surface positions have quarter-size zones and an ambiguity of 90°, so they only decode locally: against the
aircraft's last position, else the receiver's (which must then be within 45 NM: configure it).

Altitudes (the project's vertical model, airspace/vertical.py):
- barometric (type codes 9-18, and Mode S replies): pressure altitude, referenced to 1013.25 hPa, not to the
  sea. With the aircraft's GNSS-minus-baro difference from a velocity message of the last `diff_age_s`, the
  observation carries the geometric height: baro + difference, `alt_ref` WGS84, `alt_source` "geometric".
  Without it, pressure altitude as AMSL (`alt_source` "baro"): exact in the standard atmosphere only, about
  8 m off per hPa of QNH difference (docs/surveillance.md);
- GNSS height (type codes 20-22): `alt_ref` WGS84, `alt_source` "gnss";
- surface positions: 0 m AGL, `alt_source` "reported" (the message says the aircraft is on the ground).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ingest.rows import ObservationRow

from protocol import cpr
from .modes import CATEGORY_NAMES, Message

FT = 0.3048
KT = 1852.0 / 3600.0
FPM = FT / 60.0
EARTH_RADIUS_KM = 6371.0088
MAX_SPEED_MPS = 1000.0  # a jump faster than this from a recent position is refused (a frame that passed CRC by luck)


@dataclass(slots=True)
class Aircraft:
    icao: str
    last_seen: float = 0.0
    even: tuple[float, int, int, bool] | None = None  # (t, yz, xz, surface)
    odd: tuple[float, int, int, bool] | None = None
    position: tuple[float, float, float] | None = None  # (t, lat, lon)
    verified: bool = False  # the position comes from a global decoding (or local ones chained from it)
    velocity: tuple[float, float | None, float | None, float | None] | None = None  # (t, kt, deg, fpm)
    geo_minus_baro: tuple[float, float] | None = None  # (t, ft)
    identity: dict = field(default_factory=dict)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


class Tracker:
    """Keeps each aircraft's recent messages and turns position messages into ObservationRows."""

    def __init__(self, receiver_id: str | None = None, receiver: tuple[float, float] | None = None, *,
                 source: str = "adsb", pair_s: float = 10.0, local_age_s: float = 300.0, diff_age_s: float = 30.0,
                 velocity_age_s: float = 10.0, max_range_km: float = 330.0, forget_s: float = 600.0,
                 surface_age_s: float = 120.0):
        self.receiver_id = receiver_id
        self.receiver = receiver
        self.source = source
        self.pair_s, self.local_age_s, self.diff_age_s = pair_s, local_age_s, diff_age_s
        self.velocity_age_s, self.max_range_km, self.forget_s = velocity_age_s, max_range_km, forget_s
        self.surface_age_s = surface_age_s
        self.aircraft: dict[str, Aircraft] = {}
        self.stats: Counter = Counter()
        self._newest = 0.0

    # --------------------------------------------------------------------------------- messages
    def update(self, messages: Iterable[Message]) -> list[ObservationRow]:
        out: list[ObservationRow] = []
        aircraft = self.aircraft
        for m in messages:
            ac = aircraft.get(m.icao)
            if ac is None:
                ac = aircraft[m.icao] = Aircraft(m.icao, identity=_identity_of(m.icao, m.address_type))
            ac.last_seen = m.ts
            kind = m.kind
            if kind == "position":
                pos = self.position(ac, m)
                if pos is not None:
                    m.lat, m.lon = pos
                    out.append(self._observation(ac, m, pos))
            elif kind == "velocity":
                ac.velocity = (m.ts, m.groundspeed_kt, m.track_deg, m.vrate_fpm)
                if m.geo_minus_baro_ft is not None:
                    ac.geo_minus_baro = (m.ts, m.geo_minus_baro_ft)
            elif kind == "identification":
                if m.callsign:
                    ac.identity["callsign"] = m.callsign
                if m.category:
                    ac.identity["category"] = m.category
                    ac.identity["category_name"] = CATEGORY_NAMES.get(m.category, "reserved")
            elif kind == "commb_callsign":
                ac.identity.setdefault("callsign", m.callsign)
            elif kind == "squawk":
                ac.identity["squawk"] = m.squawk
        if out or messages:
            self._forget()
        return out

    def position(self, ac: Aircraft, m: Message) -> tuple[float, float] | None:
        """The message's position (see the module docstring), or None (counted by reason)."""
        t = m.ts
        cur = (t, m.yz, m.xz, m.surface)
        other = ac.even if m.odd else ac.odd
        if m.odd:
            ac.odd = cur
        else:
            ac.even = cur
        pos = None
        last = ac.position
        if not m.surface and other is not None and not other[3] and 0 <= t - other[0] <= self.pair_s:
            even, odd = (other[1:3], cur[1:3]) if m.odd else (cur[1:3], other[1:3])
            pos = cpr.global_airborne(even, odd, m.odd)
            if pos is None:
                self.stats["pair_across_zone_boundary"] += 1
            elif ac.verified and last is not None and 0 < t - last[0] <= 60.0 and \
                    haversine_km(last[1], last[2], *pos) * 1000.0 > MAX_SPEED_MPS * (t - last[0]) + 1000.0:
                self.stats["implausible_jump"] += 1  # two trusted positions disagree: a frame passed CRC by luck
                return None
            else:
                ac.verified = True
        if pos is None and ac.position is not None and \
                t - ac.position[0] <= (self.surface_age_s if m.surface else self.local_age_s):
            pos = cpr.local(m.yz, m.xz, m.odd, ac.position[1], ac.position[2], m.surface)
        if pos is None and self.receiver is not None:
            pos = cpr.local(m.yz, m.xz, m.odd, self.receiver[0], self.receiver[1], m.surface)
            ac.verified = False  # right only if the aircraft is within half a zone of the receiver
            limit = 80.0 if m.surface else self.max_range_km
            if haversine_km(pos[0], pos[1], *self.receiver) > limit:
                self.stats["beyond_receiver_range"] += 1
                return None
        if pos is None:
            self.stats["position_waiting_for_pair" if not m.surface else "surface_without_reference"] += 1
            return None
        ac.position = (t, pos[0], pos[1])
        return pos

    def _observation(self, ac: Aircraft, m: Message, pos: tuple[float, float]) -> ObservationRow:
        t = m.ts
        speed = track = vspeed = None
        if m.surface:
            alt, ref, alt_source = 0.0, "AGL", "reported"
            speed = None if m.groundspeed_kt is None else m.groundspeed_kt * KT
            track = m.track_deg
        else:
            alt = ref = alt_source = None
            if m.altitude_ft is not None:
                if m.gnss:
                    alt, ref, alt_source = m.altitude_ft * FT, "WGS84", "gnss"
                elif ac.geo_minus_baro is not None and t - ac.geo_minus_baro[0] <= self.diff_age_s:
                    alt, ref, alt_source = (m.altitude_ft + ac.geo_minus_baro[1]) * FT, "WGS84", "geometric"
                else:
                    alt, ref, alt_source = m.altitude_ft * FT, "AMSL", "baro"
            v = ac.velocity
            if v is not None and t - v[0] <= self.velocity_age_s:
                speed = None if v[1] is None else v[1] * KT
                track, vspeed = v[2], None if v[3] is None else v[3] * FPM
        when = datetime.fromtimestamp(t, tz=timezone.utc)
        rssi = None if m.signal is None else round(m.signal, 1)
        return ObservationRow(when, self.source, ac.icao, round(pos[1], 7), round(pos[0], 7),
                              None if alt is None else round(alt, 1), ref, alt_source,
                              None if speed is None else round(speed, 2), None if track is None else round(track, 2),
                              None if vspeed is None else round(vspeed, 2), self.receiver_id, rssi, when,
                              dict(ac.identity))

    def _forget(self) -> None:
        """Drop aircraft not heard for `forget_s` (checked every 1,000 aircraft-updates' worth of time)."""
        newest = max((a.last_seen for a in self.aircraft.values()), default=0.0) if len(self.aircraft) > 1000 \
            else 0.0
        if newest and newest - self._newest > 60:
            self._newest = newest
            for icao in [i for i, a in self.aircraft.items() if newest - a.last_seen > self.forget_s]:
                del self.aircraft[icao]

    # ------------------------------------------------------------------------------------ SBS
    def update_sbs(self, rec: dict, t: float) -> ObservationRow | None:
        """One BaseStation record (ingest/bridges/framing.parse_sbs): positions are already decoded there."""
        icao = rec["icao"]
        ac = self.aircraft.get(icao)
        if ac is None:
            ac = self.aircraft[icao] = Aircraft(icao, identity=_identity_of(icao, "icao"))
        ac.last_seen = t
        if rec.get("callsign"):
            ac.identity["callsign"] = rec["callsign"]
        if rec.get("squawk"):
            ac.identity["squawk"] = rec["squawk"]
        if rec.get("groundspeed_kt") is not None or rec.get("vrate_fpm") is not None:
            ac.velocity = (t, rec.get("groundspeed_kt"), rec.get("track_deg"), rec.get("vrate_fpm"))
        if rec.get("lat") is None or rec.get("lon") is None:
            return None
        m = Message(0, t, icao, "position", 17, altitude_ft=rec.get("altitude_ft"), surface=bool(rec.get("ground")),
                    groundspeed_kt=rec.get("groundspeed_kt"), track_deg=rec.get("track_deg"))
        ac.position = (t, rec["lat"], rec["lon"])
        return self._observation(ac, m, (rec["lat"], rec["lon"]))


def _identity_of(icao: str, address_type: str) -> dict:
    ident = {"icao24": icao.lstrip("~")}
    if address_type != "icao":
        ident["address_type"] = address_type
    return ident
