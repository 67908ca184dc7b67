"""A replay of a stored window, published under a replay root, watched on the live feed with `root=`.

Real broker, real database, the full API (replay routes + feeds): the engineer starts a replay with
`evaluate` and a feed on the replay root gets the replay's positions and events; other roles and
other roots are refused; the replay root's hub is closed when its last client leaves.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import httpx
import orjson
import pytest
import websockets

from devices.trace import DEFAULT_START

from .api_support import bearer, make_keys
from .replay_support import small_trace, store_trace

pytestmark = pytest.mark.integration
SECONDS = 40


def _frames(raw) -> list[dict]:
    body = orjson.loads(raw)
    return body if isinstance(body, list) else [body]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture
def stored(system, zones_geojson, tmp_path):
    """A small synthetic flight stored in the system's database (as the ingester would have)."""
    trace = small_trace(tmp_path / "w.slrec.gz", zones_geojson, drones=6, sensors=1, seconds=SECONDS,
                        root=system.mqtt_root)
    assert store_trace(system, trace) > 0
    return system


def _live_hubs(api) -> dict:
    """The replay roots' hubs of the API's feeds (api.feeds.RootHubs, kept on the live hub)."""
    return api.app.state.ctx.hub.root_hubs.hubs


def test_replay_of_a_stored_window_on_the_live_feed(stored, api):
    system = stored
    keys = make_keys(system.database_url)
    prefix = f"replay/{uuid.uuid4().hex[:8]}"
    replay_root = f"{prefix}/{system.mqtt_root}"
    ws_url = api.url.replace("http", "ws") + f"/v1/live?root={replay_root}&access_token={keys.engineer}"

    async def watch() -> tuple[set[str], list[dict], str]:
        positions: set[str] = set()
        events: list[dict] = []
        async with websockets.connect(ws_url) as ws:
            await asyncio.sleep(1.5)  # the replay root's hub subscribes (events are not retained)
            r = await asyncio.to_thread(
                httpx.post, api.url + "/v1/replays", headers=bearer(keys.engineer), timeout=30,
                json={"start": _iso(DEFAULT_START - 1), "end": _iso(DEFAULT_START + SECONDS + 1), "rate": 8,
                      "evaluate": True, "prefix": prefix})
            assert r.status_code == 201, r.text
            assert r.json()["root"] == replay_root
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (len(positions) >= 3 and events):
                try:
                    raw = await asyncio.wait_for(ws.recv(), 5)
                except TimeoutError:
                    continue
                for m in _frames(raw):
                    if m["type"] == "position":
                        positions.add(m["uav_id"])
                    elif m["type"] == "event":
                        events.append(m)
            return positions, events, r.json()["id"]

    positions, events, rid = asyncio.run(watch())
    assert len(positions) >= 3, f"replay positions on the feed: {positions}"
    assert events and all(e.get("kind") for e in events)
    httpx.delete(api.url + f"/v1/replays/{rid}", headers=bearer(keys.engineer), timeout=30)
    deadline = time.monotonic() + 15
    while replay_root in _live_hubs(api) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert replay_root not in _live_hubs(api), "the replay root's hub outlived its last client"


def test_replay_roots_are_for_engineers_and_under_replay(system, api):
    keys = make_keys(system.database_url)
    base = api.url.replace("http", "ws") + "/v1/live"

    async def close_code(query: str) -> tuple[int, str]:
        async with websockets.connect(base + "?" + query) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed:
                pass
            return ws.close_code, ws.close_reason

    code, reason = asyncio.run(close_code(f"root=replay/x/{system.mqtt_root}&access_token={keys.viewer}"))
    assert code == 4403 and "engineer" in reason
    code, reason = asyncio.run(close_code(f"root=elsewhere/v1&access_token={keys.admin}"))
    assert code == 1008 and "replay/" in reason
    code, _ = asyncio.run(close_code(f"root=replay/%23&access_token={keys.admin}"))
    assert code == 1008  # no wildcards
    sse = api.url + "/v1/live/sse"
    r = httpx.get(sse, params={"root": "replay/x/v1", "access_token": keys.operator}, timeout=10)
    assert r.status_code == 403
    r = httpx.get(sse, params={"root": "skylane", "access_token": keys.admin}, timeout=10)
    assert r.status_code == 422 and "replay/" in r.text

    async def sse_replay_ok() -> int:
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream("GET", sse, params={"root": "replay/y/v1", "access_token": keys.engineer}) as resp:
                return resp.status_code

    assert asyncio.run(sse_replay_ok()) == 200


def test_replay_hubs_are_bounded_and_closed_with_their_last_client(system):
    from .feeds_support import FeedServer
    keys = make_keys(system.database_url)
    feed = FeedServer(system.database_url, system.service_url("api"), system.mqtt_root, max_replay_hubs=1)
    hubs = feed.hub.root_hubs.hubs
    base = feed.ws_url + f"/v1/live?access_token={keys.admin}&root="

    async def scenario() -> tuple[int, str]:
        async with websockets.connect(base + "replay/a/v1"), websockets.connect(base + "replay/a/v1"):
            for _ in range(200):  # the server authenticates, then subscribes
                if sum(len(h.subscribers) for h in hubs.values()) == 2:
                    break
                await asyncio.sleep(0.05)
            assert list(hubs) == ["replay/a/v1"] and len(hubs["replay/a/v1"].subscribers) == 2  # one hub
            async with websockets.connect(base + "replay/b/v1") as second:
                try:
                    await asyncio.wait_for(second.recv(), 10)
                except websockets.ConnectionClosed:
                    pass
                refused = (second.close_code, second.close_reason)
            r = await asyncio.to_thread(httpx.get, feed.url + "/v1/live/sse", timeout=10,
                                        params={"root": "replay/b/v1", "access_token": keys.admin})
            assert r.status_code == 503
        return refused

    try:
        code, reason = asyncio.run(scenario())
        assert code == 1013 and "replay feeds" in reason
        deadline = time.monotonic() + 10
        while hubs and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not hubs, "the replay hub outlived its last client"
    finally:
        feed.close()
