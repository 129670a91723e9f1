"""Remembers that an agent's TLS files passed their check, so the next start skips it.

Why: checking the files (parse both certificates, verify the CA's signature, match the key)
needs cryptography, whose import is ~40 ms of every `agent --once`, a tenth of a no-change
re-sync. The files rarely change; the memo holds what each looked like when it passed (size,
mtime, ctime, inode, mode: a chmod or a rewrite changes one of them) and the time window in
which both certificates are valid. Anything different, and the full check runs again. The
memo only ever skips a check that would pass; the TLS handshake verifies everything anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

MEMO_NAME = "tls-check.json"


def _fingerprint(paths: tuple[Path, ...]) -> list[list[object]] | None:
    out: list[list[object]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            return None
        out.append([os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                    st.st_ino, st.st_mode])
    return out


class TlsMemo:
    """The memo in one directory, for the files as they are when this object is made: what
    is remembered is what was there before the check ran, so a file replaced during the check
    is checked again next time."""

    def __init__(self, directory: Path, files: tuple[Path, ...]) -> None:
        self.path = directory / MEMO_NAME
        self._files = _fingerprint(files)

    def passed(self, now: dt.datetime) -> bool:
        """True when these very files passed before and their certificates are valid now."""
        if self._files is None:
            return False
        try:
            memo = json.loads(self.path.read_text(encoding="utf-8"))
            if memo["files"] != self._files:
                return False
            start = dt.datetime.fromisoformat(memo["valid_from"])
            end = dt.datetime.fromisoformat(memo["valid_until"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return start <= now <= end

    def remember(self, valid_from: dt.datetime, valid_until: dt.datetime) -> None:
        """Best effort: a memo that cannot be written only means the check runs next time."""
        if self._files is None:
            return
        memo = {"files": self._files, "valid_from": valid_from.isoformat(),
                "valid_until": valid_until.isoformat()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(memo, out)
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
