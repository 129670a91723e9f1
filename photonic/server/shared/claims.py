"""Upload claims: one upload of a given content at a time, so two agents sending the same new
photo never both write it (nor append to one partial). The interface, and the in-process
implementation that the embedded server uses."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol


class UploadClaims(Protocol):
    """Every claim taken is released on every path (commit, refusal, cancel, stream cut)."""

    def held(self, sha256: str) -> bool:
        """Whether a stream of this server holds the content's claim now (no I/O: read on the
        event loop while deciding a manifest). Another server's claim is not seen here: it
        shows as try_claim answering False."""
        ...

    async def try_claim(self, sha256: str) -> bool:
        """Takes the claim if no stream (of any server sharing the claims) holds it."""
        ...

    async def try_claim_many(self, sha256s: Sequence[str]) -> set[str]:
        """try_claim for each (distinct) content, in one hop to a shared backend: the ones
        taken. A manifest of a thousand new photos is not a thousand round trips."""
        ...

    def release(self, sha256: str) -> None:
        """Gives a claim back; never blocks (a shared backend does its I/O afterwards, in
        order with later claims)."""
        ...

    async def wait_released(self, sha256: str) -> None:
        """Returns once the claim is free (or may be: the caller claims again to be sure)."""
        ...


class LocalUploadClaims:
    """Claims in this process's memory, on the event loop."""

    def __init__(self) -> None:
        self._released: dict[str, asyncio.Event] = {}

    def held(self, sha256: str) -> bool:
        return sha256 in self._released

    def claim_now(self, sha256: str) -> bool:
        """try_claim without the await, for the shared claims layered on these."""
        if sha256 in self._released:
            return False
        self._released[sha256] = asyncio.Event()
        return True

    async def try_claim(self, sha256: str) -> bool:
        return self.claim_now(sha256)

    async def try_claim_many(self, sha256s: Sequence[str]) -> set[str]:
        return {sha for sha in sha256s if self.claim_now(sha)}

    def release(self, sha256: str) -> None:
        done = self._released.pop(sha256, None)
        if done is not None:
            done.set()

    async def wait_released(self, sha256: str) -> None:
        done = self._released.get(sha256)
        if done is not None:
            await done.wait()

    def claimed(self) -> list[str]:
        """The contents claimed now (for re-taking them after a lost database session)."""
        return list(self._released)
