"""`kill -USR2` on a running daemon logs what its event loop waits on and changes nothing
else: the server keeps serving, and SIGTERM still stops it cleanly."""

from __future__ import annotations

import pytest

from tests.support.daemons import ServerHandle

pytestmark = pytest.mark.e2e


def test_sigusr2_logs_the_servers_tasks_and_it_keeps_running(server: ServerHandle) -> None:
    dump = server.daemon.task_dump()
    assert "task_dump tasks=" in dump and "task_dump_end" in dump
    assert "task_dump_task" in dump and "chain=" in dump
    assert server.daemon.running
    assert "/tmp/" not in dump, "the dump names files by their base name only"
    assert server.daemon.terminate(20) == 0
