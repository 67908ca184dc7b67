"""The monitor forgets a UAV after a silence (MonitorPolicy.forget_after_s of event time after its link
timeout): memory follows the UAVs heard from recently, and a forgotten UAV starts afresh, exactly as one
never seen, whether tick() or the gap before its next fix notices it."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from airspace import AirspaceMonitor, Fix, MonitorPolicy, ZoneSet

ZONES = ZoneSet.from_geojson(json.loads(
    (Path(__file__).parents[1] / "airspace/data/pujiang_wujing.geojson").read_text()))
T0 = datetime(2025, 5, 1, 2, 0, tzinfo=timezone.utc)
POLICY = MonitorPolicy()
SILENCE_S = POLICY.link_timeout_s + POLICY.forget_after_s
MP = (121.4885, 31.044)        # R-BR-MP centre: restricted, 0-150 m AGL
NEAR_MP = (121.475, 31.044)    # inside PWZ, outside every other zone


def fixes(track, uav="u1", start=0.0):
    return [Fix(uav, T0 + timedelta(seconds=start + k), lon, lat, alt) for k, (lon, lat, alt) in enumerate(track)]


def shown(events):
    return [(e.kind, e.uav_id, e.zone_id, e.ts, e.detail) for e in events]


def test_default_is_an_hour_after_the_link_timeout():
    assert POLICY.forget_after_s == 3600.0


def test_state_stays_bounded_under_a_stream_of_new_ids():
    """200,000 distinct device ids, each heard once, in batches with event time moving on: the state held
    never exceeds the ids heard within the last link timeout + forget delay."""
    mon = AirspaceMonitor(ZONES)
    rng = np.random.default_rng(0)
    batch, step_s = 2_000, 300.0  # one batch every 5 minutes of event time
    n_batches = 200_000 // batch
    window = int(SILENCE_S // step_s) + 1  # batches whose ids may still be remembered
    sizes = []
    for k in range(n_batches):
        ts = T0 + timedelta(seconds=k * step_s)
        ids = [f"N{k * batch + i:06d}" for i in range(batch)]
        lon = rng.uniform(121.44, 121.55, batch)
        lat = rng.uniform(31.02, 31.08, batch)
        alt = rng.choice([0.0, 40.0, 90.0, 140.0], batch)
        mon.process_columns(ids, [ts] * batch, lon, lat, alt, ["AGL"] * batch, [None] * batch)
        mon.tick(ts)
        sizes.append(mon.tracked())
    assert len({f"N{i:06d}" for i in range(n_batches * batch)}) == 200_000
    assert max(sizes) <= window * batch
    assert sizes[-1] == sizes[window + 5] == max(sizes)  # flat once the first ids are forgotten
    mon.tick(T0 + timedelta(seconds=n_batches * step_s + SILENCE_S))
    assert mon.tracked() == 0


def test_a_forgotten_uav_starts_afresh():
    """In a restricted zone, silent past the forget delay, back in the same place: link_lost once, then the
    events of a UAV never seen (no link_restored, no end of the violation it had open)."""
    before = fixes([(*NEAR_MP, 50.0), (*MP, 50.0)])
    back = fixes([(*MP, 50.0), (*NEAR_MP, 50.0)], start=1 + SILENCE_S + 1)
    mon = AirspaceMonitor(ZONES)
    mon.process(before)
    assert mon.alerts_of("u1")[0] == "no_fly_violation"
    lost = mon.tick(back[0].ts)
    assert [e.kind for e in lost] == ["link_lost"] and mon.tracked() == 0 and mon.zones_of("u1") == []
    again = mon.process(back)
    assert shown(again) == shown(AirspaceMonitor(ZONES).process(back))
    assert "link_restored" not in [e.kind for e in again]


def test_forgetting_does_not_depend_on_the_batch_cut():
    """Noticed by tick() on another UAV's fix, or by the UAV's own gap within one batch: the same events."""
    other = fixes([(*NEAR_MP, 50.0)], uav="w", start=1 + SILENCE_S + 0.5)
    stream = fixes([(*NEAR_MP, 50.0), (*MP, 50.0)]) + other + fixes([(*MP, 50.0)], start=1 + SILENCE_S + 1)
    whole = AirspaceMonitor(ZONES).process(stream)
    mon = AirspaceMonitor(ZONES)
    cut = mon.process(stream[:2]) + mon.process(stream[2:3])
    cut += mon.tick(stream[2].ts) + mon.process(stream[3:])
    assert sorted(shown(whole), key=repr) == sorted(shown(cut), key=repr)
    assert [e.kind for e in whole if e.uav_id == "u1"].count("link_lost") == 1


def test_a_shorter_silence_is_remembered():
    policy = MonitorPolicy(forget_after_s=60.0)
    mon = AirspaceMonitor(ZONES, policy)
    mon.process(fixes([(*MP, 50.0)]))
    mon.tick(T0 + timedelta(seconds=policy.link_timeout_s + 60.0))
    assert mon.tracked() == 1 and mon.alerts_of("u1") == ["no_fly_violation", "link_lost"]
    back = mon.process(fixes([(*NEAR_MP, 50.0)], start=policy.link_timeout_s + 60.0))
    assert [e.kind for e in back][:1] == ["link_restored"] and "no_fly_violation_end" in [e.kind for e in back]
    mon.tick(T0 + timedelta(seconds=2 * policy.link_timeout_s + 130.0))
    assert mon.tracked() == 0
