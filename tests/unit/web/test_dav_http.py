"""The WebDAV export at the HTTP level, on a real loopback server over a real catalog, store,
library and media layer: PROPFIND's multistatus (parsed with xml.etree) for allprop, prop and
propname, Depth 0/1 and the refusal of infinity, a folder listed across several catalog
pages, GET and HEAD with Range and entity tags, and every refusal: no or a wrong credential
(401 with the Basic challenge), write methods (405, the library is append-only), traversal,
each audited."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.unit.web.dav_world import Client, DavWorld, basic, make_world, run

D = "{DAV:}"
PHOTO = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture
def world(tmp_path: Path) -> DavWorld:
    w = make_world(tmp_path)
    w.put("2024/a.jpg", PHOTO, mtime_ns=1_700_000_000 * 10**9)
    w.put("2024/a.jpg", PHOTO[::-1])  # a second version: the first becomes a.v1.jpg
    w.put("top.jpg", b"top")
    return w


def responses(body: bytes) -> dict[str, dict[str, ET.Element]]:
    """{href: {property tag: element}} of the 200 propstats of a multistatus."""
    root = ET.fromstring(body)
    assert root.tag == D + "multistatus"
    found: dict[str, dict[str, ET.Element]] = {}
    for r in root.findall(D + "response"):
        href = r.findtext(D + "href") or ""
        props: dict[str, ET.Element] = {}
        for ps in r.findall(D + "propstat"):
            if (ps.findtext(D + "status") or "").endswith(" 200 OK"):
                props.update({p.tag: p for p in ps.find(D + "prop") or []})
        found[href] = props
    return found


async def propfind(c: Client, path: str, depth: str = "1", body: bytes = b""
                   ) -> tuple[int, dict[str, dict[str, ET.Element]]]:
    status, _, raw = await c.call("PROPFIND", path, headers={"Depth": depth}, data=body)
    return status, responses(raw) if status == 207 else {}


def test_depth_1_lists_a_folder_with_every_version_and_its_properties(world: DavWorld
                                                                      ) -> None:
    """A folder lists its head and older version (named as on disk), each with its size,
    type, SHA-256 ETag and dates; subfolders are collections."""
    async def scenario(c: Client) -> None:
        status, found = await propfind(c, "/dav/laptop/photos/2024/")
        assert status == 207
        assert set(found) == {"/dav/laptop/photos/2024/", "/dav/laptop/photos/2024/a.jpg",
                              "/dav/laptop/photos/2024/a.v1.jpg"}
        old = found["/dav/laptop/photos/2024/a.v1.jpg"]
        assert old[D + "getcontentlength"].text == str(len(PHOTO))
        assert old[D + "getetag"].text == f'"{hashlib.sha256(PHOTO).hexdigest()}"'
        assert old[D + "getcontenttype"].text == "image/jpeg"
        assert old[D + "getlastmodified"].text == "Tue, 14 Nov 2023 22:13:20 GMT"
        assert old[D + "displayname"].text == "a.v1.jpg"
        assert old[D + "resourcetype"].find(D + "collection") is None
        assert old[D + "creationdate"].text.endswith("Z")  # type: ignore[union-attr]
        folder = found["/dav/laptop/photos/2024/"]
        assert folder[D + "resourcetype"].find(D + "collection") is not None
        _, top = await propfind(c, "/dav/laptop/photos")
        assert set(top) == {"/dav/laptop/photos/", "/dav/laptop/photos/2024/",
                            "/dav/laptop/photos/top.jpg"}
        _, root = await propfind(c, "/dav/")
        assert set(root) == {"/dav/", "/dav/laptop/"}
        _, agent = await propfind(c, "/dav")
        assert set(agent) == {"/dav/", "/dav/laptop/"}
    run(world, scenario)


def test_depth_0_answers_the_entry_alone_and_infinity_is_refused(world: DavWorld) -> None:
    """Depth 0 is the entry itself; Depth infinity, or no Depth (which means infinity), is
    403 with the propfind-finite-depth precondition, audited."""
    async def scenario(c: Client) -> None:
        status, found = await propfind(c, "/dav/laptop/photos/2024/", depth="0")
        assert status == 207 and set(found) == {"/dav/laptop/photos/2024/"}
        _, found = await propfind(c, "/dav/laptop/photos/top.jpg", depth="1")
        assert set(found) == {"/dav/laptop/photos/top.jpg"}
        for headers in ({"Depth": "infinity"}, {}):
            status, _, body = await c.call("PROPFIND", "/dav/laptop/", headers=headers)
            assert status == 403
            assert ET.fromstring(body).find(D + "propfind-finite-depth") is not None
        status, _, _ = await c.call("PROPFIND", "/dav/", headers={"Depth": "2"})
        assert status == 400
    run(world, scenario)
    assert ("web:ops", "webdav", "PROPFIND /dav/laptop/", "refused") in world.audit()


def test_prop_and_propname_bodies(world: DavWorld) -> None:
    """A prop body answers what was asked: known properties in a 200 propstat, unknown ones
    (any namespace) in a 404 propstat; propname lists names with empty values; a body with a
    DTD or that is not XML is 400."""
    ask = (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop>'
           b'<D:getetag/><D:getcontentlength/><Z:color/></D:prop></D:propfind>')
    async def scenario(c: Client) -> None:
        status, _, raw = await c.call("PROPFIND", "/dav/laptop/photos/top.jpg",
                                      headers={"Depth": "0"}, data=ask)
        assert status == 207
        [stat_ok, stat_missing] = ET.fromstring(raw).iter(D + "propstat")
        assert [p.tag for p in stat_ok.find(D + "prop") or []] == [
            D + "getetag", D + "getcontentlength"]
        assert [p.tag for p in stat_missing.find(D + "prop") or []] == ["{urn:z}color"]
        assert stat_missing.findtext(D + "status") == "HTTP/1.1 404 Not Found"
        names = b'<propfind xmlns="DAV:"><propname/></propfind>'
        _, found = await propfind(c, "/dav/laptop/photos/top.jpg", "0", names)
        props = found["/dav/laptop/photos/top.jpg"]
        assert D + "getetag" in props and not props[D + "getetag"].text
        allprop = b'<propfind xmlns="DAV:"><allprop/></propfind>'
        _, found = await propfind(c, "/dav/laptop/photos/top.jpg", "0", allprop)
        assert found["/dav/laptop/photos/top.jpg"][D + "getcontentlength"].text == "3"
        for bad in (b"<propfind", b'<!DOCTYPE x [<!ENTITY e "x">]><propfind xmlns="DAV:"/>',
                    b"<other/>"):
            status, _, _ = await c.call("PROPFIND", "/dav/", headers={"Depth": "0"}, data=bad)
            assert status == 400
    run(world, scenario)


def test_a_folder_larger_than_a_page_is_listed_whole(tmp_path: Path) -> None:
    """With three rows per catalog page, a folder of 4 subfolders and 7 paths (one with
    two versions) lists every entry once."""
    world = make_world(tmp_path)
    for i in range(4):
        world.put(f"big/sub{i}/x.jpg", b"x%d" % i)
    for i in range(7):
        world.put(f"big/p{i}.jpg", b"p%d" % i)
    world.put("big/p3.jpg", b"p3 again")

    async def scenario(c: Client) -> None:
        _, found = await propfind(c, "/dav/laptop/photos/big/")
        names = sorted(h.removeprefix("/dav/laptop/photos/big/") for h in found)
        assert names == sorted(["", *(f"sub{i}/" for i in range(4)),
                                *(f"p{i}.jpg" for i in range(7)), "p3.v1.jpg"])
    run(world, scenario, page_size=3)


def test_get_and_head_with_ranges_and_entity_tags(world: DavWorld) -> None:
    """GET sends the bytes; HEAD the same headers without them; a Range gets 206 with its
    Content-Range, a suffix range the last bytes, one past the end 416; If-None-Match with
    the ETag gets 304, If-Match with another 412; an If-Range naming another entity sends
    the whole file."""
    head_bytes = PHOTO[::-1]
    tag = f'"{hashlib.sha256(head_bytes).hexdigest()}"'
    url = "/dav/laptop/photos/2024/a.jpg"

    async def scenario(c: Client) -> None:
        status, headers, body = await c.call("GET", url)
        assert (status, body, headers["ETag"]) == (200, head_bytes, tag)
        assert headers["Accept-Ranges"] == "bytes"
        status, headers, body = await c.call("HEAD", url)
        assert (status, body, headers["Content-Length"]) == (200, b"", str(len(PHOTO)))
        status, headers, body = await c.call("GET", url, headers={"Range": "bytes=100-199"})
        assert (status, body) == (206, head_bytes[100:200])
        assert headers["Content-Range"] == f"bytes 100-199/{len(PHOTO)}"
        status, _, body = await c.call("GET", url, headers={"Range": "bytes=-10"})
        assert (status, body) == (206, head_bytes[-10:])
        status, _, body = await c.call("GET", url, headers={"Range": "bytes=10000-"})
        assert (status, body) == (206, head_bytes[10000:])
        status, headers, _ = await c.call("GET", url, headers={"Range": "bytes=99999-"})
        assert (status, headers["Content-Range"]) == (416, f"bytes */{len(PHOTO)}")
        status, _, body = await c.call("GET", url, headers={"If-None-Match": tag})
        assert (status, body) == (304, b"")
        status, _, _ = await c.call("GET", url, headers={"If-Match": '"other"'})
        assert status == 412
        status, _, body = await c.call("GET", url, headers={
            "Range": "bytes=0-9", "If-Range": '"other"'})
        assert (status, body) == (200, head_bytes)
        status, _, body = await c.call("GET", "/dav/laptop/photos/2024/a.v1.jpg")
        assert (status, body) == (200, PHOTO)
        status, _, _ = await c.call("GET", "/dav/laptop/photos/2024/nothing.jpg")
        assert status == 404
        status, _, _ = await c.call("GET", "/dav/laptop/photos/2024/a.v7.jpg")
        assert status == 404
    run(world, scenario)


def test_options_announces_class_1_and_read_methods(world: DavWorld) -> None:
    async def scenario(c: Client) -> None:
        status, headers, _ = await c.call("OPTIONS", "/dav/")
        assert status == 200 and headers["DAV"] == "1"
        assert set(headers["Allow"].split(", ")) == {"OPTIONS", "PROPFIND", "GET", "HEAD"}
    run(world, scenario)


def test_every_write_method_is_refused_and_audited(world: DavWorld) -> None:
    """PUT, DELETE, MKCOL, COPY, MOVE, PROPPATCH, LOCK, UNLOCK and POST: 405 with Allow and
    the reason (append-only), nothing changed, each refusal audited as its caller."""
    methods = ("PUT", "DELETE", "MKCOL", "COPY", "MOVE", "PROPPATCH", "LOCK", "UNLOCK",
               "POST")

    async def scenario(c: Client) -> None:
        for method in methods:
            status, headers, body = await c.call(method, "/dav/laptop/photos/top.jpg",
                                                 data=b"new bytes")
            assert status == 405, method
            assert "append-only" in body.decode() and "PROPFIND" in headers["Allow"]
        status, _, body = await c.call("GET", "/dav/laptop/photos/top.jpg")
        assert (status, body) == (200, b"top")
    run(world, scenario)
    refused = {(a, t) for a, _, t, r in world.audit() if r == "refused"}
    assert {("web:ops", f"{m} /dav/laptop/photos/top.jpg") for m in methods} <= refused


def test_credentials(world: DavWorld) -> None:
    """No credential: 401 with the Basic challenge (not audited: every client's first
    request); a wrong token by Basic or Bearer: 401, audited; the admin token as Basic's
    password (any user name) or as a Bearer token is let in."""
    async def scenario(c: Client) -> None:
        status, headers, _ = await c.call("PROPFIND", "/dav/", auth="",
                                          headers={"Depth": "0"})
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="photonic", charset="UTF-8"'
        status, headers, _ = await c.call("GET", "/dav/laptop/photos/top.jpg",
                                          auth=basic("wrong", "ops"))
        assert status == 401 and "Basic" in headers["WWW-Authenticate"]
        status, _, _ = await c.call("GET", "/dav/laptop/photos/top.jpg", auth="",
                                    headers={"Authorization": "Bearer wrong"})
        assert status == 401
        status, _, _ = await c.call("GET", "/dav/laptop/photos/top.jpg", auth="",
                                    headers={"Authorization": "Basic !!notbase64"})
        assert status == 401
        status, _, body = await c.call("GET", "/dav/laptop/photos/top.jpg", auth="",
                                       headers={"Authorization": f"Bearer {world.token}"})
        assert (status, body) == (200, b"top")
        status, _, body = await c.call("GET", "/dav/laptop/photos/top.jpg",
                                       auth=basic(world.token, ""))
        assert (status, body) == (200, b"top")
    run(world, scenario)
    refused = [(a, t) for a, _, t, r in world.audit() if r == "refused"]
    assert [t for _, t in refused] == ["GET /dav/laptop/photos/top.jpg"] * 3
    assert all(a.startswith("web:?@127.0.0.1") for a, _ in refused)


@pytest.mark.parametrize("raw", [
    "/dav/laptop/photos/..%2Ftop.jpg", "/dav/laptop/photos/%2e%2e/photos/top.jpg",
    "/dav/laptop/photos/2024%2Fa.jpg", "/dav/laptop/photos/a%5Cb.jpg",
    "/dav/laptop/photos/a%00.jpg", "/dav/laptop//photos/top.jpg", "/dav/laptop/./photos",
    "/dav/laptop/photos/%ff.jpg"])
def test_traversal_and_odd_names_are_refused(world: DavWorld, raw: str) -> None:
    """'..', '.', empty parts, encoded slashes and backslashes, NUL and names that are not
    UTF-8: refused before anything is looked up, no server path in the answer."""
    async def scenario(c: Client) -> None:
        status, body = await c.raw_get(raw)
        assert status == 400, body
        assert str(world.root) not in body.decode(errors="replace")
    run(world, scenario)
