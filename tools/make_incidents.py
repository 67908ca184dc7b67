"""Generate the bundled sample incidents (replay/incidents/): recordings, airspace snapshot, expected events.

Usage: .venv/bin/python tools/make_incidents.py [--check]

Deterministic: the same code gives byte-identical files. Each incident is a small recording built
from explicit flight paths (the incident is the point, not a fleet), evaluated against the
airspace snapshot replay/incidents/airspace.geojson (copied from the bundled zone file when it is
missing, so later edits of that file do not change the incidents); its events are written as the
expected file, after checking that the incident's key event is there (a generator that silently
wrote whatever the code printed would make the regression test meaningless). --check regenerates
into a temporary directory and reports any difference from the bundled files instead of writing.

Regenerate when the monitor's events change on purpose, and review the diff of the expected files.
"""
from __future__ import annotations

import argparse
import filecmp
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson
from shapely.geometry import LineString, Point, shape

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon  # noqa: E402
from protocol import topics  # noqa: E402
from replay.evaluate import evaluate, load_zones, write_events  # noqa: E402
from replay.recordfile import Record, RecordWriter  # noqa: E402
from replay.sources import FileSource  # noqa: E402

INCIDENTS = REPO / "replay" / "incidents"
ZONE_SOURCE = REPO / "airspace" / "data" / "pujiang_wujing.geojson"
ROOT = topics.DEFAULT_ROOT
T0 = datetime(2026, 3, 10, 2, 0, 0, tzinfo=timezone.utc).timestamp()  # a Tuesday, 10:00 in Shanghai
NET_DELAY_S = 0.05  # receive time = event time + this


