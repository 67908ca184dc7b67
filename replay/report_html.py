"""The incident report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.

A map (the zones in view, the involved ones outlined, each drone's track and numbered event markers), the
altitude profile with the events, the timeline (each event with the drone's fix at that moment), the sensor
values that mattered (readings with the rule's limit and clear lines) and the fixes themselves. Times in
Asia/Shanghai with UTC beside them. Prints on A4 (print CSS: no dark backgrounds, sections kept whole where
they fit, table headers repeated). Every text in the report's language (zh-CN or en, `<html lang>` too) from the
catalogue: the page's own under `report.*`, event kinds (`event.kind.*`) and the one line saying what each event
means (i18n.render.event_description) as the API says them; zones by their Chinese name (`name_zh`) in Chinese.
Event kinds, zone ids and the raw detail stay beside the texts: they are what logs and the API show.
"""
from __future__ import annotations

import bisect
import html
import math
from collections import Counter
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import shapely
from shapely.geometry import box

import i18n
from i18n.render import event_description, kind_label, metric_label, ref_label, zone_label
from protocol.times import parse_rfc3339

from .report import Fix, ReportData, SensorSeries, Why, event_time

LOCAL = ZoneInfo("Asia/Shanghai")
MAP_W = 1000.0
PALETTE = ("#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#0e7490", "#a16207", "#be123c", "#4d7c0f")
ALERT_KINDS = frozenset(("no_fly_violation", "altitude_violation", "corridor_exit", "route_deviation",
                         "uncleared_flight", "link_lost", "zone_suspended"))
ZONE_FILL = {"restricted": "#dc2626", "prohibited": "#dc2626", "corridor": "#2563eb", "vertiport": "#0891b2",
             "authorization": "#d97706", "conditional": "#ca8a04", "area": "#64748b"}
MAX_FIX_ROWS = 5000
MIN_VIEW_DEG = 0.02  # about 2 km: the map shows a track's surroundings
MAX_ASPECT, MIN_ASPECT = 0.9, 0.45  # map height / width


def _t(key: str, lang: str, **kw) -> str:
    """The page's text `report.<key>` in `lang`."""
    return i18n.t(f"report.{key}", lang, **kw)


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def local_time(t: float, with_date: bool = True) -> str:
    dt = datetime.fromtimestamp(t, LOCAL)
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if with_date else dt.strftime("%H:%M:%S")


