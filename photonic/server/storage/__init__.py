"""Where stored content lives: the BlobStore seam (blobs.py) and its backends, the local
filesystem (local.py, every optimisation of store.ContentStore) and S3-compatible object
storage (s3.py), chosen by `storage.objects` (open.py)."""
