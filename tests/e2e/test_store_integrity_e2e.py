"""A damaged object is never vouched for: through the real daemons, a stored photo whose object
is truncated, overwritten, edited in place through its library entry, or rotted with its size
and mtime unchanged is answered SEND (not HAVE) at its next upload, the store is repaired
from that upload, the damaged bytes are quarantined, and `photonic verify` says so."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.daemons import (
    ServerHandle,
    catalog_rows,
    make_agent,
    run_cli,
    sha256_of,
)
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

pytestmark = [pytest.mark.e2e, pytest.mark.local_objects(
    "damages, verifies and quarantines files of the local objects/ and library/ trees")]


def _truncate(path: Path) -> None:
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.truncate(10)


def _flip_byte(path: Path, *, keep_mtime: bool = False) -> None:
    st = path.stat()
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:  # bit rot: the bytes change, nothing else does
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _verify(server: ServerHandle) -> tuple[int, dict[str, object], str]:
    proc = run_cli("verify", "--config", str(server.config_path), "--json", "--rate", "0")
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _quarantined(server: ServerHandle) -> list[Path]:
    folder = server.storage / "quarantine"
    return sorted(folder.iterdir()) if folder.exists() else []


DAMAGES: dict[str, Callable[[Path, Path], None]] = {
    # (object file, library entry of the same photo) -> damage one of them
    "object truncated": lambda obj, _lib: _truncate(obj),
    "object byte overwritten": lambda obj, _lib: _flip_byte(obj),
    "library entry edited in place": lambda _obj, lib: _flip_byte(lib),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_the_next_upload_of_damaged_content_is_sent_and_repairs_the_store(
        tmp_path: Path, pki: TestPki, server: ServerHandle, damage: str) -> None:
    """After the damage, the same photo offered again (here under a second name) is answered
    SEND, not HAVE; the object then hashes to its name again, the first library entry is
    linked to the repaired object, the damaged bytes sit in quarantine/, the audit names it,
    and a verify run afterwards finds everything intact."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    photos = agent.watches["photos"]
    make_jpeg(photos / "IMG_0001.jpg", seed=7)
    sha = sha256_of(photos / "IMG_0001.jpg")
    assert agent.once()["files_uploaded"] == 1
    obj = server.storage / "objects" / sha[:2] / sha[2:4] / sha
    first = server.library("laptop", "photos") / "IMG_0001.jpg"
    assert first.stat().st_mode & 0o777 == 0o444  # library entries are read-only
    DAMAGES[damage](obj, first)
    assert sha256_of(obj) != sha

    shutil.copy(photos / "IMG_0001.jpg", photos / "IMG_0001 copy.jpg")
    summary = agent.once()
    assert summary["files_uploaded"] == 1 and summary["files_deduplicated"] == 0
    assert summary["bytes_sent"] > 0
    assert sha256_of(obj) == sha
    assert sha256_of(first) == sha and os.path.samefile(first, obj)
    assert sha256_of(server.library("laptop", "photos") / "IMG_0001 copy.jpg") == sha
    (quarantined,) = _quarantined(server)
    assert quarantined.name.startswith(sha) and sha256_of(quarantined) != sha
    audit = catalog_rows(server, "SELECT actor, target, result FROM audit WHERE action = ?",
                         ("store.quarantine",))
    assert audit == [("laptop", sha, "quarantined")]
    code, report, _ = _verify(server)
    assert code == 0 and report["intact"] is True and report["objects_checked"] == 1


def test_verify_finds_bit_rot_and_the_agent_is_asked_to_send_the_photo_again(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """Bytes that change with size and mtime unchanged pass a HAVE's cheap check; a verify
    run re-hashes regardless: it exits non-zero, names the damaged photo and the library
    entries it served, and quarantines it. The agent that synced the photo is asked for it
    again at its next heartbeat, re-hashes its own copy and sends it: the store is repaired
    without anyone touching the agent's folder."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    photos = agent.watches["photos"]
    make_jpeg(photos / "a" / "IMG_0002.jpg", seed=8)
    make_jpeg(photos / "a" / "IMG_0003.jpg", seed=9)
    sha = sha256_of(photos / "a" / "IMG_0002.jpg")
    assert agent.once()["files_uploaded"] == 2
    obj = server.storage / "objects" / sha[:2] / sha[2:4] / sha
    _flip_byte(obj, keep_mtime=True)

    code, report, _ = _verify(server)
    assert code == 1 and report["intact"] is False and report["objects_checked"] == 2
    (damaged,) = report["damaged"]  # type: ignore[misc]
    assert damaged["sha256"] == sha
    assert damaged["library_paths"] == ["library/laptop/photos/a/IMG_0002.jpg"]
    assert not obj.exists() and len(_quarantined(server)) == 1
    # Until an agent sends the photo again the server does not hold it intact: still 1.
    text = run_cli("verify", "--config", str(server.config_path), "--rate", "0")
    assert text.returncode == 1
    assert f"DAMAGED {sha}: the object is missing; quarantined as quarantine/{sha}." in text.stdout
    assert "stored again when an agent next sends this photo" in text.stdout

    # Nothing changed on the agent: the server asks for the photo in its heartbeat, the
    # agent re-hashes its copy and sends it, and the store is whole again.
    summary = agent.once()
    assert summary["files_uploaded"] == 1 and summary["files_deduplicated"] == 0
    assert sha256_of(obj) == sha
    assert sha256_of(server.library("laptop", "photos") / "a" / "IMG_0002.jpg") == sha
    code, report, _ = _verify(server)
    assert code == 0 and report["intact"] is True


def test_verify_reports_a_library_file_a_person_replaced_and_photonic_keeps_it(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """An editor that saves a library file as a new file leaves the stored photo intact:
    verify exits 0 and lists the entry; when photonic next links that path (the agent sends
    the photo again after losing its state), the person's file is kept beside it."""
    agent = make_agent(tmp_path / "laptop", pki, "laptop", server)
    photos = agent.watches["photos"]
    make_jpeg(photos / "IMG_0004.jpg", seed=10)
    assert agent.once()["files_uploaded"] == 1
    entry = server.library("laptop", "photos") / "IMG_0004.jpg"
    entry.unlink()
    entry.write_bytes(b"a person's edit")

    code, report, _ = _verify(server)
    assert code == 0 and report["library_differs"] == ["library/laptop/photos/IMG_0004.jpg"]

    shutil.rmtree(agent.buffer)  # the agent lost its state and offers the photo again
    summary = agent.once()
    assert summary["files_deduplicated"] == 1
    assert sha256_of(entry) == sha256_of(photos / "IMG_0004.jpg")
    assert (entry.parent / "IMG_0004.library-edit.jpg").read_bytes() == b"a person's edit"
