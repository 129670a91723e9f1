"""A local attacker's tool: atomically exchanges two names with renameat2(RENAME_EXCHANGE)
(Linux), in a tight loop in a thread, so a folder inside a watch and a symlink out of it trade
places thousands of times a second while the agent lists and reads."""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading
from collections.abc import Callable
from pathlib import Path

AT_FDCWD = -100
RENAME_EXCHANGE = 2
# renameat2's syscall number, for a libc too old to export the function.
_SYSCALL_NUMBERS = {"x86_64": 316, "aarch64": 276}

SUPPORTED = sys.platform.startswith("linux")


def _renameat2() -> Callable[[int, bytes, int, bytes, int], int]:
    libc = ctypes.CDLL(None, use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]
        return func  # type: ignore[no-any-return]
    number = _SYSCALL_NUMBERS[platform.machine()]
    syscall = libc.syscall

    def via_syscall(olddir: int, old: bytes, newdir: int, new: bytes, flags: int) -> int:
        return int(syscall(number, olddir, old, newdir, new, flags))

    return via_syscall


def exchange(a: Path, b: Path) -> None:
    """Swaps the names a and b in one atomic step (both must exist)."""
    if _renameat2()(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


class Swapper:
    """Exchanges each (a, b) pair over and over until stop(); counts the swaps."""

    def __init__(self, pairs: list[tuple[Path, Path]]) -> None:
        self._pairs = [(os.fsencode(a), os.fsencode(b)) for a, b in pairs]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swapper", daemon=True)
        self.swaps = 0

    def __enter__(self) -> Swapper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        rename = _renameat2()
        while not self._stop.is_set():
            for a, b in self._pairs:
                if rename(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0:
                    self.swaps += 1
