"""The library lock: serialises the read-modify-write of a path's head (version numbering,
conflicts, the choice of a free `name.vN.ext`). The interface, and the in-process lock the
embedded server uses."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Protocol

from photonic.server.shared.pg_keys import PathKey


class LibraryLock(Protocol):
    """Held in worker threads around one catalog transaction; never on the event loop."""

    def hold(self, keys: Iterable[PathKey]) -> AbstractContextManager[object]:
        """Exclusive use of these paths (one batch: a slice of a manifest) until the block
        ends. keys may be a generator: an implementation that does not need them never
        iterates it."""
        ...

    def hold_all(self) -> AbstractContextManager[object]:
        """Exclusive use of the whole library (rare changes: a conflict settled, links
        repaired after a quarantine)."""
        ...


class LocalLibraryLock:
    """One lock for the whole library, as the embedded server always had: its holders are
    threads of one process, each for a few milliseconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def hold(self, keys: Iterable[PathKey]) -> AbstractContextManager[object]:
        return self._lock

    def hold_all(self) -> AbstractContextManager[object]:
        return self._lock
