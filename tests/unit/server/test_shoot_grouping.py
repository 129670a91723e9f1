"""Shoot grouping on its own (photonic.server.shoot_grouping): the agent's rule (a gap longer
than the shoot gap or a camera change starts a shoot; an unknown camera breaks nothing) over
committed photos and reported queued spans of one folder, and the newest-first reader that
stops early answering exactly what sorting everything answers."""

from __future__ import annotations

import random

from photonic.server.shoot_grouping import (
    FolderKey,
    GroupedShoot,
    Piece,
    group_all,
    recent_shoots,
    split_folder,
)

GAP = 100
A: FolderKey = ("laptop", "photos", "2024/trip")
B: FolderKey = ("laptop", "photos", "2024/home")
D: FolderKey = ("desktop", "photos", "2024/trip")


def photo(t: int, camera: str = "Canon", key: FolderKey = A) -> Piece:
    return Piece(key, t, t, camera, f"photo@{t}")


def queued(start: int, end: int, camera: str = "Canon", key: FolderKey = A) -> Piece:
    return Piece(key, start, end, camera, f"queued@{start}-{end}")


def spans(shoots: list[GroupedShoot]) -> list[tuple[int, int, str, int]]:
    return [(s.start_ms, s.end_ms, s.camera, len(s.items)) for s in shoots]


def test_a_gap_longer_than_the_shoot_gap_starts_a_new_shoot() -> None:
    """Photos 100 apart stay one shoot (the gap is inclusive, as the agent's); 101 apart
    split."""
    pieces = [photo(0), photo(100), photo(200), photo(301), photo(350)]
    assert spans(split_folder(A, pieces, GAP)) == [(0, 200, "Canon", 3), (301, 350, "Canon", 2)]


def test_a_camera_change_starts_a_new_shoot_and_an_unknown_camera_joins() -> None:
    """Two cameras in a row are two shoots even without a gap; a photo without a camera
    stays in the shoot it falls in, and the shoot's camera is the first one known."""
    pieces = [photo(0, ""), photo(10, "Canon"), photo(20, ""), photo(30, "Nikon"),
              photo(40, "Nikon")]
    assert spans(split_folder(A, pieces, GAP)) == [(0, 20, "Canon", 3), (30, 40, "Nikon", 2)]


def test_queued_span_overlapping_committed_photos_is_one_shoot() -> None:
    """A shoot half synced: the committed photos and the queued rest, interleaved in time,
    make one shoot spanning both."""
    pieces = [photo(0), photo(50), queued(20, 180), photo(260)]
    [shoot] = split_folder(A, pieces, GAP)
    assert (shoot.start_ms, shoot.end_ms, len(shoot.items)) == (0, 260, 4)


def test_a_queued_span_bridges_two_committed_groups() -> None:
    """Committed photos 300 apart are two shoots; the queued span between them, within the
    gap of each, makes them one."""
    alone = [photo(0), photo(300)]
    assert len(split_folder(A, alone, GAP)) == 2
    [shoot] = split_folder(A, [*alone, queued(90, 210)], GAP)
    assert (shoot.start_ms, shoot.end_ms) == (0, 300)


def test_a_queued_span_of_another_camera_is_its_own_shoot() -> None:
    """A span of another camera after the committed photos is its own shoot; cameras
    interleaved in time split at every change, in order of start, as the agent splits them."""
    after = [photo(0), photo(50), queued(60, 90, "Nikon")]
    assert spans(split_folder(A, after, GAP)) == [(0, 50, "Canon", 2), (60, 90, "Nikon", 1)]
    inside = [photo(0), photo(50), queued(20, 60, "Nikon")]
    assert spans(split_folder(A, inside, GAP)) == [
        (0, 0, "Canon", 1), (20, 60, "Nikon", 1), (50, 50, "Canon", 1)]


def test_folders_and_agents_never_share_a_shoot() -> None:
    """Same hours, same camera, different folder or agent: separate shoots, newest first."""
    pieces = [photo(0, key=A), photo(10, key=B), photo(20, key=D), queued(5, 30, key=B)]
    shoots = group_all(pieces, GAP, 10)
    assert [(s.key, s.end_ms) for s in shoots] == [(B, 30), (D, 20), (A, 0)]


def test_recent_is_the_latest_ending_shoots_newest_first() -> None:
    """limit keeps the shoots that ended last."""
    pieces = [photo(t) for t in (0, 1000, 2000, 3000)]
    assert [s.end_ms for s in recent_shoots(_newest(pieces), GAP, 2)] == [3000, 2000]


def test_reading_stops_once_the_recent_shoots_are_settled() -> None:
    """The reader takes no more pieces than it needs: with three old shoots far behind the
    two it shows, it stops before them."""
    taken: list[Piece] = []
    pieces = _newest([photo(t) for t in (10_000, 10_050, 5_000, 0, -5_000, -10_000)])

    def stream() -> list[Piece] | object:
        for p in pieces:
            taken.append(p)
            yield p

    shoots = recent_shoots(stream(), GAP, 2)  # type: ignore[arg-type]
    assert [s.end_ms for s in shoots] == [10_050, 5_000]
    assert len(taken) < len(pieces)


def test_newest_first_reader_agrees_with_sorting_everything() -> None:
    """Random folders, cameras, gaps, overlapping queued spans and limits: the early-stopping
    reader answers what the reference answers."""
    rng = random.Random(19)
    keys = [A, B, D]
    cameras = ["", "Canon", "Nikon"]
    for _round in range(400):
        pieces: list[Piece] = []
        for _i in range(rng.randint(0, 40)):
            start = rng.randint(0, 2000)
            key, camera = rng.choice(keys), rng.choice(cameras)
            if rng.random() < 0.2:
                pieces.append(queued(start, start + rng.randint(0, 300), camera, key))
            else:
                pieces.append(photo(start, camera, key))
        limit = rng.randint(1, 8)
        expected = group_all(pieces, GAP, limit)
        got = recent_shoots(_newest(pieces), GAP, limit)
        assert _canonical(got) == _canonical(expected), (pieces, limit)


def _newest(pieces: list[Piece]) -> list[Piece]:
    return sorted(pieces, key=lambda p: p.end_ms, reverse=True)


def _canonical(shoots: list[GroupedShoot]) -> list[tuple[object, ...]]:
    return [(s.key, s.start_ms, s.end_ms, s.camera, sorted(map(str, s.items))) for s in shoots]
