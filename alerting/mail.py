"""Email over SMTP (smtplib), optionally upgraded with STARTTLS and authenticated.

The target is one or more addresses (comma-separated). The Message-ID comes from the event id (or the
digest's), so a re-sent alert is the same message to mail clients and archives; `X-Skylane-Event-Id` carries
the id too. A refused recipient or message (5xx) fails the delivery; a 4xx answer, a lost connection, or an
SMTP server that is not configured yet is retried. The SMTP password never appears in errors or logs.
"""
from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate

from i18n import Msg

from . import render
from .channel import OK, Channel, Message, Result

_ADDRESS = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+\.[^@\s,<>]+$")
MESSAGE_ID_DOMAIN = "alerts.skylane"


@dataclass(frozen=True)
class SmtpConfig:
    host: str | None = None
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    sender: str = "skylane@localhost"

    def __repr__(self) -> str:  # never the password
        return f"SmtpConfig(host={self.host!r}, port={self.port}, username={self.username!r}, starttls={self.starttls})"


def recipients(target: str) -> list[str]:
    return [a.strip() for a in target.split(",") if a.strip()]


def message_id(alert_id: str) -> str:
    return f"<{alert_id}@{MESSAGE_ID_DOMAIN}>"


class MailChannel(Channel):
    name = "email"
    rate_per_min = 30.0

    def __init__(self, smtp: SmtpConfig = SmtpConfig(), timeout_s: float = 10.0):
        self.smtp, self.timeout_s = smtp, timeout_s

    def check_target(self, target: str, secret: str | None) -> None:
        addresses = recipients(target)
        if not addresses or len(addresses) > 50 or not all(_ADDRESS.match(a) for a in addresses):
            raise ValueError(Msg("alerting.mail.bad_address"))
        if secret:
            raise ValueError(Msg("alerting.mail.no_secret"))

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = render.title(message)
        mail["From"] = self.smtp.sender
        mail["To"] = ", ".join(recipients(message.subscription.target))
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = message_id(message.id)
        mail["X-Skylane-Event-Id"] = message.id
        if message.digest:
            mail["X-Skylane-Digest"] = str(len(message.alerts))
        mail.set_content(render.plain_text(message))
        return mail

    def send(self, message: Message) -> Result:
        cfg = self.smtp
        if not cfg.host:
            return Result.retry(Msg("alerting.mail.not_configured"))
        try:
            self.check_target(message.subscription.target, None)
        except ValueError as exc:
            return Result.failed(str(exc))
        mail = self.compose(message)
        sending = False  # from DATA on, a lost connection may have delivered the message all the same
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout_s) as smtp:
                if cfg.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username:
                    smtp.login(cfg.username, cfg.password or "")
                sending = True
                smtp.send_message(mail)
            return OK
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            reason = "; ".join(f"{addr}: {code}" for addr, (code, _) in exc.recipients.items())
            result = Result.retry if all(400 <= c < 500 for c in codes) else Result.failed
            return result(Msg("alerting.mail.refused", code=",".join(map(str, codes)), reason=reason))
        except smtplib.SMTPAuthenticationError as exc:  # our account: fixable by configuration, so retried
            return Result.retry(Msg("alerting.mail.refused", code=exc.smtp_code,
                                    reason=Msg("alerting.mail.auth_failed")))
        except smtplib.SMTPResponseException as exc:
            reason = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            result = Result.failed if 500 <= exc.smtp_code < 600 else Result.retry
            return result(Msg("alerting.mail.refused", code=exc.smtp_code, reason=" ".join(reason.split())[:200]))
        except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            return Result.retry(Msg("alerting.mail.unreachable", reason=reason), maybe_delivered=sending)
