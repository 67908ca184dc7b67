"""`skylane zones import|export|check`: zone files in and out of the store, and 4D point checks.

import FILE [--format F] [--replace] [--strict]
                                             validate, upsert into the store, then announce the new
                                             set retained on {root}/control/zones so that running
                                             ingesters switch to it. Every valid feature is imported,
                                             an invalid outline repaired where that is unambiguous,
                                             any other bad feature skipped alone; each problem is
                                             one line on stderr (feature index, id, field, problem,
                                             repaired/skipped) and in the "report" of the JSON line.
                                             --strict refuses the file on any problem. With
                                             --replace a skipped feature's stored zones stay.
export --format F [-o FILE] [--zones FILE]   the store's zones (or a file's) in format F
check --lon X --lat Y --alt Z [--ref AGL|AMSL|WGS84] [--at TIME] [--zones FILE] [--ua-class C]
check --points FILE                          JSON lines {"lon","lat","alt","ref","at"[,"ua_class"]}
                                             checked in one vectorized pass, one JSON line out per
                                             line in; bad lines give {"line", "error"} and exit 1
Zones for export/check come from --zones FILE (any format, problems reported as by import; --strict
refuses it on any), else the running system's store.
TIME is ISO 8601 (without an offset: Asia/Shanghai) or epoch seconds; default: now.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..settings import Settings

FORMATS = ("ed269", "ed318", "geojson")


def _err(msg: str) -> None:
    print(f"skylane zones: {msg}", file=sys.stderr)


def _read_json(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return json.loads(text)


def _import_file(path: str, fmt: str | None, strict: bool):
    """The file imported feature by feature (airspace.formats.import_zones), its problems on stderr."""
    from airspace.formats import import_zones
    result = import_zones(_read_json(path), fmt, strict=strict)
    for problem in result.problems:
        _err(f"{path}: {problem}")
    return result


def _load_store(settings: Settings):
    import psycopg

    from airspace.zones import ZoneSet
    from storage import catalog
    with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
        return ZoneSet.from_geojson(catalog.load_zones(conn))


def _zones(args, settings: Settings):
    """The zone set a command works on: --zones FILE, else the store."""
    if args.zones:
        result = _import_file(args.zones, None, args.strict)
        if result.problems and not len(result.zones):
            raise ValueError(f"no zone of {args.zones} can be imported")
        return result.zones
    return _load_store(settings)


def announce_zones(settings: Settings, version: int, timeout: float = 10.0) -> str:
    """Announce the stored zone set's new version retained, QoS 1, on {root}/control/zones; the topic."""
    from protocol import topics
    from protocol.brokerauth import SERVICE_ACCOUNTS
    from protocol.mqttclient import close_client, connect_client, publish_confirmed
    topic = topics.control_zones(settings.mqtt_root)
    client = connect_client(settings.service_url("admin"), f"skylane-zones-{os.getpid()}", timeout=timeout)
    try:
        publish_confirmed(client, topic, json.dumps({"version": version, "issuer": SERVICE_ACCOUNTS["admin"]}).encode(),
                          timeout=timeout)
    finally:
        close_client(client)
    return topic


def cmd_import(args, settings: Settings) -> int:
    import psycopg

    from airspace.formats import kept_for_skipped, report
    from airspace.zones import ZoneFormatError, ZoneSet
    from storage import catalog, queries
    from storage.controls import zone_set_version
    from storage.schema import migrate
    try:
        imported = _import_file(args.file, args.format, args.strict)
    except (OSError, ValueError) as exc:  # ZoneFormatError and JSON errors are ValueErrors
        _err(f"{args.file}: {exc}" + (" (--strict: nothing imported)" if args.strict else ""))
        return 1
    zs, skipped = imported.zones, imported.indices("skipped")
    print(f"read {len(zs)} zones from {imported.features} features of {args.file}"
          + (f"; {len(skipped)} features skipped" if skipped else ""), file=sys.stderr)
    if not len(zs):
        _err(f"{args.file}: no zone to import; nothing changed")
        return 1
    try:
        migrate(settings.database_url)
        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            with conn.transaction():
                doc = zs.to_geojson()
                kept = kept_for_skipped(imported, catalog.load_zones(conn)) if args.replace and skipped else []
                doc["features"] += kept
                result = queries.store_zones(conn, doc, args.replace)
                whole = ZoneSet.from_geojson(catalog.load_zones(conn))
            version = zone_set_version(conn)
    except ZoneFormatError as exc:
        _err(f"the store would hold a zone set that does not load ({exc}); nothing changed")
        return 1
    except (psycopg.Error, ValueError) as exc:
        _err(f"cannot store the zones in {settings.database.host}:{settings.database.port}: {exc}")
        return 1
    print(f"stored {len(zs)} zones, deactivated {len(result['deactivated'])}; {len(whole)} active zones"
          + (f"; kept the stored zones of skipped features: {', '.join(f['id'] for f in kept)}" if kept else ""),
          file=sys.stderr)
    try:
        topic = announce_zones(settings, version)
    except (ConnectionError, OSError, RuntimeError, ValueError) as exc:
        _err(f"zones stored, but not announced ({exc}); running ingesters keep their zones until restarted")
        return 1
    print(json.dumps({"imported": len(zs), "deactivated": result["deactivated"], "active": len(whole),
                      "topic": topic, "kept": [f["id"] for f in kept], "report": report(imported)},
                     ensure_ascii=False))
    return 0


