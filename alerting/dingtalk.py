"""DingTalk (钉钉) custom group robot: a markdown message POSTed to the robot's signed address.

Documented at https://open.dingtalk.com/document/robots/custom-robot-access (also
https://open.dingtalk.com/document/group/custom-robot-access): POST
`{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}` to
`https://oapi.dingtalk.com/robot/send?access_token=TOKEN`; answer `{"errcode": 0, "errmsg": "ok"}`; at most
20 messages a minute per robot. Its security setting 加签: `sign` = urlencode(base64(HMAC-SHA256(key=secret,
f"{timestamp}\\n{secret}"))) with `timestamp` in milliseconds, within an hour of DingTalk's clock, both appended
to the address as `&timestamp=...&sign=...`. A robot secured by keywords instead needs "Skylane" as one (every
title carries it).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote_plus

from i18n import Msg

from . import render
from .channel import Message, Result
from .robots import RobotChannel, post_to_robot

RATE_LIMITED = frozenset({130101, 410100})  # "send too fast" answers


def sign(secret: str, timestamp_ms: int) -> str:
    """The `sign` parameter of DingTalk's 加签 security setting (already URL-encoded)."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(mac))


def signed_url(target: str, secret: str | None, timestamp_ms: int | None = None) -> str:
    if not secret:
        return target
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return f"{target}{'&' if '?' in target else '?'}timestamp={ts}&sign={sign(secret, ts)}"


class DingTalkChannel(RobotChannel):
    name = "dingtalk"
    credential = "access_token"

    def no_credential(self) -> str:
        return Msg("alerting.dingtalk.no_token")

    def send(self, message: Message) -> Result:
        payload = {"msgtype": "markdown", "markdown": {"title": render.title(message), "text": render.markdown(message)}}
        sub = message.subscription
        return post_to_robot(signed_url(sub.target, sub.secret), payload, self.timeout_s, RATE_LIMITED)
