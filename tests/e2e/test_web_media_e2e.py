"""Thumbnails, downloads and photo details from a real server daemon, after a real agent
synced real photos over mutual TLS: thumbnails are JPEGs of the asked size, upright, made
once and then read from the cache; a RAW's thumbnail comes from its embedded preview; a
download is the exact bytes under the catalog's name; only content the catalog references
is served, no path reaches outside it, and nothing is served without a credential."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from PIL import Image

from tests.support.daemons import (
    ServerHandle,
    free_port,
    make_agent,
    start_server,
    web_token,
)
from tests.support.photos import make_corrupt_jpeg, make_jpeg
from tests.support.pki import TestPki
from tests.support.raws import make_nef_like
from tests.support.s3 import S3Endpoint, s3_endpoint  # noqa: F401

pytestmark = pytest.mark.e2e

ODD_NAME = 'odd "name"; é.jpg'


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Site:
    server: ServerHandle
    token: str
    originals: dict[str, bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def get(self, path: str, *, bearer: bool = True, headers: dict[str, str] | None = None
            ) -> Reply:
        async def go() -> Reply:
            sent = dict(headers or {})
            if bearer:
                sent["Authorization"] = f"Bearer {self.token}"
            async with aiohttp.ClientSession() as s, s.get(
                    self.base + path, headers=sent,
                    allow_redirects=False) as r:
                return Reply(r.status, CIMultiDict(r.headers), await r.read())
        return asyncio.run(go())

    def raw_get(self, path: str) -> tuple[int, bytes]:
        """The request line carries path byte for byte (no client-side normalisation)."""
        async def go() -> tuple[int, bytes]:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.server.http_port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.token}"
                         "\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read()
            writer.close()
            return int(data.split(b" ", 2)[1]), data
        return asyncio.run(go())

    def photos(self, folder: str) -> dict[str, dict[str, Any]]:
        listing = self.get(f"/api/v1/library?folder={folder}").json()
        return {p["name"]: p for p in listing["photos"]}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module", params=["local", "s3"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         pki: TestPki) -> Iterator[Site]:
    """The same site with its objects on the local disk, and in a bucket (storage.objects:
    s3://, thumbnails and downloads read through the BlobStore)."""
    root = tmp_path_factory.mktemp("media")
    port = free_port()
    extra: dict[str, Any] = {"server": {"web_ui_port": port}}
    if request.param == "s3":
        endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
        extra["storage"] = {"objects": f"s3://{endpoint.new_bucket()}/media",
                            "s3": {"endpoint_url": endpoint.url}}
    server = start_server(root / "server", pki, extra=extra)
    server.http_port = port
    try:
        token = web_token(server, "ops")
        agent = make_agent(root / "laptop", pki, "laptop", server)
        watch = agent.watches["photos"]
        make_jpeg(watch / "2024" / "IMG_1.jpg", seed=11, width=1600, height=1200,
                  model="Z 6", extra_exif={0x0112: 6})
        make_nef_like(watch / "2024" / "DSC_0001.NEF", seed=12)
        make_corrupt_jpeg(watch / "2024" / "broken.jpg", seed=13)
        make_jpeg(watch / ODD_NAME, seed=14)
        originals = {p.name: p.read_bytes() for p in watch.rglob("*") if p.is_file()}
        assert agent.once()["files_uploaded"] == 4
        yield Site(server, token, originals)
    finally:
        if server.daemon.running:
            server.daemon.terminate(10)


def test_a_thumbnail_is_an_upright_jpeg_of_the_asked_size(site: Site) -> None:
    """IMG_1.jpg is 1600x1200 stored, tagged Orientation 6: its thumbnails are portrait."""
    digest = sha(site.originals["IMG_1.jpg"])
    for size, expected in ((256, (192, 256)), (1024, (768, 1024))):
        reply = site.get(f"/thumb/{digest}?size={size}")
        assert reply.status == 200 and reply.headers["Content-Type"] == "image/jpeg"
        image = Image.open(io.BytesIO(reply.body))
        assert (image.format, image.size) == ("JPEG", expected)
        assert reply.headers["ETag"] == f'"{digest}"'
        assert reply.headers["Cache-Control"].startswith("private")
    assert site.get(f"/thumb/{digest}").status == 200  # 256 by default
    assert site.get(f"/thumb/{digest}?size=300").status == 400


def test_the_second_request_is_served_from_the_cache(site: Site) -> None:
    """The cached file is written once (same inode and mtime after another request) and its
    bytes are what is served; a browser revalidating with the ETag gets 304."""
    digest = sha(site.originals["IMG_1.jpg"])
    first = site.get(f"/thumb/{digest}?size=256").body
    cached = site.server.storage / "cache" / "thumbs" / digest[:2] / f"{digest}-256.jpg"
    before = cached.stat()
    assert cached.read_bytes() == first
    again = site.get(f"/thumb/{digest}?size=256")
    after = cached.stat()
    assert again.body == first
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    revalidated = site.get(f"/thumb/{digest}?size=256", headers={"If-None-Match": f'"{digest}"'})
    assert revalidated.status == 304 and revalidated.body == b""


def test_a_raw_thumbnail_comes_from_its_embedded_preview(site: Site) -> None:
    """The NEF's red 800x600 preview (not its blue 160x120 thumbnail), turned by the RAW's
    Orientation 6."""
    reply = site.get(f"/thumb/{sha(site.originals['DSC_0001.NEF'])}?size=1024")
    image = Image.open(io.BytesIO(reply.body)).convert("RGB")
    assert image.size == (600, 800)
    r, g, b = image.getpixel((300, 400))  # type: ignore[misc]
    assert r > 180 and g < 60 and b < 60


def test_what_is_not_an_image_is_415_and_still_downloads(site: Site) -> None:
    broken = site.originals["broken.jpg"]
    reply = site.get(f"/thumb/{sha(broken)}")
    assert reply.status == 415 and "decode" in reply.json()["error"]
    assert str(site.server.storage) not in reply.body.decode()
    assert site.get(f"/download/{sha(broken)}").body == broken


def test_a_download_is_the_exact_bytes_under_the_catalogs_name(site: Site) -> None:
    for name in ("DSC_0001.NEF", ODD_NAME):
        data = site.originals[name]
        reply = site.get(f"/download/{sha(data)}")
        assert reply.status == 200 and sha(reply.body) == sha(data)
        assert int(reply.headers["Content-Length"]) == len(data)
        disposition = reply.headers["Content-Disposition"]
        assert disposition.startswith('attachment; filename="')
        assert "filename*=UTF-8''" in disposition
    quoted = site.get(f"/download/{sha(site.originals[ODD_NAME])}")
    assert ("filename*=UTF-8''odd%20%22name%22%3B%20%C3%A9.jpg"
            in quoted.headers["Content-Disposition"])
    assert 'filename="odd _name__ _.jpg"' in quoted.headers["Content-Disposition"]


def test_photo_details_list_the_version_exif_and_content(site: Site) -> None:
    photos = site.photos("laptop/photos/2024")
    entry = photos["IMG_1.jpg"]
    details = site.get(f"/api/v1/photos/{entry['id']}").json()
    digest = sha(site.originals["IMG_1.jpg"])
    assert details["id"] == entry["id"] and details["sha256"] == digest
    assert (details["library_path"], details["agent_id"], details["watch_name"],
            details["rel_path"]) == ("laptop/photos/2024/IMG_1.jpg", "laptop", "photos",
                                     "2024/IMG_1.jpg")
    assert details["size"] == len(site.originals["IMG_1.jpg"])
    assert details["exif"]["camera"] == "Nikon Z 6"
    assert set(details["exif"]) == {"camera", "lens", "exposure", "iso", "focal_length", "taken"}
    [version] = details["versions"]
    assert (version["sha256"], version["agent_id"], version["current"]) == (
        digest, "laptop", True)
    assert version["committed_ms"] > 0 and version["size"] == details["size"]
    assert details["jobs"] == [] and details["derived"] == []
    content = site.get(f"/api/v1/content/{digest}").json()
    assert content == {"sha256": digest, "size": details["size"], "exif": details["exif"]}
    raw = site.get(f"/api/v1/content/{sha(site.originals['DSC_0001.NEF'])}").json()
    assert raw["exif"]["camera"] == "NIKON CORPORATION NIKON Z 6"
    assert site.get("/api/v1/photos/999999").status == 404
    assert site.get("/api/v1/photos/abc").status == 400


def test_a_job_on_a_photo_is_listed_in_its_details(site: Site) -> None:
    """A job submitted on a photo appears under that photo's jobs (pending: nothing derived)."""
    submitted = asyncio.run(_post_job(site, "laptop/photos/2024/IMG_1.jpg"))
    photo = site.photos("laptop/photos/2024")["IMG_1.jpg"]
    details = site.get(f"/api/v1/photos/{photo['id']}").json()
    assert [j["jobId"] for j in details["jobs"]] == [submitted]
    assert details["derived"] == []


async def _post_job(site: Site, library_path: str) -> str:
    async with aiohttp.ClientSession() as s, s.post(
            site.base + "/api/v1/jobs", json={"kind": "bgremove", "library_paths": [library_path]},
            headers={"Authorization": f"Bearer {site.token}"}) as r:
        assert r.status == 201
        return str((await r.json())["jobId"])


def test_unknown_content_is_404_and_no_credential_is_401(site: Site) -> None:
    digest = sha(site.originals["IMG_1.jpg"])
    assert site.get(f"/thumb/{sha(b'never stored')}").status == 404
    assert site.get(f"/download/{sha(b'never stored')}").status == 404
    assert site.get(f"/api/v1/content/{sha(b'never stored')}").status == 404
    for path in (f"/thumb/{digest}", f"/download/{digest}", f"/api/v1/content/{digest}",
                 "/api/v1/photos/1"):
        reply = site.get(path, bearer=False)
        assert reply.status == 401 and b"\xff\xd8" not in reply.body


@pytest.mark.parametrize("path", [
    "/thumb/../../etc/passwd", "/thumb/%2e%2e/%2e%2e/etc/passwd",
    "/thumb/..%2f..%2fetc%2fpasswd", "/thumb/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/download/..%2f..%2f..%2fetc%2fpasswd", "/download/%2fetc%2fpasswd",
    "/download/../catalog.db", "/download/..%2fcatalog.db", "/thumb/%00",
    "/api/v1/content/..%2f..%2fcatalog.db", "/api/v1/photos/..%2f1",
    "/thumb/" + "A" * 64, "/download/" + "0" * 63 + "g",
])
def test_traversal_reaches_nothing_outside_the_library(site: Site, path: str) -> None:
    """Whatever the spelling, a path is never a file name: 400 or 404, nothing served."""
    status, data = site.raw_get(path)
    assert status in (400, 404), data[:300]
    assert b"root:" not in data and b"SQLite format" not in data
