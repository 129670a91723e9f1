"""The web processing page's server side on real daemons: photos and ZIPs posted as
multipart/form-data to /api/v1/uploads with a token from `photonic web token create` become a
batch job; a real worker agent runs the real facecrop and bgremove models on it; the outputs
come back as one streamed results.zip. Unsafe ZIPs, wrong fields, a cookie without its CSRF
token and uploads past the caps are refused, and leave nothing stored."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import stat
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from tests.support.daemons import (
    AgentHandle,
    ServerHandle,
    catalog_rows,
    free_port,
    make_agent,
    metric_total,
    start_server,
    wait_until,
    web_token,
)
from tests.support.models import astronaut_jpeg, coffee_jpeg, fetched_models
from tests.support.pki import TestPki
from tests.support.stored import job_rows, library_files, remove_object, stored_digests

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
UPLOAD_CAP = 4 * MiB
"""jobs.web_upload_max of the servers here: a few photos fit, the oversize test sends more."""
MAX_FILES = 5
JOB_S = 180.0
Files = list[tuple[str, bytes]]


@dataclass
class Web:
    server: ServerHandle
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self._auth(), **kwargs.pop("headers", {})}

        async def go() -> tuple[int, Any]:
            async with aiohttp.ClientSession() as s, s.request(
                    method, self.base + path, headers=headers, **kwargs) as r:
                if "json" in r.headers.get("Content-Type", ""):
                    return r.status, await r.json()
                return r.status, await r.read()
        return asyncio.run(go())

    def upload(self, kind: str, params: str, files: Files) -> tuple[int, Any]:
        return self.call("POST", "/api/v1/uploads", data=form(kind, params, files))

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def wait_done(self, job_id: str) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = self.call("GET", f"/api/v1/jobs/{job_id}")[1]
            return job if job["state"] in ("JOB_STATE_COMPLETED", "JOB_STATE_FAILED") else None
        done: dict[str, Any] = wait_until(finished, JOB_S, 0.2, f"job {job_id} finished")
        return done

    def stored(self) -> tuple[int, int, int, list[str]]:
        """Objects, uploaded library files and jobs on the server, and the upload spool."""
        uploads = sum(1 for p in library_files(self.server) if p.startswith("_uploads/"))
        jobs = job_rows(self.server, "SELECT COUNT(*) FROM jobs")[0][0]
        spool = self.server.storage / "partial" / "uploads"
        return (len(stored_digests(self.server)), uploads, int(jobs),
                sorted(p.name for p in spool.iterdir()) if spool.is_dir() else [])


def form(kind: str, params: str, files: Files) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    data.add_field("kind", kind)
    data.add_field("params", params)
    for name, content in files:
        data.add_field("file", content, filename=name, content_type="application/octet-stream")
    return data


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in entries.items():
            zf.writestr(zipfile.ZipInfo(name), content)
    return buffer.getvalue()


def symlink_zip(photo: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("good.jpg", photo)
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    return buffer.getvalue()


def bomb_zip(photo: bytes) -> bytes:
    """64 MiB of zeros deflated to about 64 KiB (a ratio near 1000), beside a real photo."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("ok.jpg", photo)
        with zf.open("bomb.jpg", "w") as w:
            for _ in range(64):
                w.write(bytes(MiB))
    return buffer.getvalue()


def results(web: Web, job_id: str) -> zipfile.ZipFile:
    status, body = web.call("GET", f"/api/v1/jobs/{job_id}/results.zip")
    assert status == 200, body
    return zipfile.ZipFile(io.BytesIO(body))


def open_images(archive: zipfile.ZipFile) -> dict[str, tuple[str, tuple[int, int]]]:
    """Every entry decoded by Pillow: name -> (format, size)."""
    found = {}
    for name in archive.namelist():
        with Image.open(io.BytesIO(archive.read(name))) as image:
            image.load()
            found[name] = (str(image.format), image.size)
    return found


def _web_server(root: Path, pki: TestPki, agents: dict[str, Any]) -> Web:
    port = free_port()
    server = start_server(root / "server", pki, extra={
        "server": {"web_ui_port": port}, "agents": agents,
        "jobs": {"web_upload_max": f"{UPLOAD_CAP // MiB}MiB",
                 "web_upload_max_files": MAX_FILES}})
    server.http_port = port
    return Web(server, web_token(server, "ops"))