def cmd_export(args, settings: Settings) -> int:
    from airspace.formats import export_zones
    try:
        zs = _zones(args, settings)
    except Exception as exc:  # noqa: BLE001 - file, format or database: report, never a traceback
        _err(f"cannot load zones: {exc}")
        return 1
    text = json.dumps(export_zones(zs, args.format), ensure_ascii=False, indent=1) + "\n"
    if args.output and args.output != "-":
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(zs)} zones as {args.format} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _point(obj: Any, default_ref: str, default_at: float, default_class: str | None):
    """(lon, lat, alt, ref, t, ua_class) from one input object, or ValueError naming the field."""
    from airspace.coords import position_problem
    from airspace.schedule import epoch_seconds
    from airspace.vertical import normalize_ref
    from airspace.zones import UA_CLASSES
    if not isinstance(obj, dict):
        raise ValueError("line must be a JSON object {lon, lat, alt[, ref, at, ua_class]}")
    missing = [k for k in ("lon", "lat", "alt") if k not in obj]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    if problem := position_problem(obj["lon"], obj["lat"], obj["alt"]):
        raise ValueError(problem)
    ref = normalize_ref(obj.get("ref", default_ref))
    at = default_at if obj.get("at") is None else epoch_seconds(obj["at"])
    ua_class = obj.get("ua_class", default_class)
    if ua_class is not None and ua_class not in UA_CLASSES:
        raise ValueError(f"field 'ua_class': {ua_class!r} is not one of {UA_CLASSES}")
    return float(obj["lon"]), float(obj["lat"]), float(obj["alt"]), ref, at, ua_class


def check_points(zs, points: list[tuple]) -> list[list[int]]:
    """Zone indices per point, in one vectorized pass per UA class present."""
    import numpy as np
    out: list[list[int]] = [[] for _ in points]
    if not points:
        return out
    lon, lat, alt, refs, at, classes = (list(c) for c in zip(*points))
    lon_a, lat_a, alt_a, t_a = (np.array(v, dtype=float) for v in (lon, lat, alt, at))
    amsl = np.empty_like(alt_a)
    refs_a = np.array(refs)
    for ref in set(refs):
        sel = refs_a == ref
        amsl[sel] = zs.vertical.to_amsl(alt_a[sel], ref, lon_a[sel], lat_a[sel])
    cls_a = np.array([c or "" for c in classes])
    for cls in set(cls_a.tolist()):
        sel = np.flatnonzero(cls_a == cls)
        p, z = zs.contains_pairs(lon_a[sel], lat_a[sel], amsl[sel], t_a[sel], cls or None)
        for i, j in zip(sel[p].tolist(), z.tolist()):
            out[i].append(j)
    return out


def _describe(zs, j: int) -> dict:
    z = zs.zones[j]
    return {"id": z.id, "name": z.name, "kind": z.kind, "restriction": z.restriction}


