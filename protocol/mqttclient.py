"""Connecting a paho-mqtt 2 client the way every Skylane component needs it.

MQTT v5, the VERSION2 callback API, a blocking wait for CONNACK (and SUBACK) so callers know
the link is really up, automatic reconnects handled by paho's network thread with
subscriptions restored on each reconnect, and errors that name the broker URL: "connection
refused" alone does not tell an operator which of several brokers is down.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger(__name__)

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
DEFAULT_MAX_INFLIGHT = 20  # Mosquitto's default receive maximum; paho ignores the broker's value
MessageCallback = Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]


@dataclass(frozen=True, slots=True)
class Will:
    """A last-will message, published by the broker if the client vanishes without DISCONNECT."""

    topic: str
    payload: bytes | str = b"offline"
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """A broker and the account to use there, from an MQTT URL:
    ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...[?ca=/path/to/ca.crt]`` (TLS; default port 8883).
    Credentials in the URL are percent-encoded; `str()` never shows the password."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None

    @classmethod
    def parse(cls, url: str) -> MqttTarget:
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl"):
            raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r} in {_redact(url)!r} "
                             f"(use mqtt://host:port or mqtts://host:port)")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"bad port in MQTT URL {_redact(url)!r}") from exc
        if not parts.hostname:
            raise ValueError(f"no host in MQTT URL {_redact(url)!r}")
        tls = parts.scheme in ("mqtts", "ssl")
        ca = parse_qs(parts.query).get("ca", [None])[0]
        return cls(parts.hostname, port if port is not None else (DEFAULT_TLS_PORT if tls else DEFAULT_PORT),
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password is not None else None, tls, ca)

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def configure(self, client: mqtt.Client) -> None:
        """Give a paho client this target's account and TLS settings (before connecting)."""
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set(ca_certs=self.ca_file)


def _redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """(host, port) of an MQTT URL (see MqttTarget); the port defaults to 1883 (8883 with TLS)."""
    target = MqttTarget.parse(url)
    return target.host, target.port


def with_credentials(url: str, username: str, password: str) -> str:
    """`url` with this account in it (replacing any account it had)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{quote(username, safe='')}:{quote(password, safe='')}@{host}",
                       parts.path, parts.query, parts.fragment))


def _subscribe_all(client: mqtt.Client, subscriptions: Sequence[tuple[str, int]]) -> int:
    """One SUBSCRIBE for all filters; retain-as-published so recorded retain flags are the sender's."""
    topics = [(f, SubscribeOptions(qos=q, retainAsPublished=True)) for f, q in subscriptions]
    rc, mid = client.subscribe(topics)
    if rc != mqtt.MQTT_ERR_SUCCESS:
        raise ConnectionError(f"SUBSCRIBE failed: {mqtt.error_string(rc)}")
    return mid


