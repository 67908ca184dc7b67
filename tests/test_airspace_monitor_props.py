"""The vectorized monitor held to a naive reference (one fix, one zone, plain shapely at a time),
and to itself under any batching: same events, same times, same zones."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, mapping

from airspace import AirspaceMonitor, Fix, MonitorPolicy, ZoneSet
from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon, to_local
from airspace.events import from_epoch
from airspace.segments import band_interval, line_pieces
from airspace.separation import ApprovedClearance
from bench.airspace_zones import make_zone_features
from protocol.times import rfc3339

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=timezone.utc)
POLICY = MonitorPolicy(link_timeout_s=8.0)


def _extra_features() -> list[dict]:
    """A restricted donut (a hole to fly through) and a two-part scheduled authorisation zone."""
    c = Point(121.47, 31.04)
    donut = c.buffer(0.004).difference(c.buffer(0.0015))
    multi = shapely.MultiPolygon([Point(121.50, 31.06).buffer(0.002), Point(121.506, 31.06).buffer(0.002)])
    sched = {"tz": "Asia/Shanghai", "periods": [{"windows": [{"days": ["FRI"], "start": "09:00",
                                                               "end": "09:02"}]}]}
    return [{"type": "Feature", "properties": {"id": "DONUT", "name": "donut", "kind": "restricted", "lower_m": 0,
                                               "upper_m": 90, "alt_ref": "AGL"}, "geometry": mapping(donut)},
            {"type": "Feature", "properties": {"id": "MULTI", "name": "two islands", "kind": "authorization",
                                               "lower_m": 20, "upper_m": 120, "alt_ref": "AGL", "schedule": sched},
             "geometry": mapping(multi)}]


ZONES = ZoneSet.from_geojson({"type": "FeatureCollection",
                              "features": make_zone_features(30, 7) + _extra_features()})
ANCHORS = [tuple(shapely.get_coordinates(z.geometry)[k]) for z in ZONES for k in (0, 5)]
GROUND = 4.0


class Reference:
    """What the monitor promises, written the slow, obvious way."""

    def __init__(self, zs: ZoneSet, policy: MonitorPolicy) -> None:
        self.zs, self.p = zs, policy
        b = np.array([z.geometry.bounds for z in zs])
        self.lon0, self.lat0 = float(b[:, [0, 2]].mean()), float(b[:, [1, 3]].mean())
        self.metric = [shapely.transform(z.geometry, lambda xy: np.column_stack(
            to_local(xy[:, 0], xy[:, 1], self.lon0, self.lat0))) for z in zs]
        self.state: dict[str, dict] = {}
        self.ceiling = zs.vertical.to_amsl(zs.vertical.ceiling_agl_m, "AGL")

    def active(self, j: int, t: float) -> bool:
        s = self.zs.zones[j].schedule
        return s is None or bool(s.active(t))

    def process(self, fixes: list[Fix]) -> Counter:
        out: Counter = Counter()
        for f in sorted(fixes, key=lambda f: (f.uav_id, f.ts)):
            prev = self.state.get(f.uav_id)
            t = f.ts.timestamp()
            if prev is not None and t < prev["t"]:
                continue
            alt = self.zs.vertical.to_amsl(f.alt_m, f.alt_ref)
            pt, vm = Point(f.lon, f.lat), self.p.exit_margin_vert_m
            mx, my = to_local(f.lon, f.lat, self.lon0, self.lat0)
            mpt = Point(float(mx), float(my))
            member, ceil_h, over = set(), set(), set()
            for j, z in enumerate(self.zs):
                lo, hi = self.zs.lower_amsl[j], self.zs.upper_amsl[j]
                act = self.active(j, t)
                horiz = shapely.intersects(z.geometry, pt)
                if act and horiz and lo <= alt <= hi:
                    member.add(j)
                elif (prev and j in prev["member"] and act and lo - vm <= alt <= hi + vm
                      and shapely.dwithin(self.metric[j], mpt, self.p.exit_margin_m)):
                    member.add(j)
                if act and horiz and z.kind in ("corridor", "area"):
                    ceil_h.add(j)
                    if alt > hi or (prev and j in prev["alt"] and alt > hi - vm):
                        over.add(j)
            if not ceil_h and (alt > self.ceiling or (prev and None in prev["alt"] and alt > self.ceiling - vm)):
                over.add(None)
            airborne = f.status != "Ground" and (f.status in ("Airborne", "Emergency") or alt - GROUND > 1.0)
            nofly = {j for j in member if self.zs.zones[j].restriction == "PROHIBITED"}
            unclr = {j for j in member if airborne and (self.zs.zones[j].restriction in
                                                        ("REQ_AUTHORISATION", "CONDITIONAL")
                                                        or self.zs.zones[j].kind == "corridor")}
            now = {"member": member, "nofly": nofly, "alt": over, "unclr": unclr}
            for fam, start, end in (("member", "zone_enter", "zone_exit"),
                                    ("nofly", "no_fly_violation", "no_fly_violation_end"),
                                    ("alt", "altitude_violation", "altitude_violation_end"),
                                    ("unclr", "uncleared_flight", "uncleared_flight_end")):
                before = prev[fam] if prev else set()
                for j in now[fam] - before:
                    out[(start, f.uav_id, self.zid(j), rfc3339(f.ts))] += 1
                for j in before - now[fam]:
                    out[(end, f.uav_id, self.zid(j), rfc3339(f.ts))] += 1
            if prev is not None:
                if prev["airborne"] and t - prev["t"] > self.p.link_timeout_s:
                    out[("link_lost", f.uav_id, None, rfc3339(from_epoch(prev["t"] + self.p.link_timeout_s)))] += 1
                    out[("link_restored", f.uav_id, None, rfc3339(f.ts))] += 1
                out.update(self.crossings(f.uav_id, prev, (f.lon, f.lat, alt, t), member))
            self.state[f.uav_id] = {**now, "t": t, "pos": (f.lon, f.lat, alt, t), "airborne": airborne}
        return out

    def crossings(self, uav, prev, p1, member) -> list:
        out = []
        p0 = prev["pos"]
        if (p0[0], p0[1]) == (p1[0], p1[1]):
            return out
        for j, z in enumerate(self.zs):
            if z.restriction != "PROHIBITED" or j in member or j in prev["member"]:
                continue
            for s0, s1 in line_pieces(z.geometry, p0[0], p0[1], p1[0], p1[1]):
                iv = band_interval(p0[2], p1[2], self.zs.lower_amsl[j], self.zs.upper_amsl[j], s0, s1)
                if iv is None:
                    continue
                ta, tb = (p0[3] + (p1[3] - p0[3]) * s for s in iv)
                sch = z.schedule
                if sch is not None and not (sch.intervals(ta, tb) if tb > ta else sch.active(ta)):
                    continue
                for kind, tt in (("zone_enter", ta), ("no_fly_violation", ta), ("zone_exit", tb),
                                 ("no_fly_violation_end", tb)):
                    out.append((kind, uav, z.id, rfc3339(from_epoch(tt))))
        return out

    def zid(self, j):
        return None if j is None else self.zs.zones[j].id


@st.composite
def streams(draw, n_max=40):
    """Interleaved fixes of up to 3 UAVs wandering around zone boundaries (metres from an anchor),
    at altitudes on and around band limits, sometimes silent long enough to lose the link."""
    n = draw(st.integers(1, n_max))
    uavs = {}
    out = []
    for _ in range(n):
        u = draw(st.sampled_from("abc"))
        if u not in uavs:
            lon, lat = draw(st.sampled_from(ANCHORS))
            uavs[u] = [lon, lat, 0.0]
        s = uavs[u]
        dx, dy = draw(st.integers(-40, 40)), draw(st.integers(-40, 40))
        if draw(st.integers(0, 30)) == 0:
            dx, dy = dx * 30, dy * 30  # a long hop: crossings between fixes
        lx, ly = to_local(s[0], s[1], s[0], s[1])
        s[0] += dx / m_per_deg_lon(s[1])
        s[1] += dy / M_PER_DEG_LAT
        s[2] += draw(st.sampled_from([0.0, 0.0, 1.0, 2.5, 12.0]))
        j = draw(st.integers(0, len(ZONES) - 1))
        base = draw(st.sampled_from([ZONES.zones[j].lower_m, ZONES.zones[j].upper_m, 120.0, 60.0, 0.0]))
        alt = base + draw(st.sampled_from([0.0, -3.0, 3.0, -6.0, 6.0, 20.0]))
        status = draw(st.sampled_from([None, None, "Airborne", "Ground"]))
        out.append(Fix(u, T0 + timedelta(seconds=s[2]), s[0], s[1], max(alt, 0.0), "AGL", status))
    return out


def key_set(events) -> Counter:
    return Counter((e.kind, e.uav_id, e.zone_id, rfc3339(e.ts)) for e in events)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.integers(0, 60), max_size=4))
def test_monitor_matches_the_naive_reference(stream, cuts):
    mon, ref = AirspaceMonitor(ZONES, POLICY), Reference(ZONES, POLICY)
    got, want = [], Counter()
    for lo, hi in zip([0, *sorted(cuts)], [*sorted(cuts), len(stream)]):
        batch = stream[lo:hi]
        got += mon.process(batch)
        want.update(ref.process(batch))
    assert key_set(got) == want
    for u in "abc":
        assert set(mon.zones_of(u)) == {ZONES.zones[j].id for j in ref.state.get(u, {}).get("member", ())}


def _clearance_for(stream: list[Fix]) -> ApprovedClearance | None:
    a = [f for f in stream if f.uav_id == "a"]
    if len(a) < 2 or a[-1].ts == a[0].ts:
        return None
    pts = [a[0], a[len(a) // 2], a[-1]]
    t = [p.ts.timestamp() for p in pts]
    if not t[0] < t[1] < t[2]:
        t = [t[0], (t[0] + t[2]) / 2, t[2]]
        if not t[0] < t[1] < t[2]:
            return None
    return ApprovedClearance("CA", "a", tuple(p.lon for p in pts), tuple(p.lat for p in pts),
                             tuple(p.alt_m + GROUND for p in pts), tuple(t),
                             corridors=tuple({"zone_id": z.id, "entry": {"lon": pts[0].lon, "lat": pts[0].lat,
                                                                         "alt_amsl": 50.0, "t": t[0]},
                                              "exit": {"lon": pts[2].lon, "lat": pts[2].lat, "alt_amsl": 50.0,
                                                       "t": t[2]}}
                                             for z in ZONES if z.kind == "corridor")[:3],
                             zones=tuple(z.id for z in ZONES)[:10])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.integers(0, 60), max_size=6))
def test_events_do_not_depend_on_batch_boundaries(stream, cuts):
    """With clearances, floors, deviations and the tick clock: the stream in event-time order,
    cut anywhere, gives the same events as one batch."""
    stream = sorted(stream, key=lambda f: f.ts)
    clearance = _clearance_for(stream)

    def run(bounds):
        mon = AirspaceMonitor(ZONES, POLICY)
        if clearance is not None:
            mon.set_clearance(clearance)
        events = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if hi > lo:
                events += mon.process(stream[lo:hi])
                events += mon.tick(stream[hi - 1].ts)
        return mon, events

    whole_mon, whole = run([0, len(stream)])
    split_mon, split = run([0, *sorted(min(c, len(stream)) for c in cuts), len(stream)])
    def norm(events):
        return sorted((e.kind, e.uav_id, e.zone_id or "", rfc3339(e.ts), repr(sorted(e.detail.items())))
                      for e in events)

    assert norm(split) == norm(whole)
    for u in "abc":
        assert split_mon.zones_of(u) == whole_mon.zones_of(u)
        assert split_mon.alerts_of(u) == whole_mon.alerts_of(u)


def test_reference_agrees_on_a_long_crossing_through_the_donut_hole():
    # west to east through the hole: in, out (hole), in, out of the ring - all between two fixes
    a = Fix("h", T0, 121.47 - 0.006, 31.04, 50.0)
    b = Fix("h", T0 + timedelta(seconds=4), 121.47 + 0.006, 31.04, 50.0)
    events = [e for e in AirspaceMonitor(ZONES, POLICY).process([a, b]) if e.zone_id == "DONUT"]
    assert [e.kind for e in events] == ["zone_enter", "no_fly_violation", "zone_exit", "no_fly_violation_end"] * 2
    assert key_set(events) == Counter({k: n for k, n in Reference(ZONES, POLICY).process([a, b]).items()
                                       if k[2] == "DONUT"})
    assert LineString([(a.lon, a.lat), (b.lon, b.lat)]).intersects(ZONES.get("DONUT").geometry)
