"""The API in the caller's language (zh-CN or en, from `Accept-Language`; i18n).

Errors are raised with an `i18n.Msg` as their detail (English where it is logged) and said in the caller's
language by `localized_http_exception`; clearance reasons and suggestions get their `message` rendered from
their code and fields, events a `description` from their kind and detail (i18n.render). Zone names in Chinese
come from the zones' `name_zh` as this process last loaded them (`remember_zone_names`), so live feeds can
say them without a database round trip.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from i18n import Msg, negotiate, normalize
from i18n.render import event_description, reason_message, suggestion_message

__all__ = ["Lang", "Msg", "describe_events", "lang_of", "localize_clearance", "localized_http_exception",
           "remember_zone_names"]
_zone_names: dict[str, str] = {}


def lang_of(conn: HTTPConnection) -> str:
    """The language to answer in: `Accept-Language` (the dashboard sends its chosen one)."""
    return negotiate(conn.headers.get("accept-language"))


Lang = Annotated[str, Depends(lang_of)]


def detail_in(detail: Any, lang: str) -> Any:
    return detail.render(lang) if isinstance(detail, Msg) else detail


async def localized_http_exception(request: Request, exc: StarletteHTTPException):
    """FastAPI's handler, with a catalogue detail said in the caller's language."""
    if isinstance(exc.detail, Msg):
        return JSONResponse({"detail": exc.detail.render(lang_of(request))}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
    return await http_exception_handler(request, exc)


def remember_zone_names(geojson: Mapping) -> dict[str, str]:
    """Zone id -> name_zh of a zone FeatureCollection; kept as this process's latest (live feeds use it)."""
    names = {}
    for f in geojson.get("features") or []:
        p = f.get("properties") or {}
        zid = p.get("id", f.get("id"))
        if isinstance(p.get("name_zh"), str) and zid is not None:
            names[str(zid)] = p["name_zh"]
    _zone_names.clear()
    _zone_names.update(names)
    return names


def zone_names() -> Mapping[str, str]:
    return _zone_names


def localize_clearance(reasons: Iterable[dict], suggestions: Iterable[Any], lang: str) -> tuple[list, list]:
    """Reasons and suggestions with `message` in `lang` (the stored ones keep the core's English)."""
    lang = normalize(lang)
    out_r = [{**r, "message": reason_message(r, lang, _zone_names)} if isinstance(r, dict) else r for r in reasons]
    out_s = [{**s, "message": suggestion_message(s, lang)} if isinstance(s, dict) else s for s in suggestions]
    return out_r, out_s


def describe(event: Mapping, lang: str) -> dict:
    return {**event, "description": event_description(event, lang, _zone_names)}


def describe_events(events: Iterable[Mapping], lang: str) -> list[dict]:
    return [describe(e, lang) for e in events]
