"""Dynamic airspace: zones suspended or re-activated at run time, by an admin or by sensor rules.

Pure: the state (zone id -> ZoneState) changes only through `apply` (a control message, contract 2)
and `observe` (a sensor reading with its own event time), which return the decisions made. A rule
such as "suspend corridor C2 while mast W-C2 reports wind_gust above 12 m/s, re-activate once it
is below 10" has hysteresis (two thresholds) and only undoes its own suspensions, never an
admin's. Readings older than a zone's latest decision are ignored, so a late reading cannot
flip the airspace back in time. Rules come from a rules file ({"rules": [...]}) or from zone
properties (`"suspend_when": [{"sensor_id", "metric", "above" | "below", "clear_below" |
"clear_above", "reason"}]`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from .events import epoch_of, rfc3339, utc

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
        at = _rfc3339(obj.get("at"), "at")
        value = obj.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            raise ValueError("field 'value' must be a finite number")
        for key in ("sensor_id", "metric"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise ValueError(f"field {key!r} must be a string")
        return cls(zone_id, obj["state"], obj.get("reason", ""), obj.get("by", ""), at, obj.get("sensor_id"),
                   obj.get("metric"), None if value is None else float(value),
                   None if obj.get("reading_ts") is None else _rfc3339(obj["reading_ts"], "reading_ts"))

    @property
    def epoch(self) -> float:
        return epoch_of(datetime.fromisoformat(self.at.replace("Z", "+00:00")))


def _rfc3339(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"field {field!r} must be an RFC 3339 time, got {value!r}")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"field {field!r} is not an RFC 3339 time: {value[:40]!r}") from None
    if ts.tzinfo is None:
        raise ValueError(f"field {field!r} needs a time zone offset")
    return rfc3339(ts)


@dataclass(frozen=True)
class Rule:
    """Suspend `zone_id` while `sensor_id`'s `metric` is above `above` (or below `below`)."""

    rule_id: str
    zone_id: str
    sensor_id: str
    metric: str
    above: float | None = None
    below: float | None = None
    clear_below: float | None = None  # re-activate under this (default: above)
    clear_above: float | None = None  # re-activate over this (default: below)
    reason: str = ""

    def trips(self, value: float) -> bool:
        return (self.above is not None and value > self.above) or (self.below is not None and value < self.below)

    def clears(self, value: float) -> bool:
        if self.above is not None:
            return value < (self.clear_below if self.clear_below is not None else self.above)
        return value > (self.clear_above if self.clear_above is not None else self.below)

    @property
    def by(self) -> str:
        return f"rule:{self.rule_id}"


def parse_rules(items: object, where: str = "rules") -> list[Rule]:
    """Rules from a JSON list; ValueError naming the rule index and field at fault."""
    if not isinstance(items, list):
        raise ValueError(f"{where}: must be a list")
    out = []
    for i, obj in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(obj, dict):
            raise ValueError(f"{at}: must be an object")
        for key in ("zone_id", "sensor_id", "metric"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                raise ValueError(f"{at}.{key}: must be a non-empty string")
        nums = {}
        for key in ("above", "below", "clear_below", "clear_above"):
            v = obj.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"{at}.{key}: must be a finite number")
            nums[key] = None if v is None else float(v)
        if (nums["above"] is None) == (nums["below"] is None):
            raise ValueError(f"{at}: give exactly one of 'above' or 'below'")
        if nums["above"] is not None and nums["clear_below"] is not None and nums["clear_below"] > nums["above"]:
            raise ValueError(f"{at}.clear_below: must not exceed 'above'")
        if nums["below"] is not None and nums["clear_above"] is not None and nums["clear_above"] < nums["below"]:
            raise ValueError(f"{at}.clear_above: must not be under 'below'")
        rid = obj.get("id") or f"{obj['zone_id']}:{obj['sensor_id']}:{obj['metric']}"
        out.append(Rule(str(rid), obj["zone_id"], obj["sensor_id"], obj["metric"], **nums,
                        reason=str(obj.get("reason", ""))))
    return out


def rules_from_zones(zones: Iterable) -> list[Rule]:
    """Rules kept in zone properties as `suspend_when` lists."""
    out = []
    for z in zones:
        items = z.properties.get("suspend_when")
        if items is not None:
            out += parse_rules([{**x, "zone_id": z.id} if isinstance(x, dict) else x for x in items],
                               f"zone {z.id}: suspend_when")
    return out


def _phrase(rule: Rule, value: float) -> str:
    if rule.reason:
        return rule.reason
    op, limit = (">", rule.above) if rule.above is not None else ("<", rule.below)
    return f"{rule.sensor_id} {rule.metric} {value:g} {op} {limit:g}"


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

    def state_of(self, zone_id: str) -> ZoneState | None:
        return self.states.get(zone_id)

    def suspended(self, zone_id: str) -> bool:
        st = self.states.get(zone_id)
        return st is not None and st.state == "suspended"

    def zone_states(self) -> dict[str, dict]:
        """{zone_id: payload} — what check_route(zone_states=...) takes."""
        return {z: {"state": s.state, **s.to_payload()} for z, s in self.states.items()}

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
                new = ZoneState(rule.zone_id, "suspended", _phrase(rule, value), rule.by, rfc3339(utc(ts)),
                                sensor_id, metric, float(value), rfc3339(utc(ts)))
            elif suspended and cur.by == rule.by and rule.clears(value):
                new = ZoneState(rule.zone_id, "active", f"{sensor_id} {metric} {value:g} back within limits",
                                rule.by, rfc3339(utc(ts)), sensor_id, metric, float(value), rfc3339(utc(ts)))
            else:
                continue
            self.states[rule.zone_id] = new
            out.append(new)
        return out

    def observe_many(self, readings: Iterable[tuple[str, str, float | None, datetime]]) -> list[ZoneState]:
        """Readings in event-time order (stable), their decisions in that order."""
        out: list[ZoneState] = []
        for sensor_id, metric, value, ts in sorted(readings, key=lambda r: r[3]):
            out += self.observe(sensor_id, metric, value, ts)
        return out


def load_rules(obj: Mapping) -> list[Rule]:
    """A rules file's content ({"rules": [...]}, already loaded: no I/O here)."""
    if not isinstance(obj, Mapping) or "rules" not in obj:
        raise ValueError("rules file: expected an object with a 'rules' list")
    return parse_rules(obj["rules"])