def utc_time(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def severity(kind: str) -> str:
    return "alert" if kind in ALERT_KINDS else "info" if kind == "zone_enter" else "end"


def zone_names_zh(data: ReportData) -> dict[str, str]:
    """Zone id -> its Chinese name (`name_zh`), for the zones that have one."""
    return {z.id: z.properties["name_zh"] for z in data.zones
            if isinstance(z.properties.get("name_zh"), str) and z.properties["name_zh"]}


def zone_name(z, lang: str) -> str:
    names = {z.id: z.properties["name_zh"]} if isinstance(z.properties.get("name_zh"), str) else None
    return zone_label(z.id, z.name, lang, names)


def zone_kind(kind: str, lang: str) -> str:
    return _t(f"zone_kind.{kind}", lang) if i18n.has(f"report.zone_kind.{kind}") else kind


def restriction(value: str | None, lang: str) -> str:
    return _t(f"restriction.{value}", lang) if i18n.has(f"report.restriction.{value}") else str(value or "")


def height(alt_m: float, ref: str | None, lang: str) -> str:
    return _t("height", lang, alt=f"{alt_m:g}", ref=ref_label(ref, lang))


# ------------------------------------------------------------------------------------------------ map

class Projection:
    """Equirectangular around the view's middle latitude: lon/lat to SVG units, north up."""

    def __init__(self, bounds: tuple[float, float, float, float]):
        minx, miny, maxx, maxy = bounds
        self.kx = math.cos(math.radians((miny + maxy) / 2))
        span_x = max((maxx - minx) * self.kx, 1e-6)
        self.scale = MAP_W / span_x
        self.minx, self.maxy = minx, maxy
        self.height = max(200.0, (maxy - miny) * self.scale)

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (lon - self.minx) * self.kx * self.scale, (self.maxy - lat) * self.scale

    def metres_per_unit(self) -> float:
        return 111_320.0 / self.scale


def _view(data: ReportData) -> tuple[float, float, float, float]:
    """Around the tracks and events (at least MIN_VIEW_DEG wide and high, padded); without them the zones
    involved, else the whole airspace. Zones reaching beyond it are drawn clipped."""
    pts = [(f.lon, f.lat) for fixes in data.tracks.values() for f in fixes]
    pts += [p for e in data.events if (p := _event_position(e, data)) is not None]
    if pts:
        minx, miny, maxx, maxy = shapely.MultiPoint(pts).bounds
    else:
        bounds = [z.geometry.bounds for z in data.zones if z.id in data.involved] or \
            [z.geometry.bounds for z in data.zones] or [(121.4, 31.0, 121.6, 31.1)]
        minx, miny = min(b[0] for b in bounds), min(b[1] for b in bounds)
        maxx, maxy = max(b[2] for b in bounds), max(b[3] for b in bounds)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    half_x = max((maxx - minx) * 0.65, MIN_VIEW_DEG / 2)
    half_y = max((maxy - miny) * 0.65, MIN_VIEW_DEG / 2)
    kx = math.cos(math.radians(cy))
    half_x = max(half_x, half_y / kx / MAX_ASPECT)  # not taller than MAX_ASPECT (a page), nor too flat
    half_y = max(half_y, half_x * kx * MIN_ASPECT)
    return cx - half_x, cy - half_y, cx + half_x, cy + half_y


def fix_at(fixes: list[Fix], t: float) -> Fix | None:
    """The last fix at or before `t` (the drone's state when the event was decided)."""
    i = bisect.bisect_right([f.t for f in fixes], t)
    return fixes[i - 1] if i else None


def _event_position(ev: dict, data: ReportData) -> tuple[float, float] | None:
    d = ev.get("detail") or {}
    if isinstance(d.get("lon"), (int, float)) and isinstance(d.get("lat"), (int, float)):
        return float(d["lon"]), float(d["lat"])
    fix = fix_at(data.tracks.get(ev.get("uav_id") or "", []), event_time(ev))
    return (fix.lon, fix.lat) if fix else None


def _path(geom, proj: Projection) -> str:
    parts = []
    for poly in getattr(geom, "geoms", [geom]):
        for ring in [poly.exterior, *poly.interiors] if hasattr(poly, "exterior") else []:
            xy = [proj.xy(x, y) for x, y in ring.coords]
            parts.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in xy) + " Z")
    return " ".join(parts)


def map_svg(data: ReportData, lang: str) -> str:
    view = _view(data)
    proj = Projection(view)
    viewbox = box(*view)
    out = [f'<svg class="map" viewBox="0 0 {MAP_W:.0f} {proj.height:.0f}" role="img" '
           f'aria-label="{esc(_t("h.map", lang))}"><rect class="sea" width="100%" height="100%"/>']
    for z in sorted(data.zones, key=lambda z: (z.id in data.involved, -z.geometry.area)):
        if not z.geometry.intersects(viewbox):
            continue
        cls = "zone involved" if z.id in data.involved else "zone"
        color = ZONE_FILL.get(z.kind, "#64748b")
        out.append(f'<path class="{cls}" d="{_path(z.geometry, proj)}" fill="{color}" stroke="{color}">'
                   f'<title>{esc(z.id)}: {esc(zone_name(z, lang))} ({esc(zone_kind(z.kind, lang))}, '
                   f'{esc(_band(z, lang))})</title></path>')
    for z in data.zones:
        if z.id in data.involved and z.geometry.intersects(viewbox):
            p = z.geometry.intersection(viewbox).representative_point()
            x, y = proj.xy(p.x, p.y)
            out.append(f'<text class="zlabel" x="{x:.1f}" y="{y:.1f}">{esc(z.id)}</text>')
    for i, (uav, fixes) in enumerate(sorted(data.tracks.items())):
        color = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (proj.xy(f.lon, f.lat) for f in fixes))
        out.append(f'<polyline class="track" points="{pts}" stroke="{color}"><title>{esc(uav)}</title></polyline>')
        if len(fixes) <= 2000:
            for f in fixes:
                x, y = proj.xy(f.lon, f.lat)
                out.append(f'<circle class="fix" cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{color}"><title>{esc(uav)} '
                           f'{local_time(f.t)} {f.lon:.6f}, {f.lat:.6f}, {esc(height(f.alt_m, f.alt_ref, lang))}'
                           '</title></circle>')
    placed: list[tuple[float, float]] = []
    for n, ev in enumerate(data.events, 1):
        pos = _event_position(ev, data)
        if pos is None:
            continue
        x0, y0 = proj.xy(*pos)
        x, y = x0, y0
        while any(abs(x - px) < 18 and abs(y - py) < 18 for px, py in placed):  # stack markers at one place
            y -= 20
        placed.append((x, y))
        leader = f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x:.1f}" y2="{y:.1f}"/>' if y != y0 else ""
        out.append(f'<g class="ev {severity(ev["kind"])}">{leader}<circle cx="{x:.1f}" cy="{y:.1f}" r="9"/>'
                   f'<text x="{x:.1f}" y="{y + 3.5:.1f}">{n}</text><title>{n}. {esc(kind_label(ev["kind"], lang))} '
                   f'{esc(ev.get("uav_id"))} {esc(ev.get("zone_id") or "")}</title></g>')
    out.append(_scale_bar(proj, lang))
    out.append("</svg>")
    return "".join(out)


