"""WeCom (企业微信) group robot: a markdown message POSTed to the robot's webhook address.

Documented at https://developer.work.weixin.qq.com/document/path/91770 (群机器人配置说明): POST
`{"msgtype": "markdown", "markdown": {"content": ...}}` (UTF-8, content at most 4096 bytes) to
`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY`; the answer is `{"errcode": 0, "errmsg": "ok"}`;
at most 20 messages a minute per robot. The key in the address is the robot's only credential: the API
never shows it (docs/alerts.md).
"""
from __future__ import annotations

from i18n import Msg

from . import render
from .channel import Message, Result
from .robots import RobotChannel, clip_utf8, post_to_robot

MAX_CONTENT_BYTES = 4096
RATE_LIMITED = frozenset({45009})  # "api freq out of limit"


class WeComChannel(RobotChannel):
    name = "wecom"
    credential = "key"

    def no_credential(self) -> str:
        return Msg("alerting.wecom.no_key")

    def check_target(self, target: str, secret: str | None) -> None:
        super().check_target(target, secret)
        if secret:
            raise ValueError(Msg("alerting.wecom.no_secret"))

    def send(self, message: Message) -> Result:
        payload = {"msgtype": "markdown",
                   "markdown": {"content": clip_utf8(render.markdown(message), MAX_CONTENT_BYTES)}}
        return post_to_robot(message.subscription.target, payload, self.timeout_s, RATE_LIMITED)
