"""Live-feed limits, each performed as an attack on a running feed server: many feeds on one key or in total,
a client that never reads, an idle stream behind a proxy that cuts silent connections."""
from __future__ import annotations

import socket
import time

import httpx
import orjson
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from protocol import topics
from protocol.mqttclient import close_client, connect_client
from storage.auth import create_key

from .api_support import bearer
from .feeds_support import FeedServer, RawWebSocket, _wait

pytestmark = pytest.mark.integration
SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def keys(system) -> dict[str, str]:
    with psycopg.connect(system.database_url) as conn:
        made = {name: create_key(conn, "viewer", None, name).key for name in ("a", "b", "c")}
        return {**made, "engineer": create_key(conn, "engineer", None, "reads the metrics").key}


@pytest.fixture
def pub(system):
    client = connect_client(system.mqtt_url, f"test-feed-limits-pub-{time.monotonic_ns()}")
    yield client
    close_client(client)


def _server(system, **kw) -> FeedServer:
    return FeedServer(system.database_url, system.service_url("api"), system.mqtt_root, **kw)


def _refused_ws(url: str) -> tuple[int, str]:
    with ws_connect(url) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
    return info.value.rcvd.code, info.value.rcvd.reason


def test_feeds_are_capped_per_key_and_in_total(system, keys):
    server = _server(system, max_feeds_per_key=2, max_feeds=3)
    live = f"{server.ws_url}/v1/live?access_token="
    try:
        with ws_connect(live + keys["a"]) as a1, ws_connect(live + keys["a"]):
            _wait(lambda: len(server.hub.subscribers) == 2, 5, "two feeds on key a")
            code, reason = _refused_ws(live + keys["a"])  # a third on the same key
            assert code == 1013 and "this API key has 2 live feeds open" in reason
            r = httpx.get(server.url + "/v1/live/sse", params={"access_token": keys["a"]}, headers=SSE, timeout=5)
            assert r.status_code == 429 and "this API key has 2 live feeds open" in r.json()["detail"]
            r = httpx.get(server.url + "/v1/live/sse", params={"access_token": keys["a"]},
                          headers={**SSE, "Accept-Language": "zh-CN"}, timeout=5)
            assert r.status_code == 429 and "此 API 密钥已打开 2 个实时数据流" in r.json()["detail"]
            with ws_connect(live + keys["b"]) as b1:  # another key: fine, and now the server is full
                _wait(lambda: len(server.hub.subscribers) == 3, 5, "three feeds")
                code, reason = _refused_ws(live + keys["c"])
                assert code == 1013 and "3 live feeds open" in reason and "try again later" in reason
                r = httpx.get(server.url + "/v1/live/sse", params={"access_token": keys["c"]}, headers=SSE,
                              timeout=5)
                assert r.status_code == 429 and r.headers.get("retry-after")
                b1.close()
            a1.close()
            _wait(lambda: len(server.hub.subscribers) == 1, 5, "closed feeds give their slots back")
            with ws_connect(live + keys["a"]) as again, httpx.stream("GET", server.url + "/v1/live/sse",
                                                                    params={"access_token": keys["c"]},
                                                                    headers=SSE, timeout=5) as r:
                assert r.status_code == 200
                _wait(lambda: len(server.hub.subscribers) == 3, 5, "slots reused")
                again.close()
        _wait(lambda: not server.hub.subscribers, 5, "all feeds closed")
        metrics = httpx.get(server.url + "/metrics", headers=bearer(keys["engineer"]), timeout=5).text
        assert 'skylane_feed_disconnects_total{reason="over_limit"}' in metrics
    finally:
        server.close()


def test_an_idle_event_stream_gets_keepalive_comments(system, keys):
    server = _server(system, keepalive_s=0.5)
    try:
        with httpx.stream("GET", server.url + "/v1/live/sse", params={"access_token": keys["a"], "type": "event"},
                          headers=SSE, timeout=10) as r:
            seen, started = [], time.monotonic()
            for line in r.iter_lines():
                seen.append(line)
                if sum(x == ": keepalive" for x in seen) >= 3 or time.monotonic() - started > 8:
                    break
        assert sum(x == ": keepalive" for x in seen) >= 3, seen
    finally:
        server.close()


def _flood(pub, root: str, n: int = 1500, pad: int = 16000) -> None:
    """Positions far bigger than the socket buffers of a client that does not read (one drone each, so a
    backlogged hub sheds none of them as superseded): 24 MB, so the server's sends block even where the kernel's
    autotuned socket buffers are large (with 9.6 MB the client was once still subscribed after 15 s)."""
    last = None
    for i in range(n):
        last = pub.publish(topics.uav_state(root, f"F{i}"), orjson.dumps(
            {"uav_id": f"F{i}", "lon": 121.49, "lat": 31.04, "seq": i, "pad": "z" * pad}), qos=1)
    last.wait_for_publish(30)


def _stuck_client_is_dropped(server: FeedServer, pub, root: str, engineer_key: str) -> None:
    _wait(lambda: len(server.hub.subscribers) == 1, 5, "subscribed")
    _flood(pub, root)
    # the send blocks on the full socket; after send_timeout_s the server gives up and frees the feed
    _wait(lambda: not server.hub.subscribers, 15, "the stuck client is still subscribed")
    metrics = httpx.get(server.url + "/metrics", headers=bearer(engineer_key), timeout=5).text
    assert 'skylane_feed_disconnects_total{reason="send_timeout"}' in metrics


def test_a_websocket_client_that_never_reads_is_dropped(system, keys, pub):
    server = _server(system, send_timeout_s=1.0)
    ws = RawWebSocket(server.port, f"/v1/live?access_token={keys['a']}&type=position")
    try:
        _stuck_client_is_dropped(server, pub, system.mqtt_root, keys["engineer"])
    finally:
        ws.close()
        server.close()


def test_an_event_stream_client_that_never_reads_is_dropped(system, keys, pub):
    server = _server(system, send_timeout_s=1.0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    try:
        sock.sendall(f"GET /v1/live/sse?access_token={keys['a']}&type=position HTTP/1.1\r\nHost: x\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        _stuck_client_is_dropped(server, pub, system.mqtt_root, keys["engineer"])
    finally:
        sock.close()
        server.close()
