"""Knowing a photo's SHA-256 is not enough to get it: an agent offering content it never held
is asked to prove it holds the bytes (a digest over a fresh nonce and random ranges) before
the server answers HAVE and links the photo into its library. A client that knows only the
hash is refused and audited; an honest second agent still deduplicates, sending no chunk."""

from __future__ import annotations

import hashlib
import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from photonic.v1 import sync_pb2
from tests.chaos.hostile import sync_stub
from tests.chaos.tally import TALLY
from tests.support.daemons import ServerHandle, catalog_rows, make_agent, sha256_of
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki
from tests.support.stored import library_sha

pytestmark = pytest.mark.chaos

Reply = sync_pb2.SyncServerMessage


def _offer(server: ServerHandle, pki: TestPki, sha: str, size: int, digest: bytes
           ) -> list[Reply]:
    """As "desktop": offer (sha, size) at photos/stolen.jpg and answer any PROVE with
    `digest`; returns every reply until the path is decided."""
    channel, stub = sync_stub(server.endpoint, pki.agent_cert("desktop"),
                              pki.agent_key("desktop"), pki.ca)
    stub.RegisterAgent(sync_pb2.RegisterAgentRequest(hostname="thief"), timeout=10)
    outbox: queue.Queue[sync_pb2.SyncClientMessage | None] = queue.Queue()
    outbox.put(sync_pb2.SyncClientMessage(manifest=sync_pb2.BatchManifest(
        batch_id="b", files=[sync_pb2.ManifestEntry(
            sha256=sha, size=size, watch_name="photos", relative_path="stolen.jpg")])))

    def requests() -> Iterator[sync_pb2.SyncClientMessage]:
        while (item := outbox.get()) is not None:
            yield item

    replies: list[Reply] = []
    try:
        for reply in stub.SyncBatch(requests(), timeout=20):
            replies.append(reply)
            decision = reply.decision if reply.WhichOneof("kind") == "decision" else None
            if decision is not None and decision.action == decision.ACTION_PROVE:
                outbox.put(sync_pb2.SyncClientMessage(proof=sync_pb2.PossessionProof(
                    sha256=sha, nonce=decision.nonce, digest=digest)))
            elif decision is not None or reply.WhichOneof("kind") in ("committed", "failed"):
                break
    finally:
        outbox.put(None)
        channel.close()
    return replies


def _actions(replies: list[Reply]) -> list[int]:
    return [r.decision.action for r in replies if r.WhichOneof("kind") == "decision"]


def test_a_hash_alone_gets_no_photo(tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """The laptop's photo, offered by the desktop with its exact SHA-256 and size: PROVE, not
    HAVE; a guessed digest is REJECT, audited, and nothing appears in the desktop's library.
    Offered with a wrong size it is not HAVE either."""
    laptop = make_agent(tmp_path / "laptop", pki, "laptop", server)
    make_jpeg(laptop.watches["photos"] / "private.jpg", seed=11)
    laptop.once()
    photo = laptop.watches["photos"] / "private.jpg"
    sha, size = sha256_of(photo), photo.stat().st_size

    replies = _offer(server, pki, sha, size, hashlib.sha256(sha.encode()).digest())
    TALLY.identity_attacks += 2
    actions = _actions(replies)
    assert actions[0] == sync_pb2.FileDecision.ACTION_PROVE
    assert actions[-1] == sync_pb2.FileDecision.ACTION_REJECT
    assert sync_pb2.FileDecision.ACTION_HAVE not in actions
    assert library_sha(server, "desktop", "photos", "stolen.jpg") is None
    assert catalog_rows(server, "SELECT actor, target, result FROM audit "
                        "WHERE action = 'sync.proof'") == [("desktop", sha, "refused")]
    wrong_size = _offer(server, pki, sha, 1, b"")
    assert sync_pb2.FileDecision.ACTION_HAVE not in _actions(wrong_size)
    assert library_sha(server, "desktop", "photos", "stolen.jpg") is None


def test_an_honest_second_agent_proves_and_sends_no_chunk(
        tmp_path: Path, pki: TestPki, server: ServerHandle) -> None:
    """The same photo on the desktop: it reads a few KiB to answer the challenge, is told
    HAVE, sends no chunk, and the photo is in its library; a second run needs no proof."""
    laptop = make_agent(tmp_path / "laptop", pki, "laptop", server)
    desktop = make_agent(tmp_path / "desktop", pki, "desktop", server)
    make_jpeg(laptop.watches["photos"] / "shared.jpg", seed=12)
    make_jpeg(desktop.watches["photos"] / "copy.jpg", seed=12)
    laptop.once()
    summary = desktop.once()
    assert summary["files_deduplicated"] == 1 and summary["bytes_sent"] == 0, summary
    assert library_sha(server, "desktop", "photos", "copy.jpg") == sha256_of(
        desktop.watches["photos"] / "copy.jpg")
