"""sd_notify without a dependency: readiness, watchdog and stopping reported to systemd as
datagrams to `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("photonic.service.notify")

SEND_TIMEOUT_S = 1.0
"""How long READY=1 or STOPPING=1 may wait for room in a service manager's socket queue
(Linux holds 10 datagrams by default: net.unix.max_dgram_qlen) before it is given up."""


class Notifier:
    """Sends sd_notify messages; every method is a no-op when no socket was given."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self.watchdog_interval_s = (watchdog_usec / 2e6 if watchdog_usec and
                                    watchdog_usec > 0 else None)
        """Half of WatchdogSec, as systemd recommends; None when there is no watchdog."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd asked for (NOTIFY_SOCKET, WATCHDOG_USEC), if it asked."""
        e = os.environ if env is None else env
        usec = e.get("WATCHDOG_USEC", "")
        pid = e.get("WATCHDOG_PID", "")
        if pid and pid != str(os.getpid()):
            usec = ""  # the watchdog is meant for another process
        return cls(e.get("NOTIFY_SOCKET") or None, int(usec) if usec.isdigit() else None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, message: str, timeout_s: float = SEND_TIMEOUT_S) -> bool:
        """Sends one message (e.g. "READY=1"); False when disabled, the socket is gone or its
        queue stayed full for timeout_s, which never stops the daemon: the service manager is
        only being told. A blocking send would: it runs on the event loop, and a manager
        that stops reading kept the loop (every sync, the SIGTERM handler) waiting for good."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout_s)
                s.sendto(message.encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify failed", extra={"error": repr(exc), "notify": message})
            return False
        return True

    def ready(self) -> bool:
        return self.send("READY=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    async def watchdog(self, stop: asyncio.Event) -> None:
        """Sends WATCHDOG=1 every interval while the event loop runs, until stop is set. Being
        a task on the daemon's loop, a loop that hangs stops it, and systemd restarts us."""
        if self._address is None or self.watchdog_interval_s is None:
            return
        while not stop.is_set():
            self.send("WATCHDOG=1", timeout_s=0)  # a beat that finds no room: the next one
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.watchdog_interval_s)


def _socket_address(address: str) -> str | bytes:
    """An abstract socket name (`@name`) becomes a leading NUL byte, as in sd_notify(3)."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    return address
