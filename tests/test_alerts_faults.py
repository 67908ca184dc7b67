"""Faults in the middle of a flood: the delivery worker (`skylane alerts`, a real process) is killed with SIGKILL
and started again, the webhook receiver and the SMTP server are killed and brought back, while events keep
being stored. Counted at the end: every event reached every receiver (nothing lost), and every event went out
under one id only (its own, or its digest's), however often it was retried."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest

from skylane.settings import REPO_ROOT

from .alerts_support import (MailSink, outbox, store_events, subscribe, violations, wait_delivered,
                             webhook_receiver)
from .helpers import ARTIFACTS, query, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SECRET = "flood-test-webhook-secret"
EVENTS, BATCH, EVERY_S = 400, 5, 0.06  # 400 events in 80 batches over about 5-8 s


def start_worker(settings, smtp_port: int, log) -> subprocess.Popen:
    env = {**os.environ, "SKYLANE_DATABASE_URL": settings.database_url, "SKYLANE_ALERTS_POLL_S": "0.1",
           "SKYLANE_ALERTS_RETRY_BASE_S": "0.2", "SKYLANE_ALERTS_RETRY_CAP_S": "1", "SKYLANE_ALERTS_LEASE_S": "3",
           "SKYLANE_ALERTS_METRICS_PORT": "0", "SKYLANE_ALERTS_DIGEST_AFTER": "3",
           "SKYLANE_SMTP_HOST": "127.0.0.1", "SKYLANE_SMTP_PORT": str(smtp_port),
           "SKYLANE_ZONE_FILE": str(settings.zone_file), "SKYLANE_STATE_DIR": str(settings.state_dir)}
    return subprocess.Popen([sys.executable, "-m", "skylane", "alerts"], env=env, cwd=REPO_ROOT, stdout=log,
                            stderr=subprocess.STDOUT)


def test_killing_the_worker_and_the_receivers_mid_flood_loses_nothing_and_changes_no_id(system, tmp_path):
    db = system.database_url
    hook = webhook_receiver(SECRET).start()
    mail = MailSink().start()
    hook_sub = subscribe(db, name="siem", channel="webhook", target=hook.url + "/in", secret=SECRET)
    mail_sub = subscribe(db, name="duty", channel="email", target="duty@minhang.test")
    events = violations(EVENTS)
    log = open(tmp_path / "alerts.log", "w")
    worker = start_worker(system, mail.port, log)
    stored = threading.Event()

    def flood():
        for i in range(0, EVENTS, BATCH):
            store_events(db, events[i:i + BATCH])
            time.sleep(EVERY_S)
        stored.set()
    threading.Thread(target=flood, daemon=True).start()
    kills = []
    try:
        wait_until(lambda: "alert delivery: polling" in (tmp_path / "alerts.log").read_text(), 60, "no worker")
        wait_until(lambda: hook.accepted, 30, "nothing delivered")
        worker.send_signal(signal.SIGKILL)  # Skylane's worker dies mid-delivery
        worker.wait(10)
        kills.append("worker")
        hook.stop()
        mail.stop()
        kills.append("receivers")
        time.sleep(0.5)
        worker = start_worker(system, mail.port, log)
        time.sleep(3.0)  # the worker retries against dead receivers meanwhile
        hook.start()
        mail.start()
        assert stored.wait(60), "the flood was not stored"
        time.sleep(1.0)
        worker.send_signal(signal.SIGKILL)  # and once more, with the receivers up
        worker.wait(10)
        worker = start_worker(system, mail.port, log)
        wait_delivered(db, 90)
    finally:
        worker.terminate()
        worker.wait(15)
        hook.stop()
        mail.stop()
        log.close()
    event_ids = {str(e.id) for e in events}
    rows = outbox(db)
    assert len(rows) == 2 * EVENTS and all(delivered for _s, _e, _a, delivered, _f, _x in rows)
    assert max(a for _s, _e, a, *_ in rows) >= 2  # the receivers' downtime was retried through

    # the webhook: each event arrived, always under the same id (its own, or its digest's)
    ids_of: dict[str, set[str]] = defaultdict(set)
    copies = 0
    for req in hook.accepted:
        body = req.json()
        members = [body["event"]] if body["type"] == "event" else body["events"]
        for ev in members:
            ids_of[ev["id"]].add(req.headers["x-skylane-event-id"])
            copies += 1
    assert set(ids_of) == event_ids, f"lost: {len(event_ids - set(ids_of))}"
    assert all(len(ids) == 1 for ids in ids_of.values()), [e for e, ids in ids_of.items() if len(ids) > 1]

    # email: every event's delivery id (its own, or its digest's) is a Message-ID the SMTP server took
    expected = {(d or e) for e, d in query(db, "SELECT event_id::text, digest_id::text FROM alert_outbox "
                                               "WHERE subscription_id = %s", mail_sub)}
    got = [m["X-Skylane-Event-Id"] for m in mail.messages]
    assert {m["Message-ID"] for m in mail.messages} == {f"<{i}@alerts.skylane>" for i in got}
    assert set(got) == expected, f"lost: {len(expected - set(got))}, unknown: {len(set(got) - expected)}"
    stats = {"events": EVENTS, "kills": kills, "webhook_requests": len(hook.accepted), "webhook_event_copies": copies,
             "webhook_duplicates": copies - EVENTS, "emails": len(got), "email_duplicates": len(got) - len(set(got)),
             "max_attempts": max(a for _s, _e, a, *_ in rows),
             "hook_digests": sum(1 for r in hook.accepted if r.json()["type"] == "digest"),
             "subscriptions": [hook_sub, mail_sub]}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "alerts_flood_faults.json").write_text(json.dumps(stats))
    print(stats)
