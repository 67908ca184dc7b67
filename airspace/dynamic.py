"""Dynamic airspace: zones suspended or re-activated at run time, by an admin or by sensor rules.

Pure: the state (zone id -> ZoneState) changes only through `apply` (a control message) and `observe`
(a sensor reading with its own event time), which return the decisions made. A zone rule (airspace.thresholds,
e.g. "suspend corridor C2 while mast W-C2 reports wind_gust above 12 m/s, re-activate once it is below 10")
has hysteresis and only undoes its own suspensions, never an admin's. Readings older than a zone's latest
decision are ignored, so a late reading cannot flip the airspace back in time. Zone rules come from a rules
file (parsed with `parse_rules(doc, where, zone_rules=True)`) or from zone properties (`suspend_when`: a list
of rules in the same format, without `zone_id`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

from protocol.times import parse_rfc3339, rfc3339

from .events import epoch_of
from .thresholds import MAX_TEXT, Rule, parse_rules

STATES = ("active", "suspended")


@dataclass(frozen=True)
class ZoneState:
    """A zone's run-time state and why (the payload of {root}/control/zone/{zone_id})."""

    zone_id: str
    state: str
    reason: str
    by: str
    at: str  # RFC 3339: the event time of the decision
    sensor_id: str | None = None
    metric: str | None = None
    value: float | None = None
    reading_ts: str | None = None

    def to_payload(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "zone_id" and v is not None}

    @classmethod
    def from_payload(cls, zone_id: str, obj: object) -> ZoneState:
        """Read a control payload; ValueError naming the field when it is unusable."""
        if not isinstance(obj, dict):
            raise ValueError("zone state must be a JSON object")
        if obj.get("state") not in STATES:
            raise ValueError(f"field 'state' must be one of {STATES}, got {obj.get('state')!r}")
        for key in ("reason", "by"):
            if not isinstance(obj.get(key, ""), str):
                raise ValueError(f"field {key!r} must be a string")
        if len(obj.get("reason", "")) > MAX_TEXT:
            raise ValueError(f"field 'reason' must be at most {MAX_TEXT} characters")
        at = _time(obj.get("at"), "at")
        value = obj.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise ValueError("field 'value' must be a finite number")
        for key in ("sensor_id", "metric"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise ValueError(f"field {key!r} must be a string")
        return cls(zone_id, obj["state"], obj.get("reason", ""), obj.get("by", ""), at, obj.get("sensor_id"),
                   obj.get("metric"), None if value is None else float(value),
                   None if obj.get("reading_ts") is None else _time(obj["reading_ts"], "reading_ts"))

    @property
    def epoch(self) -> float:
        return parse_rfc3339(self.at).timestamp()


def _time(value: object, field: str) -> str:
    """An RFC 3339 time with its offset, normalized to UTC milliseconds; ValueError naming the field."""
    try:
        return rfc3339(parse_rfc3339(value))
    except ValueError as exc:
        raise ValueError(f"field {field!r}: {exc}") from None


def rules_from_zones(zones: Iterable) -> list[Rule]:
    """Zone rules kept in zone properties as `suspend_when` lists (the zone id is the zone's own)."""
    out = []
    for z in zones:
        items = z.properties.get("suspend_when")
        if isinstance(items, list):
            items = [{**x, "zone_id": z.id} if isinstance(x, dict) else x for x in items]
        if items is not None:
            out += parse_rules(items, f"zone {z.id}: suspend_when", zone_rules=True)
    return out


def _by(rule: Rule) -> str:
    return f"rule:{rule.id}"


def _phrase(rule: Rule, value: float) -> str:
    return rule.description or f"{rule.sensor_id} {rule.metric} {value:g} {rule.op} {rule.limit:g}"


class DynamicAirspace:
    """The run-time state of every zone that is not simply in force, and the rules that move it."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = tuple(rules)
        self._by_sensor: dict[tuple[str, str], list[Rule]] = {}
        for rule in self.rules:
            self._by_sensor.setdefault((rule.sensor_id, rule.metric), []).append(rule)
        self.states: dict[str, ZoneState] = {}

    def watches(self, sensor_id: str, metric: str) -> bool:
        """Whether any rule reads this sensor's metric."""
        return (sensor_id, metric) in self._by_sensor

    def apply(self, state: ZoneState) -> bool:
        """A control message: record it; True when the zone's state (active/suspended) changed."""
        before = self.states.get(state.zone_id)
        self.states[state.zone_id] = state
        return (before.state if before else "active") != state.state

    def clear(self, zone_id: str) -> bool:
        """The retained control was deleted: back to the zone's plain schedule (active)."""
        before = self.states.pop(zone_id, None)
        return before is not None and before.state != "active"

    def observe(self, sensor_id: str, metric: str, value: float | None, ts: datetime) -> list[ZoneState]:
        """One reading; the new states it decides (already applied), in rule order."""
        rules = self._by_sensor.get((sensor_id, metric))
        if not rules or value is None or not math.isfinite(value):
            return []
        t = epoch_of(ts)
        out = []
        for rule in rules:
            cur = self.states.get(rule.zone_id)
            if cur is not None and t < cur.epoch:
                continue  # older than the zone's latest decision
            suspended = cur is not None and cur.state == "suspended"
            if not suspended and rule.trips(value):
                new = ZoneState(rule.zone_id, "suspended", _phrase(rule, value), _by(rule), rfc3339(ts),
                                sensor_id, metric, float(value), rfc3339(ts))
            elif suspended and cur.by == _by(rule) and rule.clears(value):
                new = ZoneState(rule.zone_id, "active", f"{sensor_id} {metric} {value:g} back within limits",
                                _by(rule), rfc3339(ts), sensor_id, metric, float(value), rfc3339(ts))
            else:
                continue
            self.states[rule.zone_id] = new
            out.append(new)
        return out
