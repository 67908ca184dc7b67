"""Publishing with a bound on unacknowledged messages.

paho queues QoS>0 messages without limit, keyed by a 16-bit message id: past 65,535 pending
messages ids collide and messages are silently lost, and long before that memory grows and
latency explodes. Every publisher in Skylane therefore waits for acknowledgements once
`max_pending` QoS>0 messages are outstanding (paho's own in-flight window, set on the
client, limits how many of those are on the wire at once).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt

DEFAULT_MAX_PENDING = 1000


def _acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except ValueError:  # never queued (paho's queue was full): nothing to wait for
        return True
    except RuntimeError:
        # rc is sticky: a QoS>0 message published while the link was down stays queued in
        # paho and is resent after reconnecting, so its completion flag is what counts.
        return bool(getattr(info, "_published", True))


class BoundedPublisher:
    """Wraps a connected client; publish() blocks while `max_pending` messages await their ack.

    Meant for one publishing thread (the deque of pending messages is not locked).
    """

    def __init__(self, client: mqtt.Client, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.client = client
        self.max_pending = max_pending
        self._pending: deque[mqtt.MQTTMessageInfo] = deque()
        self._acked = threading.Condition()
        client.on_publish = self._on_publish

    def _on_publish(self, *_args: Any) -> None:
        with self._acked:
            self._acked.notify_all()

    def pending(self) -> int:
        """Upper bound of QoS>0 messages not yet acknowledged (acks arrive nearly in order)."""
        while self._pending and _acknowledged(self._pending[0]):
            self._pending.popleft()
        return len(self._pending)

    def _wait_until(self, limit: int, stop: threading.Event | None, timeout: float | None) -> bool:
        """Wait until at most `limit` are pending; False if stopped or timed out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending() > limit:
            if stop is not None and stop.is_set():
                return False
            wait = 0.01 if deadline is None else min(0.01, deadline - time.monotonic())
            if wait <= 0:
                return False
            with self._acked:
                self._acked.wait(wait)
        return True

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False,
                stop: threading.Event | None = None, timeout: float | None = None) -> mqtt.MQTTMessageInfo | None:
        """Publish once there is room; None if `stop` was set or `timeout` passed while waiting.

        A QoS 0 message also waits until no QoS>0 message is held back in paho's queue (beyond
        the in-flight window), since paho would otherwise send it ahead of them: a replay must
        keep file order.
        """
        window = self.client.max_inflight_messages
        limit = self.max_pending - 1 if qos > 0 else (window if window > 0 else self.max_pending)
        if not self._wait_until(limit, stop, timeout):
            return None
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos > 0:
            self._pending.append(info)
        return info

    def drain(self, timeout: float | None = None, stop: threading.Event | None = None) -> bool:
        """Wait until every QoS>0 message is acknowledged; False on timeout or stop."""
        return self._wait_until(0, stop, timeout)

