"""Receivers for the alert tests, each on a fixed local port so it can be killed and restarted: a signed-webhook
receiver, fake WeCom and DingTalk robots that check their documented bodies (and DingTalk's signature), and an
SMTP server (aiosmtpd). Also: synthetic events stored the way ingest stores them, and the worker in a thread."""
from __future__ import annotations

import base64
import email
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
import psycopg

from airspace.events import AirspaceEvent
from alerting import store
from alerting.webhook import verify
from ingest.pipeline import BatchOutput, EventRow, event_id
from storage.writes import write_batch

from .helpers import Running, free_port, wait_until


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> dict:
        return orjson.loads(self.body)


class HttpReceiver:
    """An HTTP server answering POSTs with `respond(request) -> (status, body, headers)`; keeps the requests it
    accepted (status 2xx) in `accepted` and every request in `seen`. `stop()` kills it (connections refused);
    `start()` brings it back on the same port."""

    def __init__(self, respond=None, port: int | None = None):
        self.port = port or free_port()
        self.respond = respond or (lambda req: (200, b"{}", {}))
        self.accepted: list[Request] = []
        self.seen: list[Request] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = Request(parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()},
                              body, time.time())
                status, answer, headers = receiver.respond(req)
                with receiver.lock:
                    receiver.seen.append(req)
                    if 200 <= status < 300:
                        receiver.accepted.append(req)
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):  # quiet
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def webhook_receiver(secret: str, port: int | None = None) -> HttpReceiver:
    """A receiver as docs/alerts.md tells one to write: the signature over timestamp.body, fresh timestamps."""
    def respond(req: Request):
        if not verify(secret, req.headers.get("x-skylane-timestamp"), req.body, req.headers.get("x-skylane-signature")):
            return 401, b'{"error": "bad signature or stale timestamp"}', {}
        return 200, b"{}", {}
    return HttpReceiver(respond, port)


def wecom_robot(key: str) -> HttpReceiver:
    """WeCom's group robot as documented: markdown content of at most 4096 bytes, errcode 0."""
    def respond(req: Request):
        doc = req.json()
        ok = (req.path == "/cgi-bin/webhook/send" and req.query.get("key") == [key] and set(doc) == {"msgtype", "markdown"}
              and doc["msgtype"] == "markdown" and set(doc["markdown"]) == {"content"}
              and isinstance(doc["markdown"]["content"], str) and 0 < len(doc["markdown"]["content"].encode()) <= 4096)
        if not ok:
            return 200, b'{"errcode": 40008, "errmsg": "invalid message type"}', {}
        return 200, b'{"errcode": 0, "errmsg": "ok"}', {}
    return HttpReceiver(respond)


def dingtalk_sign(secret: str, timestamp: str) -> str:
    """DingTalk's documented 加签, written out independently of alerting.dingtalk (the base64 before urlencode)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode("utf-8"), digestmod=hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def dingtalk_robot(token: str, secret: str) -> HttpReceiver:
    """DingTalk's custom robot: access_token, a timestamp within an hour and its sign, a markdown title and text."""
    def respond(req: Request):
        ts, sign = (req.query.get("timestamp") or [""])[0], (req.query.get("sign") or [""])[0]
        fresh = ts.isdigit() and abs(int(ts) / 1000 - time.time()) < 3600
        if req.query.get("access_token") != [token] or not fresh or not hmac.compare_digest(sign, dingtalk_sign(secret, ts)):
            return 200, b'{"errcode": 310000, "errmsg": "sign not match"}', {}
        doc = req.json()
        md = doc.get("markdown") or {}
        if doc.get("msgtype") != "markdown" or not isinstance(md.get("title"), str) or not isinstance(md.get("text"), str):
            return 200, b'{"errcode": 40035, "errmsg": "invalid parameter"}', {}
        return 200, b'{"errcode": 0, "errmsg": "ok"}', {}
    return HttpReceiver(respond)


class MailSink:
    """aiosmtpd on a fixed port: every message it accepted, parsed; stop/start like the HTTP receivers."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.messages: list[email.message.Message] = []
        self.controller = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> MailSink:
        from aiosmtpd.controller import Controller
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# ----------------------------------------------------------------------------------------------- events

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=timezone.utc)


def event(kind: str, uav: str, zone: str | None, i: int) -> EventRow:
    """One event as the monitor makes it (deterministic id), `i` seconds after T0."""
    ev = AirspaceEvent(kind, uav, zone, T0 + timedelta(seconds=i),
                       {"lat": 31.044, "lon": 121.4885, "alt_amsl": 54.0, "zone_name": "bridge"})
    return EventRow(event_id(ev), ev)


def violations(n: int, start: int = 0, uav: str = "FLOOD", zone: str = "R-BR-MP") -> list[EventRow]:
    """`n` distinct no-fly violations of seven drones."""
    return [event("no_fly_violation", f"{uav}{i % 7}", zone, i) for i in range(start, start + n)]


def store_events(database_url: str, rows: list[EventRow]) -> None:
    """Store events the way ingest does: write_batch, one transaction (events and their outbox rows)."""
    with psycopg.connect(database_url) as conn:
        write_batch(conn, BatchOutput(events=list(rows)))


def subscribe(database_url: str, **fields) -> str:
    with psycopg.connect(database_url) as conn:
        return store.create_subscription(conn, **{"name": "test", "secret": None, **fields})["id"]


def outbox(database_url: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT subscription_id::text, event_id::text, attempts, delivered_at IS NOT NULL, "
                            "failed_at IS NOT NULL, last_error FROM alert_outbox ORDER BY created").fetchall()


def pending(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return store.backlog(conn)


@dataclass
class WorkerThread:
    """An AlertWorker (as `skylane alerts` makes it, with test timings) running in a thread."""

    settings: object
    overrides: dict = field(default_factory=dict)
    runner: Running | None = None

    def start(self) -> WorkerThread:
        from skylane.commands.alerts import make_worker
        options = {"poll_s": 0.1, "retry_base_s": 0.2, "retry_cap_s": 1.0, "lease_s": 5.0, **self.overrides}
        worker = make_worker(self.settings, **options)
        self.runner = Running(worker.run)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.close(30)
            self.runner = None


def delivered_ids(requests: list[Request]) -> list[str]:
    """Every event id a webhook receiver got (singles and the events inside digests), with repetitions."""
    out = []
    for req in requests:
        body = req.json()
        assert req.headers["x-skylane-event-id"] == body["id"]
        if body["type"] == "event":
            assert body["id"] == body["event"]["id"]
            out.append(body["event"]["id"])
        else:
            assert int(req.headers["x-skylane-digest"]) == body["count"] == len(body["events"])
            out += [e["id"] for e in body["events"]]
    return out


def wait_delivered(database_url: str, timeout: float) -> None:
    wait_until(lambda: pending(database_url) == 0, timeout, "the outbox did not drain", interval=0.2)


def deliver_all(system, timeout: float, *receivers) -> None:
    """Run an alert worker until the outbox has drained, then stop it and the receivers."""
    worker = WorkerThread(system).start()
    try:
        wait_delivered(system.database_url, timeout)
    finally:
        worker.stop()
        for rx in receivers:
            rx.stop()


def call(api, method: str, path: str, key: str | None, body=None):
    """A request to an ApiServer with a key (None: without)."""
    import httpx
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, api.url + path, headers=headers, json=body, timeout=30)
