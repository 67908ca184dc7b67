"""The telemetry consumer a user would write first: paho-mqtt, QoS 1, orjson, binary COPY, ack after commit.

Usage: python -m bench.peers.bare_ingest --mqtt-url URL --database-url URL --topic FILTER --client-id ID
                                         [--username U --password P] [--batch-size 5000] [--batch-ms 20]
The account is the URL's (mqtt://user:password@host:port) unless --username is given.

A persistent session (clean_session off, so a backlog queues while it is down), manual acknowledgement:
paho's network thread hands each message to a list, the main thread takes the list every --batch-ms (or
when --batch-size are waiting), parses each payload with orjson, COPYs the rows in binary into
uav_telemetry (the same table as Skylane's ingester), commits, and only then acknowledges the messages.
The UAV id is the topic's second-to-last level ({root}/uav/{id}/telemetry). Nothing else: no validation
(a bad payload stops it), no geofence, no dedupe, no events, no reconnect logic beyond paho's own.
Prints "subscribed under FILTER" once the broker confirmed the subscription; stops on SIGTERM.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime, timezone

import orjson
import paho.mqtt.client as mqtt
import psycopg

from protocol.mqttclient import MqttTarget

COLUMNS = ("ts", "uav_id", "seq", "lon", "lat", "alt_m", "alt_ref", "speed_mps", "received_at")
TYPES = ("timestamptz", "text", "int8", "float8", "float8", "float4", "text", "float4", "timestamptz")
COPY_SQL = f"COPY uav_telemetry ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def rows(batch: list[tuple[int, str, bytes, float]]):
    for _mid, topic, payload, received in batch:
        fix = orjson.loads(payload)
        yield (datetime.fromisoformat(fix["ts"]), topic.rsplit("/", 2)[-2], fix.get("seq"), fix["lon"], fix["lat"],
               fix["alt_m"], fix.get("alt_ref", "AGL"), fix.get("speed_mps"),
               datetime.fromtimestamp(received, timezone.utc))


def write(conn: psycopg.Connection, batch: list) -> None:
    with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        copy.set_types(TYPES)
        for row in rows(batch):
            copy.write_row(row)


class BareConsumer:
    def __init__(self, mqtt_url: str, database_url: str, topic: str, client_id: str, *,
                 username: str | None = None, password: str | None = None,
                 batch_size: int = 5000, batch_ms: float = 20) -> None:
        self.mqtt_url, self.topic = mqtt_url, topic
        self.batch_size, self.batch_s = batch_size, batch_ms / 1000
        self.conn = psycopg.connect(database_url)
        self.pending: list[tuple[int, str, bytes, float]] = []
        self.wake = threading.Condition()
        self.subscribed = threading.Event()
        self.stored = 0
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                        protocol=mqtt.MQTTv311, manual_ack=True)
        target = MqttTarget.parse(mqtt_url)  # mqtt://[user:password@]host:port
        self.host, self.port = target.host, target.port
        if username is None:
            username, password = target.username, target.password
        if username is not None:
            c.username_pw_set(username, password)
        c.on_connect = lambda cl, ud, flags, rc, props: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_message = self._on_message
        self.client = c

    def _on_message(self, client, userdata, msg) -> None:
        with self.wake:
            self.pending.append((msg.mid, msg.topic, msg.payload, time.time()))
            if len(self.pending) >= self.batch_size:
                self.wake.notify()

    def run(self, stop: threading.Event, on_subscribed=None) -> None:
        self.client.connect(self.host, self.port, keepalive=60)
        self.client.loop_start()
        try:
            if not self.subscribed.wait(15):
                raise ConnectionError(f"no SUBACK from {self.host}:{self.port}")
            if on_subscribed:
                on_subscribed()
            while not stop.is_set():
                with self.wake:
                    if len(self.pending) < self.batch_size:
                        self.wake.wait(self.batch_s)
                    batch, self.pending = self.pending, []
                if batch:
                    write(self.conn, batch)  # committed
                    for mid, *_ in batch:
                        self.client.ack(mid, 1)
                    self.stored += len(batch)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self.conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.peers.bare_ingest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mqtt-url", required=True)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--topic", required=True, help="subscription filter, e.g. bare/v1/uav/+/telemetry")
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--batch-ms", type=float, default=20)
    args = ap.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = BareConsumer(args.mqtt_url, args.database_url, args.topic, args.client_id, username=args.username,
                            password=args.password, batch_size=args.batch_size, batch_ms=args.batch_ms)
    consumer.run(stop, lambda: print(f"subscribed under {args.topic}", flush=True))
    print(f"stored {consumer.stored}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
