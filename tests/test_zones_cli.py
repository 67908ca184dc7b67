"""`skylane zones import|export|check`: offline checks and file conversion, and an import into a
running system's store that reaches ingest through the retained control message."""
from __future__ import annotations

import json
import random
import shutil
from datetime import datetime, time as dtime, timedelta, timezone
from pathlib import Path

import pytest
import shapely
from shapely.geometry import Point, shape

from airspace.formats import parse_zones
from airspace.zones import ZoneSet
from skylane.cli import main

from .api_support import retained
from .helpers import ZONE_FILE, query

DATA = Path(__file__).parent / "data" / "zones"
SAT_9 = "2026-11-28T09:00:00"  # a Saturday, Shanghai time: the weekend market zone is in force
MON_9 = "2026-11-30T09:00:00"


def _zone_set_version(system) -> int:
    import psycopg

    from storage.controls import zone_set_version
    with psycopg.connect(system.database_url) as conn:
        return zone_set_version(conn)


def run(capsys, *argv) -> tuple[int, list[dict], str]:
    rc = main(["zones", *argv])
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines() if line.strip()], err


def use_system(monkeypatch, system) -> None:
    """Point the CLI's settings at the test's running system (database, broker, topic root)."""
    monkeypatch.setenv("SKYLANE_DATABASE_URL", system.database_url)
    monkeypatch.setenv("SKYLANE_MQTT_URL", system.mqtt_url)
    monkeypatch.setenv("SKYLANE_MQTT_ROOT", system.mqtt_root)


def ids(line: dict) -> list[str]:
    return [z["id"] for z in line["zones"]]


def test_check_one_point_offline(capsys):
    rc, lines, _ = run(capsys, "check", "--lon", "121.4885", "--lat", "31.044", "--alt", "50",
                       "--zones", str(ZONE_FILE), "--at", MON_9)
    assert rc == 0 and len(lines) == 1
    assert ids(lines[0]) == ["PWZ", "R-BR-MP"]
    bridge = lines[0]["zones"][1]
    assert bridge == {"id": "R-BR-MP", "name": "Huangpu river bridge exclusion (south)", "kind": "restricted",
                      "restriction": "PROHIBITED"}
    assert lines[0]["at"] == "2026-11-30T09:00:00+08:00" and lines[0]["ref"] == "AGL"


def test_check_time_reference_and_class(capsys):
    market = ["--lon", "121.444", "--lat", "31.043", "--zones", str(ZONE_FILE)]
    assert "R-WJ-MKT" in ids(run(capsys, "check", *market, "--alt", "40", "--at", SAT_9)[1][0])
    assert "R-WJ-MKT" not in ids(run(capsys, "check", *market, "--alt", "40", "--at", MON_9)[1][0])
    # 120 m AGL is the top of the band (inclusive); 120 m AMSL is 116 m AGL; 135 m WGS84 is 125 m AMSL
    assert "R-WJ-MKT" in ids(run(capsys, "check", *market, "--alt", "120", "--at", SAT_9)[1][0])
    assert "R-WJ-MKT" in ids(run(capsys, "check", *market, "--alt", "120", "--ref", "AMSL", "--at", SAT_9)[1][0])
    assert "R-WJ-MKT" not in ids(run(capsys, "check", *market, "--alt", "135", "--ref", "wgs84",
                                     "--at", SAT_9)[1][0])
    rc, _, err = run(capsys, "check", *market, "--alt", "40", "--at", "next tuesday")
    assert rc == 2 and "--at" in err


