"""Control messages from the API to every ingest worker: retained, QoS 1, each announcing a change the API
has stored first (ingest.controls checks every one against the store), with `"issuer": "skylane-api"`:

  {root}/control/zones                 {"version": V}: the stored zone set changed (V: its version)
  {root}/control/zone/{zone_id}        the stored state {"state": "active"|"suspended", "reason", "by", "at", ...}
  {root}/control/clearance/{uav_id}    the stored approved clearance (the monitor checks flights against it)

It connects in the background; a publish while the broker is unreachable is a 503 for the caller, never a
silent loss.
"""
from __future__ import annotations

import logging
import threading
import uuid

import orjson
import paho.mqtt.client as mqtt

from protocol.mqttclient import close_client, connect_with_retry, publish_confirmed
from protocol.brokerauth import SERVICE_ACCOUNTS

log = logging.getLogger("skylane.api.control")
ISSUER = SERVICE_ACCOUNTS["api"]


class ControlUnavailable(RuntimeError):
    """The broker did not take the message (not connected, or no PUBACK in time)."""


class ControlLink:
    def __init__(self, url: str, root: str, timeout_s: float = 5.0):
        self.url, self.root, self.timeout_s = url, root, timeout_s
        self._client: mqtt.Client | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._connect, name="api-control", daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        client = connect_with_retry(self.url, f"skylane-api-{uuid.uuid4().hex[:8]}", self._stop)
        if client is not None and self._stop.is_set():
            close_client(client)
            return
        self._client = client

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(15)
        if self._client is not None:
            close_client(self._client)
            self._client = None

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected()

    def publish(self, topic: str, body: dict | None) -> None:
        """Publish retained at QoS 1 and wait for the broker's PUBACK; None withdraws the retained message
        (an empty payload: what ingest reads as "no longer in force")."""
        client = self._client
        if client is None:
            raise ControlUnavailable(f"not connected to the MQTT broker {self.url}")
        try:
            payload = b"" if body is None else orjson.dumps({**body, "issuer": ISSUER})
            publish_confirmed(client, topic, payload, timeout=self.timeout_s)
        except ConnectionError as exc:
            raise ControlUnavailable(str(exc)) from None
        log.info("published control message %s", topic)