def _stop(*handles: ServerHandle | AgentHandle) -> None:
    for h in handles:
        if h.daemon.running:
            try:
                h.daemon.terminate(15)
            except AssertionError:
                h.daemon.kill()


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The astronaut (a face, a person) as shot, mirrored and smaller; a cup of coffee."""
    root = tmp_path_factory.mktemp("photos")
    shot = astronaut_jpeg(root / "astronaut.jpg")
    with Image.open(shot) as image:
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "mirrored.jpg")
        image.resize((384, 384)).save(root / "smaller.jpg")
    coffee_jpeg(root / "coffee.jpg")
    return {p.name: p.read_bytes() for p in root.iterdir()}


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[Web]:
    """A server with the web API and no worker: what is uploaded stays PENDING."""
    web = _web_server(tmp_path_factory.mktemp("idle"), pki, {"admin": {"scopes": ["admin"]}})
    yield web
    _stop(web.server)


@pytest.fixture(scope="module")
def working(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[Web]:
    """A server with a real worker agent (facecrop and bgremove, the real models)."""
    root = tmp_path_factory.mktemp("working")
    models = fetched_models(root / "models")
    web = _web_server(root, pki, {"worker": {"scopes": ["sync", "work"]}})
    worker = make_agent(root / "worker", pki, "worker", web.server,
                        {"w": root / "worker" / "w"},
                        extra={"work": {"enabled": True, "models_dir": str(models),
                                        "executors": ["facecrop", "bgremove"]}})
    worker.start()
    try:
        wait_until(lambda: metric_total(web.server, "photonic_jobs_workers_connected") == 1, 90,
                   0.2, f"the worker connected; log:\n{worker.daemon.log()[-2000:]}")
        yield web
    finally:
        _stop(worker, web.server)


# --- uploads that are worked -----------------------------------------------------------------


def test_a_zip_of_three_portraits_comes_back_as_three_face_crops(
        working: Web, photos: dict[str, bytes]) -> None:
    """A ZIP of three astronaut photos posted with a Bearer token is one facecrop batch of
    three submitted by web:ops; once the worker has run them, results.zip holds three JPEG
    crops named after their inputs, each decoded by Pillow."""
    shoot = zip_of({f"portraits/{n}": photos[n]
                    for n in ("astronaut.jpg", "mirrored.jpg", "smaller.jpg")})
    status, batch = working.upload("facecrop", '{"size": 256}', [("shoot.zip", shoot)])
    assert status == 201, batch
    assert (batch["kind"], batch["batchKind"], batch["submitter"]) == (
        "batch", "facecrop", "web:ops")
    assert batch["batch"]["total"] == 3
    done = working.wait_done(batch["jobId"])
    assert done["state"] == "JOB_STATE_COMPLETED", done
    images = open_images(results(working, batch["jobId"]))
    assert images == {f"{n}.facecrop.jpg": ("JPEG", (256, 256))
                      for n in ("astronaut", "mirrored", "smaller")}
    placed = [p.split("/") for p in library_files(working.server) if p.startswith("_uploads/")]
    assert sorted(p[-1] for p in placed if p[1].startswith("shoot-") and p[2:-1] == [
        "portraits"]) == ["astronaut.jpg", "mirrored.jpg", "smaller.jpg"]


def test_two_loose_photos_come_back_as_two_cutouts(
        working: Web, photos: dict[str, bytes]) -> None:
    """Two photos as two file parts are a bgremove batch of two; results.zip holds two PNGs
    with an alpha channel, `<input>.bgremove.png`."""
    status, batch = working.upload("bgremove", "{}", [("astronaut.jpg", photos["astronaut.jpg"]),
                                                      ("coffee.jpg", photos["coffee.jpg"])])
    assert status == 201, batch
    assert batch["batch"]["total"] == 2
    done = working.wait_done(batch["jobId"])
    assert done["state"] == "JOB_STATE_COMPLETED", done
    archive = results(working, batch["jobId"])
    assert sorted(open_images(archive)) == ["astronaut.bgremove.png", "coffee.bgremove.png"]
    with Image.open(io.BytesIO(archive.read("astronaut.bgremove.png"))) as cutout:
        assert cutout.mode == "RGBA" and cutout.size == (512, 512)


# --- what is refused -----------------------------------------------------------------------


def test_an_upload_nobody_works_yet_has_no_results_zip(
        idle: Web, photos: dict[str, bytes]) -> None:
    """Without a worker the batch stays pending: results.zip is 409 saying so; an unknown job
    is 404. Two photos sent under one name are both in the library under _uploads/ (the
    second renamed), and the submit is audited."""
    status, batch = idle.upload("facecrop", "", [("portrait.jpg", photos["astronaut.jpg"]),
                                                 ("portrait.jpg", photos["coffee.jpg"])])
    assert status == 201, batch
    assert (batch["state"], batch["batch"]["total"]) == ("JOB_STATE_PENDING", 2)
    status, body = idle.call("GET", f"/api/v1/jobs/{batch['jobId']}/results.zip")
    assert status == 409 and "no outputs yet" in body["error"]
    assert idle.call("GET", "/api/v1/jobs/0123456789abcdef0123/results.zip")[0] == 404
    placed = {p: sha for p, sha in library_files(idle.server).items()
              if p.startswith("_uploads/portrait-")}
    assert len({p.rsplit("/", 1)[0] for p in placed}) == 1, placed
    assert {p.rsplit("/", 1)[1]: sha for p, sha in placed.items()} == {
        "portrait.jpg": hashlib.sha256(photos["astronaut.jpg"]).hexdigest(),
        "portrait-2.jpg": hashlib.sha256(photos["coffee.jpg"]).hexdigest()}
    audit = catalog_rows(idle.server, "SELECT actor, action, target FROM audit")
    assert ("web:ops", "SubmitUpload", batch["jobId"]) in audit


@pytest.mark.parametrize(("name", "why"), [
    ("escape", "points outside"), ("symlink", "symbolic link"), ("bomb", "zip bomb")])
def test_an_unsafe_zip_is_refused_and_nothing_is_stored(
        idle: Web, photos: dict[str, bytes], name: str, why: str) -> None:
    """A `../` entry, a symbolic link entry and a deflate bomb, each beside a good photo and
    a loose photo sent first: 400 naming the reason; no object, library file, job or spooled
    file is left."""
    photo = photos["astronaut.jpg"]
    archive = {"escape": lambda: zip_of({"good.jpg": photo, "../evil.jpg": photo}),
               "symlink": lambda: symlink_zip(photo), "bomb": lambda: bomb_zip(photo)}[name]()
    before = idle.stored()
    status, body = idle.upload("bgremove", "{}", [("first.jpg", photos["coffee.jpg"]),
                                                  (f"{name}.zip", archive)])
    assert status == 400 and why in body["error"], body
    assert idle.stored() == before


@pytest.mark.parametrize(("kind", "params", "files", "why"), [
    ("lightroom", "{}", [("a.jpg", b"\xff\xd8\xff")], "kind must be one of"),
    ("facecrop", '{"size": 1}', [("a.jpg", b"\xff\xd8\xff")], "parameter 'size'"),
    ("facecrop", "[1]", [("a.jpg", b"\xff\xd8\xff")], "JSON object"),
    ("bgremove", '{"nope": 1}', [("a.jpg", b"\xff\xd8\xff")], "has no parameter 'nope'"),
    ("bgremove", "{}", [("notes.txt", b"hello")], "not an image"),
    ("bgremove", "{}", [("a.jpg", b"")], "empty"),
    ("bgremove", "{}", [("a.zip", b"PK not really")], "not a ZIP"),
    ("bgremove", "{}", [], "holds no file"),
])
def test_a_wrong_field_or_file_is_refused_with_its_reason(
        idle: Web, kind: str, params: str, files: Files, why: str) -> None:
    """Each mistake is a 400 whose message says what is wrong; nothing is kept."""
    before = idle.stored()
    status, body = idle.upload(kind, params, files)
    assert status == 400 and why in body["error"], body
    assert idle.stored() == before


def test_the_files_must_follow_kind_and_params(idle: Web, photos: dict[str, bytes]) -> None:
    """A file part before the kind field, or a body that is not multipart, is a 400."""
    data = aiohttp.FormData()
    data.add_field("file", photos["coffee.jpg"], filename="c.jpg")
    data.add_field("kind", "bgremove")
    status, body = idle.call("POST", "/api/v1/uploads", data=data)
    assert status == 400 and "kind" in body["error"]
    status, body = idle.call("POST", "/api/v1/uploads", json={"kind": "bgremove"})
    assert status == 400 and "multipart/form-data" in body["error"]


def test_a_cookie_session_needs_its_csrf_token_to_upload(
        idle: Web, photos: dict[str, bytes]) -> None:
    """Logged in by cookie, an upload without X-CSRF-Token is 403 and stores nothing; with
    the session's token it is 201."""
    files = [("csrf.jpg", photos["coffee.jpg"])]

    async def go() -> tuple[int, int]:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.post(idle.base + "/login", data={"token": idle.token}) as r:
                csrf = (await r.json())["csrf_token"]
            async with s.post(idle.base + "/api/v1/uploads",
                              data=form("bgremove", "{}", files)) as r:
                refused = r.status
            assert idle.stored() == before
            async with s.post(idle.base + "/api/v1/uploads", data=form("bgremove", "{}", files),
                              headers={"X-CSRF-Token": csrf}) as r:
                return refused, r.status

    before = idle.stored()
    assert asyncio.run(go()) == (403, 201)