def test_points_file_in_one_pass_keeps_order_and_reports_bad_lines(capsys, tmp_path):
    pts = tmp_path / "points.jsonl"
    rows = [
        {"lon": 121.4885, "lat": 31.044, "alt": 50, "at": MON_9},
        {"lon": 121.4885, "lat": 95.0, "alt": 50},
        "this is not json",
        {"lon": 121.444, "lat": 31.043, "alt": 40, "ref": "AGL", "at": SAT_9},
        {"lon": 121.444, "lat": 31.043, "alt": 40, "ref": "AGL", "at": MON_9},
        {"lon": 121.47, "lat": 31.0555, "alt": 84, "ref": "AMSL", "at": 1795917600},
        {"lon": 121.47, "lat": 31.0555, "alt": 80, "ref": "XYZ"},
        {"lat": 31.0, "alt": 3},
        {"lon": 121.444, "lat": 31.043, "alt": 40, "at": SAT_9, "ua_class": "huge"},
    ]
    pts.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n\n")
    rc, lines, err = run(capsys, "check", "--points", str(pts), "--zones", str(ZONE_FILE))
    assert rc == 1 and "5 bad line(s)" in err
    assert [line["line"] for line in lines] == list(range(1, 10))
    assert ids(lines[0]) == ["PWZ", "R-BR-MP"]
    assert "lat 95" in lines[1]["error"] and "not JSON" in lines[2]["error"]
    assert "R-WJ-MKT" in ids(lines[3]) and "R-WJ-MKT" not in ids(lines[4])
    assert ids(lines[5]) == ["PWZ", "C2"]
    assert "XYZ" in lines[6]["error"] and "lon" in lines[7]["error"] and "huge" in lines[8]["error"]
    good = [line for line in lines if "error" not in line]
    assert all(set(line) >= {"lon", "lat", "alt", "ref", "at", "zones"} for line in good)


def test_points_match_single_checks_on_an_ed269_file(capsys, tmp_path):
    src = DATA / "geo-awareness-che-1.json"
    pts = tmp_path / "p.jsonl"
    probes = [(6.913146, 46.430758, 100, "2022-06-18T17:30:00Z"), (6.913146, 46.430758, 100, "2022-06-20T17:30:00Z"),
              (7.67807, 46.612893, 110, "2022-07-01T12:00:00Z"), (6.615, 46.54, 70, "2030-01-01T00:00:00Z")]
    pts.write_text("".join(json.dumps({"lon": a, "lat": b, "alt": c, "at": d}) + "\n" for a, b, c, d in probes))
    rc, lines, _ = run(capsys, "check", "--points", str(pts), "--zones", str(src), "--ua-class", "small")
    assert rc == 0
    for (lon, lat, alt, at), line in zip(probes, lines):
        _, single, _ = run(capsys, "check", "--lon", str(lon), "--lat", str(lat), "--alt", str(alt), "--at", at,
                           "--zones", str(src))
        assert ids(single[0]) == ids(line)
    assert ids(lines[0]) == ["Montreux Concert Area", "MONTREUX Wildlife Preserve"]
    assert ids(lines[1]) == ["MONTREUX Wildlife Preserve"]  # the concert zone only at weekends
    assert ids(lines[2]) == ["Flugplatz Reichenbach#1", "Flugplatz Reichenbach#2", "Flugplatz Reichenbach#3"]
    assert ids(lines[3]) == ["Lausanne Airport#1"]  # below the diagonal of the triangular #2


@pytest.mark.parametrize("fmt", ["ed269", "ed318", "geojson"])
def test_export_converts_a_file(capsys, tmp_path, fmt):
    out = tmp_path / f"zones.{fmt}.json"
    rc, _, err = run(capsys, "export", "--format", fmt, "--zones", str(ZONE_FILE), "-o", str(out))
    assert rc == 0 and "wrote 16 zones" in err
    again = parse_zones(json.loads(out.read_text()), fmt)
    assert again.zones == ZoneSet.from_geojson(json.loads(ZONE_FILE.read_text())).zones


def test_bad_inputs_are_reported_not_raised(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"UASZoneList": [{"identifier": "X", "restriction": "NOPE"}]}))
    rc, _, err = run(capsys, "check", "--lon", "1", "--lat", "1", "--alt", "1", "--zones", str(bad))
    assert rc == 1 and "feature 0" in err and "'restriction'" in err
    rc, _, err = run(capsys, "export", "--format", "ed318", "--zones", str(tmp_path / "missing.json"))
    assert rc == 1 and "cannot load zones" in err
    rc, _, err = run(capsys, "check", "--lon", "1", "--zones", str(ZONE_FILE))
    assert rc == 2 and "--points" in err


