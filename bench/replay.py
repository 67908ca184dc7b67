"""Replay speed: in-process evaluation of an hour of 500 drones at 1 Hz, publishing into a broker, timing drift.

Usage: skylane bench replay [--drones 500 --seconds 3600 --hz 1] [--batch 20000]
                            [--broker-messages 300000] [--drift-seconds 20] [--skip-broker | --skip-evaluate]

1. evaluate: the trace (generated once from the simulator's fleet and flight plans, cached under
   SKYLANE_STATE_DIR/bench) read, parsed and run through the ingest pipeline and airspace monitor
   on event time, in process (target: 1.8 M messages in <= 30 s);
2. broker: its first --broker-messages messages replayed at rate max into a private Mosquitto
   (the configuration Skylane ships) with QoS 1 and a bound on unacknowledged publishes, timed
   until the last acknowledgement (target: >= 20,000 msg/s);
3. drift: --drift-seconds of the trace replayed at rate 1 into that broker; how late the messages
   the player waited for left against their absolute deadlines (last = the drift at the end; the
   issue's bound: 5 ms over ten minutes, run with --drift-seconds 600 for that), and the backlog
   (how long the 500 fixes stamped the same second took to send after their deadline).
   A subscriber (bench/peers/counting_sub.py: mosquitto_sub, QoS 1) counts what the broker delivers:
   broker_received, broker_lost, broker_received_msgs_per_s (first to last receive).
   Peer (issue 16; --skip-peer leaves it out): the PyPI `mqtt-recorder` tool replays the same messages on
   the same topics into the same broker (topics under replay/bench/, the recorder account) from a CSV converted from the recording with zero delays
   (bench/peers/mqtt_recorder.py), counted by the same subscriber: mqtt_recorder_msgs_per_s,
   mqtt_recorder_lost, and replay_vs_mqtt_recorder (ours / theirs, both as received).
Progress goes to stderr; the last line is one JSON object with evaluate_seconds and broker_msgs_per_s
(evaluate_cpu_seconds too: CPU time of this process, which a busy machine inflates less than wall time).
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

from bench._proc import cpu_seconds
from bench.peers.counting_sub import CountingSubscriber
from protocol import topics
from protocol.mqttclient import MqttTarget
from replay.evaluate import evaluate, load_zones
from replay.player import play
from replay.recordfile import Record
from replay.sinks import BrokerSink
from replay.sources import FileSource, ListSource
from devices.trace import cached_trace
from replay.timing import PlaybackControl
from skylane.settings import Settings


def _progress(label: str):
    last = [0.0]

    def show(status: dict) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            frac = status.get("fraction")
            pct = f"{frac * 100:5.1f}%" if frac is not None else "  ?  "
            print(f"\r{label}: {pct} {status['counters'].get('sent', 0):>9} msgs", end="", file=sys.stderr, flush=True)
    return show


def _gen_progress(k: int, total: int) -> None:
    print(f"\rgenerating trace: {k}/{total} s", end="", file=sys.stderr, flush=True)


def bench_evaluate(trace: Path, zone_file: Path, batch: int) -> dict:
    zones = load_zones(zone_file)
    t0, c0 = time.perf_counter(), time.process_time()
    ev = evaluate(FileSource(trace), zones, batch_size=batch, on_status=_progress("evaluate"))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(file=sys.stderr)
    n = ev.counts.get("messages", 0)
    return {"evaluate_seconds": round(elapsed, 2), "evaluate_cpu_seconds": round(cpu, 2), "evaluate_messages": n,
            "evaluate_msgs_per_s": round(n / elapsed) if elapsed else None, "events": len(ev.events),
            "dead_letters": ev.counts.get("dead_letters", 0), "batch": batch}


def _head(trace: Path, n: int) -> tuple[str, list[Record]]:
    src = FileSource(trace)
    return src.root, list(itertools.islice(src.records(), n))


def _window(trace: Path, seconds: float) -> list[Record]:
    """The first `seconds` of the trace (recorded time)."""
    out: list[Record] = []
    for rec in FileSource(trace).records():
        if out and rec.t >= out[0].t + seconds:
            break
        out.append(rec)
    return out


def received(sub, t0: float, expected: int, prefix: str) -> dict:
    """What the counting subscriber got since t0 (waiting until all arrived or none for 3 s)."""
    sub.settle(t0, expected)
    w = sub.window(t0, time.time())
    return {f"{prefix}received": w["received"], f"{prefix}lost": expected - w["received"],
            f"{prefix}received_msgs_per_s": w["msgs_per_s"]}


def bench_broker(mqtt_url: str, root: str, records: list[Record], max_pending: int, sub=None,
                 broker_pid: int | None = None) -> dict:
    sink = BrokerSink(mqtt_url, client_id="skylane-bench-replay", max_pending=max_pending)
    control = PlaybackControl("max")
    t_wall = time.time()
    b0 = cpu_seconds(broker_pid)
    t0, c0 = time.perf_counter(), time.process_time()
    res = play(ListSource(records, root), sink, control=control, root_to=f"{TREE}/{root}",
               on_status=_progress("broker"))
    elapsed = time.perf_counter() - t0  # play() returns after the last acknowledgement
    cpu = time.process_time() - c0
    print(file=sys.stderr)
    out = {"broker_messages": sink.published, "broker_seconds": round(elapsed, 2),
           "broker_msgs_per_s": round(sink.published / elapsed) if elapsed else None,
           "broker_not_sent": res.counters.get("not_sent", 0),
           "broker_cpu_us_per_msg": round(cpu / max(sink.published, 1) * 1e6, 1)}
    if sub is not None:
        out.update(received(sub, t_wall, len(records), "broker_"))
    if broker_pid is not None:  # Mosquitto's CPU for these messages in and out (to the subscriber)
        out["broker_mosquitto_cpu_us_per_msg"] = round((cpu_seconds(broker_pid) - b0) / max(len(records), 1) * 1e6, 1)
    return out


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def bench_mqtt_recorder(broker: Settings, root: str, records: list[Record], sub, tmp: Path,
                        broker_pid: int | None = None, account: MqttTarget | None = None) -> dict:
    """The same messages on the same topics, replayed by the PyPI mqtt-recorder tool, counted the same way."""
    from bench.peers import mqtt_recorder
    mqtt_recorder.ensure_installed(log=lambda m: print(m, file=sys.stderr, flush=True))
    dst = f"{TREE}/{root}"
    n, b64 = mqtt_recorder.write_csv(tmp / "replay.csv", ((topics.remap(r.topic, root, dst), r.payload, r.qos,
                                                            r.retain) for r in records))
    host, port = broker.mqtt_host_port
    print(f"mqtt-recorder: replaying {n} rows (zero delays) into {host}:{port}", file=sys.stderr, flush=True)
    t_wall = time.time()
    c0, b0 = _children_cpu(), cpu_seconds(broker_pid)
    wall = mqtt_recorder.run_replay(tmp / "replay.csv", host, port, b64=b64, log_path=tmp / "mqtt-recorder.log",
                                    username=account and account.username, password=account and account.password)
    out = {"mqtt_recorder_wall_s": round(wall, 2),
           "mqtt_recorder_cpu_us_per_msg": round((_children_cpu() - c0) / n * 1e6, 1)}
    got = received(sub, t_wall, n, "mqtt_recorder_")
    if broker_pid is not None:
        out["mqtt_recorder_mosquitto_cpu_us_per_msg"] = round((cpu_seconds(broker_pid) - b0) / n * 1e6, 1)
    out.update(mqtt_recorder_msgs_per_s=got["mqtt_recorder_received_msgs_per_s"],
               mqtt_recorder_received=got["mqtt_recorder_received"], mqtt_recorder_lost=got["mqtt_recorder_lost"])
    print(f"  -> {out['mqtt_recorder_received']}/{n} received ({out['mqtt_recorder_lost']} lost) at "
          f"{out['mqtt_recorder_msgs_per_s']} msg/s; the tool ran {wall:.1f} s", file=sys.stderr, flush=True)
    return out


def bench_drift(mqtt_url: str, root: str, window: list[Record], seconds: float) -> dict:
    sink = BrokerSink(mqtt_url, client_id="skylane-bench-drift")
    t0 = time.monotonic()
    res = play(ListSource(window, root), sink, control=PlaybackControl(1.0), root_to=f"{TREE}/{root}",
               on_status=_progress(f"drift ({seconds:g} s at 1x)"))
    wall = time.monotonic() - t0
    print(file=sys.stderr)
    t = res.timing
    return {"drift_seconds": round(window[-1].t - window[0].t, 3), "drift_messages": t.released,
            "drift_timed_messages": t.waited, "drift_last_ms": round(t.last_late_s * 1e3, 3),
            "drift_max_ms": round(t.max_late_s * 1e3, 3), "drift_mean_ms": round(t.mean_late_s * 1e3, 3),
            "drift_backlog_max_ms": round(t.max_backlog_s * 1e3, 3), "drift_wall_seconds": round(wall, 3)}


TREE = "replay/bench"  # where the replays go: under replay/, which every service account may use


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with_private_broker(settings: Settings, trace: Path, args) -> dict:
    """Broker and drift figures on a Mosquitto of our own (shipped tuning), stopped afterwards."""
    from skylane import localservices
    root, head = _head(trace, max(args.broker_messages, 1))
    # The evaluation's garbage and these records held in memory (the CLI streams them from the file instead) would
    # make every full collection during the replay walk them: collected, then frozen out of the collector's way.
    gc.collect()
    gc.freeze()
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="skylane-bench-replay-") as tmp:
        broker = settings.with_(mqtt_url=f"mqtt://127.0.0.1:{_free_port()}",
                                mqtt_device_url=f"mqtt://127.0.0.1:{_free_port()}", state_dir=Path(tmp))
        localservices.mosquitto_up(broker)  # writes the accounts (secret under state_dir)
        url = broker.service_url("recorder")  # the replaying account (protocol/brokerauth.py)
        account = MqttTarget.parse(url)
        try:
            pid = int((localservices.data_dirs(broker)[0] / "mosquitto.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pid = None
        sub = None
        try:
            sub = CountingSubscriber(*broker.mqtt_host_port, f"{TREE}/#", f"{TREE}/probe",
                                     username=account.username, password=account.password)
            out.update(bench_broker(url, root, head, args.max_pending, sub, pid))
            if not args.skip_peer:
                out.update(bench_mqtt_recorder(broker, root, head, sub, Path(tmp), pid, account))
                ours, theirs = out.get("broker_received_msgs_per_s"), out.get("mqtt_recorder_msgs_per_s")
                out["replay_vs_mqtt_recorder"] = round(ours / theirs, 2) if ours and theirs else None
                out["replay_vs_mqtt_recorder_cpu"] = round(out["mqtt_recorder_cpu_us_per_msg"]
                                                           / out["broker_cpu_us_per_msg"], 2)
            sub.close()
            sub = None
            if args.drift_seconds > 0:
                out.update(bench_drift(url, root, _window(trace, args.drift_seconds),
                                       args.drift_seconds))
        finally:
            if sub is not None:
                sub.close()
            localservices.mosquitto_down(broker)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="skylane bench replay", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drones", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=3600)
    ap.add_argument("--hz", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=20_000, help="pipeline batch size")
    ap.add_argument("--broker-messages", type=int, default=300_000)
    ap.add_argument("--max-pending", type=int, default=5000, help="unacknowledged QoS 1 publishes at most")
    ap.add_argument("--drift-seconds", type=float, default=20.0)
    ap.add_argument("--skip-broker", action="store_true", help="evaluation only")
    ap.add_argument("--skip-evaluate", action="store_true", help="broker and drift only")
    ap.add_argument("--skip-peer", action="store_true", help="leave out mqtt-recorder")
    ap.add_argument("--trace", type=Path, help="use this recording instead of the generated one")
    args = ap.parse_args(argv)
    settings = Settings.from_env()
    trace = args.trace or cached_trace(settings.state_dir / "bench", settings.zone_file, drones=args.drones,
                                       seconds=args.seconds, hz=args.hz, seed=1, progress=_gen_progress)
    print(f"\rtrace: {trace}", file=sys.stderr)
    result: dict = {"bench": "replay", "trace": str(trace)}
    if not args.skip_evaluate:
        result.update(bench_evaluate(trace, settings.zone_file, args.batch))
    if not args.skip_broker:
        result.update(_with_private_broker(settings, trace, args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
