"""The MAVLink bridge's notices of vehicles no registry entry maps: `{root}/mavlink/{link}/{sysid}` (JSON).

The bridge (ingest/bridges/mavlink.py) is a broker client and cannot write the database, so a system id it cannot
map is published here, at most once per system id every NOTICE_EVERY_S seconds:
{"mavlink": "{link}/{sysid}", "received_at", "messages": how many it took since the last notice, "types": their
MAVLink message types, "fix": the vehicle's last position in the contract's fields, when it sent one}.

Ingest holds it against the registry as the other dialects hold their vendor identifiers: a key no entry's
`mavlink` property names is UnregisteredDevice ("unregistered MAVLink vehicle udp:14550/9"), so a dead letter
with the notice, the `unregistered_device` event and skylane_dialect_unregistered_total{dialect="mavlink"}. A key
ingest's registry maps already (registered since the bridge last read it) gives the notice's fix to that UAV.
"""
from __future__ import annotations

from datetime import datetime

from ..validation import BadMessage
from .base import DialectContext, DialectResult
from .vendor import counted, device_of, json_object, native_fix, vendor_time


class MavlinkDialect:
    name = "mavlink"

    def __init__(self) -> None:
        self.parse = counted(self.name, self._parse)

    def filters(self, root: str) -> list[str]:
        return [f"{root}/mavlink/+/+"]

    def matches(self, topic: str, root: str) -> bool:
        return topic.startswith(f"{root}/mavlink/")

    def _parse(self, topic: str, payload: bytes, received_at: datetime,
               ctx: DialectContext) -> tuple[str, DialectResult]:
        parts = topic[len(ctx.root) + len("/mavlink/"):].split("/")
        if len(parts) != 2 or not parts[0] or not parts[1].isdigit():
            raise BadMessage("not a MAVLink bridge topic ({root}/mavlink/{link}/{system id})")
        doc = json_object(payload, ctx, "MAVLink bridge notice")
        key = doc.get("mavlink")
        if not isinstance(key, str) or not key.endswith(f"/{parts[1]}"):
            raise BadMessage(f"MAVLink bridge notice: 'mavlink' must be the vehicle's \"{{link}}/{parts[1]}\", "
                             f"got {str(key)[:80]!r}")
        uav_id = device_of(ctx, "mavlink", key, "MAVLink vehicle")
        fix = doc.get("fix")
        if fix is None:
            return "notice", DialectResult()
        if not isinstance(fix, dict):
            raise BadMessage(f"MAVLink bridge notice: 'fix' must be an object, got {type(fix).__name__}")
        ts = vendor_time(fix.get("ts"), received_at, "fix.ts")
        return "notice", DialectResult(telemetry=[native_fix(uav_id, fix, received_at, ctx,
                                                             lambda: f"MAVLink vehicle {key}'s fix", ts)])
