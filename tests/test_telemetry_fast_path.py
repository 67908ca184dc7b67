"""The telemetry fast path agrees with the field-by-field parser: same rows for what it accepts, and every
message it does not accept falls back to the same dead letter with the same reason."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.telemetry import TelemetryRow, parse_telemetry, parse_telemetry_checked
from ingest.validation import BadMessage

RECEIVED = datetime(2026, 11, 27, 8, 0, 1, tzinfo=timezone.utc)
MAX_BYTES = 4096

good_ts = st.sampled_from(["2026-11-27T08:00:00Z", "2026-11-27T08:00:00.250Z", "2026-11-27T07:59:59.999999Z",
                           "2026-11-27T08:04:59Z"])
odd_ts = st.one_of(
    st.sampled_from(["2026-11-27T08:00:00+00:00", "2026-11-27T08:06:00Z", "1999-12-31T23:59:59Z",
                     "2026-11-27T08:00:00", "2026-11-27t08:00:00z", "2026-13-27T08:00:00Z", "2026-11-27 08:00:00Z",
                     "2026-11-27T08:00:00.1234567891Z", "2026-11-27T08:00:00.Z", "now", ""]),
    st.integers(min_value=-10**16, max_value=10**16), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=32))


def num(lo: float, hi: float) -> st.SearchStrategy:
    return st.one_of(st.floats(lo, hi), st.integers(int(math.ceil(lo)), int(hi)))


def edge(lo: float, hi: float) -> st.SearchStrategy:
    """Just inside and just outside each end of the range, where a fast check could be off by a little."""
    near = st.one_of(*(st.floats(x - 2, x + 2) for x in (lo, hi)), *(st.integers(int(x) - 2, int(x) + 2) for x in (lo, hi)),
                     st.sampled_from([lo, hi, math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf)]))
    return st.one_of(near, odd_num)


odd_num = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20), st.booleans(),
                    st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2))
FIELDS = {
    "ts": (good_ts, odd_ts),
    "seq": (st.integers(0, 2**63 - 1), st.one_of(st.integers(-2**64, 2**64), st.booleans(), st.floats(), st.text(max_size=3))),
    "lon": (num(-180, 180), edge(-180, 180)), "lat": (num(-90, 90), edge(-90, 90)), "alt_m": (num(-500, 20000), edge(-500, 20000)),
    "speed_mps": (num(0, 500), edge(0, 500)), "track_deg": (num(0, 360), edge(0, 360)), "vspeed_mps": (num(-200, 200), edge(-200, 200)),
    "battery_pct": (num(0, 100), edge(0, 100)),
    "alt_ref": (st.sampled_from(["AGL", "AMSL", "WGS84"]),
                st.one_of(st.sampled_from(["agl", "Amsl", "wgs84", "MSL", ""]), st.integers(), st.booleans())),
    "status": (st.sampled_from(["Ground", "Airborne", "Emergency"]),
               st.one_of(st.sampled_from(["airborne", "GROUND", "flying"]), st.integers(), st.floats())),
    "clearance_id": (st.text(max_size=64), st.one_of(st.text(min_size=63, max_size=66), st.integers(), st.booleans(),
                                                    st.lists(st.text(), max_size=1))),
}
REQUIRED = ("lon", "lat", "alt_m")


@st.composite
def fixes(draw, max_odd: int) -> dict:
    """A fix: well-formed but for up to `max_odd` odd fields; optional fields missing or null; extra keys."""
    keys = sorted(FIELDS)
    odd = draw(st.sets(st.sampled_from(keys), max_size=max_odd))
    absent = draw(st.sets(st.sampled_from([k for k in keys if k not in REQUIRED]), max_size=3))
    null = draw(st.sets(st.sampled_from(keys), max_size=1)) if max_odd else set()
    fix = {}
    for key, (good, bad) in FIELDS.items():
        if key in odd:
            fix[key] = draw(bad)
        elif key in null:
            fix[key] = None
        elif key not in absent:
            fix[key] = draw(good)
    if draw(st.booleans()):
        fix[draw(st.text(max_size=6))] = draw(st.integers())
    return fix


def outcome(parse, payload: bytes) -> tuple[str, object]:
    try:
        return "rows", parse("D1", payload, RECEIVED, MAX_BYTES)
    except BadMessage as exc:
        return "dead", str(exc)


def same(payload: bytes) -> None:
    fast, checked = outcome(parse_telemetry, payload), outcome(parse_telemetry_checked, payload)
    if fast[0] == "rows" and checked[0] == "rows":  # NaN never reaches a row, so == is exact
        assert fast[1] == checked[1]
        for a, b in zip(fast[1], checked[1]):
            assert type(a) is TelemetryRow and all(type(x) is type(y) for x, y in zip(
                (getattr(a, f) for f in TelemetryRow.__dataclass_fields__),
                (getattr(b, f) for f in TelemetryRow.__dataclass_fields__)))
    assert fast == checked


def dumps(doc) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:  # e.g. an integer beyond 64 bits: hand-written JSON like a device could send
        import json
        return json.dumps(doc).encode()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fixes(0))
def test_well_formed_fixes_give_the_same_rows(fix):
    same(dumps(fix))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fixes(2))
@example({"ts": "2026-11-27T08:00:00Z", "lon": float("nan"), "lat": 31.0, "alt_m": 10.0})
@example({"ts": "2026-11-27T08:00:00Z", "lon": 121.5, "lat": 31.0, "alt_m": float("inf")})
@example({"ts": "2026-11-27T08:10:00Z", "lon": 121.5, "lat": 31.0, "alt_m": 10.0})
@example({"lon": 121.5, "lat": 31.0, "alt_m": 10.0, "seq": True, "alt_ref": "agl"})
@example({"lon": 121.5, "lat": 31.0, "alt_m": 10.0, "clearance_id": "C\x00"})
@example({"lon": 121.5, "lat": 31.0, "alt_m": 10.0, "clearance_id": "C" * 65})
def test_odd_fixes_give_the_same_rows_or_the_same_reason(fix):
    same(dumps(fix))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(fixes(1), min_size=0, max_size=6))
def test_arrays_of_fixes_agree(items):
    same(dumps(items))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"[]", b"{}", b"null", b"[1]", b"[{}]", b'"x"',
                                                         b"{" + b" " * MAX_BYTES + b"}", b"[" + b"{}," * 1000 + b"{}]"])))
def test_any_bytes_agree(payload):
    same(payload)


RANGES = {"lon": (-180, 180), "lat": (-90, 90), "alt_m": (-500, 20000), "speed_mps": (0, 500), "track_deg": (0, 360),
          "vspeed_mps": (-200, 200), "battery_pct": (0, 100)}


@pytest.mark.parametrize("key", sorted(RANGES))
def test_each_range_edge_agrees(key):
    lo, hi = RANGES[key]
    base = {"ts": "2026-11-27T08:00:00Z", "lon": 121.5, "lat": 31.0, "alt_m": 10.0, "speed_mps": 5.0,
            "track_deg": 90.0, "vspeed_mps": 0.0, "battery_pct": 50.0}
    for value in (lo, hi, float(lo), float(hi), lo - 1, hi + 1, lo - 0.25, hi + 0.25, hi + 1e-9,
                  math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf), True, None, "1", float("nan")):
        same(dumps({**base, key: value}))


def test_text_fields_agree():
    base = {"lon": 121.5, "lat": 31.0, "alt_m": 10.0}
    for key, values in (("clearance_id", ["C" * 64, "C" * 65, "", "a\tb", "\u00e9" * 64, 7]),
                        ("alt_ref", ["AGL", "agl", "MSL", "", 1]), ("status", ["Airborne", "AIRBORNE", "x", 0]),
                        ("seq", [0, -1, 2**63 - 1, 2**63, 1.0, False]),
                        ("ts", ["2026-11-27T08:05:01Z", "2026-11-27T08:05:00.999Z", "2000-01-01T00:00:00Z",
                                "1999-12-31T23:59:59.999Z", "2026-11-27T08:00:00.000000001Z", 1795766400000])):
        for value in values:
            same(dumps({**base, key: value}))


def test_fast_rows_equal_hash_and_stay_frozen():
    payload = orjson.dumps({"ts": "2026-11-27T08:00:00Z", "lon": 121.5, "lat": 31, "alt_m": 80, "seq": 3,
                            "status": "Airborne", "clearance_id": "CL-1"})
    (a,), (b,) = parse_telemetry("D1", payload, RECEIVED, MAX_BYTES), parse_telemetry_checked("D1", payload, RECEIVED,
                                                                                             MAX_BYTES)
    assert a == b and hash(a) == hash(b) and a.lat == 31.0 and type(a.lat) is float
    try:
        a.lat = 0.0  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("a fast-path row must be as frozen as any other")
