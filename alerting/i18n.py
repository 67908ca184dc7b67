"""User-facing text through one function, `_t(key, **kw)`, over one dict of messages per module.

The strings are plain English for now; the message catalogue (gettext/Babel, zh-CN and en) replaces
`catalogue` when it lands, and each module's dict moves into it unchanged (the keys stay).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping


def catalogue(messages: Mapping[str, str]) -> Callable[..., str]:
    """The `_t(key, **kw)` of a module whose messages are `messages` (str.format placeholders)."""
    def _t(key: str, **kw) -> str:
        return messages[key].format(**kw)
    return _t
