"""The read-only WebDAV export of a real server daemon, browsed by a real WebDAV client
(rclone) with an admin token from `photonic web token create` as its Basic password: the
recursive listing of /dav/ equals the library tree on the server's disk (names and sizes:
heads, older versions, job outputs under _derived/, dashboard uploads under _uploads/), a
copy of the whole tree is byte for byte the library and the photos the agent synced; writes
and a wrong password are refused and audited; `server.webdav: false` serves no /dav/."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from photonic.jobs_model import WorkDone
from tests.support.daemons import (
    ServerHandle,
    catalog_rows,
    free_port,
    make_agent,
    sha256_of,
    start_server,
    tree_hashes,
    web_token,
)
from tests.support.jobs import Admin, ScriptedWorker
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_contents, library_files

pytestmark = pytest.mark.e2e

RCLONE = shutil.which("rclone")
SCOPES = {"agents": {"admin": {"scopes": ["admin"]}, "worker": {"scopes": ["sync", "work"]}}}


@dataclass
class Export:
    server: ServerHandle
    token: str
    agent_files: dict[str, str]
    """{path within the watch: sha256} of the photos the agent holds now."""
    first_version: str
    """The SHA-256 of 2024/IMG_1.jpg before it was edited."""
    rclone_config: Path

    def library(self) -> dict[str, str]:
        """{path: sha256} of the library the export shows (the local tree, or in S3 mode the
        catalog's view of the bucket)."""
        return library_files(self.server)

    def library_tree(self) -> tuple[dict[str, int], set[str]]:
        """The library's files with their sizes, and its folders."""
        contents = library_contents(self.server)
        files = {path: len(data or b"") for path, data in contents.items()}
        folders = {"/".join(path.split("/")[:i]) for path in files
                   for i in range(1, path.count("/") + 1)}
        return files, folders

    def rclone(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert RCLONE is not None
        done = subprocess.run(
            [RCLONE, "--config", str(self.rclone_config), "--retries", "1",
             "--low-level-retries", "1", *args], capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"rclone {' '.join(args)}: {done.stderr}")
        return done

    def audit(self) -> list[tuple[str, str, str, str]]:
        return [(str(a), str(b), str(c), str(d)) for a, b, c, d in catalog_rows(
            self.server, "SELECT actor, action, target, result FROM audit ORDER BY id")]


def write_rclone_config(path: Path, port: int, password: str) -> Path:
    """An rclone remote `dav:` on the export, the password obscured as rclone stores it."""
    assert RCLONE is not None
    # "--": a token may begin with "-" (URL-safe base64), which rclone would take for a flag.
    obscured = subprocess.run([RCLONE, "obscure", "--", password], capture_output=True, text=True,
                              check=True).stdout.strip()
    path.write_text(f"[dav]\ntype = webdav\nurl = http://127.0.0.1:{port}/dav/\n"
                    f"vendor = other\nuser = finder\npass = {obscured}\n", encoding="utf-8")
    return path


def _derived_output(server: ServerHandle, sha: str) -> None:
    """A job over sha finished by a scripted worker: its output lands under _derived/."""
    admin, worker = Admin(server), ScriptedWorker(server, "worker", ["bgremove"])
    try:
        job = admin.submit("bgremove", [sha])
        assignment = worker.next_assignment().job
        output = worker.upload(assignment, b"\x89PNG not really" * 500, "p00.png")
        worker.send(WorkDone(job.job_id, 1, (output,), duration_ms=5))
        admin.wait_state(job.job_id, "COMPLETED")
    finally:
        worker.close()
        admin.close()


def _dashboard_upload(server: ServerHandle, token: str, photo: bytes) -> None:
    """A photo posted on the processing page: it lands under _uploads/."""

    async def post() -> int:
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("kind", "bgremove")
        form.add_field("file", photo, filename="portrait.jpg",
                       content_type="application/octet-stream")
        async with aiohttp.ClientSession() as s, s.post(
                f"http://127.0.0.1:{server.http_port}/api/v1/uploads", data=form,
                headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status
    assert asyncio.run(post()) == 201


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, pki: TestPki) -> Iterator[Export]:
    if RCLONE is None:
        pytest.skip("rclone is not installed (make test-deps installs it)")
    root = tmp_path_factory.mktemp("webdav")
    port = free_port()
    server = start_server(root / "server", pki,
                          extra={"server": {"web_ui_port": port}, **SCOPES})
    server.http_port = port
    try:
        token = web_token(server, "ops")
        agent = make_agent(root / "laptop", pki, "laptop", server)
        watch = agent.watches["photos"]
        photo = make_jpeg(watch / "2024" / "IMG_1.jpg", seed=5)
        first_version = sha256_of(photo)
        make_jpeg(watch / "top.jpg", seed=6)
        make_jpeg(watch / "2024" / "big" / "large one.jpg", seed=7, target_bytes=3_500_000)
        make_jpeg(watch / "Été" / "100%.jpg", seed=8)
        assert agent.once()["files_uploaded"] == 4
        make_jpeg(photo, seed=9)  # an edit: the first version is kept as IMG_1.v1.jpg
        assert agent.once()["files_uploaded"] == 1
        _derived_output(server, first_version)
        _dashboard_upload(server, token, (watch / "top.jpg").read_bytes())
        files = {p.relative_to(watch).as_posix(): sha256_of(p)
                 for p in watch.rglob("*") if p.is_file()}
        config = write_rclone_config(root / "rclone.conf", port, token)
        yield Export(server, token, files, first_version, config)
    finally:
        if server.daemon.running:
            server.daemon.terminate(10)


def test_a_recursive_listing_equals_the_library_tree_on_disk(export: Export) -> None:
    """rclone's recursive listing of /dav/ (PROPFIND Depth 1, folder by folder) names every
    file and folder of <storage>/library with the same sizes: heads, the older version,
    _derived/ and _uploads/ included."""
    listed = json.loads(export.rclone("lsjson", "-R", "dav:").stdout)
    files = {e["Path"]: e["Size"] for e in listed if not e["IsDir"]}
    folders = {e["Path"] for e in listed if e["IsDir"]}
    disk_files, disk_folders = export.library_tree()
    assert (files, folders) == (disk_files, disk_folders)
    assert "laptop/photos/2024/IMG_1.v1.jpg" in files
    assert any(p.startswith("_derived/bgremove/") for p in files)
    assert any(p.startswith("_uploads/") for p in files)
    assert "laptop/photos/Été/100%.jpg" in files


def test_a_copy_of_the_tree_is_every_byte_of_the_library(export: Export,
                                                         tmp_path: Path) -> None:
    """rclone copies the whole export (GETs streamed from the store); every file equals the
    library's, the agent's photos equal their copies, and the older version equals the
    photo as it was before the edit."""
    export.rclone("copy", "dav:", str(tmp_path / "copy"))
    copied = tree_hashes(tmp_path / "copy")
    assert copied == export.library()
    mine = {rel: copied[f"laptop/photos/{rel}"] for rel in export.agent_files}
    assert mine == export.agent_files
    assert copied["laptop/photos/2024/IMG_1.v1.jpg"] == export.first_version


def test_a_ranged_read_through_the_daemon(export: Export) -> None:
    """rclone cat with an offset and a count reads a Range of a large photo: the same bytes
    as the library's file."""
    big = library_contents(export.server)["laptop/photos/2024/big/large one.jpg"] or b""
    done = subprocess.run(
        [str(RCLONE), "--config", str(export.rclone_config), "cat", "--offset", "1500000",
         "--count", "2000000", "dav:laptop/photos/2024/big/large one.jpg"],
        capture_output=True, timeout=120, check=True)
    assert done.stdout == big[1_500_000:3_500_000]


def test_writes_through_a_client_are_refused_and_audited(export: Export,
                                                         tmp_path: Path) -> None:
    """rclone cannot upload, make a folder or delete: each is refused (405), nothing in the
    library changes, and the refusals are audited as the token's web:<name>."""
    before = export.library()
    new = tmp_path / "new.jpg"
    new.write_bytes(b"not welcome")
    assert export.rclone("copyto", str(new), "dav:laptop/photos/new.jpg",
                         check=False).returncode != 0
    # rclone reads MKCOL's 405 as "already exists" (RFC 4918 9.3.1), so it exits 0: the
    # refusal shows in the audit below and in the tree, not in its exit status.
    export.rclone("mkdir", "dav:laptop/photos/made", check=False)
    assert export.rclone("deletefile", "dav:laptop/photos/top.jpg",
                         check=False).returncode != 0
    assert export.library() == before
    refused = {(a, t.split()[0]) for a, action, t, r in export.audit()
               if action == "webdav" and r == "refused"}
    assert {("web:ops", "PUT"), ("web:ops", "MKCOL"), ("web:ops", "DELETE")} <= refused


def test_a_wrong_password_is_refused_and_audited(export: Export, tmp_path: Path) -> None:
    """A client with a wrong token gets 401 (with the Basic challenge) and lists nothing;
    the refusal is audited."""
    wrong = Export(export.server, "", {}, "", write_rclone_config(
        tmp_path / "wrong.conf", export.server.http_port, "not-the-token"))
    done = wrong.rclone("lsjson", "dav:", check=False)
    assert done.returncode != 0 and "401" in done.stderr
    assert any(a.startswith("web:?@127.0.0.1") and action == "webdav" and r == "refused"
               for a, action, _, r in export.audit())


def test_a_server_with_webdav_off_serves_no_dav(tmp_path: Path, pki: TestPki) -> None:
    """server.webdav: false: /dav/ is not served (404 to an admin), the rest of the web
    layer is."""
    port = free_port()
    server = start_server(tmp_path / "server", pki,
                          extra={"server": {"web_ui_port": port, "webdav": False}})
    server.http_port = port
    try:
        token = web_token(server, "ops")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/dav/", method="PROPFIND",
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Depth": "1"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code in (404, 405)
        api = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/agents",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(api, timeout=10) as reply:
            assert reply.status == 200
    finally:
        server.daemon.terminate(10)


def _https_dav(port: int, context: ssl.SSLContext, headers: dict[str, str]
               ) -> tuple[int, str, str]:
    """(status, WWW-Authenticate, body) of PROPFIND /dav/ (Depth 1) over HTTPS."""
    async def go() -> tuple[int, str, str]:
        async with aiohttp.ClientSession() as s, s.request(
                "PROPFIND", f"https://127.0.0.1:{port}/dav/", ssl=context,
                headers={"Depth": "1", **headers}) as r:
            return r.status, r.headers.get("WWW-Authenticate", ""), await r.text()
    return asyncio.run(go())


def test_over_https_certificates_and_basic_are_credentials(tmp_path: Path,
                                                           pki: TestPki) -> None:
    """A dashboard bound beyond loopback is HTTPS: there an admin client certificate lists
    /dav/, an agent's certificate is refused 403 (audited as cert:laptop), Basic with the
    token is taken (rclone, trusting the photonic CA, lists the tree), and nothing is 401
    with the Basic challenge."""
    assert RCLONE is not None
    port = free_port()
    server = start_server(tmp_path / "server", pki, extra={
        "server": {"web_ui_port": port, "web_ui_bind": "0.0.0.0"}})
    try:
        token = web_token(server, "ops")

        def tls(agent_id: str | None) -> ssl.SSLContext:
            context = ssl.create_default_context(cafile=str(pki.ca))
            if agent_id is not None:
                context.load_cert_chain(pki.agent_cert(agent_id), pki.agent_key(agent_id))
            return context
        status, _, body = _https_dav(port, tls("admin"), {})
        assert status == 207 and "<D:href>/dav/</D:href>" in body
        status, _, body = _https_dav(port, tls("laptop"), {})
        assert status == 403 and "admin" in body
        status, challenge, _ = _https_dav(port, tls(None), {})
        assert (status, challenge) == (401, 'Basic realm="photonic", charset="UTF-8"')
        basic = "Basic " + base64.b64encode(f"x:{token}".encode()).decode()
        status, _, _ = _https_dav(port, tls(None), {"Authorization": basic})
        assert status == 207
        obscured = subprocess.run([RCLONE, "obscure", token], capture_output=True, text=True,
                                  check=True).stdout.strip()
        listed = subprocess.run(
            [RCLONE, "--config", "/dev/null", "--ca-cert", str(pki.ca), "lsjson",
             f":webdav,url='https://127.0.0.1:{port}/dav/',vendor=other,user=x,"
             f"pass={obscured}:"], capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
        rows = catalog_rows(server, "SELECT actor, result FROM audit")
        assert ("cert:laptop", "refused") in rows
    finally:
        server.daemon.terminate(10)
