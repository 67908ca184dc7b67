"""Loading the gettext catalogues (Babel) and looking texts up: t(key, lang, **params)."""
from __future__ import annotations

import gettext
import io
import logging
import threading
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

log = logging.getLogger("skylane.i18n")
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "skylane"
LANGS = ("zh-CN", "en")
DEFAULT_LANG = "en"
_FOLDER = {"zh-CN": "zh_CN", "en": "en"}
_loaded: dict[str, gettext.GNUTranslations] = {}
_lock = threading.Lock()


def po_path(lang: str) -> Path:
    return LOCALE_DIR / _FOLDER[lang] / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalogue(lang: str):
    """The Babel Catalog of a language, as written in its .po file."""
    with po_path(lang).open("rb") as f:
        return read_po(f, locale=_FOLDER[lang], domain=DOMAIN)


def compile_mo(lang: str) -> bytes:
    """The language's .po compiled to .mo bytes with Babel (what `pybabel compile` writes)."""
    buf = io.BytesIO()
    write_mo(buf, read_catalogue(lang))
    return buf.getvalue()


def _translations(lang: str) -> gettext.GNUTranslations:
    found = _loaded.get(lang)
    if found is not None:
        return found
    with _lock:
        if lang not in _loaded:
            po = po_path(lang)
            mo = po.with_suffix(".mo")
            if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
                data = mo.read_bytes()
            else:  # no compiled catalogue (a fresh clone) or an older one: compile the .po now, in memory
                data = compile_mo(lang)
            _loaded[lang] = gettext.GNUTranslations(io.BytesIO(data))
        return _loaded[lang]


def normalize(lang: str | None) -> str:
    """One of LANGS for a language tag (`zh`, `zh_CN`, `zh-Hans-CN`, `en-US`, ...); DEFAULT_LANG otherwise."""
    tag = (lang or "").strip().replace("_", "-").lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return DEFAULT_LANG


def negotiate(accept_language: str | None) -> str:
    """The language to answer in for an HTTP Accept-Language header (RFC 9110 weights); DEFAULT_LANG when the
    caller names none of LANGS. Every Chinese tag is served zh-CN, the one Chinese catalogue."""
    best, best_q = None, 0.0
    for part in (accept_language or "")[:500].split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        tag = tag.strip().lower()
        if not tag or q <= 0:
            continue
        lang = DEFAULT_LANG if tag == "*" else (normalize(tag) if tag[:2] in ("zh", "en") else None)
        if lang is not None and q > best_q:
            best, best_q = lang, q
    return best or DEFAULT_LANG


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def t(key: str, lang: str | None = DEFAULT_LANG, /, **params) -> str:
    """The text of `key` in `lang` (any tag normalize() takes) with `params` filled in (str.format syntax).

    A key missing in `lang` falls back to English, then to the key itself; a placeholder without a parameter
    stays as written. Both are logged: the catalogue tests keep them from happening."""
    lang = normalize(lang)
    text = _translations(lang).gettext(key)
    if text == key and lang != "en":
        text = _translations("en").gettext(key)
    if text == key:
        log.warning("i18n: no text for key %r", key)
        return key
    try:
        return text.format_map(_Missing(params))
    except (IndexError, ValueError, AttributeError, TypeError) as exc:
        log.warning("i18n: key %r in %s does not format with %s: %s", key, lang, sorted(params), exc)
        return text


def texts(lang: str) -> dict[str, str]:
    """Every key of a language with its text (tests and tools)."""
    return {m.id: m.string for m in read_catalogue(normalize(lang)) if m.id}


def keys(lang: str) -> set[str]:
    return set(texts(lang))


def has(key: str) -> bool:
    """Whether the catalogue has `key` (in English, the language every key has)."""
    return _translations("en").gettext(key) != key


class Msg(str):
    """A catalogue text that is said again in the reader's language where it reaches them: `Msg(key, **params)`
    is the English text (a str, so code that logs or compares it works as before), `.render(lang)` the same
    in any language. The API raises its errors with one (api.localize renders the detail per request)."""

    key: str
    params: dict

    def __new__(cls, key: str, /, **params):
        self = super().__new__(cls, t(key, "en", **params))
        self.key, self.params = key, params
        return self

    def render(self, lang: str | None) -> str:
        """The text in `lang`; parameters that are Msg themselves are said in `lang` too."""
        return t(self.key, lang, **{k: v.render(lang) if isinstance(v, Msg) else v for k, v in self.params.items()})
