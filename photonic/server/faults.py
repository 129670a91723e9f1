"""A test fault-injection seam: SIGKILLs the server at a named point; inert unless configured.

`PHOTONIC_FAULT_POINT=<name>` (and optionally `PHOTONIC_FAULT_AFTER=<n>`, default 1) are read
once, when this module is imported. When the point named there is hit for the n-th time, the
process kills itself with SIGKILL: no cleanup, no flush, exactly like a power cut at that line.
Without the variable, `hit` is a dictionary lookup and nothing else. The chaos suite
(tests/chaos/) uses it to crash between "renamed into the store" and "catalog committed", and
between "catalog committed" and "acknowledgement sent", which random kills rarely reach.

Points: `after_store_rename` (content is in objects/, no catalog row yet),
`after_library_link` (the library file links the object, no catalog row yet),
`after_catalog_commit` (catalog row committed, COMMITTED not yet sent),
`after_multipart_part` (storage.objects: s3://, a part in S3 and in the catalog's ledger,
the upload not complete), `after_job_output_stored` (a job's output is durable in the store,
its UploadResult not yet acknowledged: the worker is mid-job on this server).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Final

POINT_ENV: Final = "PHOTONIC_FAULT_POINT"
AFTER_ENV: Final = "PHOTONIC_FAULT_AFTER"


def _after_from_env() -> int:
    try:
        return max(1, int(os.environ.get(AFTER_ENV, "1")))
    except ValueError:
        return 1


_POINT: Final = os.environ.get(POINT_ENV, "")
_AFTER: Final = _after_from_env()
_hits = 0
_lock = threading.Lock()


def hit(point: str) -> None:
    """Marks that execution reached `point`; kills the process if it is the armed fault."""
    global _hits
    if not _POINT or point != _POINT:
        return
    with _lock:
        _hits += 1
        if _hits < _AFTER:
            return
    os.kill(os.getpid(), signal.SIGKILL)
