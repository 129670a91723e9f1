"""The WebDAV export's pure parts: raw request paths to tree parts and back to hrefs,
single byte ranges and entity-tag conditions, PROPFIND bodies, and Basic taken only over
HTTPS or from loopback."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from photonic import errors
from photonic.server.catalog import SqliteCatalog
from photonic.web import access
from photonic.web.credentials import TokenBook, create_token
from photonic.web.dav import props, ranges
from photonic.web.dav.gate import DavGate
from photonic.web.dav.paths import href, tree_parts


@pytest.mark.parametrize(("raw", "parts"), [
    ("/dav", ()), ("/dav/", ()), ("/dav/laptop", ("laptop",)),
    ("/dav/laptop/photos/", ("laptop", "photos")),
    ("/dav/laptop/photos/a%20b.jpg?x=1", ("laptop", "photos", "a b.jpg")),
    ("/dav/l/p/%C3%89t%C3%A9/100%25.jpg", ("l", "p", "Été", "100%.jpg")),
    ("/dav/l/p/a+b.jpg", ("l", "p", "a+b.jpg")),
])
def test_raw_paths_become_tree_parts(raw: str, parts: tuple[str, ...]) -> None:
    assert tree_parts(raw) == parts


@pytest.mark.parametrize("raw", [
    "/dav/a/../b", "/dav/a/%2E%2E/b", "/dav/a/./b", "/dav/a//b", "/dav/a%2fb",
    "/dav/a%5Cb", "/dav/a%00b", "/dav/%ff", "/dav/a\\b", "/davx/a", "/api/v1/agents"])
def test_traversal_and_odd_names_are_invalid(raw: str) -> None:
    with pytest.raises(errors.InvalidInput):
        tree_parts(raw)


def test_hrefs_round_trip_and_mark_folders() -> None:
    """Every name is percent-encoded on its own (a '/' or '%' in a name stays one name)."""
    parts = ("l", "p", "Été", "100% a?b#c.jpg")
    assert href(parts, folder=False) == "/dav/l/p/%C3%89t%C3%A9/100%25%20a%3Fb%23c.jpg"
    assert tree_parts(href(parts, folder=False)) == parts
    assert href(("l", "p"), folder=True) == "/dav/l/p/"
    assert href((), folder=True) == "/dav/"


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 10, None), ("bytes=0-3", 10, (0, 4)), ("bytes=5-", 10, (5, 10)),
    ("bytes=-3", 10, (7, 10)), ("bytes=-30", 10, (0, 10)), ("bytes=8-100", 10, (8, 10)),
    ("bytes=0-1,4-5", 10, None), ("items=0-1", 10, None), ("bytes=5-2", 10, None),
    ("bytes=x-2", 10, None), ("bytes=", 10, None), ("BYTES = 1-1", 10, (1, 2)),
])
def test_byte_ranges(header: str | None, size: int, expected: tuple[int, int] | None
                     ) -> None:
    """One range is served; several, another unit or a malformed one mean the whole file."""
    got = ranges.byte_range(header, size)
    assert (None if got is None else (got.start, got.end)) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10),
                                             ("bytes=0-", 0), ("bytes=-5", 0)])
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(ranges.RangeNotSatisfiable):
        ranges.byte_range(header, size)


def test_entity_tag_conditions() -> None:
    tag = '"abc"'
    assert ranges.none_match('"x", W/"abc"', tag) and ranges.none_match("*", tag)
    assert not ranges.none_match('"x"', tag) and not ranges.none_match(None, tag)
    assert ranges.match_fails('"x"', tag) and not ranges.match_fails('"abc"', tag)
    assert not ranges.match_fails(None, tag) and not ranges.match_fails("*", tag)
    assert ranges.range_applies(None, tag) and ranges.range_applies('"abc"', tag)
    assert not ranges.range_applies('"x"', tag)


@pytest.mark.parametrize(("body", "want", "names"), [
    (b"", props.Want.ALL, ()),
    (b'<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>', props.Want.ALL, ()),
    (b'<propfind xmlns="DAV:"><propname/></propfind>', props.Want.NAMES, ()),
    (b'<propfind xmlns="DAV:"><prop><getetag/><x xmlns="urn:y"/></prop></propfind>',
     props.Want.PROPS, ("{DAV:}getetag", "{urn:y}x")),
])
def test_propfind_bodies(body: bytes, want: props.Want, names: tuple[str, ...]) -> None:
    assert props.parse_propfind(body) == props.PropRequest(want, names)


@pytest.mark.parametrize("body", [
    b"<propfind", b"<propfind/>", b'<propfind xmlns="DAV:"/>',
    b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaa">]><propfind xmlns="DAV:">'
    b"<prop>&a;</prop></propfind>",
])
def test_bad_propfind_bodies(body: bytes) -> None:
    with pytest.raises(errors.InvalidInput):
        props.parse_propfind(body)


@pytest.mark.parametrize(("peer", "secure", "status"), [
    ("192.0.2.7", False, 403), ("127.0.0.1", False, 401), ("192.0.2.7", True, 401)])
def test_basic_is_taken_only_over_https_or_from_loopback(peer: str, secure: bool,
                                                         status: int, tmp_path: Path) -> None:
    """Basic from a remote peer over plain HTTP is refused before the token is looked at
    (403); from loopback, or over HTTPS, a wrong token is a 401 challenge."""
    audited: list[tuple[str, ...]] = []

    async def audit(*row: str) -> None:
        audited.append(row)

    async def scenario() -> web.StreamResponse:
        app = web.Application()
        catalog = SqliteCatalog(tmp_path / "catalog.db")
        create_token(catalog, "ops")
        app[access.BOOK] = TokenBook(catalog)
        transport = mock.Mock()  # aiohttp's transport: only its peer address is read
        transport.get_extra_info.side_effect = lambda key, default=None: {
            "peername": (peer, 5000)}.get(key, default)
        credential = base64.b64encode(b"finder:wrong").decode()
        request = make_mocked_request(
            "GET", "/dav/", app=app, transport=transport,
            sslcontext=ssl.create_default_context() if secure else None,
            headers={"Authorization": f"Basic {credential}"})
        try:
            answer = await DavGate(audit).admit(request)
        finally:
            catalog.close()
        assert not isinstance(answer, str)
        return answer
    assert asyncio.run(scenario()).status == status
    assert [row[1:4] for row in audited] == [("webdav", "GET /dav/", "refused")]
