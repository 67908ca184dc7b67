"""A drone reporting at 10 Hz gives the air picture the same tracks and separation events as the same flight
reported once a second (the picture is read once per instant, from the latest fix: a 10 Hz drone costs two rows
an instant, airspace.traffic._thin_telemetry)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from airspace.sightings import Sightings, from_observations, from_telemetry
from airspace.traffic import _thin_rows, _thin_telemetry

from .test_airspace_tracks import ZONES, obs, run, tel


def flight(rate_hz: int, seconds: int = 60, silent=()) -> list:
    """T1 and T2 head-on at 10 m/s each without reported velocity (derived from the fixes), 2 m apart vertically."""
    rows = []
    for i in range((seconds - 1) * rate_hz + 1):  # the last fix at a whole second whatever the rate
        s = i / rate_hz
        if any(a <= s < b for a, b in silent):
            continue
        rows += [tel("T1", s, -500.0 + 10.0 * s, 0.0, 60.0), tel("T2", s, 500.0 - 10.0 * s, 0.0, 62.0)]
    return rows


def _events(rows, until):
    _, events, states = run(rows, until=until)
    return [(e.kind, e.uav_id, e.zone_id, e.ts, e.detail.get("horizontal_m")) for e in events], states


def test_ten_hertz_and_one_hertz_give_the_same_separation_events_and_states():
    fast, fast_states = _events(flight(10), 70)
    slow, slow_states = _events(flight(1), 70)
    assert [e for e in fast if e[0] == "separation_loss"] and fast == slow
    assert fast_states.keys() == slow_states.keys()
    for tid, state in slow_states.items():
        assert fast_states[tid] == state


def test_an_instant_keeps_a_drones_first_and_last_fix_and_every_other_sighting():
    rows = [tel("T1", 10 + i / 10, 10.0 * i, 0.0) for i in range(10)] + [tel("T2", 10.5, 0.0, 300.0)]
    obs_ = [obs("rid", "SN9", 10 + i / 4, 0.0, 600.0) for i in range(3)]
    s = Sightings.concat([from_telemetry(rows, ZONES.vertical), from_observations(obs_, ZONES.vertical)])
    thin = _thin_telemetry(s)
    assert [(src, key, t) for src, key, t in zip(thin.source, thin.key, thin.t)] == [
        (src, key, t) for r, (src, key, t) in enumerate(zip(s.source, s.key, s.t)) if r in (0, 9, 10, 11, 12, 13)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 50), st.integers(0, 3)), min_size=1,
                max_size=60),
       st.lists(st.integers(1, 20), min_size=1, max_size=6))
def test_thinning_a_batch_first_keeps_what_the_instant_keeps_whatever_the_cuts(fixes, cuts):
    rows = [tel(uav, tenth / 10, float(east), 0.0) for uav, tenth, east in fixes]
    batches, i = [], 0
    for c in cuts * 10:
        if i >= len(rows):
            break
        batches.append(rows[i:i + c])
        i += c
    batches.append(rows[i:])
    thinned, wm = [], float("-inf")
    for b in batches:
        kept, w = _thin_rows(b, 1.0, 1.0)
        thinned += kept
        wm = max(wm, w)
    assert wm == max(min(r.ts.timestamp(), r.received_at.timestamp() + 1.0) for r in rows)

    def instant_view(rs):  # what the instants keep of them, per instant
        s = from_telemetry(rs, ZONES.vertical)
        k = np.ceil(s.t - 1e-9).astype(int)
        out = set()
        for kk in set(k.tolist()):
            idx = np.flatnonzero(k == kk)
            part = s.take(idx[np.lexsort((s.lat[idx], s.lon[idx], s.key[idx].astype(str), s.t[idx]))])
            part = _thin_telemetry(part)
            out |= {(kk, key, t, lon) for key, t, lon in zip(part.key, part.t, part.lon)}
        return out
    assert instant_view(thinned) == instant_view(rows)