def _no_delay(client: mqtt.Client) -> None:
    """Disable Nagle: paho does not, and a QoS 0 publish behind unacknowledged QoS 1 ones then
    waits for the peer's delayed ACK (~40 ms), cutting mixed-QoS throughput sevenfold."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not TCP (e.g. a websocket wrapper): nothing to tune
            pass


def connect_client(
    url: str,
    client_id: str,
    *,
    will: Will | tuple[str, bytes | str, int, bool] | None = None,
    clean_start: bool = True,
    session_expiry: int | None = None,
    subscriptions: Sequence[tuple[str, int]] = (),
    on_message: MessageCallback | None = None,
    timeout: float = 10.0,
    max_inflight: int = DEFAULT_MAX_INFLIGHT,
    keepalive: int = 30,
) -> mqtt.Client:
    """A connected client with its network loop running.

    Waits for CONNACK (and for the SUBACK of `subscriptions`, which are renewed on every
    reconnect); raises ConnectionError naming the URL when the broker is unreachable, refuses
    us, or does not answer within `timeout`. `on_message` is installed before connecting so
    retained messages delivered right after SUBACK are not missed.
    """
    target = MqttTarget.parse(url)
    url = str(target)  # from here on, for messages: without the password
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    target.configure(client)
    client.max_inflight_messages_set(max_inflight)
    client.reconnect_delay_set(1, 30)
    if will is not None:
        w = will if isinstance(will, Will) else Will(*will)
        client.will_set(w.topic, w.payload, w.qos, w.retain)
    if on_message is not None:
        client.on_message = on_message

    ready = threading.Event()
    outcome: dict[str, Any] = {"error": None, "sub_mid": None, "connects": 0}

    def on_connect(c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            outcome["error"] = f"MQTT broker {url} refused connection for {client_id!r}: {reason}"
            ready.set()
            return
        outcome["connects"] += 1
        _no_delay(c)
        if outcome["connects"] > 1:
            log.info("reconnected to MQTT broker %s as %s", url, client_id)
        if subscriptions:
            try:
                outcome["sub_mid"] = _subscribe_all(c, subscriptions)
            except ConnectionError as exc:
                outcome["error"] = f"{url}: {exc}"
                ready.set()
        else:
            ready.set()

    def on_subscribe(_c: mqtt.Client, _ud: Any, mid: int, reasons: list[Any], _props: Any) -> None:
        if mid != outcome["sub_mid"]:
            return
        refused = [f for (f, _), r in zip(subscriptions, reasons) if r.is_failure]
        if refused:
            msg = f"MQTT broker {url} refused subscriptions {refused}"
            if not ready.is_set():
                outcome["error"] = msg
            log.error("%s", msg)
        ready.set()

    def on_disconnect(_c: mqtt.Client, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("lost connection to MQTT broker %s (%s); paho reconnects with backoff", url, reason)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_disconnect = on_disconnect

    props = None
    if session_expiry is not None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(session_expiry)
    try:
        client.connect(target.host, target.port, keepalive, clean_start=clean_start, properties=props)
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"MQTT broker {url} unreachable: {exc}") from exc
    client.loop_start()
    if not ready.wait(timeout):
        close_client(client)
        raise ConnectionError(f"MQTT broker {url} did not complete the connection within {timeout:g} s")
    if outcome["error"]:
        close_client(client)
        raise ConnectionError(outcome["error"])
    log.info("connected to MQTT broker %s as %s", url, client_id)
    return client


def connect_with_retry(
    url: str,
    client_id: str,
    stop: threading.Event,
    *,
    give_up_after_s: float | None = None,
    max_delay_s: float = 30.0,
    **kwargs: Any,
) -> mqtt.Client | None:
    """connect_client, retried with exponential backoff until it works or `stop` is set (-> None).

    Raises the last ConnectionError once `give_up_after_s` has passed.
    """
    deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
    delay = 1.0
    while not stop.is_set():
        try:
            return connect_client(url, client_id, **kwargs)
        except ConnectionError as exc:
            if deadline is not None and time.monotonic() + delay > deadline:
                raise
            log.warning("%s; retrying in %.0f s", exc, delay)
        if stop.wait(delay):
            break
        delay = min(delay * 2.0, max_delay_s)
    return None


def close_client(client: mqtt.Client) -> None:
    """Clean DISCONNECT (so no last will is sent) and stop the network thread."""
    try:
        client.disconnect()
    finally:
        client.loop_stop()


def publish_confirmed(client: mqtt.Client, topic: str, payload: bytes, *, retain: bool = True,
                      timeout: float = 5.0) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK; ConnectionError naming the topic otherwise.

    How Skylane's control messages go out (the API's zone, zone-state and clearance announcements, the
    CLI's zone import): the caller learns whether the broker took it, never a silent loss."""
    if not client.is_connected():
        raise ConnectionError(f"not connected to the MQTT broker; {topic} not published")
    info = client.publish(topic, payload, qos=1, retain=retain)
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError) as exc:
        raise ConnectionError(f"publish to {topic} failed: {exc}") from None
    if not info.is_published():
        raise ConnectionError(f"the broker did not acknowledge {topic} within {timeout:g} s")
