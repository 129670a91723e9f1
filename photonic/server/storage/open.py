"""Builds the object store `storage.objects` names, with the library tree that goes with it:
the local store's hard-link tree, or, for S3, the catalog view (no tree)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from photonic._configobjects import ObjectBackend, ObjectsConfig
from photonic.logfmt import event
from photonic.server.storage.blobs import BlobStore
from photonic.server.storage.local import LocalBlobStore
from photonic.server.storage.multipart import MultipartLedger
from photonic.server.storage.tree import CatalogView, LibraryTree, TreeLookups
from photonic.server.store import ContentStore

log = logging.getLogger("photonic.server.storage")


@dataclass(frozen=True)
class ObjectStorage:
    blobs: BlobStore
    tree: LibraryTree
    local: bool
    """True for the local filesystem: its group sync covers the objects and the tree."""


class ObjectsCatalog(MultipartLedger, TreeLookups, Protocol):
    """What the S3 store and its catalog view keep in the catalog."""


def open_objects(config: ObjectsConfig, store: ContentStore, ledger: ObjectsCatalog
                 ) -> ObjectStorage:
    """The store the config names. For S3, orphans of earlier crashes are cleaned first
    (S3BlobStore.recover), as the local store's recover() does for its partial files."""
    if config.backend is ObjectBackend.LOCAL or config.s3 is None:
        return ObjectStorage(LocalBlobStore(store), store, True)
    from photonic.server.storage.s3 import S3BlobStore  # boto3: only an S3 server imports it
    from photonic.server.storage.s3_client import S3Client

    blobs = S3BlobStore(S3Client(config.s3), config.s3.prefix, ledger)
    cleaned = blobs.recover()
    event(log, "object_store", backend="s3", bucket=config.s3.bucket,
          prefix=config.s3.prefix, endpoint=config.s3.endpoint_url or "aws",
          orphans_cleaned=cleaned)
    return ObjectStorage(blobs, CatalogView(ledger), False)