@pytest.mark.integration
def test_import_stores_and_publishes_then_export_and_check_use_the_store(capsys, system, monkeypatch, tmp_path):
    use_system(monkeypatch, system)
    src = tmp_path / "che.json"
    shutil.copy(DATA / "geo-awareness-che-1.json", src)
    rc, lines, err = run(capsys, "import", str(src))
    assert rc == 0, err
    stored = query(system.database_url, "SELECT count(*) FROM zones WHERE active")[0][0]
    assert lines[0]["imported"] == 10 and lines[0]["active"] == stored == 16 + 10
    topic = f"{system.mqtt_root}/control/zones"
    assert lines[0]["topic"] == topic
    announced = retained(system, topic)  # an announcement of the stored set's version
    assert announced == {"version": _zone_set_version(system), "issuer": "skylane-admin"}
    # the store now answers export and check
    rc, _, _ = run(capsys, "export", "--format", "ed269", "-o", str(tmp_path / "out.json"))
    assert rc == 0
    back = parse_zones(json.loads((tmp_path / "out.json").read_text()))
    original = parse_zones(json.loads(src.read_text()))
    for z in original:
        assert back.get(z.id) == z
    rc, lines, _ = run(capsys, "check", "--lon", "6.913146", "--lat", "46.430758", "--alt", "10",
                       "--at", "2022-06-18T17:30:00Z")
    assert rc == 0 and set(ids(lines[0])) == {"Montreux Concert Area", "MONTREUX Wildlife Preserve"}
    # --replace keeps only the file's zones active, and announces that set
    rc, lines, err = run(capsys, "import", str(src), "--replace")
    assert rc == 0, err
    assert lines[0]["active"] == 10 and len(lines[0]["deactivated"]) == 16
    assert retained(system, topic) == {"version": _zone_set_version(system), "issuer": "skylane-admin"}
    assert lines[0]["active"] == query(system.database_url, "SELECT count(*) FROM zones WHERE active")[0][0]


@pytest.mark.integration
def test_import_strict_refuses_a_bad_file_and_changes_nothing(capsys, system, monkeypatch, tmp_path):
    use_system(monkeypatch, system)
    doc = json.loads((DATA / "cis_source_sample_ed318.json").read_text())
    doc["features"][1]["geometry"]["layer"]["uom"] = "km"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    before = query(system.database_url, "SELECT count(*) FROM zones")
    rc, _, err = run(capsys, "import", str(bad), "--format", "ed318", "--strict")
    assert rc == 1 and "feature 1 (id='BLns058')" in err and "'geometry.layer.uom'" in err and "--strict" in err
    assert query(system.database_url, "SELECT count(*) FROM zones") == before


@pytest.mark.integration
def test_import_skips_a_bad_feature_alone_and_replace_keeps_its_stored_zones(capsys, system, monkeypatch, tmp_path):
    """The default imports every valid feature and reports the others on stderr and in the JSON line. With
    --replace, the stored zones of a skipped feature stay active as they were (an unreadable feature is not a
    withdrawn zone), while zones really missing from the file are deactivated."""
    use_system(monkeypatch, system)
    good = DATA / "cis_source_sample_ed318.json"
    assert run(capsys, "import", str(good))[0] == 0
    doc = json.loads(good.read_text())
    doc["features"][1]["geometry"]["layer"]["uom"] = "km"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    rc, lines, err = run(capsys, "import", str(bad), "--replace")
    assert rc == 0, err
    line = "feature 1 (id='BLns058'): field 'geometry.layer.uom': unknown unit 'km'"
    assert f"{line}; expected one of M, FT: skipped" in err and "1 features skipped" in err
    out = lines[0]
    assert out["imported"] == 2 and out["kept"] == ["BLns058"] and out["active"] == 3
    assert len(out["deactivated"]) == 16  # the bundled zones, missing from the file
    assert out["report"]["skipped"] == 1 and out["report"]["problems"] == [
        {"index": 1, "id": "BLns058", "field": "geometry.layer.uom", "action": "skipped",
         "problem": out["report"]["problems"][0]["problem"]}]
    stored = query(system.database_url, "SELECT id FROM zones WHERE active ORDER BY id")
    assert [r[0] for r in stored] == ["BLns058", "LSTB002", "LSZB003"]
    rc, _, err = run(capsys, "import", str(bad), "--replace", "--strict")
    assert rc == 1 and line in err


