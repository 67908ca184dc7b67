"""Which parser reads a route file: by the format asked for, else by its first bytes."""
from __future__ import annotations

from .geojson_route import read_geojson
from .kml import read_kml
from .model import FORMATS, MAX_FILE_BYTES, RouteFile, RouteFileError
from .safety import Archive, descendants, parse_xml
from .wpl import is_wpl, read_wpl
from .wpml import is_wpml, read_wpml

BOM = b"\xef\xbb\xbf"


def detect(data: bytes) -> str | None:
    """The format of a route file from its first bytes (None: not one Skylane reads)."""
    head = data[:64].lstrip()
    if head.startswith(BOM):
        head = head[len(BOM):].lstrip()
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return "kmz"
    if is_wpl(head):
        return "wpl"
    if head[:1] in (b"{", b"["):
        return "geojson"
    if head[:1] == b"<" or b"<?xml" in data[:1024] or b"<kml" in data[:1024]:
        return "kml"  # (text before the declaration is refused by the XML parser, with its reason)
    return None


def _xml_route(data: bytes, name: str) -> RouteFile:
    """A KML document: a DJI WPML file (waylines.wpml when it has execute heights, else template.kml) or a
    plain KML route."""
    root = parse_xml(data, name)
    if is_wpml(root):
        executes = bool(descendants(root, "executeHeightMode") or descendants(root, "executeHeight"))
        return read_wpml(data if executes else None, None if executes else data, (name, name))
    return read_kml(root, name)


def _kmz(data: bytes) -> RouteFile:
    archive = Archive(data)
    waylines, template = archive.find("waylines.wpml"), archive.find("template.kml")
    if waylines or template:
        return read_wpml(archive.read(waylines) if waylines else None, archive.read(template) if template else None,
                         (waylines or "wpmz/waylines.wpml", template or "wpmz/template.kml"))
    kmls = sorted((n for n in archive.names() if n.lower().endswith(".kml")),
                  key=lambda n: (n.lower() != "doc.kml", n))
    if not kmls:
        raise RouteFileError("zip_no_route")
    return _xml_route(archive.read(kmls[0]), kmls[0])


def parse_route_file(data: bytes, fmt: str | None = None, name: str = "route") -> RouteFile:
    """A route file's waypoints (see the package docstring); RouteFileError for anything refused."""
    if not data:
        raise RouteFileError("empty")
    if len(data) > MAX_FILE_BYTES:
        raise RouteFileError("too_large", limit=MAX_FILE_BYTES)
    if fmt is not None and fmt not in FORMATS:
        raise RouteFileError("unknown_format", fmt=fmt, formats=", ".join(FORMATS))
    fmt = fmt or detect(data)
    if fmt == "kmz":
        return _kmz(data)
    if fmt in ("kml", "wpml"):
        return _xml_route(data, name)
    if fmt == "geojson":
        return read_geojson(data, name)
    if fmt == "wpl":
        return read_wpl(data, name)
    raise RouteFileError("not_recognised")
