"""`skylane clearance request FILE --uav ID --departure T [--speed S]`: a route file (DJI KMZ/WPML, KML,
GeoJSON, QGC WPL) or a JSON request submitted to the API's POST /v1/clearances.

Through the API, not the database: the decision has one path (the API's decision desk: quota, deconfliction
against the approved flights, supersession, the announcement to the airspace monitor), and the operator's key
says whose drone it may be. The key comes from --api-key or SKYLANE_API_KEY, the API from --api-url or
SKYLANE_API_URL (default http://SKYLANE_API_HOST:SKYLANE_API_PORT). Texts in --lang (default: from LANG).
Exit 0 approved, 1 denied, 2 refused or unreachable.
"""
from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from i18n import negotiate, t
from i18n.render import local_time
from protocol.times import parse_rfc3339, rfc3339

from ..settings import Settings

TYPES = {".kmz": "application/vnd.google-earth.kmz", ".kml": "application/vnd.google-earth.kml+xml",
         ".wpml": "application/vnd.google-earth.kml+xml", ".geojson": "application/geo+json",
         ".waypoints": "text/plain", ".txt": "text/plain"}
LOCAL = ZoneInfo("Asia/Shanghai")


def content_type(path: Path, data: bytes) -> str:
    """The content type for a file: by extension; a .json file is GeoJSON unless it is a clearance request."""
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(data)
        except ValueError:
            return "application/json"
        return "application/json" if isinstance(doc, dict) and "waypoints" in doc else "application/geo+json"
    return TYPES.get(path.suffix.lower(), "application/octet-stream")


def departure_param(text: str) -> str:
    """RFC 3339 or epoch seconds; without an offset the time is Asia/Shanghai (as every Skylane command)."""
    try:
        dt = datetime.fromtimestamp(float(text), LOCAL)
    except ValueError:
        dt = parse_rfc3339(text, naive=LOCAL)
    return rfc3339(dt)


def cmd_clearance(args, settings: Settings) -> int:
    lang = negotiate(args.lang or os.environ.get("LC_ALL") or os.environ.get("LANG", "").split(".")[0])
    key = args.api_key or os.environ.get("SKYLANE_API_KEY")
    if not key:
        print(t("cli.clearance.no_key", lang), file=sys.stderr)
        return 2
    path = Path(args.file)
    try:
        data = path.read_bytes()
        departure = departure_param(args.departure) if args.departure else None
    except (OSError, ValueError, OverflowError) as exc:
        print(t("cli.clearance.cannot_read", lang, file=args.file, detail=exc), file=sys.stderr)
        return 2
    base = (args.api_url or os.environ.get("SKYLANE_API_URL") or f"http://{settings.api_host}:{settings.api_port}")
    params = {k: v for k, v in (("uav_id", args.uav), ("departure", departure), ("speed_mps", args.speed),
                                ("alt_ref", args.alt_ref), ("alt_m", args.alt_m)) if v is not None}
    ctype = content_type(path, data)
    if ctype == "application/json":  # a JSON request says everything itself; the options fill what it lacks
        doc = json.loads(data)
        for k, v in params.items():
            doc.setdefault(k, v)
        data, params = json.dumps(doc).encode(), {}
    url = base.rstrip("/") + "/v1/clearances" + ("?" + urllib.parse.urlencode(params) if params else "")
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": ctype, "Accept-Language": lang,
        "Content-Disposition": f'attachment; filename="{path.name}"'})
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            detail = json.loads(raw).get("detail")
        except ValueError:
            detail = raw[:500].decode("utf-8", "replace")
        print(t("cli.clearance.error", lang, status=exc.code,
                detail=detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)), file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as exc:
        print(t("cli.clearance.unreachable", lang, url=base, detail=getattr(exc, "reason", exc)), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(body, ensure_ascii=False, indent=1))
    else:
        print(report(body, lang))
    return 0 if body.get("decision") == "approved" else 1


def report(body: dict, lang: str) -> str:
    """The decision for a person: the decision, window, where the heights came from, reasons, suggestions."""
    lines = [t("cli.clearance.decision", lang, id=body.get("clearance_id"),
               decision=t(f"clearance.decision.{body.get('decision')}", lang)),
             t("cli.clearance.window", lang, start=local_time(body.get("start_time"), lang),
               end=local_time(body.get("end_time"), lang))]
    src = body.get("source")
    if src:
        lines.append(t("cli.clearance.route", lang, n=src.get("waypoints"), ref=src.get("alt_ref"),
                       source=src.get("height_source") or src.get("alt_ref_from")))
    lines += [t("cli.clearance.reason", lang, message=r.get("message")) for r in body.get("reasons", [])]
    lines += [t("cli.clearance.suggestion", lang, message=s.get("message")) for s in body.get("suggestions", [])]
    return "\n".join(lines)


def register(sub) -> None:
    p = sub.add_parser("clearance", help="request a route clearance from a route file through the API")
    act = p.add_subparsers(dest="action", required=True)
    r = act.add_parser("request", help="submit FILE (KMZ, KML, WPML, GeoJSON, QGC WPL or a JSON request)")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--uav", help="the drone (one of yours)")
    r.add_argument("--departure", help="ISO 8601 (no offset: Asia/Shanghai) or epoch seconds; default now")
    r.add_argument("--speed", type=float, help="one ground speed, m/s (default: the file's speeds, else 10)")
    r.add_argument("--alt-ref", choices=("AGL", "AMSL", "WGS84"), help="the heights' reference, where the file "
                                                                       "states none")
    r.add_argument("--alt-m", type=float, help="the altitude of every waypoint, for a file without heights")
    r.add_argument("--api-url", help="default SKYLANE_API_URL, else http://SKYLANE_API_HOST:SKYLANE_API_PORT")
    r.add_argument("--api-key", help="an operator's (or admin's) key; default SKYLANE_API_KEY")
    r.add_argument("--lang", help="zh-CN or en (default: from LANG)")
    r.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    r.add_argument("--timeout", type=float, default=60.0)
    r.set_defaults(func=cmd_clearance)