@pytest.mark.integration
def test_import_keeps_an_unlimited_upper_limit(capsys, system, monkeypatch, tmp_path):
    """ED-269 allows a null upper limit (unlimited): stored as Infinity, read back as unlimited."""
    use_system(monkeypatch, system)
    src = DATA / "cis_source_sample_ed269.json"
    original = parse_zones(json.loads(src.read_text()))
    assert any(z.upper_m is None or z.upper_m == float("inf") for z in original)
    rc, lines, err = run(capsys, "import", str(src))
    assert rc == 0, err
    rc, _, _ = run(capsys, "export", "--format", "ed269", "-o", str(tmp_path / "out.json"))
    assert rc == 0
    back = parse_zones(json.loads((tmp_path / "out.json").read_text()))
    for z in original:
        assert back.get(z.id) == z


# --- issue 12, "Done when": an ED-318 file with offset times of day and one self-intersecting polygon ------

DERIVED = DATA / "ed318_offsets_and_bowtie.json"  # derived from the Swiss sample: PROVENANCE.md


def _naive_in_force(applicability: list | None, t: float) -> bool:
    """Reference: each ED-318 period and daily window read with datetime alone, each time in its own offset."""
    if not applicability:
        return True
    for period in applicability:
        if "startDateTime" in period and t < datetime.fromisoformat(period["startDateTime"]).timestamp():
            continue
        if "endDateTime" in period and t >= datetime.fromisoformat(period["endDateTime"]).timestamp():
            continue
        if not period.get("schedule"):
            return True
        for w in period["schedule"]:
            start, end = dtime.fromisoformat(w["startTime"]), dtime.fromisoformat(w["endTime"])
            local = datetime.fromtimestamp(t, start.tzinfo)
            for back in (0, 1):
                day = local.date() - timedelta(days=back)
                if "ANY" not in w["day"] and day.strftime("%a").upper() not in w["day"]:
                    continue
                a = datetime.combine(day, start)
                b = datetime.combine(day, end)
                if b <= a:
                    b += timedelta(days=1)
                if a.timestamp() <= t < b.timestamp():
                    return True
    return False


