"""One audit row per SyncBatch call that recorded photos: the agent (its certificate's
identity), how many paths it committed, how many new bytes were stored and how many paths
were deduplicated. Per call, never per file: a 5,000-photo sync writes one row per batch, not
5,000, so the audit stays readable and within its per-caller budget (auth.AuditBudget)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Audit = Callable[[str, str, str, str, str], Awaitable[None]]
"""(actor, action, target, result, detail): Authorizer.audit, budgeted and bounded."""


@dataclass
class SyncTally:
    """What one SyncBatch call made durable, counted as the stream commits."""

    files: int = 0
    """Paths recorded in the catalog (new content and deduplicated alike)."""
    bytes_stored: int = 0
    """Content bytes verified and stored (deduplicated paths add none)."""
    deduplicated: int = 0
    """Paths whose content the server already held (answered HAVE)."""

    def stored(self, size: int) -> None:
        self.bytes_stored += size

    def committed(self) -> None:
        self.files += 1

    def deduplicated_one(self) -> None:
        self.files += 1
        self.deduplicated += 1

    def detail(self) -> str:
        return (f"files={self.files} bytes={self.bytes_stored} "
                f"deduplicated={self.deduplicated}")


async def audit_sync(audit: Audit, agent_id: str, tally: SyncTally) -> None:
    """The call's row, when it recorded anything, however the call ended (an agent cancels
    its call once every answer is in; what was committed before any end is durable)."""
    if tally.files:
        await audit(agent_id, "SyncBatch", agent_id, "ok", tally.detail())
