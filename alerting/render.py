"""What an alert says: titles and texts for people (robots, email) and the JSON body for systems (webhook).

Every text comes from MESSAGES through `_t` (plain English until the zh-CN/en catalogue lands; the
subscription's language travels in the webhook body and is what the catalogue will choose by). Times are
shown in Asia/Shanghai with UTC beside them.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from .channel import Alert, Message
from .i18n import catalogue

LOCAL = ZoneInfo("Asia/Shanghai")
DIGEST_LINES = 20  # events listed in a digest's text (all are in the webhook body)

MESSAGES = {
    "title.event": "[Skylane] {label}: {device}{zone}",
    "title.digest": "[Skylane] {count} alerts for {name}",
    "zone_part": " in {zone}",
    "line.kind": "Event: {label} ({kind})",
    "line.device.uav": "Drone: {device}",
    "line.device.sensor": "Sensor: {device}",
    "line.zone": "Zone: {zone}",
    "line.time": "Time: {local} (Asia/Shanghai), {utc} UTC",
    "line.position": "Position: {lat:.5f}, {lon:.5f}, {alt} m AMSL",
    "line.value": "Value: {metric} = {value}",
    "line.id": "Event id: {id}",
    "line.subscription": "Subscription: {name}",
    "digest.head": "{count} alerts in {span} (flood: sent as one digest)",
    "digest.kinds": "By kind: {kinds}",
    "digest.more": "... and {count} more (the full list is in Skylane: GET /v1/events)",
    "digest.line": "{local} {label}: {device}{zone}",
    "kind.zone_enter": "Zone entered",
    "kind.zone_exit": "Zone left",
    "kind.no_fly_violation": "No-fly zone violation",
    "kind.no_fly_violation_end": "No-fly zone violation ended",
    "kind.altitude_violation": "Altitude violation",
    "kind.altitude_violation_end": "Altitude violation ended",
    "kind.corridor_exit": "Left the corridor",
    "kind.corridor_return": "Back in the corridor",
    "kind.route_deviation": "Route deviation",
    "kind.route_deviation_end": "Back on the route",
    "kind.uncleared_flight": "Flight without clearance",
    "kind.uncleared_flight_end": "Uncleared flight ended",
    "kind.link_lost": "Link lost",
    "kind.link_restored": "Link restored",
    "kind.zone_suspended": "Zone suspended",
    "kind.zone_activated": "Zone re-activated",
    "kind.sensor_threshold": "Sensor threshold crossed",
    "kind.sensor_threshold_cleared": "Sensor threshold cleared",
    "kind.sensor_silent": "Sensor silent",
    "kind.sensor_resumed": "Sensor reporting again",
    "kind.sensor_online": "Sensor online",
    "kind.sensor_offline": "Sensor offline",
}
_t = catalogue(MESSAGES)


def kind_label(kind: str) -> str:
    return _t(f"kind.{kind}") if f"kind.{kind}" in MESSAGES else kind


def device_of(alert: Alert) -> str:
    return str(alert.event.get("uav_id") or alert.event.get("sensor_id") or "")


def zone_of(alert: Alert) -> str:
    zone_id = alert.event.get("zone_id")
    if not zone_id:
        return ""
    name = (alert.event.get("detail") or {}).get("zone_name")
    return f"{name} ({zone_id})" if name and name != zone_id else str(zone_id)


def _times(ts: datetime) -> tuple[str, str]:
    ts = ts.astimezone(timezone.utc)
    return ts.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S"), ts.strftime("%Y-%m-%d %H:%M:%S")


def title(message: Message) -> str:
    if message.digest:
        return _t("title.digest", count=len(message.alerts), name=message.subscription.name)
    alert = message.alerts[0]
    zone = zone_of(alert)
    return _t("title.event", label=kind_label(alert.kind), device=device_of(alert),
              zone=_t("zone_part", zone=zone) if zone else "")


def event_lines(alert: Alert) -> list[str]:
    """The facts of one event, one per line."""
    detail = alert.event.get("detail") or {}
    local, utc = _times(alert.ts)
    lines = [_t("line.kind", label=kind_label(alert.kind), kind=alert.kind),
             _t(f"line.device.{'sensor' if alert.source == 'sensor' else 'uav'}", device=device_of(alert))]
    zone = zone_of(alert)
    if zone:
        lines.append(_t("line.zone", zone=zone))
    lines.append(_t("line.time", local=local, utc=utc))
    if isinstance(detail.get("lat"), (int, float)) and isinstance(detail.get("lon"), (int, float)):
        alt = detail.get("alt_amsl")
        lines.append(_t("line.position", lat=detail["lat"], lon=detail["lon"],
                        alt=f"{alt:.0f}" if isinstance(alt, (int, float)) else "?"))
    if alert.event.get("metric") is not None:
        lines.append(_t("line.value", metric=alert.event["metric"], value=alert.event.get("value")))
    lines.append(_t("line.id", id=alert.event_id))
    return lines


def digest_lines(message: Message) -> list[str]:
    alerts = message.alerts
    first, last = min(a.ts for a in alerts), max(a.ts for a in alerts)
    span = f"{_times(first)[0]} - {_times(last)[0][11:]} (Asia/Shanghai)"
    kinds = Counter(a.kind for a in alerts)
    lines = [_t("digest.head", count=len(alerts), span=span),
             _t("digest.kinds", kinds=", ".join(f"{kind_label(k)} {n}" for k, n in kinds.most_common()))]
    for a in alerts[:DIGEST_LINES]:
        zone = zone_of(a)
        lines.append(_t("digest.line", local=_times(a.ts)[0][11:], label=kind_label(a.kind), device=device_of(a),
                        zone=_t("zone_part", zone=zone) if zone else ""))
    if len(alerts) > DIGEST_LINES:
        lines.append(_t("digest.more", count=len(alerts) - DIGEST_LINES))
    return lines


def body_lines(message: Message) -> list[str]:
    lines = digest_lines(message) if message.digest else event_lines(message.alerts[0])
    return [*lines, _t("line.subscription", name=message.subscription.name)]


def plain_text(message: Message) -> str:
    return "\n".join(body_lines(message)) + "\n"


def markdown(message: Message) -> str:
    """Markdown of the subset both robots render (a heading, plain lines, bold)."""
    head, *rest = body_lines(message)
    return f"### {title(message)}\n\n**{head}**\n\n" + "\n\n".join(rest)


def webhook_body(message: Message) -> dict:
    """The generic webhook's JSON: one event, or a digest listing every event (each with its own id, so a
    receiver deduplicates on event ids either way)."""
    sub = message.subscription
    common = {"id": message.id, "subscription": {"id": sub.id, "name": sub.name}, "language": sub.language,
              "title": title(message), "text": plain_text(message)}
    events = [{"id": a.event_id, "source": a.source, **a.event} for a in message.alerts]
    if message.digest:
        return {"type": "digest", **common, "count": len(events), "events": events}
    return {"type": "event", **common, "event": events[0]}
