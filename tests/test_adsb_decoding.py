"""ADS-B decoding parts: CPR across zone boundaries, the frame encoder's round trip, receiver framings, and a
receiver that drops its TCP link and comes back (the bridge reconnects and reports the silence)."""
from __future__ import annotations

import socket
import threading


import orjson
import pytest

from ingest.bridges import framing
from protocol import cpr
from protocol import modes_encode as encode
from ingest.bridges.adsb import AdsbBridge, Output
from ingest.bridges.modes import ModeSDecoder
from protocol.modes_crc import crc_residue
from ingest.bridges.tracker import Tracker

from .helpers import wait_until

T0 = 1_796_000_000.0  # 2026-11-30


def decode(frames, times, tracker=None, decoder=None):
    decoder = decoder or ModeSDecoder()
    tracker = tracker or Tracker("rx")
    return tracker.update(decoder.decode(times, frames)), tracker, decoder


# ------------------------------------------------------------------------------------------------------ CPR

def test_nl_matches_the_closed_form_of_the_standard_at_every_latitude():
    import math

    def closed_form(lat):
        if abs(lat) >= 87.0:
            return 1
        a = 1 - math.cos(math.pi / 30)
        return math.floor(2 * math.pi / math.acos(1 - a / math.cos(math.radians(lat)) ** 2))

    for k in range(0, 8700):
        lat = k / 100 + 0.003
        assert cpr.nl(lat) == closed_form(lat) == cpr.nl(-lat), lat


@pytest.mark.parametrize("lat,lon", [(31.05, 121.47), (-33.9, 151.2), (49.0097, 2.5479), (0.1, -179.9), (86.9, 10.0),
                                     (59.9999, 0.0001), (12.0, -0.0001)])
def test_encoding_then_global_and_local_decoding_give_the_position_back(lat, lon):
    even, odd = cpr.encode(lat, lon, False), cpr.encode(lat, lon, True)
    lon_step = 360 / max(cpr.nl(lat) - 1, 1) / 2**17  # CPR's resolution: ~5 m, coarser in longitude near the poles
    for latest_odd in (False, True):
        got = cpr.global_airborne(even, odd, latest_odd)
        assert got is not None and abs(got[0] - lat) < 6e-5 and abs((got[1] - lon + 180) % 360 - 180) < lon_step
    ref = (lat + 1.5 if lat < 85 else lat - 1.5, lon - 1.0)  # 90+ NM away: still within half a zone
    got = cpr.local(*odd, True, ref[0], ref[1] if ref[1] > -180 else ref[1] + 360)
    assert abs(got[0] - lat) < 6e-5 and abs((got[1] - lon + 180) % 360 - 180) < lon_step


def test_a_pair_across_a_longitude_zone_boundary_waits_for_the_next_message():
    boundary = cpr._TRANSITIONS[20]  # NL 39 -> 38 at about 46.9°
    below, above = boundary - 0.002, boundary + 0.002
    icao = "780abc"
    frames = [encode.airborne_position(icao, below, 121.0, 3000, odd=False),  # NL 39 ...
              encode.airborne_position(icao, above, 121.0, 3000, odd=True)]  # ... NL 38: no global decoding
    assert cpr.nl(below) != cpr.nl(above)
    assert cpr.global_airborne(cpr.encode(below, 121.0, False), cpr.encode(above, 121.0, True), True) is None
    obs, tracker, decoder = decode(frames, [T0, T0 + 1])
    assert obs == [] and tracker.stats["pair_across_zone_boundary"] == 1
    # the next even message pairs with the odd one on the same side: decoded, and the latitude is right
    more, *_ = decode([encode.airborne_position(icao, above + 0.001, 121.0, 3000, odd=False)], [T0 + 2],
                      tracker, decoder)
    assert len(more) == 1 and abs(more[0].lat - (above + 0.001)) < 6e-5 and abs(more[0].lon - 121.0) < 6e-5
    # and a lone message from then on decodes locally against the aircraft's own position
    more, *_ = decode([encode.airborne_position(icao, above + 0.01, 121.01, 3000, odd=True)], [T0 + 30],
                      tracker, decoder)
    assert len(more) == 1 and abs(more[0].lat - (above + 0.01)) < 6e-5


