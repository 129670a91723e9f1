"""The tests' free_port (tests/support/daemons.py): each pytest -n worker walks a slice of its
own below the ephemeral range, so two workers never hand out the same port, and a port that
something listens on is passed over."""

from __future__ import annotations

import socket

import pytest

from tests.support.daemons import _ephemeral_start, _PortWalk


def _walk(monkeypatch: pytest.MonkeyPatch, worker: str, count: int) -> _PortWalk:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(count))
    return _PortWalk()


def test_workers_walk_disjoint_slices_below_the_ephemeral_range(
        monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[set[int]] = []
    for i in range(4):
        walk = _walk(monkeypatch, f"gw{i}", 4)  # one walk per worker, 20 ports from each
        taken.append({walk.next() for _ in range(20)})
    assert all(len(ports) == 20 for ports in taken)  # no port twice within one walk
    for i, ports in enumerate(taken):
        for other in taken[i + 1:]:
            assert not ports & other
    assert all(_PortWalk.LOW <= p < _ephemeral_start() for ports in taken for p in ports)


def test_a_port_in_use_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    walk = _walk(monkeypatch, "gw0", 1)
    first = walk.next()
    walk._offset = (walk._offset - 1) % walk._size  # the walk would hand `first` out again
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", first))
        listener.listen()
        assert walk.next() != first