def _iso(t: float) -> str:
    return datetime.fromtimestamp(round(t, 3), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{round(t * 1000) % 1000:03d}Z"


def _m_per_deg_lon(lat: float) -> float:
    return m_per_deg_lon(lat)


@dataclass
class Track:
    """A flight as straight legs between (lon, lat, alt_m AGL) waypoints at a constant speed."""

    uav_id: str
    waypoints: list[tuple[float, float, float]]
    speed_mps: float
    start_s: float = 0.0

    def legs(self) -> list[tuple[float, float]]:
        """(start time, duration) of each leg, from start_s."""
        out, t = [], self.start_s
        for (x0, y0, _), (x1, y1, _) in zip(self.waypoints, self.waypoints[1:]):
            d = math.hypot((x1 - x0) * _m_per_deg_lon(y0), (y1 - y0) * M_PER_DEG_LAT)
            out.append((t, d / self.speed_mps))
            t += d / self.speed_mps
        return out

    @property
    def end_s(self) -> float:
        t, d = self.legs()[-1]
        return t + d

    def at(self, s: float) -> tuple[float, float, float, float]:
        """(lon, lat, alt, track_deg) at `s` seconds after T0."""
        for (t, d), a, b in zip(self.legs(), self.waypoints, self.waypoints[1:]):
            if s <= t + d or b is self.waypoints[-1]:
                f = min(max((s - t) / d, 0.0), 1.0) if d else 1.0
                lon, lat, alt = (a[k] + (b[k] - a[k]) * f for k in range(3))
                track = math.degrees(math.atan2((b[0] - a[0]) * _m_per_deg_lon(a[1]), (b[1] - a[1]) * M_PER_DEG_LAT))
                return round(lon, 7), round(lat, 7), round(alt, 1), round(track % 360, 1)
        raise ValueError("empty track")


class Builder:
    """Collects the messages of one incident, in receive order."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def status(self, device: str, s: float, online: bool = True) -> None:
        self.records.append(Record(round(T0 + s + NET_DELAY_S, 6), topics.status(ROOT, device), 1, True,
                                   b"online" if online else b"offline"))

    def fixes(self, track: Track, every_s: float, skip: Callable[[float], bool] = lambda s: False) -> None:
        n = int(math.floor((track.end_s - track.start_s) / every_s + 1e-9))
        for k in range(n + 1):
            s = track.start_s + k * every_s
            if skip(s):
                continue
            lon, lat, alt, trk = track.at(s)
            body = {"ts": _iso(T0 + s), "lat": lat, "lon": lon, "alt_m": alt, "alt_ref": "AGL", "seq": k,
                    "speed_mps": track.speed_mps, "track_deg": trk, "status": "Airborne"}
            self.records.append(Record(round(T0 + s + NET_DELAY_S, 6), topics.telemetry(ROOT, track.uav_id), 1,
                                       False, orjson.dumps(body)))

    def reading(self, sensor: str, s: float, metric: str, unit: str, value: float) -> None:
        pack = [{"bn": f"urn:dev:skylane:{sensor}:", "bt": round(T0 + s, 3), "n": metric, "u": unit, "v": value}]
        self.records.append(Record(round(T0 + s + NET_DELAY_S, 6), topics.reading(ROOT, sensor), 1, False,
                                   orjson.dumps(pack)))

    def write(self, path: Path, description: str) -> None:
        self.records.sort(key=lambda r: r.t)  # stable: equal times keep their order of addition
        with RecordWriter(path, ROOT, [f"{ROOT}/#"], created=_iso(T0), compresslevel=9,
                          extra={"source": "tools/make_incidents.py", "description": description}) as w:
            for r in self.records:
                w.append(r)


def _zone(zones_doc: dict, zone_id: str):
    feat = next(f for f in zones_doc["features"] if f["properties"]["id"] == zone_id)
    return shape(feat["geometry"]), feat["properties"]


def _mid(geom, frac: float) -> tuple[float, float]:
    """The middle of an east-west corridor at `frac` of its longitude span (0 = west end)."""
    x0, y0, x1, y1 = geom.bounds
    x = x0 + (x1 - x0) * frac
    cut = geom.intersection(LineString([(x, y0 - 1), (x, y1 + 1)]))
    return round(x, 7), round((cut.bounds[1] + cut.bounds[3]) / 2, 7)


def _midline(geom, f0: float, f1: float, alt: float, steps: int = 8) -> list[tuple[float, float, float]]:
    """Waypoints along the corridor's middle from f0 to f1 (it bends: a straight line would leave it)."""
    return [(*_mid(geom, f0 + (f1 - f0) * k / steps), alt) for k in range(steps + 1)]


# ------------------------------------------------------------------------------------------ incidents
def corridor_incursion(zones_doc: dict) -> Builder:
    """An uncleared drone cuts across corridor C2 at corridor altitude, south to north."""
    geom, props = _zone(zones_doc, "C2")
    lon, lat = _mid(geom, 0.35)
    alt = (props["lower_m"] + props["upper_m"]) / 2
    south, north = lat - 600 / M_PER_DEG_LAT, lat + 600 / M_PER_DEG_LAT
    b = Builder()
    b.status("INC-CX1", 0)
    b.fixes(Track("INC-CX1", [(lon, south, alt), (lon, north, alt)], speed_mps=12.0), every_s=1.0)
    return b


def link_loss(zones_doc: dict) -> Builder:
    """A drone in corridor C1 goes silent for 25 s mid-flight; another one keeps event time moving."""
    g1, p1 = _zone(zones_doc, "C1")
    g2, p2 = _zone(zones_doc, "C2")
    alt1, alt2 = (p1["lower_m"] + p1["upper_m"]) / 2, (p2["lower_m"] + p2["upper_m"]) / 2
    b = Builder()
    b.status("INC-LL1", 0)
    b.status("INC-LL2", 0)
    b.fixes(Track("INC-LL1", _midline(g1, 0.2, 0.45, alt1), speed_mps=15.0), every_s=1.0,
            skip=lambda s: 30.0 < s < 56.0)  # silent from 31 s to 55 s: 25 s without a fix
    b.fixes(Track("INC-LL2", _midline(g2, 0.2, 0.45, alt2), speed_mps=15.0), every_s=1.0)
    return b


def nofly_between_fixes(zones_doc: dict) -> Builder:
    """A fast drone reporting every 9 s clips no-fly zone R-BR-MP between two fixes, both outside it."""
    geom, props = _zone(zones_doc, "R-BR-MP")
    cx, cy = geom.centroid.x, geom.centroid.y
    mlon = _m_per_deg_lon(cy)
    radius_m = (geom.bounds[3] - geom.bounds[1]) / 2 * M_PER_DEG_LAT
    offset_m = math.sqrt(max(radius_m ** 2 - 110.0 ** 2, 0.0))  # a chord ~220 m long
    y = cy + offset_m / M_PER_DEG_LAT
    speed, every = 30.0, 9.0
    half = 120.0  # the two fixes around the chord: 240 m apart, 8 s at 30 m/s ... reported 9 s apart
    p_before = (cx - half / mlon, y)
    p_after = (cx + half / mlon, y)
    assert not geom.contains(Point(p_before)) and not geom.contains(Point(p_after))
    assert LineString([p_before, p_after]).intersects(geom)
    alt = 50.0
    lead_m = 4 * every * speed  # fixes before and after, every 9 s, on the same line
    start = (p_before[0] - lead_m / mlon, y, alt)
    end = (p_after[0] + lead_m / mlon, y, alt)
    track = Track("INC-NF1", [start, end], speed_mps=speed)
    # sample so that two consecutive fixes are exactly p_before and p_after
    s_before = lead_m / speed
    track.start_s = 0.0
    b = Builder()
    b.status("INC-NF1", 0)
    samples = [s_before + k * (2 * half / speed) for k in range(-4, 6)]
    for k, s in enumerate(samples):
        lon, lat, alt_m, trk = track.at(s)
        if k in (4, 5):  # the two fixes around the crossing, exactly on the chord line
            lon, lat = (p_before if k == 4 else p_after)
        b.records.append(Record(round(T0 + s + NET_DELAY_S, 6), topics.telemetry(ROOT, "INC-NF1"), 1, False,
                                orjson.dumps({"ts": _iso(T0 + s), "lat": round(lat, 7), "lon": round(lon, 7),
                                              "alt_m": alt_m, "alt_ref": "AGL", "seq": k, "speed_mps": speed,
                                              "track_deg": trk, "status": "Airborne"})))
    assert all(not geom.contains(Point(json.loads(r.payload)["lon"], json.loads(r.payload)["lat"]))
               for r in b.records if r.topic.endswith("/telemetry"))
    assert max(b2.t - b1.t for b1, b2 in zip(b.records[1:], b.records[2:])) <= every + 1e-6
    return b


def sensor_suspension(zones_doc: dict) -> Builder:
    """The wind mast on corridor C1 reports gusts above its limit while a drone flies the corridor:
    the corridor is suspended (the drone inside is told), then re-activated when the gusts drop."""
    geom, props = _zone(zones_doc, "C1")
    alt = (props["lower_m"] + props["upper_m"]) / 2
    b = Builder()
    b.status("INC-WS1", 0)
    b.status("W-C1", 0)
    b.fixes(Track("INC-WS1", _midline(geom, 0.15, 0.5, alt), speed_mps=15.0), every_s=1.0)
    for k, gust in enumerate([7.5, 8.9, 10.8, 13.6, 14.2, 12.4, 11.1, 9.4, 8.2]):
        b.reading("W-C1", 5.5 + 10 * k, "wind_gust", "m/s", gust)
    return b


@dataclass(frozen=True)
class Incident:
    name: str
    build: Callable[[dict], Builder]
    description: str
    key: dict  # the event that makes the incident: kind, uav_id, zone_id, detail keys that must be present


CATALOGUE = [
    Incident("corridor_incursion", corridor_incursion,
             "INC-CX1 crosses corridor C2 at corridor altitude without a clearance",
             {"kind": "uncleared_flight", "uav_id": "INC-CX1", "zone_id": "C2"}),
    Incident("link_loss", link_loss,
             "INC-LL1 stops reporting for 25 s in corridor C1, then reports again",
             {"kind": "link_lost", "uav_id": "INC-LL1", "zone_id": None}),
    Incident("nofly_between_fixes", nofly_between_fixes,
             "INC-NF1, reporting every 9 s at 30 m/s, clips no-fly zone R-BR-MP between two fixes outside it",
             {"kind": "no_fly_violation", "uav_id": "INC-NF1", "zone_id": "R-BR-MP",
              "detail": {"between_fixes": True}}),
    Incident("sensor_suspension", sensor_suspension,
             "wind mast W-C1 reports gusts above 12 m/s while INC-WS1 flies corridor C1: C1 suspended, then "
             "re-activated below 10 m/s",
             {"kind": "zone_suspended", "uav_id": "INC-WS1", "zone_id": "C1", "detail": {"sensor_id": "W-C1"}}),
]


def key_event(events: list[dict], key: dict) -> dict | None:
    """The first event matching the incident's key (kind, uav, zone and the given detail values)."""
    for e in events:
        if all(e.get(k) == key[k] for k in ("kind", "uav_id", "zone_id")) and all(
                e.get("detail", {}).get(k) == v for k, v in key.get("detail", {}).items()):
            return e
    return None


def generate(out_dir: Path, zone_file: Path) -> list[str]:
    """Write every incident into `out_dir`; returns problems (an incident whose key event is missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    airspace = out_dir / "airspace.geojson"
    if not airspace.exists():
        shutil.copyfile(zone_file, airspace)
    zones_doc = json.loads(airspace.read_text())
    zones = load_zones(airspace)
    problems, manifest = [], []
    for inc in CATALOGUE:
        rec = out_dir / f"{inc.name}.slrec.gz"
        inc.build(zones_doc).write(rec, inc.description)
        ev = evaluate(FileSource(rec), zones)
        write_events(ev.events, out_dir / f"{inc.name}.events.jsonl")
        if ev.counts.get("dead_letters"):
            problems.append(f"{inc.name}: {ev.counts['dead_letters']} dead letters {ev.dead_reasons}")
        if key_event(ev.events, inc.key) is None:
            problems.append(f"{inc.name}: key event {inc.key} missing (events: "
                            f"{sorted({(e['kind'], e['uav_id'], e['zone_id']) for e in ev.events}, key=str)})")
        manifest.append({"name": inc.name, "recording": rec.name, "expected": f"{inc.name}.events.jsonl",
                         "zones": airspace.name, "description": inc.description, "key": inc.key,
                         "messages": ev.counts.get("messages", 0), "events": len(ev.events)})
    (out_dir / "incidents.json").write_text(json.dumps({"incidents": manifest}, indent=2) + "\n")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the bundled files instead of writing")
    ap.add_argument("--out", type=Path, default=INCIDENTS)
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            tmp_dir = Path(tmp)
            if (args.out / "airspace.geojson").exists():
                shutil.copyfile(args.out / "airspace.geojson", tmp_dir / "airspace.geojson")
            problems = generate(tmp_dir, ZONE_SOURCE)
            names = sorted(p.name for p in tmp_dir.iterdir())
            _, mismatch, errors = filecmp.cmpfiles(args.out, tmp_dir, names, shallow=False)
            problems += [f"{n} differs from a fresh generation" for n in mismatch + errors]
    else:
        problems = generate(args.out, ZONE_SOURCE)
    for p in problems:
        print(f"make_incidents: {p}", file=sys.stderr)
    if not problems:
        print(f"incidents {'match' if args.check else 'written to'} {args.out}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
