"""The small error tree of photonic; photonic.wire maps it to gRPC status codes in one place."""

from __future__ import annotations

from dataclasses import dataclass


class PhotonicError(Exception):
    """Base of every error photonic raises on purpose; the message says what to do about it.

    client_message: what a client of the server is told instead, when the message names the
    server's own internals (a database's host, port or socket path, its own error text); the
    server's log keeps the whole message (photonic.server.rpc_errors.refuse). None: the
    message is fit for clients as it is."""

    def __init__(self, message: str = "", *, client_message: str | None = None) -> None:
        super().__init__(message)
        self.client_message = client_message


def for_client(error: PhotonicError) -> str:
    """The text a client of the server may read about error."""
    return error.client_message if error.client_message is not None else str(error)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a config file: where it is and what was expected there."""

    file: str
    key: str
    expected: str
    got: str = ""

    def __str__(self) -> str:
        got = f" (got {self.got})" if self.got else ""
        return f"{self.file}: {self.key}: expected {self.expected}{got}"


class ConfigError(PhotonicError):
    """Every problem found in a config file, reported together so one edit fixes them all."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InvalidInput(PhotonicError):
    """A request or file the caller must change: a bad path, a malformed message."""


class Unstorable(InvalidInput):
    """A path the server's storage cannot hold (under an existing file, too long for its
    filesystem): refused for good, since sending it again cannot help."""


class TooLarge(InvalidInput):
    """An upload larger than its configured cap: refused while it streams in, before the rest
    is read (HTTP 413; over gRPC still INVALID_ARGUMENT)."""


class UnsupportedMedia(InvalidInput):
    """Stored content that is not an image photonic can decode (or is too large to): a
    thumbnail of it cannot be made; the content itself is kept and downloadable."""


class IntegrityError(PhotonicError):
    """Content did not match its SHA-256 or its declared size; nothing was stored."""


class AuthError(PhotonicError):
    """The caller's certificate does not allow this call."""


class NotFound(PhotonicError):
    """The thing named does not exist."""


class NotReady(PhotonicError):
    """The call comes before what it needs (an agent that has not registered): the caller
    meets the precondition first, then calls again."""


class LimitExceeded(PhotonicError):
    """A configured limit (agents, concurrent syncs, transfer size) refuses the call for now."""


class StorageFull(PhotonicError):
    """The disk has no room: intake stops until space returns; nothing half-written is visible."""


class Transient(PhotonicError):
    """A passing failure (network, restart); the same call may succeed later."""


class Unimplemented(PhotonicError):
    """The capability exists in the contract but is not built yet."""