def test_a_pair_across_a_latitude_zone_edge_and_pairs_too_far_apart_in_time():
    icao = "780abd"
    lat_edge = 6.0 * 5  # 30°: the edge between even latitude zones 4 and 5
    frames = [encode.airborne_position(icao, lat_edge - 0.0005, 121.0, 1000, odd=False),
              encode.airborne_position(icao, lat_edge + 0.0005, 121.0, 1000, odd=True)]
    obs, *_ = decode(frames, [T0, T0 + 0.5])
    assert len(obs) == 1 and abs(obs[0].lat - (lat_edge + 0.0005)) < 6e-5
    # 11 s apart is no pair (an aircraft may have crossed a zone meanwhile): nothing without a reference ...
    obs, tracker, _ = decode(frames, [T0, T0 + 11])
    assert obs == [] and tracker.stats["position_waiting_for_pair"] == 2
    # ... and the receiver's position as a local reference (configured --lat/--lon) decodes each message
    obs, *_ = decode(frames, [T0, T0 + 11], Tracker("rx", (31.2, 121.5)))
    assert len(obs) == 2 and abs(obs[0].lat - (lat_edge - 0.0005)) < 6e-5


# ------------------------------------------------------------------------------------------- encoder, CRC

def test_the_frames_a_simulated_helicopter_sends_decode_back_to_its_position_identity_and_velocity():
    frames = encode.aircraft_frames("7800ab", lat=31.0456, lon=121.4912, alt_ft=500, callsign="B7215", category="A7",
                                    groundspeed_kt=80, track_deg=45, vrate_fpm=-320, geo_minus_baro_ft=-75)
    assert all(len(f) == 14 and crc_residue(f) == 0 for f in frames)
    obs, *_ = decode(frames, [T0, T0 + 0.1, T0 + 0.2, T0 + 0.3])
    assert len(obs) == 1
    o = obs[0]
    assert (o.source, o.track_id, o.receiver_id) == ("adsb", "7800ab", "rx")
    assert abs(o.lat - 31.0456) < 6e-5 and abs(o.lon - 121.4912) < 6e-5
    assert o.identity == {"icao24": "7800ab", "callsign": "B7215", "category": "A7", "category_name": "rotorcraft"}
    assert (o.alt_ref, o.alt_source) == ("WGS84", "geometric") and o.alt_m == pytest.approx((500 - 75) * 0.3048, abs=0.1)
    assert o.speed_mps == pytest.approx(80 * 0.5144, abs=0.5) and o.track_deg == pytest.approx(45, abs=1)
    assert o.vspeed_mps == pytest.approx(-320 * 0.00508, abs=0.4)
    # without the GNSS difference the barometric altitude is reported as pressure altitude (AMSL)
    frames = encode.aircraft_frames("7800ac", lat=31.0, lon=121.4, alt_ft=1000)
    obs, *_ = decode(frames, [T0, T0 + 0.1])
    assert (obs[0].alt_m, obs[0].alt_ref, obs[0].alt_source) == (304.8, "AMSL", "baro")
    # GNSS height (type codes 20-22): above the WGS84 ellipsoid
    frames = [encode.airborne_position("7800ae", 31.0, 121.4, 825, odd=k == 1, type_code=20) for k in range(2)]
    obs, *_ = decode(frames, [T0, T0 + 0.1])
    assert (obs[0].alt_m, obs[0].alt_ref, obs[0].alt_source) == (251.5, "WGS84", "gnss")
    with pytest.raises(ValueError):
        encode.identification("7800ab", "B72_15")