def _scale_bar(proj: Projection, lang: str) -> str:
    target_m = proj.metres_per_unit() * MAP_W / 5
    km = max(0.05, 10 ** math.floor(math.log10(target_m / 1000)))
    for step in (5, 2, 1):
        if step * km * 1000 <= target_m:
            km *= step
            break
    length = km * 1000 / proj.metres_per_unit()
    y = proj.height - 20
    return (f'<g class="scale"><line x1="20" y1="{y:.0f}" x2="{20 + length:.1f}" y2="{y:.0f}"/>'
            f'<text x="20" y="{y - 6:.0f}">{esc(_t("scale", lang, km=round(km, 3)))}</text>'
            f'<text x="{MAP_W - 30:.0f}" y="30" class="north">{esc(_t("north", lang))}</text></g>')


def _band(z, lang: str) -> str:
    upper = "∞" if math.isinf(z.upper_m) else f"{z.upper_m:g}"
    ref = ref_label(z.alt_ref, lang) + (f"/{ref_label(z.upper_ref, lang)}" if z.upper_ref else "")
    return _t("band", lang, lower=f"{z.lower_m:g}", upper=upper, ref=ref)


# ------------------------------------------------------------------------------------------------ charts

def profile_svg(data: ReportData, lang: str) -> str:
    span = data.span
    fixes = [f for fs in data.tracks.values() for f in fs]
    if span is None or not fixes:
        return ""
    w, h, left, bottom = 1000.0, 260.0, 50.0, 24.0
    t0, t1 = span[0], max(span[1], span[0] + 1)
    lo, hi = min(0.0, min(f.alt_m for f in fixes)), max(f.alt_m for f in fixes) * 1.1 + 1

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * (w - left - 10)

    def y(a: float) -> float:
        return 10 + (hi - a) / (hi - lo) * (h - bottom - 10)
    out = [f'<svg class="chart" viewBox="0 0 {w:.0f} {h:.0f}" role="img" aria-label="{esc(_t("h.profile", lang))}">',
           f'<line class="axis" x1="{left}" y1="{y(lo):.1f}" x2="{w - 10}" y2="{y(lo):.1f}"/>',
           f'<text class="tick" x="4" y="14">{hi:.0f} m</text><text class="tick" x="4" y="{y(lo):.1f}">{lo:.0f}</text>',
           f'<text class="tick" x="{left}" y="{h - 6}">{local_time(t0, False)}</text>',
           f'<text class="tick end" x="{w - 10}" y="{h - 6}">{local_time(t1, False)}</text>']
    for n, ev in enumerate(data.events, 1):
        xe = x(event_time(ev))
        out.append(f'<g class="evline {severity(ev["kind"])}"><line x1="{xe:.1f}" y1="10" x2="{xe:.1f}" '
                   f'y2="{y(lo):.1f}"/><text x="{xe + 2:.1f}" y="20">{n}</text></g>')
    for i, (uav, fs) in enumerate(sorted(data.tracks.items())):
        pts = " ".join(f"{x(f.t):.1f},{y(f.alt_m):.1f}" for f in fs)
        out.append(f'<polyline class="track" points="{pts}" stroke="{PALETTE[i % len(PALETTE)]}">'
                   f'<title>{esc(uav)}</title></polyline>')
    out.append(f'<text class="tick" x="{left + 4}" y="{h - bottom - 2}">{esc(_t("axis.alt", lang))}</text></svg>')
    return "".join(out)


