"""/metrics is not public (attack: anyone who reaches the API reads its request counts, per-route latencies,
auth failures, feed clients and the database's event figures); /v1/health stays open but says only whether
things work, not what runs underneath."""
from __future__ import annotations

import secrets

import httpx
import pytest

from .api_support import bearer, keys  # noqa: F401  (fixture)
from .feeds_support import FeedServer, api_server

pytestmark = pytest.mark.integration


def test_metrics_need_an_engineer_key_or_the_scrape_token(system, keys):  # noqa: F811
    token = secrets.token_hex(32)
    server = api_server(system, metrics_token=token)
    try:
        url = server.url + "/metrics"
        anonymous = httpx.get(url, timeout=10)
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        assert "skylane_" not in anonymous.text
        for role, status in (("viewer", 403), ("operator", 403), ("engineer", 200), ("admin", 200),
                             ("revoked", 401)):
            r = httpx.get(url, headers=bearer(keys.for_role(role)), timeout=10)
            assert r.status_code == status, (role, r.text[:200])
        assert httpx.get(url, headers=bearer("x" * 64), timeout=10).status_code == 401
        assert httpx.get(url, headers=bearer(token[:-1] + "0"), timeout=10).status_code == 401
        scraped = httpx.get(url, headers=bearer(token), timeout=10)
        assert scraped.status_code == 200 and "skylane_api_requests_total" in scraped.text
        assert httpx.get(url, params={"access_token": token}, timeout=10).status_code == 401  # header only
    finally:
        server.close()


def test_health_is_open_and_tells_no_internals(api):
    r = httpx.get(api.url + "/v1/health", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok", "mqtt": "connected"}


def test_the_feed_only_app_guards_its_metrics_too(system, keys):  # noqa: F811
    feed = FeedServer(system.database_url, system.service_url("api"), system.mqtt_root)
    try:
        assert httpx.get(feed.url + "/metrics", timeout=10).status_code == 401
        assert httpx.get(feed.url + "/metrics", headers=bearer(keys.viewer), timeout=10).status_code == 403
        assert httpx.get(feed.url + "/metrics", headers=bearer(keys.engineer), timeout=10).status_code == 200
    finally:
        feed.close()