def cmd_check(args, settings: Settings) -> int:
    from airspace.schedule import ScheduleError, epoch_seconds, format_datetime
    try:
        default_at = time.time() if args.at is None else epoch_seconds(args.at)
    except ScheduleError as exc:
        _err(f"--at: {exc}")
        return 2
    try:
        zs = _zones(args, settings)
    except Exception as exc:  # noqa: BLE001 - file, format or database: report, never a traceback
        _err(f"cannot load zones: {exc}" + ("" if args.zones else " (give --zones FILE to check offline)"))
        return 1
    if args.points is None:
        if None in (args.lon, args.lat, args.alt):
            _err("give --lon, --lat and --alt, or --points FILE")
            return 2
        lines = [{"lon": args.lon, "lat": args.lat, "alt": args.alt}]
    else:
        try:
            text = sys.stdin.read() if args.points == "-" else Path(args.points).read_text(encoding="utf-8")
        except OSError as exc:
            _err(f"{args.points}: {exc}")
            return 1
        lines = []
        for raw in text.splitlines():
            try:
                lines.append(json.loads(raw) if raw.strip() else None)
            except ValueError as exc:
                lines.append(ValueError(f"not JSON: {exc}"))
    parsed: list[Any] = []
    for obj in lines:
        if obj is None or isinstance(obj, ValueError):
            parsed.append(obj)
            continue
        try:
            parsed.append(_point(obj, args.ref, default_at, args.ua_class))
        except (ValueError, TypeError) as exc:
            parsed.append(ValueError(str(exc)))
    good = [(i, p) for i, p in enumerate(parsed) if isinstance(p, tuple)]
    results = check_points(zs, [p for _, p in good])
    by_line = {i: r for (i, _), r in zip(good, results)}
    errors = 0
    for i, p in enumerate(parsed):
        if p is None:
            continue  # blank line
        if isinstance(p, ValueError):
            errors += 1
            print(json.dumps({"line": i + 1, "error": str(p)}))
            continue
        lon, lat, alt, ref, at, cls = p
        out = {"line": i + 1, "lon": lon, "lat": lat, "alt": alt, "ref": ref, "at": format_datetime(at),
               "zones": [_describe(zs, j) for j in by_line[i]]}
        if cls is not None:
            out["ua_class"] = cls
        print(json.dumps(out, ensure_ascii=False))
    if errors:
        _err(f"{errors} bad line(s)")
        return 1
    return 0


def cmd_zones(args, settings: Settings) -> int:
    return {"import": cmd_import, "export": cmd_export, "check": cmd_check}[args.action](args, settings)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def register(sub) -> None:
    import argparse
    s = sub.add_parser("zones", help="import/export zone files (ED-269, ED-318, GeoJSON); check 4D points",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    zs = s.add_subparsers(dest="action", required=True)
    imp = zs.add_parser("import", help="validate a zone file, store it and publish it to running ingesters")
    imp.add_argument("file")
    imp.add_argument("--format", choices=FORMATS, help="default: detected from the document")
    imp.add_argument("--replace", action="store_true", help="deactivate stored zones missing from FILE")
    imp.add_argument("--strict", action="store_true", help="refuse the file on any problem (default: import every "
                                                           "valid feature, repair or skip the others, report each)")
    exp = zs.add_parser("export", help="the store's zones (or --zones FILE) in a format")
    exp.add_argument("--format", choices=FORMATS, required=True)
    exp.add_argument("-o", "--output", help="file to write (default: stdout)")
    exp.add_argument("--zones", help="read zones from this file instead of the store")
    exp.add_argument("--strict", action="store_true", help="refuse a --zones file with any problem")
    chk = zs.add_parser("check", help="the zones that apply at a 4D point (or at each point of --points)")
    chk.add_argument("--lon", type=_finite)
    chk.add_argument("--lat", type=_finite)
    chk.add_argument("--alt", type=_finite, help="metres in --ref")
    chk.add_argument("--ref", default="AGL", type=str.upper, choices=["AGL", "AMSL", "WGS84"])
    chk.add_argument("--at", help="ISO 8601 (no offset: Asia/Shanghai) or epoch seconds; default now")
    chk.add_argument("--zones", help="zone file (any format); default: the running system's store")
    chk.add_argument("--ua-class", choices=["micro", "light", "small", "medium", "large"])
    chk.add_argument("--points", help="JSON lines file ('-' = stdin) of {lon, lat, alt, ref, at}")
    chk.add_argument("--strict", action="store_true", help="refuse a --zones file with any problem")
    s.set_defaults(func=cmd_zones)
