"""ContentStore's per-photo paths: it remembers which folders exist, so these tests remove
folders behind its back, leave stale partial files, and check which folders a commit or a
link reports for the group sync (the folders whose entries changed, new parents included)."""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
from pathlib import Path, PurePosixPath

from photonic.models import ContentHash
from photonic.server.store import ContentStore


def _sha(data: bytes) -> ContentHash:
    return ContentHash(hashlib.sha256(data).hexdigest())


def _same_folder_as(data: bytes) -> bytes:
    """Other content whose object lands in the same objects/ab/cd folder."""
    prefix = _sha(data)[:4]
    return next(c for i in itertools.count() if _sha(c := b"photo %d" % i)[:4] == prefix)


def _commit(store: ContentStore, data: bytes, *, resume: bool = True) -> list[str]:
    upload = store.open_partial(_sha(data), len(data), resume=resume)
    upload.append(data)
    return store.commit(upload, sync=False)


def test_a_first_object_reports_its_folder_and_the_parents_made_for_it(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    data = b"first photo"
    sha = _sha(data)
    changed = _commit(store, data)
    objects = os.fspath(store.objects)
    assert sorted(changed) == sorted([objects, f"{objects}/{sha[:2]}",
                                      f"{objects}/{sha[:2]}/{sha[2:4]}"])
    assert store.object_path(sha).read_bytes() == data
    assert store.object_path(sha).stat().st_mode & 0o777 == 0o444


def test_an_object_folder_removed_by_hand_is_made_again(tmp_path: Path) -> None:
    """The store remembers that objects/ab/cd exists; when it is gone, the rename into it
    fails and the store makes it again instead of failing the photo."""
    store = ContentStore(tmp_path)
    first = b"one"
    _commit(store, first)
    folder = store.object_path(_sha(first)).parent
    second = _same_folder_as(first)
    shutil.rmtree(folder)
    changed = _commit(store, second)
    assert os.fspath(folder) in changed
    assert store.object_path(_sha(second)).read_bytes() == second


def test_a_second_object_in_a_known_folder_reports_only_that_folder(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    first = b"one"
    _commit(store, first)
    second = _same_folder_as(first)
    assert _commit(store, second) == [os.fspath(store.object_path(_sha(first)).parent)]


def test_a_fresh_upload_ignores_what_a_stale_partial_holds(tmp_path: Path) -> None:
    """resume=False: the partial file is emptied first, so a longer leftover cannot leave
    its tail behind the new bytes."""
    store = ContentStore(tmp_path)
    data = b"the photo"
    (store.partial / f"{_sha(data)}.part").write_bytes(b"x" * 10_000)
    _commit(store, data, resume=False)
    assert store.object_path(_sha(data)).read_bytes() == data


def test_a_resumed_upload_keeps_the_bytes_a_parked_upload_holds(tmp_path: Path) -> None:
    """A parked upload (`.resume`, fsynced when parked) is continued where it ends."""
    store = ContentStore(tmp_path)
    data = b"0123456789" * 1000
    (store.partial / f"{_sha(data)}.resume").write_bytes(data[:4321])
    assert store.partial_offset(_sha(data)) == 4321
    upload = store.open_partial(_sha(data), len(data))
    assert upload.offset == 4321
    assert not (store.partial / f"{_sha(data)}.resume").exists()  # live again: never resumed
    upload.append(data[4321:])
    store.commit(upload, sync=False)
    assert store.object_path(_sha(data)).read_bytes() == data


def test_bytes_a_live_upload_was_writing_are_never_resumed(tmp_path: Path) -> None:
    """A `.part` file is what a live upload was writing when its server ended: whether its
    bytes reached the disk is unknown, so it offers nothing to resume and the next start
    removes it."""
    store = ContentStore(tmp_path)
    data = b"0123456789" * 1000
    part = store.partial / f"{_sha(data)}.part"
    part.write_bytes(data[:4321])
    assert store.partial_offset(_sha(data)) == 0
    store.recover()
    assert not part.exists()
    _commit(store, data)
    assert store.object_path(_sha(data)).read_bytes() == data


def test_parking_keeps_the_bytes_durably_and_a_failed_sync_drops_them(tmp_path: Path) -> None:
    """park() fsyncs what arrived and makes it resumable; when the fsync fails, the partial
    is removed, never left to be resumed from a page cache the disk may not match."""
    store = ContentStore(tmp_path)
    data = b"abcdefghij" * 1000
    upload = store.open_partial(_sha(data), len(data))
    upload.append(data[:5000])
    assert upload.park()
    assert store.partial_offset(_sha(data)) == 5000
    again = store.open_partial(_sha(data), len(data))
    assert again.offset == 5000
    again._out.close()  # the descriptor is gone: the fsync cannot succeed
    assert not again.park()
    assert store.partial_offset(_sha(data)) == 0
    assert os.listdir(store.partial) == []


def test_an_existing_object_is_never_replaced(tmp_path: Path) -> None:
    """Storing content whose object exists leaves the object's inode alone when intact, and
    quarantines it (the new copy takes its place) when damaged."""
    store = ContentStore(tmp_path)
    data = b"a photo" * 1000
    _commit(store, data)
    obj = store.object_path(_sha(data))
    inode = obj.stat().st_ino
    _commit(store, data)
    assert obj.stat().st_ino == inode and obj.read_bytes() == data
    os.chmod(obj, 0o644)
    with open(obj, "r+b") as f:
        f.truncate(10)
    _commit(store, data)
    assert obj.read_bytes() == data and obj.stat().st_ino != inode
    (quarantined,) = store.quarantine_dir.iterdir()
    assert quarantined.stat().st_ino == inode and quarantined.stat().st_size == 10
    assert os.listdir(store.partial) == []


def test_a_library_file_a_person_put_there_is_kept_aside(tmp_path: Path) -> None:
    """A library file with a single link is no object (an editor saved over the entry):
    linking the path again moves it beside, never deletes it."""
    store = ContentStore(tmp_path)
    data = b"the original"
    _commit(store, data)
    target = store.library_file("laptop", "photos", PurePosixPath("a/IMG_1.jpg"))
    store.link(_sha(data), target)
    os.unlink(target)
    Path(target).write_bytes(b"my edit")
    store.link(_sha(data), target)
    assert Path(target).read_bytes() == data
    assert (Path(target).parent / "IMG_1.library-edit.jpg").read_bytes() == b"my edit"


def test_links_make_new_names_replace_old_ones_and_survive_a_removed_folder(
        tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    old, new = b"version one", b"version two"
    _commit(store, old)
    _commit(store, new)
    target = store.library_file("laptop", "photos", PurePosixPath("2024 trip/é x.jpg"))
    folder = os.path.dirname(target)
    changed = store.link(_sha(old), target, sync=False)
    assert folder in changed and os.path.dirname(folder) in changed  # made, with its parent
    assert Path(target).read_bytes() == old
    assert store.link(_sha(new), target, sync=False) == [folder]  # replaced in place
    assert Path(target).read_bytes() == new
    assert os.listdir(folder) == ["é x.jpg"]  # no temporary left
    shutil.rmtree(folder)
    assert folder in store.link(_sha(old), target, sync=False)
    assert store.holds(target, _sha(old))
    assert store.relative(target) == "library/laptop/photos/2024 trip/é x.jpg"
