"""`skylane alerts`: the alert delivery worker (outbox -> webhook, WeCom, DingTalk, email; docs/alerts.md).

Needs only the database: ingest writes the outbox in the same transaction as the events. Several workers may
run at once (they skip each other's rows). Metrics on SKYLANE_ALERTS_METRICS_PORT (9110).
"""
from __future__ import annotations

import logging

from ..settings import Settings
from . import stop_on_signals

log = logging.getLogger("skylane")


def worker_config(settings: Settings, **overrides):
    """The worker's configuration from the settings (`overrides`: WorkerConfig fields, for tests)."""
    from alerting.mail import SmtpConfig
    from alerting.worker import WorkerConfig
    smtp = SmtpConfig(settings.smtp_host, settings.smtp_port, settings.smtp_username, settings.smtp_password,
                      settings.smtp_starttls, settings.smtp_from)
    fields = dict(poll_s=settings.alerts_poll_s, lease_s=settings.alerts_lease_s,
                  retry_base_s=settings.alerts_retry_base_s, retry_cap_s=settings.alerts_retry_cap_s,
                  give_up_s=settings.alerts_give_up_s, digest_after=settings.alerts_digest_after, smtp=smtp)
    return WorkerConfig(**{**fields, **overrides})


def make_worker(settings: Settings, **overrides):
    from alerting.worker import AlertWorker
    return AlertWorker(settings.database_url, worker_config(settings, **overrides))


def cmd_alerts(args, settings: Settings) -> int:
    from prometheus_client import start_http_server

    from ..wiring import prepare_database
    prepare_database(settings)
    if settings.alerts_metrics_port:
        start_http_server(settings.alerts_metrics_port, addr=settings.ingest_metrics_host)
        log.info("alert metrics on http://%s:%d/metrics", settings.ingest_metrics_host, settings.alerts_metrics_port)
    make_worker(settings).run(stop_on_signals())
    return 0


def register(sub) -> None:
    s = sub.add_parser("alerts", help="deliver alerts: webhook, WeCom and DingTalk robots, email (docs/alerts.md)")
    s.set_defaults(func=cmd_alerts)
