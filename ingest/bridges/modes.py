"""Mode S / ADS-B frames to decoded messages, a batch at a time.

Skylane does the framing-independent part that a stream needs and a library call per frame would waste time on:
- the CRC-24 of every frame of a batch at once (numpy): DF11/17/18 must leave a zero residue (DF11 may carry an
  interrogator code in its low 7 bits); for the address/parity replies (DF0/4/5/16/20/21) the residue IS the
  aircraft's address, accepted only when that address was heard in a CRC-checked DF11/17/18 within
  `verify_ttl_s` (a corrupted reply gives a random address: without this every bit error would be an aircraft);
- field extraction by bit slicing (downlink format, address, type code, CPR fractions);
- the meaning of each distinct field value through **rs1090** (the Rust decoder of the `traffic` library,
  MIT; docs/surveillance.md says why it and not pyModeS), called once per distinct value and cached: an
  identification message repeats byte for byte, a velocity message while the aircraft holds its course, an
  altitude code while it holds its level, so most frames cost a dict lookup.

CPR positions (pairing across batches, references) are the tracker's (ingest/bridges/tracker.py), since
rs1090's position decoding needs a whole recording in one call.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rs1090

from protocol.modes_crc import crc_residues

SHORT, LONG = 7, 14
ADSB_DF = (17, 18)
ALTITUDE_DF = (0, 4, 16, 20)
IDENTITY_DF = (5, 21)
CACHE_SIZE = 1 << 16

# emitter categories (DO-260B 2.2.3.2.5.2): type code 4..1 is set A..D, then the 3-bit category
CATEGORY_NAMES = {
    "A1": "light", "A2": "small", "A3": "large", "A4": "high_vortex_large", "A5": "heavy",
    "A6": "high_performance", "A7": "rotorcraft", "B1": "glider", "B2": "lighter_than_air", "B3": "parachutist",
    "B4": "ultralight", "B6": "uav", "B7": "space_vehicle", "C1": "surface_emergency_vehicle",
    "C3": "surface_service_vehicle", "C4": "ground_obstruction", "C5": "ground_obstruction",
    "C6": "ground_obstruction", "C7": "ground_obstruction"}


@dataclass(slots=True)
class Message:
    """What one accepted frame says. `kind`: "position" (airborne or surface CPR), "identification", "velocity",
    "altitude" (a Mode S reply's), "squawk", "commb_callsign"."""

    index: int  # in the batch
    ts: float
    icao: str
    kind: str
    df: int
    tc: int = 0
    odd: bool = False
    yz: int = 0
    xz: int = 0
    surface: bool = False
    altitude_ft: float | None = None
    gnss: bool = False  # altitude is GNSS height (type codes 20-22), not barometric
    callsign: str | None = None
    category: str | None = None
    squawk: str | None = None
    groundspeed_kt: float | None = None
    track_deg: float | None = None
    vrate_fpm: float | None = None
    geo_minus_baro_ft: float | None = None
    address_type: str = "icao"  # "non_icao" for DF18 anonymous / TIS-B track-file addresses
    signal: float | None = None
    lat: float | None = None  # set by the tracker once the CPR position is decoded
    lon: float | None = None


class LruCache(OrderedDict):
    """A bounded dict: the oldest entries go once `size` is passed (a stream must not grow without end)."""

    def __init__(self, size: int = CACHE_SIZE):
        super().__init__()
        self.size = size

    def put(self, key, value):
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class ModeSDecoder:
    """Frames (bytes) with receive times to `Message`s; counts what it refused in `stats` (by reason).

    Stateful only in what a stream needs: the addresses recently heard in CRC-checked frames (to accept the
    address/parity replies) and the caches of decoded field values."""

    def __init__(self, verify_ttl_s: float = 60.0, all_replies: bool = False):
        """`all_replies`: a message for every verified Mode S reply (altitude replies included); otherwise only
        for those that can change what the tracker knows (a new squawk, a Comm-B callsign)."""
        self.verify_ttl_s = verify_ttl_s
        self.all_replies = all_replies
        self._squawks: dict[int, tuple[int, int]] = {}
        self.known: dict[int, float] = {}  # address -> last time heard in a CRC-checked DF11/17/18
        self.stats: Counter = Counter()
        self._meaning: LruCache = LruCache()  # (kind, field bytes) -> decoded fields

    # ------------------------------------------------------------------------------------ batch
    def decode(self, ts: Sequence[float], frames: Sequence[bytes],
               signal: Sequence[float | None] | None = None) -> list[Message]:
        """The messages of a batch, in batch order (frames failing a check are counted, not returned)."""
        n = len(frames)
        self.stats["frames"] += n
        by_len: dict[int, list[int]] = {SHORT: [], LONG: []}
        frames = list(frames)
        for i, f in enumerate(frames):
            width = len(f)
            if width == LONG and f[0] < 0x80:  # a short reply (DF 0-15) padded to 14 bytes by the feed
                frames[i] = f = f[:SHORT]
                width = SHORT
            lst = by_len.get(width)
            if lst is None:
                self.stats["bad_length"] += 1
            else:
                lst.append(i)
        dfs = np.full(n, -1, dtype=np.int16)  # per batch index: downlink format, address (-1: refused)
        addresses = np.full(n, -1, dtype=np.int32)
        for width, idx in by_len.items():
            if not idx:
                continue
            arr = np.frombuffer(b"".join(frames[i] for i in idx), dtype=np.uint8).reshape(len(idx), width)
            residue = crc_residues(arr)
            df = np.minimum(arr[:, 0] >> 3, 24).astype(np.int16)
            addr = (arr[:, 1].astype(np.int32) << 16) | (arr[:, 2].astype(np.int32) << 8) | arr[:, 3]
            clean = ((df == 17) | (df == 18)) & (residue == 0) | (df == 11) & ((residue & 0xFFFF80) == 0)
            parity = np.isin(df, (0, 4, 5, 16, 20, 21))
            dfs[idx] = df
            addresses[idx] = np.where(clean, addr, np.where(parity, residue.astype(np.int32), -1))
        out: list[Message] = []
        known, ttl, stats, every = self.known, self.verify_ttl_s, self.stats, self.all_replies
        squawks = self._squawks
        for i, (df, address) in enumerate(zip(dfs.tolist(), addresses.tolist())):
            if df < 0:
                continue  # bad length, counted above
            t = ts[i]
            if address < 0:
                stats["crc_failed" if df in (11, 17, 18) else "unsupported_df"] += 1
                continue
            if df == 17 or df == 18:
                known[address] = t
                msg = self._adsb(i, t, frames[i], address, df)
            elif df == 11:
                known[address] = t
                stats["all_call"] += 1
                continue
            else:
                heard = known.get(address)
                if heard is None or t - heard > ttl:
                    stats["unverified_address"] += 1
                    continue
                frame = frames[i]
                if not every:  # decode only what can change an aircraft: a new squawk, a Comm-B callsign
                    if df == 5 or df == 21:
                        code = (frame[2] & 0x1F, frame[3])
                        if squawks.get(address) == code and not (df == 21 and frame[4] == 0x20):
                            stats["reply_unchanged"] += 1
                            continue
                        squawks[address] = code
                    elif not (df == 20 and frame[4] == 0x20):
                        stats["altitude_reply"] += 1  # positions carry their own altitude
                        continue
                msg = self._reply(i, t, frame, address, df)
            if msg is not None:
                if signal is not None:
                    msg.signal = signal[i]
                out.append(msg)
        if len(known) > CACHE_SIZE:  # forget addresses not heard for a TTL
            newest = max(known.values())
            for a in [a for a, h in known.items() if newest - h > ttl]:
                del known[a]
                squawks.pop(a, None)
        return out

    # ------------------------------------------------------------------------------------ ADS-B
    def _adsb(self, i: int, t: float, frame: bytes, address: int, df: int) -> Message | None:
        icao = f"{address:06x}"
        address_type = "icao"
        if df == 18:
            cf = frame[0] & 7
            if cf not in (0, 1, 2, 5, 6):
                self.stats["df18_unsupported"] += 1
                return None
            if cf in (1, 5):  # anonymous / TIS-B track-file addresses: not an aircraft's ICAO address
                address_type = "non_icao"
                icao = "~" + icao
        tc = frame[4] >> 3
        if 1 <= tc <= 4:
            fields = self._lookup("id", frame[4:11], frame)
            if fields is None:
                return None
            category = f"{'DCBA'[tc - 1]}{frame[4] & 7}" if frame[4] & 7 else None
            return Message(i, t, icao, "identification", df, tc, callsign=fields.get("callsign"), category=category,
                           address_type=address_type)
        if 5 <= tc <= 18 or 20 <= tc <= 22:
            odd = bool(frame[6] & 0x04)
            yz = ((frame[6] & 0x03) << 15) | (frame[7] << 7) | (frame[8] >> 1)
            xz = ((frame[8] & 0x01) << 16) | (frame[9] << 8) | frame[10]
            surface = tc <= 8
            if surface:  # movement and ground track
                fields = self._lookup("sfc", bytes((frame[4], frame[5], frame[6] & 0xF0)), frame)
                if fields is None:
                    return None
                return Message(i, t, icao, "position", df, tc, odd, yz, xz, True,
                               groundspeed_kt=fields.get("groundspeed"), track_deg=fields.get("track"),
                               address_type=address_type)
            ac = ((frame[5] << 4) | (frame[6] >> 4))
            fields = self._lookup("alt", bytes((tc, ac >> 8, ac & 0xFF)), frame)
            alt = None if fields is None else fields.get("altitude")
            return Message(i, t, icao, "position", df, tc, odd, yz, xz, False,
                           altitude_ft=alt, gnss=tc >= 20, address_type=address_type)
        if tc == 19:
            fields = self._lookup("vel", frame[4:11], frame)
            if fields is None:
                return None
            return Message(i, t, icao, "velocity", df, tc, groundspeed_kt=fields.get("groundspeed"),
                           track_deg=fields.get("track"), vrate_fpm=fields.get("vertical_rate"),
                           geo_minus_baro_ft=fields.get("geo_minus_baro"), address_type=address_type)
        self.stats[f"adsb_tc{tc}_ignored"] += 1
        return None

    # ------------------------------------------------------------------------------- Mode S replies
    def _reply(self, i: int, t: float, frame: bytes, address: int, df: int) -> Message | None:
        icao = f"{address:06x}"
        code = bytes((frame[2] & 0x1F, frame[3]))
        if df in ALTITUDE_DF:
            fields = self._lookup("ac13", code, frame)
            alt = None if fields is None else fields.get("altitude")
            if df == 20 and frame[4] == 0x20:  # Comm-B BDS 2,0 (aircraft identification) names itself
                cs = self._lookup("bds20", frame[4:11], frame)
                if cs and (bds := cs.get("bds20")) and bds.get("callsign"):
                    return Message(i, t, icao, "commb_callsign", df, altitude_ft=alt, callsign=bds["callsign"])
            if alt is None:
                self.stats["altitude_unavailable"] += 1  # all-zero or an invalid Gillham code
            return Message(i, t, icao, "altitude", df, altitude_ft=alt)
        fields = self._lookup("id13", code, frame)
        squawk = None if fields is None else fields.get("squawk")
        if df == 21 and frame[4] == 0x20:
            cs = self._lookup("bds20", frame[4:11], frame)
            if cs and (bds := cs.get("bds20")) and bds.get("callsign"):
                return Message(i, t, icao, "commb_callsign", df, squawk=squawk, callsign=bds["callsign"])
        return Message(i, t, icao, "squawk", df, squawk=squawk) if squawk is not None else None

    def _lookup(self, kind: str, key_bytes: bytes, frame: bytes) -> dict | None:
        """The library's reading of a field value, decoded once per distinct value."""
        key = (kind, bytes(key_bytes))
        hit = self._meaning.get(key)
        if hit is not None or key in self._meaning:
            self.stats["cache_hits"] += 1
            return hit
        try:
            fields = rs1090.decode(frame.hex())
        except Exception as exc:  # the library refused it: counted as a bad frame, never a crash
            self.stats[f"undecodable:{type(exc).__name__}"] += 1
            fields = None
        self.stats["library_calls"] += 1
        return self._meaning.put(key, fields)

