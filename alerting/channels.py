"""The channels, registered in one place: a subscription's `channel` names one of these."""
from __future__ import annotations

from i18n import Msg

from .channel import Channel
from .dingtalk import DingTalkChannel
from .mail import MailChannel, SmtpConfig
from .webhook import WebhookChannel
from .wecom import WeComChannel

NAMES = ("webhook", "wecom", "dingtalk", "email")


def make_channels(smtp: SmtpConfig = SmtpConfig(), timeout_s: float = 10.0) -> dict[str, Channel]:
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(timeout_s), "wecom": WeComChannel(timeout_s),
        "dingtalk": DingTalkChannel(timeout_s), "email": MailChannel(smtp, timeout_s)}
    assert tuple(channels) == NAMES
    return channels


def check_subscription(channel: str, target: str, secret: str | None) -> None:
    """ValueError naming what is wrong with a subscription's channel, target or secret."""
    channels = make_channels()
    if channel not in channels:
        raise ValueError(Msg("alerting.channels.unknown_channel", names=", ".join(NAMES)))
    channels[channel].check_target(target, secret)


def needs_secret(channel: str) -> bool:
    """Whether the API makes a secret when none is given (the webhook's HMAC key)."""
    return make_channels()[channel].needs_secret
