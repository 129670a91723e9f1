"""Chooses where cross-request state lives: in this process (the embedded server) or in a
PostgreSQL database that several servers share, so that upload claims, the library lock and
the event hub hold across all of them. The composition root asks here, once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from photonic.server.events import EventHub, LocalEventHub
from photonic.server.shared.claims import LocalUploadClaims, UploadClaims
from photonic.server.shared.library_lock import LibraryLock, LocalLibraryLock


@dataclass
class SharedState:
    claims: UploadClaims
    library_lock: LibraryLock
    events: EventHub
    _backend: _PgBackend | None = field(default=None, repr=False)

    async def start(self) -> None:
        """Before serving: the shared hub's reader and writer, and the listener."""
        if self._backend is not None:
            await self._backend.start()

    async def stop(self) -> None:
        """After the last stream ended: queued events are written, sessions closed (their
        claims and locks free for other servers)."""
        if self._backend is not None:
            await self._backend.stop()


def make_shared_state(pg_url: str | None) -> SharedState:
    """None: in this process. A postgresql:// URL: in that database (psycopg is imported
    only then: the embedded server does not need it)."""
    if not pg_url:
        return SharedState(LocalUploadClaims(), LocalLibraryLock(), LocalEventHub())
    backend = _PgBackend(pg_url)
    return SharedState(backend.claims, backend.library_lock, backend.events,
                       _backend=backend)


class _PgBackend:
    def __init__(self, url: str) -> None:
        from photonic.server.pg_channels import ChannelListener
        from photonic.server.shared import pg_claims, pg_events
        from photonic.server.shared.pg_library_lock import PgLibraryLock

        # The hub first: making it applies the shared tables' migrations (server_events,
        # upload_claims), once, before the claims' session ever uses its table.
        self.events = pg_events.PgEventHub(url)
        self.claims = pg_claims.PgUploadClaims(url)
        self.library_lock = PgLibraryLock(url)
        self.listener = ChannelListener(
            url, {pg_events.CHANNEL: self.events.on_notify,
                  pg_claims.CHANNEL: self.claims.on_released},
            self._reconnected, name="shared-listen")

    def _reconnected(self) -> None:
        self.events.look_again()
        self.claims.wake_all()

    async def start(self) -> None:
        await self.listener.start()
        await self.events.start()

    async def stop(self) -> None:
        await self.listener.stop()
        await self.events.stop()
        await asyncio.to_thread(self.claims.close)
        await asyncio.to_thread(self.library_lock.close)
