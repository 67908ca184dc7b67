"""Texts rendered from data at the edge: clearance reasons and suggestions from their code and fields, event
descriptions from the kind and its detail, times in Asia/Shanghai. The airspace core keeps codes and
parameters; the API (and anything else that shows them to people) calls these with the reader's language.

`names` maps zone ids to their Chinese names (`name_zh` of the zone file); without one a zone is shown by the
name the data carries (English), else its id.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from protocol.times import parse_rfc3339

from .catalogue import has, normalize, t

LOCAL = ZoneInfo("Asia/Shanghai")


def local_time(ts: Any, lang: str) -> str:
    """An RFC 3339 string, epoch seconds or aware datetime as Asia/Shanghai wall time, e.g.
    "2026-11-27 16:00:05 (UTC+8)"; anything unreadable as given."""
    try:
        if isinstance(ts, datetime):
            dt = ts
        elif isinstance(ts, (int, float)) and not isinstance(ts, bool):
            dt = datetime.fromtimestamp(float(ts), timezone.utc)
        else:
            dt = parse_rfc3339(str(ts))
        if dt.utcoffset() is None:
            return str(ts)
    except (ValueError, OverflowError, OSError):
        return str(ts)
    return t("time.local", lang, time=dt.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S"))


def duration(seconds: Any, lang: str) -> str:
    """Seconds as hours, minutes and seconds (rounded to the second)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return str(seconds)
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    key = "time.duration.hms" if h else "time.duration.ms" if m else "time.duration.s"
    return t(key, lang, h=h, m=m, s=s)


def ref_label(ref: Any, lang: str) -> str:
    return t(f"alt_ref.{ref}", lang) if isinstance(ref, str) and has(f"alt_ref.{ref}") else str(ref or "")


