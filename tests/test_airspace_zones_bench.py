"""`skylane bench airspace` runs end to end and reports its figures (values not asserted: timing)."""
import json

from bench.airspace import main
from bench.airspace_zones import make_positions, make_zones


def test_bench_prints_the_three_figures_last(capsys, monkeypatch):
    monkeypatch.setattr("os.sched_setaffinity", lambda *_: None, raising=False)  # leave the test runner be
    rc = main(["--zones", "60", "--positions", "20000", "--repeat", "1", "--singles", "300", "--quick", "--peers", "strtree"])
    out = capsys.readouterr().out.strip().splitlines()
    last = json.loads(out[-1])
    assert rc == 0 and last["exact"] is True
    assert list(last)[:3] == ["classify_positions_per_s", "single_check_p99_us", "route_clearance_p99_ms"]
    assert last["classify_positions_per_s"] > 0 and last["single_check_p99_us"] > 0
    assert last["strtree_exact"] is True and last["strtree_positions_per_s"] > 0 and last["classify_vs_strtree"] > 0
    assert "postgis_positions_per_s" not in last  # not asked for
    assert any(line.startswith("classify_positions_per_s:") and ("PASS" in line or "FAIL" in line) for line in out)


def test_generator_is_seeded_and_dense():
    a, b = make_zones(50, seed=7), make_zones(50, seed=7)
    assert a.zones == b.zones and {z.kind for z in a} >= {"corridor", "restricted"}
    assert any(z.schedule is not None for z in make_zones(500)) and any(z.ua_classes for z in make_zones(500))
    lon, lat, alt, t = make_positions(1000, seed=3)
    assert lon.shape == lat.shape == alt.shape == t.shape == (1000,)
    assert (121.436 <= lon).all() and (lon <= 121.548).all() and (31.012 <= lat).all() and (lat <= 31.100).all()
