"""A revoked API key closes the live feeds it opened, within the key cache window (attack: keep watching the
live picture on a key that `skylane keys revoke` has revoked)."""
from __future__ import annotations

import threading
import time

import httpx
import orjson
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from storage import auth

from .feeds_support import api_server

pytestmark = pytest.mark.integration
TTL_S = 1.0
MARGIN_S = 4.0  # generous: the re-check runs every TTL_S; the margin covers a loaded test machine


@pytest.fixture
def server(system):
    srv = api_server(system, key_cache_s=TTL_S)
    yield srv
    srv.close()


def _sse_until_end(url: str, key: str, out: list, opened: threading.Event) -> None:
    """Read an event stream until the server ends it; (event name, data) pairs into `out`."""
    name = None
    with httpx.stream("GET", url, params={"access_token": key}, headers={"Accept": "text/event-stream"},
                      timeout=30) as r:
        out.append(("status", r.status_code))
        opened.set()
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, orjson.loads(line[6:])))
    out.append(("end", time.monotonic()))


def test_revoking_a_key_closes_its_websocket_and_sse_feeds(system, server):
    with psycopg.connect(system.database_url) as conn:
        victim = auth.create_key(conn, "viewer", None, "about to be revoked")
        bystander = auth.create_key(conn, "viewer", None, "stays valid")
    sse: list = []
    opened = threading.Event()
    reader = threading.Thread(target=_sse_until_end, args=(server.url + "/v1/live/sse", victim.key, sse, opened),
                              daemon=True)
    with ws_connect(f"{server.ws_url}/v1/live?access_token={victim.key}") as ws, \
            ws_connect(f"{server.ws_url}/v1/live?access_token={bystander.key}") as other:
        reader.start()
        assert opened.wait(10) and sse[0] == ("status", 200)
        time.sleep(2 * TTL_S)  # the feeds are open and the key is in every cache
        with psycopg.connect(system.database_url) as conn:
            assert auth.revoke_key(conn, victim.key_id)
        revoked_at = time.monotonic()
        with pytest.raises(ConnectionClosed) as info:
            while True:
                ws.recv(timeout=TTL_S + MARGIN_S)
        closed_after = time.monotonic() - revoked_at
        assert info.value.rcvd is not None, "the server must close the feed, not the client time out"
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (1008, "API key revoked")
        assert closed_after < TTL_S + MARGIN_S
        reader.join(TTL_S + MARGIN_S)
        assert not reader.is_alive(), "the event stream is still open after the revocation"
        errors = [data for name, data in sse if name == "error"]
        assert errors and errors[-1]["message"] == "API key revoked"
        assert sse[-1][0] == "end" and sse[-1][1] - revoked_at < TTL_S + MARGIN_S
        try:  # the other key's feed is untouched (a close would raise ConnectionClosed here)
            while True:
                other.recv(timeout=0.5)
        except TimeoutError:
            pass
    # and the revoked key opens nothing any more
    assert httpx.get(server.url + "/v1/live/sse", params={"access_token": victim.key},
                     headers={"Accept": "text/event-stream"}, timeout=10).status_code == 401
