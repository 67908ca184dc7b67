"""The pair search and the straight-line solution of airspace.tactical, held to the obvious ways: every pair
solved (brute force) and the motion sampled densely in time."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airspace.tactical import (Kinematics, Minima, encounters, pair_minima, separation_check, swept_boxes,
                               candidate_pairs)

DD, DM = Minima(50.0, 15.0), Minima(609.6, 76.2)
LA = 30.0


def brute_force(k: Kinematics, look_ahead_s: float = LA) -> tuple[set, set]:
    """Every pair (manned–manned excepted) through the exact test: (inside now, predicted)."""
    n = len(k)
    i, j = np.triu_indices(n, 1)
    keep = ~(k.manned[i] & k.manned[j])
    i, j = i[keep], j[keep]
    H, V = pair_minima(k.manned[i], k.manned[j], DD, DM)
    e = encounters(k, i, j, H, V, look_ahead_s)
    return set(zip(i[e.inside].tolist(), j[e.inside].tolist())), set(zip(i[e.predicted].tolist(),
                                                                         j[e.predicted].tolist()))


@st.composite
def traffic(draw, n_max=40):
    n = draw(st.integers(2, n_max))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    span = draw(st.sampled_from([300.0, 2000.0, 8000.0]))
    manned = rng.random(n) < draw(st.sampled_from([0.0, 0.1, 0.4]))
    speed = np.where(manned, rng.uniform(30, 70, n), rng.uniform(0, 20, n))
    speed[rng.random(n) < 0.15] = 0.0  # hovering
    heading = rng.uniform(0, 2 * np.pi, n)
    z = np.where(manned, rng.uniform(60, 400, n), rng.uniform(20, 130, n))
    z[rng.random(n) < draw(st.sampled_from([0.0, 0.1]))] = np.nan  # altitude unknown
    return Kinematics(rng.uniform(0, span, n), rng.uniform(0, span, n), z, speed * np.sin(heading),
                      speed * np.cos(heading), rng.normal(0, 2, n), manned)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traffic(), st.sampled_from([1, 2, 3]))
def test_the_grid_finds_exactly_the_pairs_brute_force_finds(k, slices):
    got = separation_check(k, LA, DD, DM, slices=slices)
    inside, predicted = brute_force(k)
    assert set(zip(got.i[got.inside].tolist(), got.j[got.inside].tolist())) == inside
    assert set(zip(got.i[got.predicted].tolist(), got.j[got.predicted].tolist())) == predicted
    assert not (k.manned[got.i] & k.manned[got.j]).any()  # manned–manned is air traffic control's


@settings(max_examples=60, deadline=None)
@given(st.floats(-800, 800), st.floats(-800, 800), st.floats(-60, 60), st.floats(-25, 25), st.floats(-25, 25),
       st.floats(-5, 5))
def test_loss_time_agrees_with_dense_sampling(dx, dy, dz, dvx, dvy, dvz):
    k = Kinematics(np.array([0.0, dx]), np.array([0.0, dy]), np.array([50.0, 50.0 + dz]), np.array([0.0, dvx]),
                   np.array([0.0, dvy]), np.array([0.0, dvz]), np.zeros(2, bool))
    e = encounters(k, np.array([0]), np.array([1]), 50.0, 15.0, LA)
    tau = np.linspace(0, LA, 30_001)
    inside = (np.hypot(dx + dvx * tau, dy + dvy * tau) <= 50.0) & (np.abs(dz + dvz * tau) <= 15.0)
    if inside.any():
        assert not np.isnan(e.loss_in_s[0])
        assert e.loss_in_s[0] <= tau[np.argmax(inside)] + 1e-6
    if not np.isnan(e.loss_in_s[0]):
        t = e.loss_in_s[0]
        assert np.hypot(dx + dvx * t, dy + dvy * t) <= 50.0 + 1e-6 and abs(dz + dvz * t) <= 15.0 + 1e-6
    assert bool(e.inside[0]) == bool(inside[0])


def test_head_on_closest_approach():
    # 1,000 m apart, closing at 20 m/s, 20 m lateral offset, level: loss when 50 m apart, closest at 50 s
    k = Kinematics(np.array([0.0, 1000.0]), np.array([0.0, 20.0]), np.array([60.0, 62.0]), np.array([10.0, -10.0]),
                   np.zeros(2), np.zeros(2), np.zeros(2, bool))
    e = encounters(k, np.array([0]), np.array([1]), 50.0, 15.0, 60.0)
    assert e.loss_in_s[0] == pytest.approx((1000.0 - np.sqrt(50.0**2 - 20.0**2)) / 20.0)
    assert e.cpa_s[0] == pytest.approx(50.0) and e.cpa_horizontal_m[0] == pytest.approx(20.0)
    assert e.cpa_vertical_m[0] == pytest.approx(2.0) and e.horizontal_m[0] == pytest.approx(np.hypot(1000, 20))
    short = encounters(k, np.array([0]), np.array([1]), 50.0, 15.0, 30.0)
    assert np.isnan(short.loss_in_s[0]) and short.cpa_s[0] == 30.0  # beyond the look-ahead


def test_unknown_altitude_counts_as_co_altitude_and_minima_by_kind():
    k = Kinematics(np.array([0.0, 400.0, 0.0]), np.zeros(3), np.array([60.0, np.nan, 500.0]), np.zeros(3),
                   np.zeros(3), np.zeros(3), np.array([False, True, True]))
    e = separation_check(k, LA, DD, DM)
    # drone–manned within 609.6 m horizontally, manned altitude unknown: inside; the two manned: never a pair
    assert set(zip(e.i.tolist(), e.j.tolist())) == {(0, 1)} and e.inside.all()
    assert np.isnan(e.vertical_m[0])


def test_boxes_sum_to_the_pair_minima():
    k = Kinematics(np.array([0.0, 100.0]), np.zeros(2), np.array([60.0, 60.0]), np.zeros(2), np.zeros(2),
                   np.zeros(2), np.array([False, True]))
    b = swept_boxes(k, 0.0, 0.0, DD, DM)
    assert b[0, 1] - b[0, 0] == pytest.approx(DD.horizontal_m)       # a drone's share: half drone–drone
    assert (b[0, 1] - b[0, 0] + b[1, 1] - b[1, 0]) / 2 == pytest.approx(DM.horizontal_m)
    i, j = candidate_pairs(np.empty((0, 6)), np.zeros(0, bool))
    assert i.size == j.size == 0
    with pytest.raises(ValueError):
        Minima(0.0, 10.0)
