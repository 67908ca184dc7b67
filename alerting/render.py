"""What an alert says: titles and texts for people (robots, email) and the JSON body for systems (webhook).

Every text is said in the subscription's `language` (zh-CN or en) from the message catalogue (i18n, keys
`alerting.render.*`): event kind labels are the catalogue's `event.kind.*`, the one line saying what happened
is `i18n.render.event_description` (as the API's `description`), a zone is shown by its Chinese name (the
zone's `name_zh`, read with the event) in Chinese, else by the name the event carries, with its id beside it.
Times are shown in Asia/Shanghai with UTC beside them.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from i18n import normalize, t
from i18n.render import LOCAL, event_description, kind_label, metric_label, num, zone_label

from .channel import Alert, Message

DIGEST_LINES = 20  # events listed in a digest's text (all are in the webhook body)


def language(message: Message) -> str:
    """The language the message is written in: the subscription's (zh-CN or en)."""
    return normalize(message.subscription.language)


def device_of(alert: Alert) -> str:
    return str(alert.event.get("uav_id") or alert.event.get("sensor_id") or "")


def _names(alert: Alert) -> dict[str, str]:
    zone_id = alert.event.get("zone_id")
    return {str(zone_id): alert.zone_name_zh} if zone_id and alert.zone_name_zh else {}


def zone_of(alert: Alert, lang: str) -> str:
    """The event's zone as the reader knows it, with its id: "Corridor 1 (C1)", "1 号航路（C1）"."""
    zone_id = alert.event.get("zone_id")
    if not zone_id:
        return ""
    name = zone_label(str(zone_id), (alert.event.get("detail") or {}).get("zone_name"), lang, _names(alert))
    return t("alerting.render.zone", lang, name=name, id=zone_id) if name != str(zone_id) else str(zone_id)


def description(alert: Alert, lang: str) -> str:
    """One line saying what happened (i18n.render.event_description, the API's `description`)."""
    return event_description(alert.event, lang, _names(alert))


def _times(ts: datetime) -> tuple[str, str]:
    ts = ts.astimezone(timezone.utc)
    return ts.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S"), ts.strftime("%Y-%m-%d %H:%M:%S")


def _zone_part(alert: Alert, lang: str) -> str:
    zone = zone_of(alert, lang)
    return t("alerting.render.zone_part", lang, zone=zone) if zone else ""


def title(message: Message) -> str:
    lang = language(message)
    if message.digest:
        return t("alerting.render.title.digest", lang, count=len(message.alerts), name=message.subscription.name)
    alert = message.alerts[0]
    return t("alerting.render.title.event", lang, label=kind_label(alert.kind, lang), device=device_of(alert),
             zone=_zone_part(alert, lang))


def event_lines(alert: Alert, lang: str) -> list[str]:
    """What happened, then the facts of the event, one per line."""
    detail = alert.event.get("detail") or {}
    local, utc = _times(alert.ts)
    device = (t("alerting.render.line.device.sensor", lang, device=device_of(alert)) if alert.source == "sensor"
              else t("alerting.render.line.device.uav", lang, device=device_of(alert)))
    lines = [description(alert, lang),
             t("alerting.render.line.kind", lang, label=kind_label(alert.kind, lang), kind=alert.kind), device]
    zone = zone_of(alert, lang)
    if zone:
        lines.append(t("alerting.render.line.zone", lang, zone=zone))
    lines.append(t("alerting.render.line.time", lang, local=local, utc=utc))
    if isinstance(detail.get("lat"), (int, float)) and isinstance(detail.get("lon"), (int, float)):
        alt = detail.get("alt_amsl")
        lines.append(t("alerting.render.line.position", lang, lat=detail["lat"], lon=detail["lon"],
                       alt=f"{alt:.0f}" if isinstance(alt, (int, float)) else "?"))
    if alert.event.get("metric") is not None:
        lines.append(t("alerting.render.line.value", lang, metric=metric_label(alert.event["metric"], lang),
                       value=num(alert.event.get("value"))))
    lines.append(t("alerting.render.line.id", lang, id=alert.event_id))
    return lines


def digest_lines(message: Message) -> list[str]:
    lang = language(message)
    alerts = message.alerts
    first, last = min(a.ts for a in alerts), max(a.ts for a in alerts)
    span = t("alerting.render.digest.span", lang, start=_times(first)[0], end=_times(last)[0][11:])
    kinds = Counter(a.kind for a in alerts)
    by_kind = t("alerting.render.digest.separator", lang).join(
        t("alerting.render.digest.kind_count", lang, label=kind_label(k, lang), count=n) for k, n in kinds.most_common())
    lines = [t("alerting.render.digest.head", lang, count=len(alerts), span=span),
             t("alerting.render.digest.kinds", lang, kinds=by_kind)]
    for a in alerts[:DIGEST_LINES]:
        lines.append(t("alerting.render.digest.line", lang, local=_times(a.ts)[0][11:], label=kind_label(a.kind, lang),
                       device=device_of(a), zone=_zone_part(a, lang)))
    if len(alerts) > DIGEST_LINES:
        lines.append(t("alerting.render.digest.more", lang, count=len(alerts) - DIGEST_LINES))
    return lines


def body_lines(message: Message) -> list[str]:
    lang = language(message)
    lines = digest_lines(message) if message.digest else event_lines(message.alerts[0], lang)
    return [*lines, t("alerting.render.line.subscription", lang, name=message.subscription.name)]


def plain_text(message: Message) -> str:
    return "\n".join(body_lines(message)) + "\n"


def markdown(message: Message) -> str:
    """Markdown of the subset both robots render (a heading, plain lines, bold)."""
    head, *rest = body_lines(message)
    return f"### {title(message)}\n\n**{head}**\n\n" + "\n\n".join(rest)


def webhook_body(message: Message) -> dict:
    """The generic webhook's JSON: one event, or a digest listing every event (each with its own id, so a
    receiver deduplicates on event ids either way). Each event carries its `description` in the subscription's
    language, as the API adds it in the caller's."""
    sub, lang = message.subscription, language(message)
    common = {"id": message.id, "subscription": {"id": sub.id, "name": sub.name}, "language": lang,
              "title": title(message), "text": plain_text(message)}
    events = [{"id": a.event_id, "source": a.source, **a.event, "description": description(a, lang)}
              for a in message.alerts]
    if message.digest:
        return {"type": "digest", **common, "count": len(events), "events": events}
    return {"type": "event", **common, "event": events[0]}
