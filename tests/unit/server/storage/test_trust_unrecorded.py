"""Whether a content the catalog has no verified record of is looked for in the store: a
local store may hold such objects (from before records were kept, or placed by hand) and
re-hashes them before trusting them; an S3 store's objects are all put by verified uploads
that record them, so a content without a record is taken as absent without a request (one
HEAD saved for every new photo) and, should an object be there after all, it is only
uploaded again, never trusted unchecked."""

from __future__ import annotations

import hashlib
from pathlib import Path

from photonic.models import ContentHash
from photonic.server.catalog import SqliteCatalog
from photonic.server.storage.local import LocalBlobStore
from photonic.server.store import ContentStore
from photonic.server.verification import ObjectVerifier
from tests.unit.server.storage.conftest import S3World

DATA = b"a photo's bytes, stored without a record" * 100
SHA = ContentHash(hashlib.sha256(DATA).hexdigest())


def test_a_local_object_without_a_record_is_rehashed_then_trusted(tmp_path: Path) -> None:
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    try:
        store = LocalBlobStore(ContentStore(tmp_path / "storage"))
        store.put(SHA, DATA)
        report = ObjectVerifier(store, catalog).trusted({SHA: len(DATA)})
        assert report.trusted == {SHA} and report.rehashed == 1
        again = ObjectVerifier(store, catalog).trusted({SHA: len(DATA)})
        assert again.trusted == {SHA} and again.rehashed == 0  # recorded by the first look
    finally:
        catalog.close()


def test_an_s3_object_without_a_record_is_not_looked_for(s3_world: S3World) -> None:
    store, catalog = s3_world.store, s3_world.catalog
    store.client.put(store.object_key(SHA), DATA, SHA)  # there, but never recorded
    report = ObjectVerifier(store, catalog).trusted({SHA: len(DATA)})
    assert report.trusted == set() and report.rehashed == 0 and not report.quarantined
    st = store.stat(SHA)
    assert st is not None
    catalog.record_verified([(SHA, st.size, st.mtime_ns)])  # as a commit records it
    recorded = ObjectVerifier(store, catalog).trusted({SHA: len(DATA)})
    assert recorded.trusted == {SHA} and recorded.rehashed == 0
