"""The outputs of a 1090 MHz receiver (dump1090, readsb, a Beast), as frames or records. Pure: bytes in, items out.

- Beast binary (TCP 30005, and capture files): `0x1a`, a type byte (`'1'` Mode A/C, `'2'` Mode S short, `'3'`
  Mode S long, `'4'` status), a 6-byte 12 MHz counter, a signal byte, then the frame; every `0x1a` inside is
  doubled. `BeastParser.feed` takes bytes as they arrive (a message may be split over reads) and yields
  `(ticks, signal, frame)`; bytes that do not make a message are counted (`skipped_bytes`) and skipped up to
  the next `0x1a`, which is how a reader resynchronises.
- Raw AVR (TCP 30002): one frame per line, `*<hex>;`, or `@<12 hex digits of counter><hex>;` with a timestamp.
- SBS BaseStation CSV (TCP 30003): records already decoded by the receiver (`MSG,<type>,...`, 22 fields).
- JSON lines of raw frames (recordings): `{"timestamp": epoch seconds, "frame": hex}` (what the reference data
  in tests/data/adsb/ holds) or `{"ts": RFC 3339 or epoch s, "frame": hex, "signal": dBFS}`.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import orjson

from protocol.times import parse_rfc3339

ESC = 0x1A
BEAST_LENGTHS = {0x31: 2, 0x32: 7, 0x33: 14, 0x34: 14}
BEAST_CLOCK_HZ = 12_000_000
MAX_LINE = 1024


def signal_dbfs(byte: int) -> float:
    """The Beast signal byte as dBFS (dump1090's reading: the byte is the square root of the power, scaled to 255)."""
    return round(20.0 * math.log10(max(byte, 1) / 255.0), 1)


class BeastParser:
    """Incremental Beast decoder: feed() any chunk of the stream, get the complete messages in it."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped_bytes = 0
        self.mode_ac = 0  # Mode A/C replies (no address: not used)
        self.status = 0

    def feed(self, data: bytes) -> Iterator[tuple[int, int, bytes]]:
        buf = self._buf
        buf += data
        i, n = 0, len(buf)
        while i < n:
            if buf[i] != ESC:
                j = buf.find(ESC, i)
                j = n if j < 0 else j
                self.skipped_bytes += j - i
                i = j
                continue
            if i + 1 >= n:
                break
            length = BEAST_LENGTHS.get(buf[i + 1])
            if length is None:  # a doubled 0x1a out of sync, or garbage: resynchronise on the next one
                self.skipped_bytes += 1
                i += 1
                continue
            body, j, need = bytearray(), i + 2, 7 + length
            complete = True
            while len(body) < need:
                if j >= n:
                    complete = False
                    break
                b = buf[j]
                if b == ESC:
                    if j + 1 >= n:
                        complete = False
                        break
                    if buf[j + 1] != ESC:  # a lone 0x1a: a new message starts, this one is broken
                        break
                    j += 1
                body.append(b)
                j += 1
            if not complete:
                break
            if len(body) < need:
                self.skipped_bytes += j - i
                i = j
                continue
            kind = buf[i + 1]
            i = j
            if kind == 0x31:
                self.mode_ac += 1
            elif kind == 0x34:
                self.status += 1
            else:
                yield int.from_bytes(body[:6], "big"), body[6], bytes(body[7:])
        del buf[:i]


def parse_avr(line: bytes) -> tuple[int | None, bytes]:
    """(counter or None, frame) of one AVR line; ValueError naming what is wrong."""
    line = line.strip()
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    if not line.endswith(b";") or line[:1] not in (b"*", b"@", b":"):
        raise ValueError("not an AVR frame (*hex; or @counter hex;)")
    body = line[1:-1]
    ticks = None
    if line[:1] == b"@":
        ticks, body = int(body[:12], 16), body[12:]
    frame = bytes.fromhex(body.decode("ascii"))
    if len(frame) not in (7, 14):
        raise ValueError(f"frame of {len(frame)} bytes (7 or 14)")
    return ticks, frame


def _num(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {text!r}")
    return value


def parse_sbs(line: bytes) -> dict | None:
    """One BaseStation line as {"icao", "callsign", "altitude_ft", "groundspeed_kt", "track_deg", "lat", "lon",
    "vrate_fpm", "squawk", "ground"} (fields absent from the line are None); None for lines that are not aircraft
    messages (SEL, ID, AIR, STA, CLK); ValueError for a malformed one."""
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    f = line.decode("ascii", "strict").strip().split(",")
    if f[0] != "MSG":
        if f[0] in ("SEL", "ID", "AIR", "STA", "CLK", ""):
            return None
        raise ValueError(f"unknown record type {f[0][:10]!r}")
    if len(f) < 22:
        raise ValueError(f"{len(f)} fields (22 expected)")
    icao = f[4].strip().lower()
    if len(icao) != 6 or any(c not in "0123456789abcdef" for c in icao):
        raise ValueError(f"hex ident {f[4][:10]!r} is not 6 hex digits")
    lat, lon = _num(f[14]), _num(f[15])
    if lat is not None and not (-90 <= lat <= 90) or lon is not None and not (-180 <= lon <= 180):
        raise ValueError("latitude or longitude out of range")
    squawk = f[17].strip() or None
    return {"icao": icao, "callsign": f[10].strip() or None, "altitude_ft": _num(f[11]),
            "groundspeed_kt": _num(f[12]), "track_deg": _num(f[13]), "lat": lat, "lon": lon,
            "vrate_fpm": _num(f[16]), "squawk": squawk, "ground": f[21].strip() in ("-1", "1")}


def parse_json_frame(line: bytes) -> tuple[float, bytes, float | None]:
    """(receive time in epoch seconds, frame, signal dBFS or None) of one JSON line; ValueError otherwise."""
    doc = orjson.loads(line)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    raw = doc.get("timestamp", doc.get("ts"))
    if isinstance(raw, str):
        t = parse_rfc3339(raw).timestamp()
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool) and math.isfinite(raw):
        t = float(raw)
    else:
        raise ValueError("no usable 'timestamp' (epoch seconds) or 'ts'")
    hexframe = doc.get("frame")
    if not isinstance(hexframe, str):
        raise ValueError("no 'frame' hex string")
    frame = bytes.fromhex(hexframe)
    if len(frame) not in (7, 14):
        raise ValueError(f"frame of {len(frame)} bytes (7 or 14)")
    signal = doc.get("signal")
    return t, frame, float(signal) if isinstance(signal, (int, float)) and not isinstance(signal, bool) else None


def iso_or_epoch(value: str) -> float:
    """A start time given on the command line: RFC 3339 or epoch seconds."""
    try:
        return float(value)
    except ValueError:
        return parse_rfc3339(value).timestamp()


def beast_frame(frame: bytes, ticks: int = 0, signal: int = 0xC0) -> bytes:
    """One Beast message for a Mode S frame (simulators, tests): type, counter and signal, 0x1a doubled."""
    kind = {7: 0x32, 14: 0x33}[len(frame)]
    body = ticks.to_bytes(6, "big") + bytes((signal,)) + frame
    return bytes((ESC, kind)) + body.replace(b"\x1a", b"\x1a\x1a")
