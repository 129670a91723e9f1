"""sd_notify: datagrams to a real AF_UNIX socket (a path or an abstract `@name`), a watchdog
that beats while the loop runs, and nothing at all without NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic.service.notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_ready_and_stopping_reach_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    """READY=1 and STOPPING=1 arrive as separate datagrams, in order."""
    sock, path = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.ready() and notifier.stopping()
    assert sock.recv(4096) == b"READY=1"
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_socket_name() -> None:
    """`@name` is the abstract socket whose address starts with a NUL byte."""
    name = f"photonic-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert Notifier(f"@{name}").ready()
        assert sock.recv(4096) == b"READY=1"


def test_without_notify_socket_nothing_is_sent() -> None:
    """Outside systemd every call is a no-op that reports it sent nothing."""
    notifier = Notifier.from_env({})
    assert not notifier.enabled and not notifier.ready() and not notifier.stopping()
    assert notifier.watchdog_interval_s is None


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    """A service manager that went away is only logged: the daemon keeps running."""
    assert not Notifier(str(tmp_path / "gone.sock")).ready()


def test_a_manager_that_stops_reading_never_holds_the_daemon_up(
        listener: tuple[socket.socket, str]) -> None:
    """Nobody reads the socket (its queue fills up after a few datagrams): the watchdog goes on
    beating without waiting, and READY=1 is given up after SEND_TIMEOUT_S, not waited on for
    good (the event loop sends them: a blocking send froze the whole daemon)."""
    _sock, path = listener
    notifier = Notifier(path, watchdog_usec=2_000)  # a beat every millisecond

    async def go() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.watchdog(stop))
        ticks = 0
        for _ in range(200):  # the loop keeps turning while the queue is full
            await asyncio.sleep(0.001)
            ticks += 1
        stop.set()
        await asyncio.wait_for(task, 5)
        return ticks

    assert asyncio.run(asyncio.wait_for(go(), 20)) == 200
    assert not notifier.send("READY=1", timeout_s=0.05)  # the queue is full: given up


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    """WatchdogSec/2, as sd_watchdog_enabled(3) advises; WATCHDOG_PID of another process
    means the watchdog is not ours."""
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "4000000"}
    assert Notifier.from_env(env).watchdog_interval_s == 2.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())}
                             ).watchdog_interval_s == 2.0
    assert Notifier.from_env({**env, "WATCHDOG_PID": "1"}).watchdog_interval_s is None


def test_watchdog_beats_until_stopped(listener: tuple[socket.socket, str]) -> None:
    """The watchdog task sends WATCHDOG=1 each interval while it runs, and ends at stop."""
    sock, path = listener
    sock.setblocking(False)
    notifier = Notifier(path, watchdog_usec=20_000)  # a beat every 10 ms

    async def go() -> list[bytes]:
        stop = asyncio.Event()
        task = asyncio.create_task(notifier.watchdog(stop))
        got: list[bytes] = []
        loop = asyncio.get_running_loop()
        while len(got) < 3:
            got.append(await asyncio.wait_for(loop.sock_recv(sock, 4096), 5))
        stop.set()
        await asyncio.wait_for(task, 5)
        return got

    assert asyncio.run(go()) == [b"WATCHDOG=1"] * 3