def sensor_svg(series: SensorSeries) -> str:
    rows = [r for r in series.readings if r.value is not None]
    if len(rows) < 2:
        return ""
    w, h = 600.0, 120.0
    t0, t1 = rows[0].t, max(rows[-1].t, rows[0].t + 1)
    levels = [r.value for r in rows] + [v for rule in series.rules for v in (rule.limit, rule.clear)]
    lo, hi = min(levels), max(levels)
    hi, lo = (hi + 1, lo - 1) if hi == lo else (hi + (hi - lo) * 0.1, lo - (hi - lo) * 0.1)

    def x(t):
        return 5 + (t - t0) / (t1 - t0) * (w - 10)

    def y(v):
        return 5 + (hi - v) / (hi - lo) * (h - 10)
    out = [f'<svg class="spark" viewBox="0 0 {w:.0f} {h:.0f}" role="img" aria-label="{esc(series.sensor_id)}">']
    for rule in series.rules:
        out.append(f'<line class="limit" x1="0" x2="{w:.0f}" y1="{y(rule.limit):.1f}" y2="{y(rule.limit):.1f}"/>'
                   f'<line class="clear" x1="0" x2="{w:.0f}" y1="{y(rule.clear):.1f}" y2="{y(rule.clear):.1f}"/>')
    pts = " ".join(f"{x(r.t):.1f},{y(r.value):.1f}" for r in rows)
    top, bottom = max(r.value for r in rows), min(r.value for r in rows)
    out.append(f'<polyline class="series" points="{pts}"/><text class="tick" x="8" y="{y(top) + 4:.1f}">{top:g}'
               f'</text><text class="tick" x="8" y="{y(bottom) - 2:.1f}">{bottom:g}</text></svg>')
    return "".join(out)


# ------------------------------------------------------------------------------------------------ tables

def _detail(ev: dict) -> str:
    d = ev.get("detail") or {}
    bits = []
    for key in ("zone_name", "band", "alt_amsl", "between_fixes", "reason", "sensor_id", "metric", "value",
                "limit", "gap_s", "lateral_m", "vertical_m", "clearance_id"):
        if key in d and d[key] is not None:
            bits.append(f"{key}={d[key]}")
    for key in ("entry", "exit"):
        if isinstance(d.get(key), dict) and d[key].get("ts"):
            bits.append(f"{key} {utc_time(parse_rfc3339(d[key]['ts']).timestamp())} UTC")
    if isinstance(d.get("flights"), list):
        bits.append("flights=" + ",".join(str(f.get("uav_id", f)) if isinstance(f, dict) else str(f)
                                          for f in d["flights"][:20]))
    return "; ".join(bits)


def _context(ev: dict, data: ReportData, lang: str) -> str:
    t = event_time(ev)
    fix = fix_at(data.tracks.get(ev.get("uav_id") or "", []), t)
    if fix is None:
        return _t("context.none", lang)
    return _t("context", lang, height=height(fix.alt_m, fix.alt_ref, lang),
              speed="?" if fix.speed_mps is None else f"{fix.speed_mps:g}",
              battery="?" if fix.battery_pct is None else f"{fix.battery_pct:g}%",
              status=fix.status or "?", ago=_t("ago", lang, seconds=t - fix.t))


def timeline(data: ReportData, lang: str) -> str:
    if not data.events:
        return f"<p>{esc(_t('none.events', lang))}</p>"
    head = "".join(f"<th>{esc(_t(k, lang))}</th>" for k in ("col.n", "col.local", "col.utc", "col.kind", "col.uav",
                                                            "col.zone", "col.detail", "col.context"))
    names = zone_names_zh(data)
    rows = []
    for n, ev in enumerate(data.events, 1):
        t, kind = event_time(ev), ev["kind"]
        rows.append(f'<tr class="{severity(kind)}" id="ev{n}" data-event-id="{esc(ev.get("id"))}" '
                    f'data-kind="{esc(kind)}"><td>{n}</td><td>{local_time(t)}</td><td>{utc_time(t)}</td>'
                    f"<td><b>{esc(kind_label(kind, lang))}</b><br><small>{esc(kind)}</small></td>"
                    f"<td>{esc(ev.get('uav_id'))}</td><td>{esc(ev.get('zone_id') or '')}</td>"
                    f"<td>{esc(event_description(ev, lang, names))}<br><small>{esc(_detail(ev))}<br>"
                    f"{esc(ev.get('id'))}</small></td><td>{esc(_context(ev, data, lang))}</td></tr>")
    return f'<table class="timeline"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _why(why: Why, lang: str) -> str:
    if why.rule is not None:
        return _t("why.rule", lang, rule=why.rule, zone=why.zone)
    return _t("why.event", lang, kind=kind_label(why.kind or "", lang), zone=why.zone)