def test_a_corrupted_frame_is_counted_never_decoded_nor_fatal():
    good = encode.aircraft_frames("7800ad", lat=31.0, lon=121.4, alt_ft=800, callsign="HELI1", groundspeed_kt=60)
    bad = [f[:6] + bytes((f[6] ^ 0x01,)) + f[7:] for f in good]  # one bit each
    junk = [b"", b"\x8d", bytes(14), bytes(range(14)), b"\xff" * 7]
    obs, tracker, decoder = decode(bad + junk + good, [T0 + k * 0.01 for k in range(len(bad + junk + good))])
    st = decoder.stats
    assert (st["crc_failed"], st["bad_length"], st["unverified_address"], st["unsupported_df"]) == (len(bad), 2, 2, 1)
    assert len(obs) == 1 and obs[0].identity["callsign"] == "HELI1"


# ------------------------------------------------------------------------------------------------ framings

def test_beast_messages_split_anywhere_and_with_escaped_0x1a_bytes_come_out_whole():
    frames = encode.aircraft_frames("1a1a1a", lat=31.1, lon=121.3, alt_ft=700, callsign="ESC1A", groundspeed_kt=100)
    stream = b"".join(framing.beast_frame(f, ticks=0x1A1A1A1A1A1A, signal=0x1A) for f in frames)
    assert stream.count(b"\x1a\x1a") >= 8
    for cut in range(1, len(stream)):
        parser = framing.BeastParser()
        got = list(parser.feed(stream[:cut])) + list(parser.feed(stream[cut:]))
        assert [g[2] for g in got] == frames and parser.skipped_bytes == 0, cut
        assert got[0][:2] == (0x1A1A1A1A1A1A, 0x1A)


def test_avr_sbs_and_json_lines_parse_and_bad_lines_say_why():
    frame = encode.identification("7800ab", "B7215", "A7")
    assert framing.parse_avr(b"*" + frame.hex().upper().encode() + b";\r\n") == (None, frame)
    assert framing.parse_avr(b"@0000000012ab" + frame.hex().encode() + b";") == (0x12AB, frame)
    for line in (b"8d7800ab;", b"*zz;", b"*8d78;"):
        with pytest.raises(ValueError):
            framing.parse_avr(line)
    sbs = b"MSG,3,1,1,7800AB,1,2026/11/30,08:00:00.000,2026/11/30,08:00:00.000,,1500,,,31.0456,121.4912,,,0,0,0,0"
    rec = framing.parse_sbs(sbs)
    assert rec["icao"] == "7800ab" and rec["lat"] == 31.0456 and rec["altitude_ft"] == 1500 and not rec["ground"]
    assert framing.parse_sbs(b"STA,,5,179,400AE7,10103,2008/11/28,14:58:51.153,2008/11/28,14:58:51.153,RM") is None
    for line in (b"MSG,3,1,1,XYZ", b"MSG,3,1,1,ZZZZZZ,1,,,,,,1500,,,31.0,121.0,,,0,0,0,0", b"NOPE,1"):
        with pytest.raises(ValueError):
            framing.parse_sbs(line)
    t, f, s = framing.parse_json_frame(b'{"timestamp": 1720248189.5, "frame": "8f393322384a02aea63afc43dcba"}')
    assert (t, f.hex(), s) == (1720248189.5, "8f393322384a02aea63afc43dcba", None)
    with pytest.raises(ValueError):
        framing.parse_json_frame(b'{"frame": "8f39"}')


def test_sbs_and_avr_lines_through_the_bridge_count_the_bad_ones():
    out: list = []
    bridge = AdsbBridge(Output(lambda t, p, r: out.append((t, p, r)), "sky/v1"), "rx-1")
    frames = encode.aircraft_frames("7800ab", lat=31.0456, lon=121.4912, alt_ft=500, callsign="B7215")
    lines = [b"*" + f.hex().encode() + b";" for f in frames] + [b"garbage"]
    assert bridge.avr_lines(lines, T0) == 1
    sbs = [b"MSG,1,1,1,7800AE,1,,,,,HELI2 ,,,,,,,,0,0,0,0",
           b"MSG,3,1,1,7800AE,1,,,,,,1500,,,31.0,121.5,,,0,0,0,0", b"MSG,3,bad"]
    assert bridge.sbs_lines(sbs, T0) == 1
    assert bridge.stats["bad_avr_line"] == 1 and bridge.stats["bad_sbs_line"] == 1
    topics_ = [t for t, _, _ in out]
    assert topics_ == ["sky/v1/obs/adsb/7800ab", "sky/v1/obs/adsb/7800ae"]
    assert orjson.loads(out[1][1])["identity"] == {"icao24": "7800ae", "callsign": "HELI2"}


