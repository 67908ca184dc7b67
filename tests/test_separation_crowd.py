"""A crowd within each other's minima (a swarm, a vertiport's stack, a flood of forged ids at one spot): each
aircraft picks its nearest pairs only (TrafficPolicy.max_pairs_per_aircraft), a pair is listed when either picks
it (nobody goes unreported), open pairs are kept when others arrive, and the events say how many more aircraft
are around. Without the cap, N aircraft at one point gave
N(N-1) events per instant and stalled ingest (1,500 co-located ids: 1.5 M events in 15 s of traffic)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from airspace.tactical import nearest_pairs
from airspace.traffic_policy import TrafficPolicy

from .test_airspace_tracks import run, tel


def _pairs(draw_n: int, edges: set[tuple[int, int]]):
    i = np.array([a for a, _ in sorted(edges)], np.int64)
    j = np.array([b for _, b in sorted(edges)], np.int64)
    return i, j


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 12).flatmap(lambda n: st.tuples(
    st.just(n), st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda e: e[0] < e[1]),
                        max_size=40))),
       st.integers(1, 5), st.randoms(use_true_random=False))
def test_a_crowd_lists_at_most_cap_pairs_per_aircraft_nobody_unreported_whatever_the_order(case, cap, rnd):
    n, edges = case
    i, j = _pairs(n, edges)
    dist = np.array([float((a * 7 + b * 3) % 11) for a, b in zip(i.tolist(), j.tolist())])
    ids = np.arange(n) * 5 + 100
    keep, over = nearest_pairs(i, j, (dist,), ids, cap)
    kept = {(a, b) for a, b, k in zip(i.tolist(), j.tolist(), keep.tolist()) if k}
    assert len(kept) <= n * cap
    for node in range(n):
        degree, listed = sum(node in e for e in edges), sum(node in e for e in kept)
        assert listed >= min(degree, cap)  # nobody within minima goes unreported
        assert (over[node] if node < len(over) else 0) == degree - listed
    # the same pairs in another order (and with their ends swapped) list the same pairs
    perm = list(range(len(i)))
    rnd.shuffle(perm)
    keep2, _ = nearest_pairs(j[perm], i[perm], (dist[perm],), ids, cap)
    assert {(a, b) for a, b, k in zip(i[perm].tolist(), j[perm].tolist(), keep2.tolist()) if k} == kept
    if all(sum(node in e for e in edges) <= cap for node in range(n)):
        assert keep.all()


def test_nearest_first():
    # cap 1: 0 and 1 pick each other (10 m), 2 picks 0 (20 m, before 1 at 40 m), 3 picks 0 (its only pair)
    i, j = np.array([0, 0, 0, 1]), np.array([1, 2, 3, 2])
    keep, over = nearest_pairs(i, j, (np.array([10.0, 20.0, 30.0, 40.0]),), np.arange(4), 1)
    assert keep.tolist() == [True, True, True, False] and over.tolist() == [0, 1, 1, 0]


def test_forty_drones_at_one_point_give_a_bounded_number_of_alerts_and_say_how_many_more():
    rows = [tel(f"C{k:02d}", s, 0.0, 0.0, 60.0, 0.0, 0.0) for k in range(40) for s in range(4)]
    _, events, _ = run(rows, until=6, policy=TrafficPolicy(max_pairs_per_aircraft=3))
    losses = [e for e in events if e.kind == "separation_loss"]
    per_aircraft: dict[str, int] = {}
    for e in losses:
        per_aircraft[e.uav_id] = per_aircraft.get(e.uav_id, 0) + 1
    assert len(losses) <= 2 * 40 * 3 and len(per_aircraft) == 40  # 1,560 without the cap; nobody unreported
    assert max(per_aircraft.values()) <= 2 * 3  # its own picks, and those that picked it (cyclic: spread evenly)
    for e in losses:
        assert e.detail["not_listed"][e.detail["track_id"]] == 39 - per_aircraft[e.uav_id]


def test_an_open_loss_stays_open_when_a_closer_aircraft_arrives():
    # A and B 30 m apart from t=0; from t=5, C..F hover 5 m from A: with a cap of 1, A keeps B
    rows = [tel("A", s, 0.0, 0.0, 60.0, 0.0, 0.0) for s in range(12)]
    rows += [tel("B", s, 30.0, 0.0, 60.0, 0.0, 0.0) for s in range(12)]
    rows += [tel(x, s, 0.0, 5.0 + k, 60.0, 0.0, 0.0) for k, x in enumerate("CDEF") for s in range(5, 12)]
    _, events, _ = run(rows, until=14, policy=TrafficPolicy(max_pairs_per_aircraft=1))
    a = [(e.kind, e.zone_id) for e in events if e.uav_id == "A" and e.kind.startswith("separation_loss")]
    assert a[0] == ("separation_loss", "uav:B") and ("separation_loss_end", "uav:B") not in a[:-1]
    assert not [z for k, z in a if k == "separation_loss" and z != "uav:B"]