def sensors_section(data: ReportData, lang: str) -> str:
    if not data.sensors:
        return f"<p>{esc(_t('none.sensors', lang))}</p>"
    out = []
    for s in data.sensors:
        rules = _t("separator", lang).join(
            _t("sensor.rule", lang, id=r.id, op=r.op, limit=r.limit, clear_op="<" if r.op == ">" else ">",
               clear=r.clear) for r in s.rules)
        why = _t("separator", lang).join(_why(w, lang) for w in s.why)
        body = "".join(f"<tr><td>{local_time(r.t)}</td><td>{utc_time(r.t)}</td><td>"
                       f"{esc(r.text if r.value is None else f'{r.value:g}')} {esc(r.unit or '')}</td></tr>"
                       for r in s.readings)
        out.append(f'<div class="sensor" data-metric="{esc(s.metric)}"><h3>{esc(s.sensor_id)} · '
                   f'{esc(metric_label(s.metric, lang))}</h3>'
                   f"<p>{esc(_t('sensor.why', lang, why=why))}{'<br>' + esc(rules) if rules else ''}</p>"
                   f"{sensor_svg(s)}<table><thead><tr><th>{esc(_t('col.local', lang))}</th>"
                   f"<th>{esc(_t('col.utc', lang))}</th><th>{esc(_t('col.value', lang))}</th></tr></thead>"
                   f"<tbody>{body}</tbody></table></div>")
    return "".join(out)


def _zone_events(z, count: int, lang: str) -> str:
    return _t("zone_events", lang, restriction=restriction(z.restriction, lang), count=count)


