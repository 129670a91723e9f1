"""What a submit names becomes the photos a job runs on: hashes, library paths, a folder,
a shoot (capture times within the gap), and clear refusals."""

from __future__ import annotations

import pytest

from photonic import errors
from photonic.jobs_model import JobRequest
from photonic.models import ExifSummary
from photonic.server.catalog import HeadPhoto, LocationHead
from photonic.server.jobs.inputs import InputResolver

HOUR_MS = 3_600_000


class FakeCatalog:
    """Heads of laptop/photos: a morning shoot of three, an evening one of two."""

    def __init__(self) -> None:
        self.heads = [
            HeadPhoto("day/a.jpg", "a" * 64, 10, 100, 8 * HOUR_MS),
            HeadPhoto("day/b.jpg", "b" * 64, 20, 100, 8 * HOUR_MS + 60_000),
            HeadPhoto("day/c.jpg", "c" * 64, 30, 100, 9 * HOUR_MS),
            HeadPhoto("day/d.jpg", "d" * 64, 40, 100, 19 * HOUR_MS),
            HeadPhoto("day/e.jpg", "e" * 64, 50, 100, 19 * HOUR_MS + 5_000),
            HeadPhoto("day/sub/f.jpg", "f" * 64, 60, 100, 8 * HOUR_MS),
        ]

    def get_head(self, agent_id: str, watch_name: str, rel_path: str) -> LocationHead | None:
        for h in self.heads:
            if (agent_id, watch_name, h.rel_path) == ("laptop", "photos", rel_path):
                return LocationHead(1, 1, h.sha256, f"library/laptop/photos/{rel_path}", 1)
        return None

    def heads_beneath(self, agent_id: str, watch_name: str, folder: str, limit: int
                      ) -> list[HeadPhoto]:
        if (agent_id, watch_name) != ("laptop", "photos"):
            return []
        return [h for h in self.heads if not folder or h.rel_path.startswith(folder + "/")
                ][:limit]

    def photo_meta(self, sha256: str) -> tuple[int, ExifSummary]:
        for h in self.heads:
            if h.sha256 == sha256:
                return h.size, ExifSummary(width=10, height=10)
        return 0, ExifSummary()

    def library_paths_of(self, sha256: str) -> list[str]:
        return [f"library/laptop/photos/{h.rel_path}" for h in self.heads if h.sha256 == sha256]


def _resolve(**request: object) -> list[str]:
    resolver = InputResolver(FakeCatalog(), max_inputs=5, shoot_gap_ms=2 * HOUR_MS)
    return [i.library_path for i in resolver.resolve(JobRequest("facecrop", **request))]  # type: ignore[arg-type]


def test_hashes_and_paths_resolve_to_library_paths() -> None:
    assert _resolve(input_sha256=("b" * 64,)) == ["laptop/photos/day/b.jpg"]
    assert _resolve(library_paths=("laptop/photos/day/c.jpg",)) == ["laptop/photos/day/c.jpg"]


def test_a_folder_takes_every_photo_beneath_it() -> None:
    assert len(_resolve(library_folder="laptop/photos/day/sub")) == 1
    with pytest.raises(errors.InvalidInput, match="more than 5"):
        _resolve(library_folder="laptop/photos/day")


def test_a_shoot_is_the_folder_s_photos_within_the_gap_of_each_other() -> None:
    """Morning photos chain within two hours of each other; the evening is another shoot;
    a subfolder is not part of the folder's shoot."""
    assert _resolve(shoot_of="laptop/photos/day/b.jpg") == [
        "laptop/photos/day/a.jpg", "laptop/photos/day/b.jpg", "laptop/photos/day/c.jpg"]
    assert _resolve(shoot_of="laptop/photos/day/e.jpg") == [
        "laptop/photos/day/d.jpg", "laptop/photos/day/e.jpg"]


def test_refusals_say_what_is_wrong() -> None:
    with pytest.raises(errors.NotFound):
        _resolve(input_sha256=("9" * 64,))
    with pytest.raises(errors.InvalidInput, match="SHA-256"):
        _resolve(input_sha256=("xyz",))
    with pytest.raises(errors.NotFound, match="no photo at library path"):
        _resolve(library_paths=("laptop/photos/nope.jpg",))
    with pytest.raises(errors.InvalidInput, match="as the library shows it"):
        _resolve(library_paths=("nope.jpg",))
    with pytest.raises(errors.InvalidInput, match="name the input once"):
        _resolve(input_sha256=("a" * 64,), library_folder="laptop/photos/day")
    with pytest.raises(errors.InvalidInput, match="name the input once"):
        _resolve()


def test_lightroom_parameters_are_checked_before_anything_is_queued() -> None:
    """A develop preset or settings and export settings within what Lightroom takes; anything
    else is refused naming the parameter."""
    from photonic.server.jobs.kinds import job_kind

    kind = job_kind("lightroom")
    kind.check({"develop": {"preset": "Vivid"}, "export": {
        "format": "JPEG", "long_edge": 2048, "quality": 85, "color_space": "sRGB",
        "sharpening": "screen", "metadata": "copyright"}})
    kind.check({"develop": {"settings": {"Exposure2012": 0.5}}})
    for bad in ({"export": {"format": "GIF"}}, {"export": {"quality": 101}},
                {"develop": {"preset": 3}}, {"develop": {}}, {"rotate": 90}):
        with pytest.raises(errors.InvalidInput, match=next(iter(bad))):
            kind.check(bad)
