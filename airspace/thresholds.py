"""Threshold rules with hysteresis: the one rule model and the one parser of rules files.

A rule watches one metric of some sensors. With `above` it is raised when a value exceeds the limit and
cleared when a value falls below `clear_below` (default: the limit); with `below` it is raised under the
limit and cleared above `clear_above`. The gap between the two values is the hysteresis, so a value
hovering at the limit does not flap. Two users, one format:

- sensor events (ingest.sensor_watch, `ingest/data/sensor_rules.json`): the rule applies to the sensors
  named by `sensor_id`, `sensor_ids` or `sensor_kind` (every sensor when none is given);
- zone suspension (airspace.dynamic, `airspace/data/dynamic_rules.json` and a zone's `suspend_when`
  property): the rule also names `zone_id` and watches exactly one sensor (`sensor_id`); the zone is
  suspended while the rule is raised.

A rules document is {"rules": [...]} (other top-level keys are notes) or the list itself. Pure: callers
load the JSON.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_TEXT = 500  # a description becomes a zone state's reason, which is capped at this length
FIELDS = frozenset({"id", "metric", "above", "clear_below", "below", "clear_above", "sensor_id", "sensor_ids",
                    "sensor_kind", "zone_id", "severity", "description"})


class RuleError(ValueError):
    """A rule is invalid; the message names the rule and the field."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A threshold on one metric. op ">": raised when value > limit, cleared when value < clear (clear <= limit);
    op "<": raised when value < limit, cleared when value > clear (clear >= limit)."""

    id: str
    metric: str
    op: str
    limit: float
    clear: float
    sensor_kind: str | None = None
    sensor_ids: frozenset[str] | None = None
    zone_id: str | None = None  # zone suspension: the zone suspended while the rule is raised
    severity: str = "warning"
    description: str = ""

    def trips(self, value: float, limit: float | None = None) -> bool:
        """Raised by `value` (against `limit`, default the rule's); elementwise on numpy arrays."""
        limit = self.limit if limit is None else limit
        return value > limit if self.op == ">" else value < limit

    def clears(self, value: float, clear: float | None = None) -> bool:
        """Cleared by `value` (against `clear`, default the rule's); elementwise on numpy arrays."""
        clear = self.clear if clear is None else clear
        return value < clear if self.op == ">" else value > clear

    @property
    def sensor_id(self) -> str | None:
        """The one sensor a zone rule watches (None when the rule names none or several)."""
        if self.sensor_ids is not None and len(self.sensor_ids) == 1:
            return next(iter(self.sensor_ids))
        return None

    def applies_to(self, sensor_id: str, sensor_kind: str | None) -> bool:
        if self.sensor_ids is not None:
            return sensor_id in self.sensor_ids
        if self.sensor_kind is not None:
            return sensor_kind == self.sensor_kind
        return True

    def limits_for(self, override: float | None) -> tuple[float, float]:
        """(limit, clear) for one sensor whose own limit is `override` (None: the rule's): the band moves along."""
        if override is None:
            return self.limit, self.clear
        return override, override - (self.limit - self.clear)


def parse_rules(doc: Any, where: str = "rules", *, zone_rules: bool = False) -> list[Rule]:
    """Rules from a rules document; RuleError naming `where`, the rule (index and id) and the field.

    `zone_rules`: the rules suspend zones, so each needs `zone_id` and one `sensor_id` (its id defaults to
    "<zone_id>:<sensor_id>:<metric>"); otherwise `zone_id` is refused."""
    items = doc.get("rules") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise RuleError(f"{where}: expected {{\"rules\": [...]}} or a JSON list of rules")
    rules, seen = [], set()
    for i, item in enumerate(items):
        rule = _rule(f"{where}: rule {i}", item, zone_rules)
        if rule.id in seen:
            raise RuleError(f"{where}: rule {i} ({rule.id!r}): field 'id': duplicate")
        seen.add(rule.id)
        rules.append(rule)
    return rules


def _rule(at: str, item: Any, zone_rules: bool) -> Rule:
    if not isinstance(item, dict):
        raise RuleError(f"{at}: not an object")

    def fail(fld: str, problem: str) -> RuleError:
        name = f" ({item['id']!r})" if isinstance(item.get("id"), str) else ""
        return RuleError(f"{at}{name}: field {fld!r}: {problem}")

    unknown = sorted(set(item) - FIELDS)
    if unknown:
        raise fail(unknown[0], "unknown field")
    for key in ("zone_id", "sensor_id", "sensor_kind"):
        if key in item and (not isinstance(item[key], str) or not item[key]):
            raise fail(key, "a non-empty string")
    selectors = [key for key in ("sensor_id", "sensor_ids", "sensor_kind") if key in item]
    if len(selectors) > 1:
        raise fail(selectors[1], "give at most one of 'sensor_id', 'sensor_ids' and 'sensor_kind'")
    if zone_rules and "zone_id" not in item:
        raise fail("zone_id", "a zone rule names the zone it suspends")
    if zone_rules and selectors != ["sensor_id"]:
        raise fail("sensor_id", "a zone rule watches one sensor, named by 'sensor_id'")
    if not zone_rules and "zone_id" in item:
        raise fail("zone_id", "only zone suspension rules name a zone (airspace/data/dynamic_rules.json, "
                              "a zone's suspend_when)")
    for key in ("id", "metric"):
        if key == "id" and zone_rules and "id" not in item:
            continue  # defaults to <zone_id>:<sensor_id>:<metric>
        if not isinstance(item.get(key), str) or not 0 < len(item[key]) <= 64:
            raise fail(key, "a string of 1-64 characters")
    for key in ("above", "clear_below", "below", "clear_above"):
        v = item.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise fail(key, "a finite number")
    if ("above" in item) == ("below" in item):
        raise fail("above", "give exactly one of 'above' and 'below'")
    if "above" in item:
        op, limit, clear = ">", float(item["above"]), float(item.get("clear_below", item["above"]))
        if "clear_above" in item or clear > limit:
            raise fail("clear_below", "with 'above', 'clear_below' <= 'above' (and no 'clear_above')")
    else:
        op, limit, clear = "<", float(item["below"]), float(item.get("clear_above", item["below"]))
        if "clear_below" in item or clear < limit:
            raise fail("clear_above", "with 'below', 'clear_above' >= 'below' (and no 'clear_below')")
    ids = item.get("sensor_ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(s, str) and s for s in ids)):
        raise fail("sensor_ids", "a list of sensor ids")
    if "sensor_id" in item:
        ids = [item["sensor_id"]]
    for key in ("severity", "description"):
        if item.get(key) is not None and (not isinstance(item[key], str) or len(item[key]) > MAX_TEXT):
            raise fail(key, f"a string of at most {MAX_TEXT} characters")
    rule_id = item.get("id") or f"{item['zone_id']}:{item['sensor_id']}:{item['metric']}"
    return Rule(rule_id, item["metric"], op, limit, clear, item.get("sensor_kind"),
                None if ids is None else frozenset(ids), item.get("zone_id"), item.get("severity") or "warning",
                item.get("description") or "")
