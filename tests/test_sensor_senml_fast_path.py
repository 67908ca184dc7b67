"""The SenML fast path agrees with the record-by-record parser: same rows (down to the sign of a zero)
for the packs it takes, and for everything else the same dead letter with the same reason."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.sensors import parse_reading

RECEIVED = datetime(2026, 11, 27, 8, 0, 1, tzinfo=timezone.utc)
MAX_BYTES = 1 << 20
NOW = RECEIVED.timestamp()

names = st.one_of(st.sampled_from(["pm25", "temp", "wind_gust", "", ":x", "a" * 64, "a" * 65, "n\x00", "é"]),
                  st.text(max_size=8))
base_names = st.one_of(st.sampled_from(["", "urn:dev:skylane:Q1:", "urn:x", "dev1/", "urn:" + "a" * 260]),
                       st.text(max_size=6))
units = st.one_of(st.sampled_from(["ug/m3", "Cel", "m/s", "x" * 32, "x" * 33, "\t"]), st.none(), st.integers())
numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**63, 2**64 - 1),
                    st.sampled_from([0, -0.0, 0.0, 1e308, -1e308, 1.7e308]))
times = st.one_of(st.floats(-3e8, 3e8), st.integers(-300, 300), st.sampled_from(
    [NOW, NOW + 299, NOW + 301, 946684799.0, 946684800.0, 2**28, 2**28 - 1, -2**28, 253402300799.0,
     253402300800.0, 1e20, -1e20, None]))
odd = st.one_of(st.booleans(), st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=1))
KEYS = {"bn": base_names, "bt": times, "bu": units, "bv": numbers, "n": names, "v": numbers, "t": times, "u": units,
        "vs": st.text(max_size=4), "vb": st.one_of(st.booleans(), st.integers(0, 1)), "vd": st.text(max_size=4),
        "s": numbers, "x": st.integers()}
PLAIN = ("n", "v", "t", "u")


@st.composite
def records(draw) -> dict:
    keys = draw(st.sets(st.sampled_from(sorted(KEYS)), max_size=4)) if draw(st.integers(0, 3)) == 0 else set()
    keys |= set(draw(st.sets(st.sampled_from(PLAIN), min_size=1)))
    rec = {}
    for k in sorted(keys):
        rec[k] = draw(odd) if draw(st.integers(0, 15)) == 0 else draw(KEYS[k])
    return rec


@st.composite
def packs(draw) -> list:
    head = {"bn": draw(base_names), "bt": draw(st.sampled_from([NOW - 60, NOW, 0, 1e9])), "bu": draw(units),
            "n": draw(names), "v": draw(numbers)}
    head = {k: v for k, v in head.items() if draw(st.booleans())}
    return [head, *draw(st.lists(records(), max_size=6))]


def outcome(fast: bool, payload: bytes):
    try:
        rows = parse_reading("S1", payload, RECEIVED, MAX_BYTES, fast=fast)
    except Exception as exc:  # noqa: BLE001 - an internal error must be the same one too
        return type(exc).__name__, str(exc)
    return "rows", [(r.ts, r.sensor_id, r.metric, None if r.value is None else (r.value, math.copysign(1, r.value)),
                     r.vtext, r.unit, r.received_at) for r in rows]


def dumps(doc) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:
        return json.dumps(doc).encode()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packs())
@example([{"bn": "urn:dev:skylane:Q1:", "bt": NOW, "n": "pm25", "u": "ug/m3", "v": 10.0, "t": 0},
          {"n": "pm25", "v": -0.0, "t": 1}])
@example([{"n": "a", "v": 1, "t": -1e20}])
@example([{"bt": 1e308, "n": "a", "v": 1, "t": 1e308}])
@example([{"n": "a", "v": 1, "t": NOW + 301}])
@example([{"bn": "x", "bu": None, "n": "a", "v": 1}])
@example([])
@example([{"n": "a" * 65, "v": 1}])
@example([{"bn": "urn:dev:", "n": "b" * 65, "v": 1}])
@example([{"n": "a", "v": 1, "u": "x" * 33}])
@example([{"bu": "x" * 33, "n": "a", "v": 1}])
@example([{"bv": 5, "n": "a", "v": 1}])
@example([{"n": "a", "v": 1, "vs": "x"}])
@example([{"n": "a", "v": 1, "x": 1}])
def test_packs_agree(pack):
    payload = dumps(pack)
    assert outcome(True, payload) == outcome(False, payload)


def test_plain_pack_takes_the_fast_path_and_matches():
    pack = [{"bn": "urn:dev:skylane:Q1:", "bt": NOW - 10, "n": "pm25", "u": "ug/m3", "v": 10.0, "t": 0}]
    pack += [{"n": "pm25", "v": 10 + r % 7, "t": r} for r in range(1, 50)]
    got = outcome(True, orjson.dumps(pack))
    assert got == outcome(False, orjson.dumps(pack))
    assert got[0] == "rows" and len(got[1]) == 50 and {m for _, _, m, *_ in got[1]} == {"pm25"}
