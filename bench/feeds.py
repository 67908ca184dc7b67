"""Live-feed delivery: N WebSocket clients, R position updates/s in total, publish -> client receive latency.

Usage: skylane bench feeds [--clients 100] [--rate 2000] [--duration 10] [--uavs 200] [--servers 1]
                           [--app full|feeds] [--client-procs 2] [--mqtt-url URL] [--database-url URL]

What it starts: the local services when they are not running (`skylane services up` semantics, on the
configured or given URLs), a fresh database (migrated, one viewer key; dropped at the end) under a private
MQTT root under replay/ (which Skylane's service accounts may use), `--servers` API processes (uvicorn subprocesses, each reading the broker itself: the whole API,
or with `--app feeds` a feed-only process) and `--client-procs` processes holding the WebSocket clients
(spread over the servers). This process publishes the UAV states, retained, to `{root}/state/uav/{id}` as the ingester does, each stamped
with its publish time; clients subscribe to every position (`type=position`, no other filter) and measure
publish -> receive on the same clock. The first `--warmup` seconds are not measured.

Progress goes to stderr; the last line on stdout is one JSON object with clients, updates_per_s,
delivery_p99_ms (and more: delivered_ratio is received / (published x clients); dropped_told counts the
positions the server dropped for slow clients and told them about, so the two account for everything
published when the server is overloaded).

Peer (issue 16; --skip-peer leaves it out): the same clients, split over the same processes, subscribing to
`{root}/state/uav/+` over MQTT over WebSockets on a private Mosquitto (bench/peers/mosquitto_ws.py: its own
config, TCP and WebSocket listeners on 127.0.0.1, stopped at the end), the same updates published at the
same rate to its TCP listener: mosquitto_ws_delivery_p99_ms (and the same figures prefixed mosquitto_ws_),
and feeds_p99_vs_mosquitto_ws = theirs / ours (higher is better for Skylane).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import numpy as np
import orjson

from bench._proc import cpu_seconds

BUCKET_MS = 1.0          # latency histogram resolution
MAX_BUCKET = 60_000      # 60 s: anything later lands in the last bucket


# ------------------------------------------------------------------ client process
async def _client(url: str, hist: np.ndarray, stats: dict, open_ws: list) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosedOK
    async with connect(url, max_size=None, ping_interval=None, compression=None) as ws:
        open_ws.append(ws)
        stats["connected"] += 1
        while True:
            try:
                frame = await ws.recv(decode=False)  # bytes: orjson parses them as they are
            except ConnectionClosedOK:  # closed by _clients_main when the orchestrator says stop
                return
            now = time.time()
            msgs = orjson.loads(frame)
            if isinstance(msgs, dict):
                msgs = [msgs]
            sent = [m["bench_t"] for m in msgs if "bench_t" in m and "warm" not in m]
            stats["dropped"] += sum(int(m.get("dropped_positions") or 0) for m in msgs if m.get("type") == "notice")
            if sent:
                stats["received"] += len(sent)
                ms = np.clip(((now - np.asarray(sent)) * (1000.0 / BUCKET_MS)).astype(np.int64), 0, MAX_BUCKET)
                hist += np.bincount(ms, minlength=MAX_BUCKET + 1)


async def _clients_main(urls: list[str]) -> dict:
    hist = np.zeros(MAX_BUCKET + 1, dtype=np.int64)
    stats = {"connected": 0, "received": 0, "dropped": 0, "failed": 0}
    open_ws: list = []

    async def guarded(url: str) -> None:
        try:
            await _client(url, hist, stats, open_ws)
        except Exception as exc:  # noqa: BLE001 - counted and reported, the others go on
            stats["failed"] += 1
            print(f"client failed: {exc!r}", file=sys.stderr, flush=True)

    tasks = [asyncio.create_task(guarded(u)) for u in urls]
    while stats["connected"] + stats["failed"] < len(urls):
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # the orchestrator says stop
    await asyncio.gather(*(ws.close() for ws in open_ws), return_exceptions=True)
    await asyncio.gather(*tasks)
    return {"hist": {int(i): int(hist[i]) for i in np.flatnonzero(hist)}, **stats}


def run_clients(urls: list[str]) -> None:
    print(json.dumps(asyncio.run(_clients_main(urls))), flush=True)


# ------------------------------------------------------------------ server process
def run_server(app_kind: str, port: int, database_url: str, mqtt_url: str, root: str) -> None:
    import uvicorn

    from skylane.settings import Settings
    settings = Settings.from_env({**os.environ, "SKYLANE_MQTT_URL": mqtt_url, "SKYLANE_DATABASE_URL": database_url,
                                  "SKYLANE_MQTT_ROOT": root})
    if app_kind == "full":
        from api.app import create_app
        from skylane.wiring import api_config
        app = create_app(api_config(settings))  # the API's own account on the service listener
    else:
        from api.feeds import create_feed_app
        app = create_feed_app(database_url, settings.service_url("api"), root)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# ------------------------------------------------------------------ orchestration
def _percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    need, seen = q * total, 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= need:
            return (bucket + 1) * BUCKET_MS  # upper edge: never flatters
    return None


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> None:
    import httpx
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"API server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"API server at {url} not healthy within {timeout:.0f} s")


def _publish(client, root: str, rate: float, seconds: float, uavs: int, warm: bool, progress) -> int:
    """Publish `rate` UAV states per second for `seconds`, paced in 10 ms ticks; returns the count."""
    from protocol import topics
    tick, sent = 0.01, 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(int(rate * elapsed) - sent):  # catch up to the schedule
            uav = f"B{sent % uavs:04d}"
            body = {"uav_id": uav, "lon": 121.44 + (sent % 997) * 1e-4, "lat": 31.01 + (sent % 887) * 1e-4,
                    "alt_m": 80.0, "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "zones": [],
                    "alerts": [], "bench_t": time.time()}
            if warm:
                body["warm"] = True
            client.publish(topics.uav_state(root, uav), orjson.dumps(body), qos=0, retain=True)
            sent += 1
        progress(sent, elapsed)
        next_at = start + (int(elapsed / tick) + 1) * tick
        time.sleep(max(0.0, next_at - time.perf_counter()))
    return sent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="skylane bench feeds", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rate", type=float, default=2000.0, help="position updates per second, in total")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--uavs", type=int, default=200)
    ap.add_argument("--servers", type=int, default=1, help="API processes serving the clients")
    ap.add_argument("--client-procs", type=int, default=2, help="processes holding the WebSocket clients")
    ap.add_argument("--mqtt-url", default=None)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--app", choices=("full", "feeds"), default="full",
                    help="full: the whole API (api.app); feeds: a feed-only process (api.feeds.create_feed_app)")
    ap.add_argument("--skip-peer", action="store_true", help="leave out the Mosquitto WebSocket peer")
    ap.add_argument("--serve", nargs=5, metavar=("APP", "PORT", "DB", "MQTT", "ROOT"), help=argparse.SUPPRESS)
    ap.add_argument("--client-urls", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        run_server(args.serve[0], int(args.serve[1]), *args.serve[2:])
        return 0
    if args.client_urls:
        run_clients(args.client_urls)
        return 0
    return orchestrate(args)


def measure(client_argvs: list[list[str]], pub, root: str, args, label: str, server_pids=()) -> dict:
    """Start the client processes (each prints "ready", then waits for a line on stdin and prints its
    histogram), publish the warm-up and the measured updates on `pub`, and sum what the clients saw.
    Also the CPU the servers and the clients used per delivered update, from the warm-up to the end."""
    clients = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for argv in client_argvs]
    try:
        for c in clients:
            line = c.stdout.readline().strip()
            if line != "ready":
                raise SystemExit(f"{label}: client process failed to start ({line!r})")
        last = [0.0]

        def progress(sent: int, elapsed: float) -> None:
            if elapsed - last[0] >= 1.0:
                last[0] = elapsed
                print(f"\r{label}: {sent} updates published in {elapsed:.0f} s", end="", file=sys.stderr, flush=True)

        client_pids = [c.pid for c in clients]
        cpu0 = cpu_seconds(*server_pids), cpu_seconds(*client_pids)
        _publish(pub, root, args.rate, args.warmup, args.uavs, True, progress)
        start = time.perf_counter()
        last[0] = 0.0
        sent = _publish(pub, root, args.rate, args.duration, args.uavs, False, progress)
        elapsed = time.perf_counter() - start
        print(file=sys.stderr)
        time.sleep(2.0)  # let the last updates arrive
        cpu1 = cpu_seconds(*server_pids), cpu_seconds(*client_pids)
        hist: dict[int, int] = {}
        totals = {"received": 0, "dropped": 0, "failed": 0}
        for c in clients:
            out, _ = c.communicate("stop\n", timeout=60)
            res = json.loads(out.strip().splitlines()[-1])
            for b, n in res["hist"].items():
                hist[int(b)] = hist.get(int(b), 0) + n
            for k in totals:
                totals[k] += res[k]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
    expected = sent * args.clients
    per = 1e6 / totals["received"] if totals["received"] else None  # None: nothing measured was delivered
    return {"updates_per_s": round(sent / elapsed, 1), "seconds": round(elapsed, 2),
            "server_cpu_us_per_delivery": round((cpu1[0] - cpu0[0]) * per, 2) if server_pids and per else None,
            "clients_cpu_us_per_delivery": round((cpu1[1] - cpu0[1]) * per, 2) if per else None,
            "published": sent, "delivered": totals["received"],
            "delivered_ratio": round(totals["received"] / expected, 4) if expected else None,
            "dropped_told": totals["dropped"], "failed_clients": totals["failed"],
            "delivery_p50_ms": _percentile(hist, 0.50), "delivery_p99_ms": _percentile(hist, 0.99),
            "delivery_max_ms": (max(hist) + 1) * BUCKET_MS if hist else None}


def measure_mosquitto_ws(root: str, args, group_sizes: list[int]) -> dict:
    """The peer: the same clients, split the same way, on MQTT over WebSockets from a private Mosquitto."""
    from bench.peers.mosquitto_ws import client_argv, private_broker
    from protocol import topics
    from protocol.mqttclient import close_client, connect_client
    with private_broker() as broker:
        mqtt_port, ws_port = broker
        print(f"peer: private Mosquitto, WebSocket listener 127.0.0.1:{ws_port}; connecting {args.clients} clients",
              file=sys.stderr, flush=True)
        argvs = [client_argv(ws_port, topics.uav_state(root, "+"), n) for n in group_sizes]
        pub = connect_client(f"mqtt://127.0.0.1:{mqtt_port}", f"bench-feeds-ws-pub-{uuid.uuid4().hex[:6]}")
        try:
            res = measure(argvs, pub, root, args, "mosquitto websockets", [broker.pid])
        finally:
            close_client(pub)
    return {f"mosquitto_ws_{k}": v for k, v in res.items() if k not in ("dropped_told",)}


def orchestrate(args) -> int:
    import psycopg
    from psycopg import sql

    from protocol import topics
    from protocol.mqttclient import close_client, connect_client
    from skylane import localservices
    from skylane.settings import Settings
    from skylane.wiring import prepare_database
    from storage.auth import create_key

    env = dict(os.environ)
    if args.mqtt_url:
        env["SKYLANE_MQTT_URL"] = args.mqtt_url
    if args.database_url:
        env["SKYLANE_DATABASE_URL"] = args.database_url
    settings = Settings.from_env(env)
    host, port = settings.mqtt_host_port
    if localservices.port_open(host, port):  # a running broker is used as it is (never reconfigured)
        print(f"service: broker at {host}:{port} already running: used as it is", file=sys.stderr)
    else:
        print(f"service: {localservices.mosquitto_up(settings)}", file=sys.stderr)
    print(f"service: {localservices.postgres_up(settings)}", file=sys.stderr)
    db_name = f"bench_feeds_{uuid.uuid4().hex[:10]}"
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    db_url = settings.database_url.rsplit("/", 1)[0] + "/" + db_name
    root = f"replay/bench-feeds-{uuid.uuid4().hex[:8]}/v1"  # under replay/: every service account may use it
    procs: list[subprocess.Popen] = []
    pub = None
    try:
        prepare_database(settings.with_(database_url=db_url, mqtt_root=root))
        with psycopg.connect(db_url) as conn:
            key = create_key(conn, "viewer", name="bench-feeds").key
        ports = [_free_port() for _ in range(args.servers)]
        for port in ports:
            procs.append(subprocess.Popen([sys.executable, "-m", "bench.feeds", "--serve", args.app, str(port), db_url,
                                           settings.mqtt_url, root]))
        for port, proc in zip(ports, procs):
            _wait_healthy(f"http://127.0.0.1:{port}", proc, 60)
        print(f"{args.servers} API server(s) up; connecting {args.clients} clients", file=sys.stderr, flush=True)
        urls = [f"ws://127.0.0.1:{ports[i % len(ports)]}/v1/live?access_token={key}&type=position"
                for i in range(args.clients)]
        groups = [g for g in (urls[i::args.client_procs] for i in range(args.client_procs)) if g]
        # the states come from the ingester: its account
        pub = connect_client(settings.service_url("ingest"), f"bench-feeds-pub-{uuid.uuid4().hex[:6]}")
        servers = [p.pid for p in procs]
        try:  # the broker the API reads is part of Skylane's path (the peer's server is its broker)
            servers.append(int((localservices.data_dirs(settings)[0] / "mosquitto.pid").read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
        res = measure([[sys.executable, "-m", "bench.feeds", "--client-urls", *g] for g in groups], pub, root, args,
                      "skylane api", servers)
        result = {"bench": "feeds", "clients": args.clients, "servers": args.servers, **res}
        failed = res["failed_clients"]
        if not args.skip_peer:
            for p in procs:  # the API servers are done: their CPU goes to the peer's run
                p.terminate()
            peer = measure_mosquitto_ws(root, args, [len(g) for g in groups])
            result.update(peer)
            ours, theirs = result["delivery_p99_ms"], peer["mosquitto_ws_delivery_p99_ms"]
            result["feeds_p99_vs_mosquitto_ws"] = round(theirs / ours, 2) if ours and theirs else None
            failed += peer["mosquitto_ws_failed_clients"]
        print(json.dumps(result))
        return 0 if failed == 0 else 1
    finally:
        if pub is not None:
            for i in range(args.uavs):  # clear the retained states
                pub.publish(topics.uav_state(root, f"B{i:04d}"), b"", qos=0, retain=True)
            close_client(pub)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))


if __name__ == "__main__":
    raise SystemExit(main())
