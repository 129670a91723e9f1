"""PROPFIND bodies in (allprop, propname, prop) and multistatus XML out (RFC 4918 9.1, 14),
with the properties a file client needs: displayname, resourcetype, getcontentlength,
getcontenttype, getlastmodified, creationdate and getetag (the content's SHA-256). A body
declaring a DTD is refused before anything in it is expanded."""

from __future__ import annotations

import mimetypes
import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from enum import StrEnum
from typing import NoReturn

from photonic import errors
from photonic.server.catalog_tree import TreeFile
from photonic.server.library_tree import TreeEntry
from photonic.web.dav.paths import href

DAV = "DAV:"
XML_TYPE = "application/xml"
ET.register_namespace("D", DAV)  # so every fragment spells the DAV namespace as D:
HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">\n'
TAIL = "</D:multistatus>\n"
LIVE = ("displayname", "resourcetype", "getcontentlength", "getcontenttype",
        "getlastmodified", "creationdate", "getetag")
"""The properties of every entry (a folder has only the first two)."""
_FOLDER_LIVE = frozenset({"displayname", "resourcetype"})
_OK = "HTTP/1.1 200 OK"
_MISSING = "HTTP/1.1 404 Not Found"


class Want(StrEnum):
    ALL = "allprop"
    NAMES = "propname"
    PROPS = "prop"


@dataclass(frozen=True)
class PropRequest:
    want: Want
    names: tuple[str, ...] = ()
    """Clark names ({namespace}local) asked for by a `prop` body."""


def _refuse_dtd(*_: object) -> NoReturn:
    raise errors.InvalidInput("a PROPFIND body may not declare a DTD")


def parse_propfind(body: bytes) -> PropRequest:
    """What a PROPFIND body asks for; an empty body is allprop. InvalidInput for anything
    that is not a DAV:propfind with one of allprop, propname or prop."""
    if not body.strip():
        return PropRequest(Want.ALL)
    scan = xml.parsers.expat.ParserCreate()  # sees a DOCTYPE before anything expands it
    scan.StartDoctypeDeclHandler = _refuse_dtd
    try:
        scan.Parse(body, True)
        root = ET.fromstring(body)
    except (xml.parsers.expat.ExpatError, ET.ParseError):
        raise errors.InvalidInput("the PROPFIND body is not well-formed XML") from None
    if root.tag != f"{{{DAV}}}propfind":
        raise errors.InvalidInput("a PROPFIND body is a DAV:propfind element")
    for child in root:
        if child.tag == f"{{{DAV}}}allprop":
            return PropRequest(Want.ALL)
        if child.tag == f"{{{DAV}}}propname":
            return PropRequest(Want.NAMES)
        if child.tag == f"{{{DAV}}}prop":
            return PropRequest(Want.PROPS, tuple(p.tag for p in child))
    raise errors.InvalidInput("a DAV:propfind holds allprop, propname or prop")


def _http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


def _iso_date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def content_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def modified_s(f: TreeFile) -> float:
    """A file's last-modified time: its mtime as its agent sent it, else when recorded."""
    return f.mtime_ns / 1e9 if f.mtime_ns > 0 else f.created_ms / 1000


def etag(f: TreeFile) -> str:
    return f'"{f.sha256}"'


def live_values(entry: TreeEntry) -> dict[str, str]:
    """Each live property of entry as text (resourcetype's value is filled in by _fill)."""
    values = {"displayname": entry.name, "resourcetype": ""}
    f = entry.file
    if f is not None:
        values.update(getcontentlength=str(f.size), getcontenttype=content_type(f.name),
                      getlastmodified=_http_date(modified_s(f)),
                      creationdate=_iso_date(f.created_ms), getetag=etag(f))
    return values


def _fill(prop: ET.Element, name: str, value: str, folder: bool) -> None:
    element = ET.SubElement(prop, f"{{{DAV}}}{name}")
    if name == "resourcetype":
        if folder:
            ET.SubElement(element, f"{{{DAV}}}collection")
    else:
        element.text = value


def _propstat(response: ET.Element, status: str) -> ET.Element:
    propstat = ET.SubElement(response, f"{{{DAV}}}propstat")
    prop = ET.SubElement(propstat, f"{{{DAV}}}prop")
    ET.SubElement(propstat, f"{{{DAV}}}status").text = status
    return prop


def response_xml(entry: TreeEntry, asked: PropRequest) -> str:
    """One DAV:response element for entry, as text to stream inside the multistatus."""
    response = ET.Element(f"{{{DAV}}}response")
    ET.SubElement(response, f"{{{DAV}}}href").text = href(entry.parts, entry.is_folder)
    values = live_values(entry)
    if asked.want is Want.NAMES:
        prop = _propstat(response, _OK)
        for name in values:
            ET.SubElement(prop, f"{{{DAV}}}{name}")
    elif asked.want is Want.ALL:
        prop = _propstat(response, _OK)
        for name, value in values.items():
            _fill(prop, name, value, entry.is_folder)
    else:
        _asked_props(response, entry, values, asked.names)
    return ET.tostring(response, encoding="unicode") + "\n"


def _asked_props(response: ET.Element, entry: TreeEntry, values: dict[str, str],
                 names: tuple[str, ...]) -> None:
    dav = f"{{{DAV}}}"
    found = [n.removeprefix(dav) for n in names
             if n.startswith(dav) and n.removeprefix(dav) in values]
    missing = [n for n in names if n.removeprefix(dav) not in found]
    if found:
        prop = _propstat(response, _OK)
        for name in found:
            _fill(prop, name, values[name], entry.is_folder)
    if missing:
        prop = _propstat(response, _MISSING)
        for clark in missing:
            ET.SubElement(prop, clark)


def finite_depth_error() -> str:
    """The body of a 403 refusing Depth: infinity (RFC 4918 9.1, precondition 16)."""
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n')
