"""`skylane adsb`: a 1090 MHz receiver's output (or a capture) onto the broker as observations.

  skylane adsb [--host H] [--port P] [--format beast|avr|sbs] [--receiver-id ID] [--lat LAT --lon LON]
  skylane adsb --file CAPTURE.bin|CAPTURE.jsonl[.gz] [--start T] [--realtime] [--stdout]

Connects to dump1090/readsb (Beast 30005 by default, AVR 30002, SBS 30003) with the `skylane-receiver` account
(settings.service_url("receiver")), publishes `{root}/obs/adsb/{icao24}` for every decoded position and the
receiver's presence on `{root}/device/{receiver_id}/status`. docs/surveillance.md explains the decoding.
"""
from __future__ import annotations

import gzip
import logging
import sys
import time
from pathlib import Path

import orjson

from ..settings import Settings
from . import stop_on_signals

log = logging.getLogger("skylane.adsb")


def _output(args, settings: Settings, receiver_id: str, live: bool):
    """(Output, closer): stdout JSON lines, or the broker with a last will marking the receiver offline."""
    from ingest.bridges.adsb import Output
    from protocol import topics
    if args.stdout:
        def emit(topic: str, payload: bytes, retain: bool) -> None:
            sys.stdout.buffer.write(orjson.dumps({"topic": topic, "payload": orjson.loads(payload)
                                                  if payload[:1] in (b"{", b"[") else payload.decode()}) + b"\n")
        return Output(emit, settings.mqtt_root), lambda: sys.stdout.flush()
    from protocol.mqttclient import Will, close_client, connect_client
    from protocol.publisher import BoundedPublisher
    will = Will(topics.status(settings.mqtt_root, receiver_id)) if live else None
    client = connect_client(settings.service_url("receiver"), f"skylane-adsb-{receiver_id}", will=will)
    publisher = BoundedPublisher(client)

    def publish(topic: str, payload: bytes, retain: bool) -> None:
        publisher.publish(topic, payload, qos=1, retain=retain)

    def close() -> None:
        publisher.drain(timeout=30)
        close_client(client)
    return Output(publish, settings.mqtt_root), close


class _Metrics:
    """The bridge's counters for Prometheus (`--metrics-port`): frames by outcome, observations, aircraft."""

    def __init__(self, bridge):
        self.bridge = bridge

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        rx = self.bridge.receiver_id
        frames = CounterMetricFamily("skylane_adsb_frames", "Frames read from the receiver, by outcome "
                                     "(refused ones by reason: crc_failed, unverified_address, ...)",
                                     labels=["receiver", "outcome"])
        for key, value in {**self.bridge.decoder.stats, **self.bridge.tracker.stats, **self.bridge.stats}.items():
            if key not in ("cache_hits", "library_calls", "observations"):
                frames.add_metric([rx, key], value)
        yield frames
        obs = CounterMetricFamily("skylane_adsb_observations", "Observations published", labels=["receiver"])
        obs.add_metric([rx], self.bridge.stats["observations"])
        yield obs
        up = GaugeMetricFamily("skylane_adsb_receiver_online", "1 while frames flow", labels=["receiver"])
        up.add_metric([rx], 1.0 if self.bridge.online else 0.0)
        yield up


def cmd_adsb(args, settings: Settings) -> int:
    from ingest.bridges import adsb
    from ingest.bridges.framing import iso_or_epoch
    from protocol.progress import ProgressReporter

    if (args.lat is None) != (args.lon is None):
        print("skylane adsb: give both --lat and --lon (the receiver's position) or neither", file=sys.stderr)
        return 2
    receiver = (args.lat, args.lon) if args.lat is not None else None
    receiver_id = args.receiver_id or (f"adsb-{Path(args.file).stem}" if args.file else f"adsb-{args.host}")
    receiver_id = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in receiver_id)[:64]
    stop = stop_on_signals()
    try:
        output, close = _output(args, settings, receiver_id, live=not args.file)
    except ConnectionError as exc:
        print(f"skylane adsb: {exc}", file=sys.stderr)
        return 1
    bridge = adsb.AdsbBridge(output, receiver_id, receiver, silence_s=args.silence,
                             progress=ProgressReporter(log, f"adsb {receiver_id}"))
    if args.metrics_port:
        from prometheus_client import REGISTRY, start_http_server
        REGISTRY.register(_Metrics(bridge))
        start_http_server(args.metrics_port, addr="127.0.0.1")
    started = time.monotonic()
    try:
        if args.file:
            path = Path(args.file)
            data = path.read_bytes()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            if data[:1] == b"\x1a":
                start = iso_or_epoch(args.start) if args.start else time.time()
                items = adsb.beast_file(data, start)
            else:
                items = adsb.json_lines_file(data.splitlines(), iso_or_epoch(args.start) if args.start else None,
                                             bridge.stats)
            bridge.run_file(items, stop, realtime=args.realtime)
        else:
            port = args.port or adsb.DEFAULT_PORTS[args.format]
            bridge.run_tcp(args.host, port, args.format, stop)
    finally:
        close()
    summary = {"receiver_id": receiver_id, "seconds": round(time.monotonic() - started, 3), **bridge.counters()}
    log.info("adsb done: %s", summary)
    if not args.stdout:
        print(orjson.dumps(summary).decode())
    return 0


def register(sub) -> None:
    from ingest.bridges.adsb import FORMATS
    s = sub.add_parser("adsb", help="ADS-B receiver (Beast/AVR/SBS over TCP, or a capture) -> observations")
    s.add_argument("--host", default="127.0.0.1", help="the receiver (dump1090, readsb)")
    s.add_argument("--port", type=int, help="default by format: beast 30005, avr 30002, sbs 30003")
    s.add_argument("--format", choices=FORMATS, default="beast")
    s.add_argument("--file", help="a Beast capture, or JSON lines {timestamp, frame} (gzip allowed), instead of TCP")
    s.add_argument("--start", help="--file: time of the first frame (RFC 3339 or epoch s); Beast default now, "
                                   "JSON lines default their own times")
    s.add_argument("--realtime", action="store_true", help="--file: follow the recorded times instead of max speed")
    s.add_argument("--receiver-id", help="the receiver's device id (status topic, observations' receiver_id)")
    s.add_argument("--lat", type=float, help="the receiver's latitude: reference for local CPR decoding")
    s.add_argument("--lon", type=float, help="the receiver's longitude")
    s.add_argument("--silence", type=float, default=60.0, help="seconds without frames before the receiver is offline")
    s.add_argument("--stdout", action="store_true", help="print observations as JSON lines instead of publishing")
    s.add_argument("--metrics-port", type=int, help="serve Prometheus metrics (frames by outcome) on 127.0.0.1:PORT")
    s.set_defaults(func=cmd_adsb)
