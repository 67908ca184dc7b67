"""Message parsing: the contract's good shapes are normalised, everything else is refused with a reason."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.sensors import parse_reading
from ingest.telemetry import parse_telemetry
from ingest.validation import BadMessage

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
LIMIT = 65536


def tele(**fields) -> bytes:
    return orjson.dumps({"lat": 31.05, "lon": 121.48, "alt_m": 80, **fields})


def test_full_fix_is_normalised():
    [row] = parse_telemetry("D1", tele(ts="2026-11-27T15:59:59+08:00", alt_ref="amsl", seq=3, speed_mps=12.5,
                                       track_deg=90, vspeed_mps=-1, battery_pct=77, status="airborne",
                                       clearance_id="c-1"), NOW, LIMIT)
    assert row.ts == datetime(2026, 11, 27, 7, 59, 59, tzinfo=timezone.utc)
    assert (row.alt_ref, row.status, row.seq, row.clearance_id) == ("AMSL", "Airborne", 3, "c-1")
    assert row.state()["ts"] == "2026-11-27T07:59:59.000Z"


def test_epoch_ms_and_missing_ts():
    four = datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc)
    [row] = parse_telemetry("D1", tele(ts=int(four.timestamp() * 1000)), NOW, LIMIT)
    assert row.ts == four
    [row] = parse_telemetry("D1", tele(), NOW, LIMIT)
    assert row.ts == NOW and row.alt_ref == "AGL"


def test_array_of_fixes():
    rows = parse_telemetry("D1", orjson.dumps([{"lat": 31, "lon": 121, "alt_m": 1, "seq": i} for i in range(3)]),
                           NOW, LIMIT)
    assert [r.seq for r in rows] == [0, 1, 2]


@pytest.mark.parametrize("payload, reason", [
    (b"", "empty payload"),
    (b"{", "malformed JSON"),
    (b"[]", "empty telemetry array"),
    (b'"x"', "must be a JSON object"),
    (tele(lat=91), "field 'lat'=91 out of range"),
    (tele(lon="121"), "field 'lon' must be a number"),
    (tele(alt_m=True), "field 'alt_m' must be a number"),
    (b'{"lat": 31, "lon": 121, "alt_m": NaN}', "malformed JSON"),
    (tele(alt_m=None), "missing field 'alt_m'"),
    (tele(ts="yesterday"), "is not RFC 3339"),
    (tele(ts="2026-11-27T08:00:00"), "needs a UTC offset"),
    (tele(ts="20261127T080000Z"), "is not RFC 3339"),
    (tele(ts="2026-02-30T08:00:00Z"), "not a valid date and time"),
    (tele(clearance_id="a\x00b"), "field 'clearance_id' contains control characters"),
    (tele(ts="2026-11-27T09:00:00Z"), "more than 5 minutes ahead"),
    (tele(ts="1999-12-31T23:59:59Z"), "before 2000"),
    (tele(ts=1e300), "not a usable epoch"),
    (tele(alt_ref="QNH"), "field 'alt_ref'='QNH' not one of"),
    (tele(status="Landing"), "field 'status'='Landing' not one of"),
    (tele(seq=-1), "field 'seq' must be a non-negative integer"),
    (tele(battery_pct=101), "field 'battery_pct'=101 out of range"),
    (b"x" * (LIMIT + 1), "exceeds the 65536-byte limit"),
])
def test_bad_telemetry_reasons(payload, reason):
    with pytest.raises(BadMessage, match=None) as err:
        parse_telemetry("D1", payload, NOW, LIMIT)
    assert reason in str(err.value)


def test_senml_pack_with_base_values():
    pack = [{"bn": "urn:dev:skylane:W1:", "bt": datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc).timestamp(), "bu": "m/s", "n": "wind_speed", "v": 4.5},
            {"n": "wind_gust", "v": 9.1, "t": 1},
            {"n": "wind_dir", "u": "deg", "v": 270},
            {"n": "note", "vs": "calm"},
            {"n": "heater", "vb": True}]
    rows = parse_reading("W1", orjson.dumps(pack), NOW, LIMIT)
    got = {(r.metric, r.value, r.vtext, r.unit) for r in rows}
    assert got == {("wind_speed", 4.5, None, "m/s"), ("wind_gust", 9.1, None, "m/s"), ("wind_dir", 270.0, None, "deg"),
                   ("note", None, "calm", "m/s"), ("heater", 1.0, None, "m/s")}
    assert {r.ts for r in rows} == {datetime(2026, 11, 27, 4, 0, tzinfo=timezone.utc),
                                    datetime(2026, 11, 27, 4, 0, 1, tzinfo=timezone.utc)}


def test_senml_relative_time_is_relative_to_arrival():
    [row] = parse_reading("S", orjson.dumps([{"n": "pm2_5", "v": 12, "t": -30}]), NOW, LIMIT)
    assert row.ts == NOW - timedelta(seconds=30)


def test_compact_reading_keeps_unknown_metrics():
    rows = parse_reading("T1", orjson.dumps({"ts": "2026-11-27T07:59:00Z", "values": {"vehicle_count": 42,
                                             "mystery_metric": 1.5}, "units": {"vehicle_count": "count"}}),
                         NOW, LIMIT)
    assert {(r.metric, r.value, r.unit) for r in rows} == {("vehicle_count", 42.0, "count"),
                                                          ("mystery_metric", 1.5, None)}


@pytest.mark.parametrize("doc, reason", [
    ({"ts": 1, "value": 3}, "SenML array or an object with 'values'"),
    ({"values": {}}, "carries no values"),
    ({"values": {"pm2_5": "high"}}, "must be a number"),
    ({"values": {"pm2_5": None}}, "missing field 'pm2_5'"),
    ([{"n": "x"}], "record has no value"),
    ([{"n": "x", "v": 1, "t": float("inf")}], "malformed JSON"),
    ([1], "SenML record 0 is not an object"),
    ([{"n": "", "v": 1}], "must be 1-64 printable characters"),
    ([{"n": "x", "v": 1, "t": 200_000_000}], "more than 5 minutes ahead"),
    ([{"n": "x", "vs": "a\x00b"}], "field 'vs' contains control characters"),
    ([{"n": "x", "v": 1, "u": "m\x00"}], "field 'u' contains control characters"),
    ({"values": {"x": 1}, "units": {"x": "\x00"}}, "field 'units.x' contains control characters"),
])
def test_bad_readings(doc, reason):
    payload = orjson.dumps(doc) if "inf" not in repr(doc) else b'[{"n": "x", "v": 1, "t": Infinity}]'
    with pytest.raises(BadMessage) as err:
        parse_reading("S1", payload, NOW, LIMIT)
    assert reason in str(err.value)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=6),
    max_leaves=20)
field_names = st.sampled_from(["ts", "lat", "lon", "alt_m", "alt_ref", "seq", "speed_mps", "track_deg", "status",
                               "battery_pct", "clearance_id", "values", "n", "v", "bn", "bt", "t", "vs", "vb"])
objects = st.dictionaries(field_names, json_values, max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), objects.map(lambda d: orjson.dumps(d, option=orjson.OPT_NON_STR_KEYS)
                                                     if _jsonable(d) else b"{}"),
                 st.lists(objects, max_size=4).map(lambda ds: orjson.dumps(ds) if _jsonable(ds) else b"[]")))
def test_any_payload_is_rows_or_a_reason(payload):
    for parse in (parse_telemetry, parse_reading):
        try:
            rows = parse("X1", payload, NOW, LIMIT)
        except BadMessage as exc:
            assert str(exc)
            continue
        assert rows
        for r in rows:
            assert r.ts.tzinfo is not None and r.ts <= NOW + timedelta(minutes=5)
            for value in (getattr(r, "lat", 0.0), getattr(r, "lon", 0.0), getattr(r, "value", 0.0) or 0.0):
                assert math.isfinite(value)


def _jsonable(obj) -> bool:
    try:
        orjson.dumps(obj)
        return True
    except (TypeError, orjson.JSONEncodeError):
        return False