def _vm_hwm_bytes(server: ServerHandle) -> int:
    assert server.daemon.proc is not None
    status = Path(f"/proc/{server.daemon.proc.pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


async def _streamed_upload(web: Web, zip_bytes: int) -> tuple[int, dict[str, Any], int]:
    """POSTs, with chunked transfer (no Content-Length), kind and params and then one ZIP part
    of zip_bytes bytes made on the fly; answers the status, the body and the bytes sent."""
    boundary = "photonic-test-boundary"
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                       f"{v}\r\n" for k, v in (("kind", "bgremove"), ("params", "{}")))
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="huge.zip"\r\nContent-Type: application/zip\r\n\r\n')
        yield head.encode()
        block = os.urandom(MiB)
        for _ in range(zip_bytes // MiB):
            sent += len(block)
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Authorization": f"Bearer {web.token}",
               "Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with aiohttp.ClientSession() as s, s.post(
            web.base + "/api/v1/uploads", data=body(), headers=headers) as r:
        return r.status, await r.json(), sent


def test_an_oversize_upload_is_refused_413_as_it_streams(idle: Web) -> None:
    """A chunked upload of 64 MiB against a 4 MiB cap is 413 naming the cap, the server's
    peak memory grows by far less than what was sent, and nothing is kept; a declared
    Content-Length over the cap and too many files are 413 too."""
    before, peak = idle.stored(), _vm_hwm_bytes(idle.server)
    status, body, sent = asyncio.run(_streamed_upload(idle, 64 * MiB))
    assert status == 413 and str(UPLOAD_CAP) in body["error"], body
    assert sent > UPLOAD_CAP
    assert _vm_hwm_bytes(idle.server) - peak < 24 * MiB
    assert idle.stored() == before
    status, body = idle.call("POST", "/api/v1/uploads", data=b"x" * (2 * UPLOAD_CAP),
                             headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert status == 413 and "declares" in body["error"]
    many = [(f"p{i}.jpg", b"\xff\xd8\xff") for i in range(MAX_FILES + 1)]
    status, body = idle.upload("bgremove", "{}", many)
    assert status == 413 and f"at most {MAX_FILES} files" in body["error"]
    assert idle.stored() == before


def test_the_refusals_left_the_idle_server_answering(idle: Web) -> None:
    """After every refusal above the server still answers and its upload spool is empty."""
    assert idle.call("GET", "/api/v1/session")[0] == 200
    assert idle.stored()[3] == []


def test_a_results_zip_that_cannot_be_finished_is_cut_off_not_short(
        working: Web, photos: dict[str, bytes]) -> None:
    """When an output's object vanishes from the store after the download started, the
    transfer ends without its last chunk: the client sees a broken download, never a
    smaller archive that looks complete."""
    status, batch = working.upload("bgremove", "{}", [("gone.jpg", photos["smaller.jpg"])])
    assert status == 201, batch
    assert working.wait_done(batch["jobId"])["state"] == "JOB_STATE_COMPLETED"
    [child] = working.call("GET", f"/api/v1/jobs?parent_id={batch['jobId']}")[1]["jobs"]
    sha = child["outputs"][0]["sha256"]
    remove_object(working.server, sha)
    with pytest.raises(aiohttp.ClientPayloadError):
        working.call("GET", f"/api/v1/jobs/{batch['jobId']}/results.zip")
