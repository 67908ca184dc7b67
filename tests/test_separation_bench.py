"""`skylane bench separation` runs end to end, checks itself against the STRtree baseline and reports its figures
last (values not asserted: timing)."""
import json

from bench.separation import flights, kinematics, strtree_check, main
from airspace.tactical import separation_check
from airspace.traffic_policy import TrafficPolicy


def test_bench_prints_its_figures_last(capsys, monkeypatch):
    monkeypatch.setattr("os.sched_setaffinity", lambda *_: None, raising=False)  # leave the test runner be
    rc = main(["--tracks", "400", "--manned", "8", "--ticks", "3"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and last["same_pairs"] is True and last["tracks"] == 400
    assert list(last)[:3] == ["tick_p99_ms", "strtree_tick_p99_ms", "separation_vs_strtree"]
    assert last["tick_p99_ms"] > 0 and last["separation_vs_strtree"] > 0 and last["engine_tracks"] == 400


def test_both_checks_find_the_same_pairs_on_a_dense_tick():
    p = TrafficPolicy()
    c = flights(1500, 30, 2, seed=5)
    k = kinematics(c, 1)
    enc = separation_check(k, p.look_ahead_s, p.drone_drone, p.drone_manned)
    losses, conflicts = strtree_check(k, p.look_ahead_s, p)
    assert losses and conflicts  # dense enough to mean something
    assert set(zip(enc.i[enc.inside].tolist(), enc.j[enc.inside].tolist())) == losses
    assert set(zip(enc.i[enc.predicted].tolist(), enc.j[enc.predicted].tolist())) == conflicts
