"""Skylane's ADS-B decoding held against real data: 57,793 frames of one flight with a reference decoder's fields
(tests/data/adsb/PROVENANCE.md), and a real Beast capture. The figures are the ones in docs/surveillance.md."""
from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from ingest.bridges import adsb, framing
from ingest.bridges.modes import ModeSDecoder
from ingest.bridges.tracker import Tracker

DATA = Path(__file__).parent / "data" / "adsb"
CDG = (49.0097, 2.5479)  # the flight starts on the ground there: surface positions need a local reference


@pytest.fixture(scope="module")
def decoded():
    rows = [json.loads(line) for line in gzip.open(DATA / "full_flight_short.jsonl.gz")]
    decoder, tracker = ModeSDecoder(all_replies=True), Tracker("test-rx", CDG)
    by_index, observations = {}, []
    for i in range(0, len(rows), 4096):  # in chunks, as the bridge reads them: CPR pairs span chunks
        chunk = rows[i:i + 4096]
        msgs = decoder.decode([r["timestamp"] for r in chunk], [bytes.fromhex(r["frame"]) for r in chunk])
        observations += tracker.update(msgs)
        by_index.update({i + m.index: m for m in msgs})
    return rows, by_index, observations, decoder, tracker


def test_every_position_of_the_real_flight_agrees_with_the_reference_within_1e_5_degrees(decoded):
    rows, msgs, observations, _, tracker = decoded
    positions = [(r, msgs.get(i)) for i, r in enumerate(rows) if "latitude" in r]
    assert len(positions) == 8324
    surface = sum(1 for r, _ in positions if r["bds"] == "06")
    assert surface == 1867  # decoded locally: against the receiver, then against the aircraft's own position
    worst = max(max(abs(m.lat - r["latitude"]), abs(m.lon - r["longitude"])) for r, m in positions)
    assert all(m is not None and m.lat is not None for _, m in positions)
    assert worst <= 1e-5, worst
    assert len(observations) == 8324  # one observation per position, none for anything else
    assert tracker.stats["pair_across_zone_boundary"] == 11  # decoded locally instead (the reference agrees)


def test_every_address_callsign_and_squawk_agrees_and_altitudes_but_the_reference_misreadings(decoded):
    rows, msgs, *_ = decoded
    tally: Counter = Counter()
    differ = {}
    for i, r in enumerate(rows):
        m = msgs[i]  # every frame of the recording is accepted (CRC, or a verified address/parity reply)
        tally["icao"] += m.icao == r["icao24"]
        for key, ours in (("altitude", m.altitude_ft), ("callsign", m.callsign), ("squawk", m.squawk)):
            if key in r:
                tally[key + "_n"] += 1
                if ours == r[key]:
                    tally[key] += 1
                else:
                    differ[r["frame"]] = (key, r[key], ours)
    assert tally["icao"] == len(rows) == 57793
    assert tally["callsign"] == tally["callsign_n"] == 3476  # ADS-B identification and Comm-B BDS 2,0
    assert (tally["altitude"], tally["altitude_n"]) == (35020, 35024)
    assert (tally["squawk"], tally["squawk_n"]) == (13652, 13653)
    # The five frames where the reference (rs1090 as traffic 2.13 ran it) reads something the bits do not say:
    assert differ == {
        # Gillham-coded (Q bit 0) altitudes step by 100 ft: 1138, 2477 and 0 cannot be one; these codes are not valid
        "27c4ab71657293e1a5e162ba49b1": ("altitude", 1138, None),
        "20156e7bb523456216028d2482aa": ("altitude", 2477, None),
        "2393a50a156d2ca58a2b5cbac9cd": ("altitude", 0, None),
        # AC13 = 1100100010110: M = 0, Q = 1, N = 11001000110 = 1606 -> 1606 * 25 - 1000 = 39150 ft (the aircraft
        # was at 35025 ft: a reply garbled within its parity, whichever reading)
        "a1af591683bb6f178aabb7192106": ("altitude", 5590, 39150),
        # ID13 = 0000110100111: C1 A1 C2 A2 C4 A4 X B1 D1 B2 D2 B4 D4 -> A=4 B=5 C=4 D=6
        "afb921a79a54822501c02aa5d9b9": ("squawk", "1246", "4546"),
    }


def test_observations_carry_identity_altitude_source_and_velocity(decoded):
    _, _, observations, *_ = decoded
    first, airborne = observations[0], [o for o in observations if o.alt_source != "reported"]
    assert (first.alt_m, first.alt_ref, first.alt_source) == (0.0, "AGL", "reported")  # taxiing at CDG
    assert first.identity["icao24"] == "393322"
    assert {o.alt_ref for o in airborne} == {"WGS84", "AMSL"}
    geometric = [o for o in airborne if o.alt_source == "geometric"]
    assert len(geometric) > len(airborne) * 0.9  # GNSS-minus-baro from the velocity messages nearly always known
    assert all(o.identity.get("callsign") == "AFR34ZG" for o in observations[200:])
    cruise = [o for o in airborne if o.alt_m and o.alt_m > 10000]
    assert cruise and all(150 < o.speed_mps < 300 for o in cruise if o.speed_mps is not None)


def test_the_real_beast_capture_decodes_and_a_corrupted_copy_only_counts_its_bad_frames():
    data = (DATA / "sample_dump1090.bin").read_bytes()
    items = list(adsb.beast_file(data, 1_700_000_000.0))
    assert len(items) == 239
    decoder = ModeSDecoder(all_replies=True)
    msgs = decoder.decode([t for t, _, _ in items], [f for _, f, _ in items], [s for _, _, s in items])
    stats = decoder.stats
    # every frame passes its CRC; 90 all-call replies (DF11) vouch for addresses, 10 ADS-B messages carry what
    # observations do not need (type codes 28, 29, 31), 6 replies come from addresses never heard clean
    assert (stats["crc_failed"], stats["all_call"], stats["unverified_address"], len(msgs)) == (0, 90, 6, 133)
    assert {m.icao for m in msgs} == {"48520a", "3981e4"}
    assert Counter(m.kind for m in msgs if m.df == 17) == {"velocity": 8, "position": 4, "identification": 1}
    # flip one bit in every 10th frame's payload: each becomes a counted CRC failure or an unverified reply
    broken = [f[:5] + bytes((f[5] ^ 0x10,)) + f[6:] if k % 10 == 0 else f for k, (_, f, _) in enumerate(items)]
    decoder = ModeSDecoder(all_replies=True)
    msgs = decoder.decode([t for t, _, _ in items], broken)
    bad = decoder.stats["crc_failed"] + decoder.stats["unverified_address"]
    assert decoder.stats["crc_failed"] > 0 and 24 <= bad <= 24 + 6  # the 24 broken frames, and the 6 as before
    assert {m.icao for m in msgs} == {"48520a", "3981e4"}  # no aircraft made up from a bit error
    # the parser resynchronises after garbage in the stream
    parser = framing.BeastParser()
    got = list(parser.feed(b"\x00garbage\x1a\x39" + data[:1000])) + list(parser.feed(data[1000:]))
    assert len(got) == 239 and parser.skipped_bytes >= 8
