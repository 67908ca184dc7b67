"""Skylane's message catalogue: every user-facing text of the server, in `zh-CN` and `en`.

    from i18n import t, negotiate
    t("api.clearance.not_yours", "zh-CN", uav_id="T1")   # -> "'T1' 不是您的无人机"
    negotiate("zh-CN,zh;q=0.9,en;q=0.8")                 # -> "zh-CN"

The texts live in gettext catalogues (`i18n/locale/<ll_CC>/LC_MESSAGES/skylane.po`, msgid = a dotted key,
msgstr = the text with `str.format` placeholders), read with Babel: a compiled `skylane.mo` beside the `.po` is
used when it is at least as new, otherwise the `.po` is compiled in memory at first use (so a fresh clone works
without a build step). Pure and deterministic: no I/O after the first load, no clock. docs/i18n.md tells how to
add a string; tests/test_i18n_catalogue.py fails when a key is missing in one language or the placeholders of
the two texts differ.
"""
from __future__ import annotations

from .catalogue import DEFAULT_LANG, DOMAIN, LANGS, LOCALE_DIR, Msg, has, keys, negotiate, normalize, t, texts

__all__ = ["DEFAULT_LANG", "DOMAIN", "LANGS", "LOCALE_DIR", "Msg", "has", "keys", "negotiate", "normalize", "t", "texts"]
