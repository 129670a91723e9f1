"""A file's index signature: the stat fields whose match with the index lets the agent skip
hashing it again, built from a stat result in this one place.

(size, mtime, inode) alone miss a rewrite in place that keeps the size and sets the mtime back
(`exiftool -P -overwrite_original_in_place`, `cp -p` over an existing file, `rsync -t
--inplace`): new bytes, same three numbers, and the new version would never be synced. The
kernel sets ctime on every change to a file's data or inode and offers no call to set it back,
so ctime sees those rewrites. The birth time (macOS and the BSDs; 0 where stat does not report
it) sees a file replaced by a new one on a reused inode. ctime also moves on a chmod, a rename
or a new hard link; each costs one more hash, which finds the same content and queues nothing.
"""

from __future__ import annotations

import os
from typing import NamedTuple

# The index's ctime_ns and birth_ns for a row written before they were recorded: no file has
# them, so such a row never matches and its file is hashed once more (002_index_ctime.sql).
UNKNOWN_NS = -1


class FileSignature(NamedTuple):
    """What the index remembers of a file's stat; equal signatures mean "not hashed again"."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int
    birth_ns: int  # 0 where the platform does not report a birth time


def birth_ns(st: os.stat_result) -> int:
    """The file's creation time in ns where stat reports one, else 0."""
    exact = getattr(st, "st_birthtime_ns", None)  # Windows, Python 3.12+
    if exact is not None:
        return int(exact)
    seconds = getattr(st, "st_birthtime", None)  # macOS and the BSDs: a float only
    # Rounding the same float always gives the same int, so an unchanged file still matches.
    return 0 if seconds is None else round(seconds * 1_000_000_000)


def signature_of(st: os.stat_result) -> FileSignature:
    return FileSignature(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, birth_ns(st))
