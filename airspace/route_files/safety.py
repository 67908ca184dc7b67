"""Opening untrusted archives and XML: bounded, no external anything.

A KMZ is a zip: at most MAX_ENTRIES entries are listed, only the members a parser asks for are read, each
through a bounded reader (the sizes a zip header declares are not trusted: a member that inflates past
MAX_MEMBER_BYTES, or members past MAX_TOTAL_BYTES together, is refused), encrypted members are refused.
XML is parsed by lxml with entity resolution, DTD loading and network access off, and any document type
declaration or entity declaration is refused before parsing (KML and WPML never need one), so neither
external entities nor entity expansion ("billion laughs") can happen.
"""
from __future__ import annotations

import io
import re
import zipfile

from lxml import etree

from .model import RouteFileError

MAX_ENTRIES = 256
MAX_MEMBER_BYTES = 8 << 20
MAX_TOTAL_BYTES = 16 << 20
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_comments=True, remove_pis=True)


class Archive:
    """A zip archive's member names, and members read within the caps."""

    def __init__(self, data: bytes):
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
            raise RouteFileError("zip_bad", detail=str(exc)[:200]) from None
        if len(infos) > MAX_ENTRIES:
            raise RouteFileError("zip_too_many", limit=MAX_ENTRIES)
        self.infos = {i.filename: i for i in infos if not i.is_dir()}
        self.read_bytes = 0

    def names(self) -> list[str]:
        return list(self.infos)

    def find(self, basename: str, folders: tuple[str, ...] = ("wpmz/", "")) -> str | None:
        """The member `basename` under the first of `folders` that has it (DJI puts WPML files under wpmz/;
        some KMZs have them at the root), case-insensitively."""
        lower = {n.lower(): n for n in self.infos}
        for folder in folders:
            hit = lower.get(f"{folder}{basename}".lower())
            if hit is not None:
                return hit
        return None

    def read(self, name: str) -> bytes:
        info = self.infos[name]
        if info.flag_bits & 0x1:
            raise RouteFileError("zip_encrypted", file=name)
        limit = min(MAX_MEMBER_BYTES, MAX_TOTAL_BYTES - self.read_bytes)
        out = bytearray()
        try:
            with self.zip.open(info) as f:
                while chunk := f.read(65536):
                    out += chunk
                    if len(out) > limit:
                        raise RouteFileError("zip_too_big", file=name, limit=limit)
        except RouteFileError:
            raise
        except (zipfile.BadZipFile, RuntimeError, ValueError, EOFError, OSError, NotImplementedError) as exc:
            raise RouteFileError("zip_bad", detail=f"{name}: {str(exc)[:200]}") from None
        self.read_bytes += len(out)
        return bytes(out)


def parse_xml(data: bytes, name: str) -> etree._Element:
    """The root element of an XML document, refusing DTDs and entities (RouteFileError)."""
    if _DTD.search(data):
        raise RouteFileError("xml_doctype", file=name)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise RouteFileError("xml_bad", file=name, detail=str(exc)[:200]) from None
    if root is None:
        raise RouteFileError("xml_bad", file=name, detail="empty document")
    return root


def local(el) -> str:
    """An element's name without its namespace ('' for comments and the like)."""
    tag = el.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def kids(el, name: str) -> list:
    return [c for c in el if local(c) == name]


def kid(el, name: str):
    for c in el:
        if local(c) == name:
            return c
    return None


def text(el, name: str) -> str | None:
    """The stripped text of the first child `name` (any namespace), None when absent or empty."""
    c = kid(el, name) if el is not None else None
    value = (c.text or "").strip() if c is not None else ""
    return value or None


def descendants(el, name: str) -> list:
    return [c for c in el.iter() if local(c) == name]
