"""Validation of the relative paths agents send, so no name can escape the library."""

from __future__ import annotations

from pathlib import PurePosixPath

from photonic.errors import InvalidInput

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_DEPTH = 128


def safe_relative_path(text: str) -> PurePosixPath:
    """The path as a clean relative POSIX path, or InvalidInput saying why it is refused."""
    if not text:
        raise InvalidInput("empty path")
    if "\x00" in text:
        raise InvalidInput("path contains a NUL byte")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise InvalidInput(f"absolute path {text!r} is not allowed; paths are relative to a watch")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidInput(f"path longer than {MAX_PATH_BYTES} bytes")
    parts = text.split("/")
    if len(parts) > MAX_DEPTH:
        raise InvalidInput(f"path deeper than {MAX_DEPTH} folders")
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidInput(f"path {text!r} has an empty, '.' or '..' component")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise InvalidInput(f"a name in {text!r} is longer than {MAX_COMPONENT_BYTES} bytes")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput("path is not valid UTF-8") from exc
    return PurePosixPath(text)


def safe_name(text: str, what: str) -> str:
    """A single path component (watch name, agent id) or InvalidInput."""
    path = safe_relative_path(text)
    if len(path.parts) != 1:
        raise InvalidInput(f"{what} {text!r} must be a single name without '/'")
    return text


def tagged_path(rel: PurePosixPath, tag: str, attempt: int = 0) -> PurePosixPath:
    """rel with a tag before its extension: `name<tag>.ext` (`name<tag>~k.ext` when a real file
    already took that name), the stem shortened when the name would be too long to store."""
    suffix = "".join(rel.suffixes[-1:])
    stem = rel.name[: len(rel.name) - len(suffix)] if suffix else rel.name
    tag = tag if attempt == 0 else f"{tag}~{attempt}"
    name = f"{stem}{tag}{suffix}"
    if len(name.encode("utf-8")) > MAX_COMPONENT_BYTES:
        name = f"{stem[: MAX_COMPONENT_BYTES - 40]}{tag}{suffix}"
    return rel.with_name(name)


def version_path(rel: PurePosixPath, version: int, attempt: int = 0) -> PurePosixPath:
    """Where an older version of rel lives in the library: `name.vN.ext` (`name.vN~k.ext` when
    a real file already took that name)."""
    return tagged_path(rel, f".v{version}", attempt)
