"""InterUSS `/map/queries` under the worst bodies the 1 MiB request limit lets through (attack: one request that
keeps a CPU busy for seconds, e.g. ten thousand circles each checked against every zone and its schedule).
Over the bounds a request is refused at once with the bound named; within them the worst one is answered.
CPU is measured for the whole test process (the API server runs in one of its threads) as a sanity bound
with a wide margin, never as a tight timing."""
from __future__ import annotations

import math
import time

import orjson
import pytest

from api.interuss import MAX_FILTER_SETS, MAX_VERTICES, MAX_VOLUMES

from .api_support import Client, keys  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
MIB = 1 << 20
CPU_SANITY_S = 5.0  # the aim is well under 1 s; this only catches a runaway
FAR = {"lat": 0.5, "lng": 0.5}  # nowhere near a zone: every filter set is evaluated, none short-circuits
YEAR = {"time_start": {"value": "2026-01-01T00:00:00Z", "format": "RFC3339"},
        "time_end": {"value": "2026-12-31T00:00:00Z", "format": "RFC3339"}}


def _circle(center: dict, radius_m: float) -> dict:
    return {"volume": {"outline_circle": {"center": center, "radius": {"value": radius_m, "units": "M"}},
                       "altitude_lower": {"value": 0, "reference": "SFC", "units": "M"},
                       "altitude_upper": {"value": 500, "reference": "W84", "units": "M"}}, **YEAR}


def _polygon(n: int) -> dict:
    ring = [{"lat": 31.04 + 0.01 * math.sin(2 * math.pi * k / n), "lng": 121.49 + 0.01 * math.cos(2 * math.pi * k / n)}
            for k in range(n)]
    return {"volume": {"outline_polygon": {"vertices": ring}}, **YEAR}


def _schedule_set() -> dict:
    return {"position": {"location": FAR}, "after": "0001-01-01T00:00:00Z", "before": "9999-01-01T00:00:00Z",
            "resulting_operational_impact": "BlockOrAdvise",
            "ed269": {"u_space_class": "X" * 100, "acceptable_restrictions": ["PROHIBITED", "CONDITIONAL"]}}


def _fill(make_set, sets_per_check: int, limit_bytes: int = MIB - 1024) -> dict:
    """As many checks as fit in `limit_bytes` (at most 100 checks), each of `sets_per_check` filter sets."""
    checks, size = [], 20
    while len(checks) < 100:
        check = {"filter_sets": [make_set() for _ in range(sets_per_check)]}
        n = len(orjson.dumps(check)) + 1
        if size + n > limit_bytes:
            break
        checks.append(check)
        size += n
    return {"checks": checks}


def _post(client: Client, body: dict):
    raw = orjson.dumps(body)
    assert len(raw) <= MIB, len(raw)
    cpu = time.process_time()
    r = client.post("/geospatial_map/v1/map/queries", content=raw, headers={"Content-Type": "application/json"},
                    timeout=120)
    return r, time.process_time() - cpu


OVER = {
    "ten thousand circles": lambda: _fill(lambda: {"volumes4d": [_circle(FAR, 1)] * 10}, 10),
    "ten thousand filter sets": lambda: _fill(lambda: {"position": {"location": FAR}}, 100),
    "polygons of 1,000 vertices": lambda: _fill(lambda: {"volumes4d": [
        {"volume": {"outline_polygon": {"vertices": [{"lat": k % 9, "lng": k % 7} for k in range(1000)]}}}]}, 1),
}


@pytest.mark.parametrize("name", list(OVER))
def test_bodies_over_the_bounds_are_refused_quickly(api, keys, name):  # noqa: F811
    body = OVER[name]()
    r, cpu = _post(Client(api.url, keys.viewer), body)
    assert r.status_code == 422, (name, r.status_code, r.text[:300])
    text = r.text
    assert any(f"at most {n:,}" in text for n in (MAX_VOLUMES, MAX_FILTER_SETS, MAX_VERTICES)), text[:500]
    assert len(r.content) < 1000  # the refusal says why; it does not echo the megabyte back
    assert cpu < CPU_SANITY_S, (name, cpu)


WITHIN = {
    # every allowed volume a big timed circle with an altitude band: each one checked against every zone
    "largest circles": lambda: {"checks": [{"filter_sets": [{"volumes4d": [_circle(FAR, 1_000_000)] * 10}
                                                             for _ in range(MAX_FILTER_SETS // 100)]}
                                           for _ in range(MAX_VOLUMES // (10 * (MAX_FILTER_SETS // 100)))]},
    # every allowed filter set with every cheap filter: schedules looked at over the whole calendar
    "schedule filter sets": lambda: {"checks": [{"filter_sets": [_schedule_set()] * 100}] * (MAX_FILTER_SETS // 100)},
    # the vertex budget in polygons
    "polygons": lambda: {"checks": [{"filter_sets": [{"volumes4d": [_polygon(MAX_VERTICES // 20)]}]}] * 20},
}


@pytest.mark.parametrize("name", list(WITHIN))
def test_the_worst_bodies_within_the_bounds_are_answered(api, keys, name):  # noqa: F811
    body = WITHIN[name]()
    r, cpu = _post(Client(api.url, keys.viewer), body)
    assert r.status_code == 200, (name, r.text[:500])
    results = r.json()["results"]
    assert len(results) == len(body["checks"])
    assert {x["features_selection_outcome"] for x in results} <= {"Present", "Absent"}
    assert cpu < CPU_SANITY_S, (name, cpu)
