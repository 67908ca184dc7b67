"""What the two group robots share: an address carrying its credential, at most 20 messages a minute, and a
JSON POST whose 200 answer carries `errcode` (0: sent)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import orjson

from i18n import Msg

from .channel import OK, Channel, HttpAnswer, Result, check_http_url, post_json


def post_to_robot(url: str, payload: dict, timeout_s: float, rate_limited: frozenset[int]) -> Result:
    """POST to a robot; its errcode decides: 0 delivered, a rate-limit code retry, any other failed."""
    answer = post_json(url, orjson.dumps(payload), {}, timeout_s)
    if not isinstance(answer, HttpAnswer):
        return answer
    try:
        doc = orjson.loads(answer.body)
        code = int(doc.get("errcode", -1))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return Result.retry(Msg("alerting.robots.no_json", detail=answer.body[:100].decode("utf-8", "replace")))
    if code == 0:
        return OK
    error = Msg("alerting.robots.robot_error", code=code, message=str(doc.get("errmsg", ""))[:200])
    return Result.retry(error) if code in rate_limited else Result.failed(error)


def clip_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 without splitting a character."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes - 3].decode("utf-8", "ignore") + "..."


class RobotChannel(Channel):
    rate_per_min = 20.0  # both robots' documented limit
    credential = ""  # the query parameter the robot's address carries its credential in

    def __init__(self, timeout_s: float = 10.0):
        self.timeout_s = timeout_s

    def check_target(self, target: str, secret: str | None) -> None:
        check_http_url(target)
        if not parse_qs(urlsplit(target).query).get(self.credential):
            raise ValueError(self.no_credential())

    def no_credential(self) -> str:
        """What to say when the address lacks its credential (said when raised: the catalogue picks the text)."""
        raise NotImplementedError