def _reference_points(doc: dict, n: int = 3000, seed: int = 12) -> tuple[list[dict], list[set[str]]]:
    """Random 4D points around every zone of an ED-318 document and, for each, the zones a naive reference puts
    it in: shapely on the published outline (made valid), the band in its own reference (AGL), the schedule."""
    rnd = random.Random(seed)
    zones = []
    for f in doc["features"]:
        outline = shapely.make_valid(shape(f["geometry"]))
        layer, props = f["geometry"]["layer"], f["properties"]
        assert layer["lowerReference"] == layer["upperReference"] == "AGL" and layer["uom"] == "m"
        zones.append((props["identifier"], outline, layer["lower"], layer["upper"], props.get("limitedApplicability")))
    days = [datetime(2025, 3, 15) + timedelta(days=k) for k in range(28)] + \
        [datetime(2025, 10, 15) + timedelta(days=k) for k in range(28)] + [datetime(2026, 11, 23) + timedelta(days=k)
                                                                             for k in range(8)]
    own: dict[str, list[float]] = {}  # per zone: times at and around its date bounds and window edges
    for zid, _, _, _, applicability in zones:
        own[zid] = out = []
        for period in applicability or []:
            out += [datetime.fromisoformat(period[k]).timestamp() + dt for k in ("startDateTime", "endDateTime")
                    if k in period for dt in (-1, 0, 1)]
            for w in period.get("schedule") or []:
                start, end = dtime.fromisoformat(w["startTime"]), dtime.fromisoformat(w["endTime"])
                for day in (d for d in days if "ANY" in w["day"] or d.strftime("%a").upper() in w["day"]):
                    a = datetime.combine(day.date(), start).timestamp()
                    b = datetime.combine(day.date(), end).timestamp()
                    b += 86400 if b <= a else 0
                    out += [a - 1, a, (a + b) / 2, b - 0.001, b]
    anywhen = [datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp() + k * 3599.5 for k in range(24 * 500)]
    points, expected = [], []
    for _ in range(n):
        zid, outline, *_ = zones[rnd.randrange(len(zones))]
        x0, y0, x1, y1 = outline.bounds
        lon = rnd.uniform(x0 - 0.1 * (x1 - x0), x1 + 0.1 * (x1 - x0))
        lat = rnd.uniform(y0 - 0.1 * (y1 - y0), y1 + 0.1 * (y1 - y0))
        t = rnd.choice(own[zid] if own[zid] and rnd.random() < 0.7 else anywhen)
        alt = rnd.choice([0, 30, 59.9, 60, 60.1, 120, 500])
        points.append({"lon": lon, "lat": lat, "alt": alt, "ref": "AGL", "at": t})
        expected.append({z for z, geom, lo, hi, appl in zones if geom.covers(Point(lon, lat)) and lo <= alt <= hi
                         and _naive_in_force(appl, t)})
    return points, expected


def _check_against_reference(capsys, tmp_path, *zones_args) -> int:
    doc = json.loads(DERIVED.read_text())
    points, expected = _reference_points(doc)
    src = tmp_path / "points.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in points))
    rc, lines, err = run(capsys, "check", "--points", str(src), *zones_args)
    assert rc == 0, err
    assert len(lines) == len(points)
    mine = {f["properties"]["identifier"] for f in doc["features"]}
    wrong = [(p, want, ids(line)) for p, want, line in zip(points, expected, lines) if set(ids(line)) & mine != want]
    assert not wrong, wrong[:5]
    return {zid: sum(zid in w for w in expected) for zid in mine}


def test_offset_times_and_a_self_intersecting_ring_import_and_agree_with_a_naive_reference(capsys, tmp_path):
    """Offline (--zones FILE): every valid zone imports, the self-intersecting one is repaired and reported on
    stderr, and `check --points` agrees with shapely on the published outlines and datetime on the published
    times for every point."""
    inside = _check_against_reference(capsys, tmp_path, "--zones", str(DERIVED))
    assert min(inside.values()) >= 20, inside  # the sample reaches into every zone while it is in force
    rc, _, err = run(capsys, "check", "--lon", "7.5", "--lat", "47.0", "--alt", "1", "--zones", str(DERIVED))
    assert rc == 0 and "feature 1 (id='BLns058'): field 'geometry': invalid polygon: Self-intersection" in err
    assert "repaired, made valid" in err
    rc, _, err = run(capsys, "check", "--lon", "7.5", "--lat", "47.0", "--alt", "1", "--zones", str(DERIVED),
                     "--strict")
    assert rc == 1 and "Self-intersection" in err


@pytest.mark.integration
def test_import_of_offset_times_and_a_self_intersecting_ring_then_check_the_store(capsys, system, monkeypatch,
                                                                                  tmp_path):
    """The issue's "Done when", through the store: import reports the repair, and `check --points` on the running
    system's zones agrees with the naive reference on every zone that imported."""
    use_system(monkeypatch, system)
    rc, lines, err = run(capsys, "import", str(DERIVED))
    assert rc == 0, err
    report = lines[0]["report"]
    assert lines[0]["imported"] == 3 and (report["features"], report["repaired"], report["skipped"]) == (3, 1, 0)
    assert [(p["index"], p["id"], p["field"], p["action"]) for p in report["problems"]] == [
        (1, "BLns058", "geometry", "repaired")]
    assert report["problems"][0]["area_imported_m2"] > 0
    _check_against_reference(capsys, tmp_path)