def zones_section(data: ReportData, lang: str) -> str:
    zones = [z for z in data.zones if z.id in data.involved]
    if not zones:
        return f"<p>{esc(_t('none.zones', lang))}</p>"
    head = "".join(f"<th>{esc(_t(k, lang))}</th>"
                   for k in ("col.id", "col.name", "col.type", "col.band", "col.restriction"))
    counts = Counter(e.get("zone_id") for e in data.events)
    rows = "".join(f"<tr><td>{esc(z.id)}</td><td>{esc(zone_name(z, lang))}</td><td>{esc(zone_kind(z.kind, lang))}</td>"
                   f"<td>{esc(_band(z, lang))}</td><td>{esc(_zone_events(z, counts[z.id], lang))}</td></tr>"
                   for z in zones)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def fixes_section(data: ReportData, lang: str) -> str:
    if not data.tracks:
        return f"<p>{esc(_t('none.track', lang))}</p>"
    head = "".join(f"<th>{esc(_t(k, lang))}</th>" for k in ("col.local", "col.lon", "col.lat", "col.alt", "col.speed",
                                                            "col.battery", "col.status"))
    refs = {ref: esc(ref_label(ref, lang)) for ref in {f.alt_ref for fixes in data.tracks.values() for f in fixes}}
    out = []
    for uav, fixes in sorted(data.tracks.items()):
        shown = fixes[:MAX_FIX_ROWS]
        rows = "".join(f"<tr><td>{local_time(f.t)}</td><td>{f.lon:.6f}</td><td>{f.lat:.6f}</td>"
                       f"<td>{f.alt_m:g} {refs[f.alt_ref]}</td><td>{'' if f.speed_mps is None else f'{f.speed_mps:g}'}</td>"
                       f"<td>{'' if f.battery_pct is None else f'{f.battery_pct:g}'}</td><td>{esc(f.status or '')}</td></tr>"
                       for f in shown)
        more = f" {_t('fixes.thinned', lang, count=MAX_FIX_ROWS)}" if len(fixes) > MAX_FIX_ROWS else ""
        out.append(f'<details class="fixes" {"open" if len(fixes) <= 300 else ""}><summary>'
                   f"{esc(_t('fixes.count', lang, uav=uav, count=len(fixes)))}{esc(more)}</summary>"
                   f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></details>")
    return "".join(out)


# ------------------------------------------------------------------------------------------------ page

CSS = """
:root{--ink:#111827;--muted:#6b7280;--line:#d1d5db;--alert:#b91c1c;--end:#15803d;--info:#1d4ed8}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC",
sans-serif;color:var(--ink);margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;border-bottom:2px solid var(--ink);padding-bottom:2px;
margin:28px 0 10px}h3{font-size:15px;margin:14px 0 4px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dt{color:var(--muted)}dd{margin:0}
table{border-collapse:collapse;width:100%;font-size:12.5px}th,td{border:1px solid var(--line);padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f3f4f6}tr.alert td:nth-child(4){color:var(--alert)}
tr.end td:nth-child(4){color:var(--end)}tr.info td:nth-child(4){color:var(--info)}small{color:var(--muted)}
svg{width:100%;height:auto;display:block;border:1px solid var(--line);background:#fff}
.sea{fill:#f8fafc}.zone{fill-opacity:.10;stroke-width:1;stroke-opacity:.6}.zone.involved{fill-opacity:.25;
stroke-width:2.5;stroke-opacity:1}.zlabel{font-size:13px;font-weight:600;fill:#111827;paint-order:stroke;
stroke:#fff;stroke-width:3px}.track{fill:none;stroke-width:2}.ev circle{stroke:#fff;stroke-width:1.5}.ev line{stroke:#374151;stroke-width:1}
.ev.alert circle{fill:var(--alert)}.ev.end circle{fill:var(--end)}.ev.info circle{fill:var(--info)}
.ev text{font-size:10px;font-weight:700;fill:#fff;text-anchor:middle}.scale line{stroke:#111827;stroke-width:3}
.scale text,.tick{font-size:12px;fill:#374151}.tick.end{text-anchor:end}.north{font-weight:700;font-size:16px}
.axis{stroke:#9ca3af}.evline line{stroke-width:1;stroke-dasharray:3 3}.evline.alert line{stroke:var(--alert)}
.evline.end line{stroke:var(--end)}.evline.info line{stroke:var(--info)}.evline text{font-size:10px}
.spark{max-width:600px}.series{fill:none;stroke:#1d4ed8;stroke-width:2}.limit{stroke:var(--alert);
stroke-dasharray:6 3}.clear{stroke:var(--end);stroke-dasharray:2 3}.sensor table{max-width:600px}
summary{cursor:pointer;margin:6px 0}footer{margin-top:32px;color:var(--muted);font-size:12px}
@page{size:A4;margin:12mm}
@media print{body{margin:0;max-width:none;font-size:11px}table{font-size:9.5px}h2{break-after:avoid}svg,.sensor,tr{break-inside:avoid}
svg.map{max-height:170mm}svg.chart{max-height:70mm}section.map-section{break-inside:avoid}
thead{display:table-header-group}details>summary{list-style:none}*{-webkit-print-color-adjust:exact;
print-color-adjust:exact}}
"""


def render(data: ReportData, language: str = "en") -> str:
    """The page in `language` (zh-CN or en; any tag i18n.normalize takes)."""
    lang = i18n.normalize(language)
    span = data.span
    kinds = Counter(e["kind"] for e in data.events)
    s = data.summary
    meta = [(_t("meta.recording", lang), data.source), (_t("meta.root", lang), data.root)]
    if data.recorded:
        meta.append((_t("meta.recorded", lang), data.recorded))
    if span:
        meta.append((_t("meta.span", lang), _t("meta.span_value", lang, local_start=local_time(span[0]),
                                              local_end=local_time(span[1]), utc_start=utc_time(span[0]),
                                              utc_end=utc_time(span[1]))))
    meta.append((_t("meta.uav", lang), data.uav or _t("meta.all", lang)))
    meta.append((_t("meta.events", lang), _t("separator", lang).join(
        _t("meta.kind_count", lang, label=kind_label(k, lang), count=n) for k, n in sorted(kinds.items())) or "0"))
    meta.append(("", _t("meta.messages", lang, messages=s.get("messages", 0), fixes=s.get("telemetry", 0),
                        readings=s.get("readings", 0), seconds=s.get("seconds", 0.0))))
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in meta)
    title = _t("title", lang, name=data.title)
    sections = [("h.map", map_svg(data, lang), ' class="map-section"'), ("h.profile", profile_svg(data, lang), ""),
                ("h.timeline", timeline(data, lang), ""), ("h.sensors", sensors_section(data, lang), ""),
                ("h.zones", zones_section(data, lang), ""), ("h.fixes", fixes_section(data, lang), "")]
    body = "".join(f"<section{cls}><h2>{esc(_t(key, lang))}</h2>{content}</section>" for key, content, cls in sections)
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
            f"<header><h1>{esc(title)}</h1><dl class=\"meta\">{dl}</dl></header>{body}"
            f"<footer>{esc(_t('footer', lang))}</footer></body></html>\n")