# ----------------------------------------------------------------------------------------- receiver restart

class FakeReceiver:
    """A dump1090 on a local port: serves Beast frames to whoever connects, can go away and come back."""

    def __init__(self):
        self.port = None
        self.sock = None
        self.conns: list[socket.socket] = []
        self.listen()

    def listen(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port or 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen()
        threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()

    def _accept(self, sock):
        try:
            conn, _ = sock.accept()
            self.conns.append(conn)
        except OSError:
            pass

    def send(self, data: bytes):
        wait_until(lambda: self.conns, 10, "the bridge did not connect")
        self.conns[-1].sendall(data)

    def drop(self):
        for c in self.conns:
            c.close()
        self.conns.clear()
        self.sock.close()


def test_a_receiver_that_restarts_is_reconnected_and_its_silence_is_reported():
    out: list = []
    lock = threading.Lock()

    def publish(topic, payload, retain):
        with lock:
            out.append((topic, payload, retain))

    bridge = AdsbBridge(Output(publish, "sky/v1"), "rx-minhang", silence_s=0.3)
    rx = FakeReceiver()
    stop = threading.Event()
    thread = threading.Thread(target=bridge.run_tcp, args=("127.0.0.1", rx.port, "beast", stop),
                              kwargs={"max_delay_s": 0.2, "recv_timeout_s": 0.05}, daemon=True)
    thread.start()

    def sent(icao, lat):
        rx.send(b"".join(framing.beast_frame(f) for f in encode.aircraft_frames(icao, lat, 121.4, 600)))

    def statuses():
        with lock:
            return [p for t, p, r in out if t == "sky/v1/device/rx-minhang/status" and r]

    def observed():
        with lock:
            return [orjson.loads(p)["track_id"] for t, p, _ in out if "/obs/adsb/" in t]

    try:
        sent("7800a1", 31.0)
        wait_until(lambda: observed() == ["7800a1"], 10, "no observation from the first session")
        rx.drop()  # the receiver restarts: link gone, and nothing for longer than silence_s
        wait_until(lambda: statuses() == [b"online", b"offline"], 10, "silence not reported")
        rx.listen()
        sent("7800a2", 31.1)
        wait_until(lambda: observed() == ["7800a1", "7800a2"], 10, "no observation after the restart")
        assert statuses() == [b"online", b"offline", b"online"]
        assert bridge.stats["connects"] >= 2 and bridge.stats["disconnects"] >= 1
    finally:
        stop.set()
        thread.join(10)
        rx.drop()
    assert not thread.is_alive()



def test_skylane_adsb_decodes_a_capture_file_and_counts_its_bad_lines(tmp_path, capsys, caplog):
    import logging

    from skylane.cli import main
    caplog.set_level(logging.INFO, logger="skylane.adsb")
    lines = [orjson.dumps({"timestamp": T0 + k * 0.1, "frame": f.hex()})
             for k, f in enumerate(encode.aircraft_frames("7800ab", 31.0456, 121.4912, 500, callsign="B7215",
                                                          category="A7", groundspeed_kt=80, track_deg=45))]
    capture = tmp_path / "frames.jsonl"
    capture.write_bytes(b"\n".join(lines[:2] + [b'{"frame": 12}', b"not json"] + lines[2:]) + b"\n")
    assert main(["adsb", "--file", str(capture), "--stdout", "--receiver-id", "rx-test"]) == 0
    out = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["topic"] for o in out] == ["skylane/v1/obs/adsb/7800ab"]
    assert out[0]["payload"]["identity"]["category_name"] == "rotorcraft"
    assert out[0]["payload"]["receiver_id"] == "rx-test" and out[0]["payload"]["ts"].startswith("2026-11-30")
    assert "'bad_json_line': 2" in caplog.text and "'frames': 4" in caplog.text
