"""An in-memory stand-in for a connected paho client.

Lets the simulator, recorder and player run without a broker (unit tests, dry runs): it keeps
what is published and acknowledges everything at once. Only the part of paho's interface that
Skylane's publishers use is provided.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Published:
    topic: str
    payload: bytes
    qos: int
    retain: bool


class _Acked:
    def is_published(self) -> bool:
        return True


class MemoryClient:
    max_inflight_messages = 20

    def __init__(self) -> None:
        self.published: list[Published] = []
        self.on_publish: Any = None
        self.closed = False

    def is_connected(self) -> bool:
        return not self.closed

    def publish(self, topic: str, payload: bytes | str = b"", qos: int = 0, retain: bool = False) -> _Acked:
        if not topic or "#" in topic or "+" in topic:
            raise ValueError(f"invalid publish topic {topic!r}")  # as paho does
        body = payload.encode() if isinstance(payload, str) else bytes(payload)
        self.published.append(Published(topic, body, qos, retain))
        return _Acked()

    def disconnect(self) -> None:
        self.closed = True

    def loop_stop(self) -> None:
        pass
