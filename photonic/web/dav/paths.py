"""Request paths under /dav/ to library tree parts and back to hrefs. The raw (still
percent-encoded) path is read, so an encoded slash or backslash cannot make one name into
two, and '.', '..' and NUL are refused before anything is looked up."""

from __future__ import annotations

from urllib.parse import quote, unquote

from photonic import errors

PREFIX = "/dav"
_ENCODED_SEPARATORS = ("%2f", "%5c", "%00")


def tree_parts(raw_path: str) -> tuple[str, ...]:
    """The tree parts a request's raw path names (`/dav/a/b%20c/` -> ("a", "b c")); a
    trailing slash is allowed, an empty part, a '.' or '..', an encoded separator, a NUL or
    a name that is not UTF-8 is InvalidInput."""
    path = raw_path.partition("?")[0]
    if path != PREFIX and not path.startswith(PREFIX + "/"):
        raise errors.InvalidInput("not a path of the WebDAV export")
    rest = path[len(PREFIX) + 1:]
    if not rest:
        return ()
    raw_parts = rest.removesuffix("/").split("/")
    return tuple(_name(raw) for raw in raw_parts)


def _name(raw: str) -> str:
    if any(enc in raw.lower() for enc in _ENCODED_SEPARATORS):
        raise errors.InvalidInput("a path name may not hold an encoded '/', '\\' or NUL")
    try:
        name = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise errors.InvalidInput("a path name is not valid UTF-8") from None
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise errors.InvalidInput("a path may not hold an empty, '.' or '..' part")
    return name


def href(parts: tuple[str, ...], folder: bool) -> str:
    """The absolute path a client uses for parts: every name percent-encoded, a folder's
    with a trailing slash."""
    joined = "/".join(quote(p, safe="") for p in parts)
    if not joined:
        return PREFIX + "/"
    return f"{PREFIX}/{joined}/" if folder else f"{PREFIX}/{joined}"
