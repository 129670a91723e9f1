"""Gitignore-style rules deciding which files and folders in a watch are never synced."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_IGNORE_PATTERNS: tuple[str, ...] = (
    # Lightroom catalog side files: previews are regenerated caches of every photo (huge,
    # worthless elsewhere) and the -wal/-shm/lock/journal files change while Lightroom runs.
    "*.lrdata/",
    "*Previews.lrdata/",
    "*.lrcat-wal",
    "*.lrcat-shm",
    "*.lrcat.lock",
    "*.lrcat-journal",
    # Operating-system litter: Finder and Explorer metadata and thumbnail caches, AppleDouble
    # resource forks on non-HFS volumes, and the per-volume indexes and trash folders.
    ".DS_Store",
    "._*",
    "Thumbs.db",
    "desktop.ini",
    ".Spotlight-V100/",
    ".Trashes/",
    ".fseventsd/",
    "$RECYCLE.BIN/",
    "System Volume Information/",
    # Temporary and partial files from browsers, downloaders, editors and Office: they are
    # renamed or deleted when complete, so uploading them would only store half a file.
    "*.tmp",
    "*.temp",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.download",
    "~$*",
    ".~*",
    "*~",
    "*.swp",
    # Our own state and version-control internals are never photos.
    ".photonic/",
    ".git/",
)


@dataclass(frozen=True)
class _Rule:
    regex: str
    negate: bool
    dir_only: bool
    ignore_case: bool
    anywhere: bool = False  # no slash in the pattern: it may match below any folder


@dataclass(frozen=True)
class _RuleGroup:
    """Consecutive rules sharing negation and case: one compiled regex instead of many."""

    negate: bool
    any_kind: re.Pattern[str] | None  # rules that match files and directories
    dirs_only: re.Pattern[str] | None


def _translate_glob(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            break
        if ch == "*":
            while i + 1 < len(glob) and glob[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[" and (end := glob.find("]", i + 2)) != -1:
            body = glob[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def parse_pattern(line: str, *, ignore_case: bool = False) -> _Rule | None:
    """One gitignore line to a rule; blank lines and comments give None."""
    text = line.rstrip("\n").rstrip(" ") if not line.endswith("\\ ") else line.rstrip("\n")
    if not text or text.startswith("#"):
        return None
    negate = text.startswith("!")
    if negate or text.startswith("\\!") or text.startswith("\\#"):
        text = text[1:]
    dir_only = text.endswith("/")
    text = text.rstrip("/")
    if not text:
        return None
    # A slash anywhere but the end anchors the pattern to the watch root, as in git.
    anchored = "/" in text
    text = text.lstrip("/")
    anywhere = not (anchored or text.startswith("**/"))
    return _Rule(_translate_glob(text), negate, dir_only, ignore_case, anywhere)


def _compile(rules: Sequence[_Rule]) -> re.Pattern[str] | None:
    """One regex for rules of one kind. The "any folder" prefix is written once for all the
    rules that need it, not once per rule: with it repeated, every rule retried every split
    of the path, and matching was a tenth of a 5,000-file re-scan."""
    if not rules:
        return None
    flags = re.IGNORECASE if rules[0].ignore_case else 0
    anywhere = "|".join(f"(?:{r.regex})" for r in rules if r.anywhere)
    parts = [f"(?:.*/)?(?:{anywhere})"] if anywhere else []
    parts += [f"(?:{r.regex})" for r in rules if not r.anywhere]
    return re.compile("|".join(parts), flags)


def _group(rules: Sequence[_Rule]) -> list[_RuleGroup]:
    groups: list[_RuleGroup] = []
    start = 0
    for i in range(1, len(rules) + 1):
        if i == len(rules) or (rules[i].negate, rules[i].ignore_case) != (
            rules[start].negate,
            rules[start].ignore_case,
        ):
            chunk = rules[start:i]
            groups.append(
                _RuleGroup(
                    negate=chunk[0].negate,
                    any_kind=_compile([r for r in chunk if not r.dir_only]),
                    dirs_only=_compile([r for r in chunk if r.dir_only]),
                )
            )
            start = i
    return groups


class IgnoreRules:
    """Defaults (case-insensitive) followed by the config's patterns; the last match wins."""

    def __init__(
        self,
        patterns: Iterable[str] = (),
        *,
        defaults: Iterable[str] = DEFAULT_IGNORE_PATTERNS,
    ) -> None:
        rules = [parse_pattern(p, ignore_case=True) for p in defaults]
        rules += [parse_pattern(p) for p in patterns]
        # Reversed: the first group that matches is the last matching rule, as in git.
        self._groups = list(reversed(_group([r for r in rules if r is not None])))

    def matches(self, rel_path: str, *, is_dir: bool) -> bool:
        """Whether this very path is ignored, assuming its parent folders are not."""
        for group in self._groups:
            if (group.any_kind is not None and group.any_kind.fullmatch(rel_path)) or (
                is_dir and group.dirs_only is not None and group.dirs_only.fullmatch(rel_path)
            ):
                return not group.negate
        return False

    def is_ignored(self, rel_path: str, *, is_dir: bool) -> bool:
        """Whether a POSIX path relative to the watch root is ignored, itself or via a parent."""
        parts = rel_path.strip("/").split("/")
        # An ignored folder hides everything inside it; a negation cannot reach back in (git).
        for depth in range(1, len(parts)):
            if self.matches("/".join(parts[:depth]), is_dir=True):
                return True
        return self.matches("/".join(parts), is_dir=is_dir)