def num(v: Any) -> str:
    """A measured value for reading: at most two decimals, no trailing zeros."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "?" if v is None else str(v)
    return f"{round(float(v), 2):g}"


def zone_label(zone_id: Any, name: Any, lang: str, names: Mapping[str, str] | None = None) -> str:
    """A zone as a reader sees it: its name in the language (Chinese from `names`), else its id."""
    if normalize(lang) == "zh-CN" and names and zone_id in names and names[zone_id]:
        return str(names[zone_id])
    if isinstance(name, str) and name:
        return name
    return str(zone_id) if zone_id is not None else t("event.part.no_zone", lang)


def _where(p: Mapping, lang: str) -> str:
    at = t("clearance.reason.where_at", lang, time=local_time(p["t"], lang)) if p.get("t") else ""
    return t("clearance.reason.where", lang, lon=p.get("lon"), lat=p.get("lat"), alt=p.get("alt_m"), at=at)


def reason_message(r: Mapping, lang: str, names: Mapping[str, str] | None = None) -> str:
    """A clearance reason (airspace.clearance) said in `lang`, from its code and fields."""
    code = r.get("code")
    segs = r.get("segments") or [r.get("segment"), r.get("segment")]
    k = f"{segs[0]}" if segs[0] == segs[1] else f"{segs[0]}-{segs[1]}"
    zid = r.get("zone_id")
    p = {"k": k, "zid": zid, "zname": zone_label(zid, r.get("zone_name"), lang, names)}
    entry, exit_ = r.get("entry") or {}, r.get("exit") or {}
    if entry:
        p["entry"], p["exit"] = _where(entry, lang), _where(exit_, lang)
    alt = r.get("altitude") or {}
    lo, hi = (alt.get("zone_m") or [None, None])[:2]
    zref = ref_label(alt.get("zone_alt_ref"), lang)
    if code == "restricted_zone":
        return t("clearance.reason.restricted_zone", lang, band=t("clearance.reason.band", lang, lo=lo, hi=hi, ref=zref),
                 **p)
    if code == "above_ceiling" and r.get("rule") == "true_height_ceiling":
        top = t("clearance.reason.top", lang, top=r.get("upper_m"), ref=ref_label("AGL", lang))
        return t("clearance.reason.true_height", lang, top=top, **p)
    if code == "above_ceiling":
        return t("clearance.reason.above_ceiling", lang, top=t("clearance.reason.top", lang, top=hi, ref=zref), **p)
    if code == "zone_suspended":
        st = r.get("state") or {}
        why = t("clearance.reason.why", lang, reason=st["reason"]) if st.get("reason") else ""
        if st.get("sensor_id"):
            why += t("clearance.reason.why_sensor", lang, sensor=st["sensor_id"], metric=st.get("metric"),
                     value=st.get("value"), at=local_time(st.get("reading_ts"), lang))
        return t("clearance.reason.zone_suspended", lang, why=why, **p)
    if code == "outside_area":
        return t("clearance.reason.outside_area", lang, **p)
    if code == "separation_conflict":
        c = r.get("conflict") or {}
        hidden = c.get("clearance_id") is None
        return t("clearance.reason.separation_conflict_hidden" if hidden else "clearance.reason.separation_conflict",
                 lang, h=c.get("horizontal_m"), v=c.get("vertical_m"), dt=c.get("time_s"), cid=c.get("clearance_id"),
                 uav=c.get("uav_id"), where=_where(entry, lang), **p)
    if code == "corridor_capacity":
        cap = r.get("capacity") or {}
        return t("clearance.reason.corridor_capacity", lang, n=cap.get("approved"), cap=cap.get("limit"),
                 **{**p, "entry": local_time(entry.get("t"), lang), "exit": local_time(exit_.get("t"), lang)})
    return str(r.get("message") or t("clearance.reason.unknown", lang, code=code))


def suggestion_message(s: Mapping, lang: str) -> str:
    """A clearance suggestion (airspace.suggestions) said in `lang`."""
    if s.get("kind") == "altitude":
        band = s.get("band") or [None, None]
        return t("clearance.suggestion.altitude", lang, alt=s.get("alt_m"), ref=ref_label(s.get("alt_ref"), lang),
                 lo=band[0], hi=band[1])
    if s.get("kind") == "departure":
        return t("clearance.suggestion.departure", lang, departure=local_time(s.get("departure"), lang),
                 delay=duration(s.get("delay_s"), lang))
    return str(s.get("message", ""))


def kind_label(kind: str, lang: str) -> str:
    return t(f"event.kind.{kind}", lang) if has(f"event.kind.{kind}") else kind


def metric_label(metric: Any, lang: str) -> str:
    return t(f"metric.{metric}", lang) if isinstance(metric, str) and has(f"metric.{metric}") else str(metric or "")


def event_description(e: Mapping, lang: str, names: Mapping[str, str] | None = None) -> str:
    """One line saying what an event (airspace or sensor) means, from its kind and detail, in `lang`."""
    kind = str(e.get("kind") or "")
    d = e.get("detail") if isinstance(e.get("detail"), Mapping) else {}
    subject = e.get("uav_id") or e.get("sensor_id") or "—"
    p: dict[str, Any] = {"subject": subject, "label": kind_label(kind, lang),
                         "zone": zone_label(e.get("zone_id"), d.get("zone_name"), lang, names)}
    p["at_alt"] = (t("event.part.at_alt", lang, alt=num(d["alt_m"]), ref=ref_label(d.get("alt_ref"), lang))
                   if d.get("alt_m") is not None else "")
    variant = None
    if kind == "altitude_violation":
        variant = d.get("rule")
        limit = d.get("lower_m") if variant == "below_floor" else d.get("upper_m")
        p.update(limit=num(limit), ref=ref_label(d.get("zone_alt_ref"), lang))
    elif kind == "route_deviation":
        p.update(lateral=num(d.get("lateral_m")), vertical=num(d.get("vertical_m")), time=num(d.get("time_s")))
    elif kind == "zone_suspended":
        p["why"] = t("event.part.why", lang, reason=d["reason"]) if d.get("reason") else ""
    elif kind.startswith("sensor_threshold"):
        variant = "below" if d.get("op") == "below" else "above"
        p.update(metric=metric_label(e.get("metric") or d.get("metric"), lang), value=num(e.get("value", d.get("value"))),
                 limit=num(d.get("limit")), clear=num(d.get("clear")))
    elif kind == "sensor_silent":
        p["since"] = local_time(d.get("last_reading"), lang) if d.get("last_reading") else "?"
    elif kind == "sensor_resumed":
        p["gap"] = num(d.get("gap_s"))
    for key in (f"event.description.{kind}.{variant}", f"event.description.{kind}"):
        if (variant or not key.endswith(".None")) and has(key):
            return t(key, lang, **p)
    return t("event.description.default", lang, **p)
