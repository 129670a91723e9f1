"""Tests for gitignore-style ignore rules and the default patterns."""

from __future__ import annotations

import pytest

from photonic.agent.ignore import IgnoreRules

DEFAULTS = IgnoreRules()


@pytest.mark.parametrize(
    ("rel_path", "is_dir"),
    [
        ("Lightroom/Catalog Previews.lrdata", True),
        ("Lightroom/Catalog Smart Previews.lrdata", True),
        ("Lightroom/Catalog Previews.lrdata/1/AB/x.lrprev", False),
        ("Lightroom/Catalog.lrcat-wal", False),
        ("Lightroom/Catalog.lrcat-shm", False),
        ("Lightroom/Catalog.lrcat.lock", False),
        ("Lightroom/Catalog.lrcat-journal", False),
    ],
)
def test_lightroom_side_files_are_ignored(rel_path: str, is_dir: bool) -> None:
    """Lightroom previews and catalog working files are never synced."""
    assert DEFAULTS.is_ignored(rel_path, is_dir=is_dir)


@pytest.mark.parametrize(
    ("rel_path", "is_dir"),
    [
        (".DS_Store", False),
        ("trip/.ds_store", False),
        ("trip/._IMG_0001.JPG", False),
        ("trip/Thumbs.db", False),
        ("trip/THUMBS.DB", False),
        ("desktop.ini", False),
        (".Spotlight-V100", True),
        (".Trashes", True),
        (".fseventsd", True),
        ("$RECYCLE.BIN", True),
        ("System Volume Information", True),
        ("System Volume Information/tracking.log", False),
    ],
)
def test_os_litter_is_ignored(rel_path: str, is_dir: bool) -> None:
    """OS metadata files and volume folders are ignored, case-insensitively, at any depth."""
    assert DEFAULTS.is_ignored(rel_path, is_dir=is_dir)


@pytest.mark.parametrize(
    "rel_path",
    [
        "a.tmp", "b.TEMP", "c.jpg.part", "d.partial", "e.crdownload", "f.download",
        "~$report.docx", ".~lock.x#", "notes.txt~", ".x.swp",
    ],
)
def test_temporary_and_partial_files_are_ignored(rel_path: str) -> None:
    """Temporary and partial downloads are ignored: they are half files."""
    assert DEFAULTS.is_ignored(f"inbox/{rel_path}", is_dir=False)


def test_own_state_and_git_are_ignored() -> None:
    """Our .photonic folder and .git are never synced."""
    assert DEFAULTS.is_ignored(".photonic/agent.db", is_dir=False)
    assert DEFAULTS.is_ignored("project/.git/HEAD", is_dir=False)


@pytest.mark.parametrize(
    "rel_path",
    ["IMG_0001.JPG", "2024/trip/DSC_1.NEF", "a/.hidden.jpg", "x.lrcat", "tmp/photo.jpg",
     "Previews/p.jpg"],
)
def test_photos_and_dotfiles_are_kept(rel_path: str) -> None:
    """Ordinary photos, dotfiles in general and folders merely named tmp are not ignored."""
    assert not DEFAULTS.is_ignored(rel_path, is_dir=False)


def test_negation_re_includes_a_file() -> None:
    """A later `!pattern` re-includes what an earlier pattern ignored."""
    rules = IgnoreRules(["*.png", "!keep.png"], defaults=())
    assert rules.is_ignored("x/a.png", is_dir=False)
    assert not rules.is_ignored("x/keep.png", is_dir=False)


def test_negation_cannot_reach_into_an_ignored_folder() -> None:
    """As in git, a file inside an ignored folder stays ignored even if negated."""
    rules = IgnoreRules(["cache/", "!cache/keep.jpg"], defaults=())
    assert rules.is_ignored("cache/keep.jpg", is_dir=False)


def test_negation_overrides_a_default() -> None:
    """A user pattern can re-include something the defaults ignore."""
    rules = IgnoreRules(["!*.tmp"])
    assert not rules.is_ignored("scan.tmp", is_dir=False)


def test_anchored_patterns_match_only_at_the_root() -> None:
    """A leading slash (or a slash inside) anchors the pattern to the watch root."""
    rules = IgnoreRules(["/export", "raw/*.tif"], defaults=())
    assert rules.is_ignored("export", is_dir=True)
    assert rules.is_ignored("export/a.jpg", is_dir=False)
    assert not rules.is_ignored("2024/export/a.jpg", is_dir=False)
    assert rules.is_ignored("raw/a.tif", is_dir=False)
    assert not rules.is_ignored("x/raw/a.tif", is_dir=False)
    assert not rules.is_ignored("raw/sub/a.tif", is_dir=False)


def test_dir_only_patterns_skip_files_of_the_same_name() -> None:
    """A trailing slash matches directories only."""
    rules = IgnoreRules(["build/"], defaults=())
    assert rules.is_ignored("a/build", is_dir=True)
    assert rules.is_ignored("a/build/x.jpg", is_dir=False)
    assert not rules.is_ignored("a/build", is_dir=False)


def test_double_star_and_question_mark() -> None:
    """`**` spans folders, `*` and `?` do not cross a slash."""
    rules = IgnoreRules(["**/proxies/**", "a/**/z.jpg", "IMG_?.jpg", "exp*/x.jpg"], defaults=())
    assert rules.is_ignored("deep/er/proxies/p1.mov", is_dir=False)
    assert rules.is_ignored("a/z.jpg", is_dir=False)
    assert rules.is_ignored("a/b/c/z.jpg", is_dir=False)
    assert rules.is_ignored("IMG_1.jpg", is_dir=False)
    assert not rules.is_ignored("IMG_12.jpg", is_dir=False)
    assert rules.is_ignored("export/x.jpg", is_dir=False)
    assert not rules.is_ignored("exp/sub/x.jpg", is_dir=False)


def test_user_patterns_are_case_sensitive_and_comments_skipped() -> None:
    """User patterns match case as git does; comments and blank lines are not patterns."""
    rules = IgnoreRules(["# a comment", "", "*.PNG", "[ab]?.jpg"], defaults=())
    assert rules.is_ignored("x.PNG", is_dir=False)
    assert not rules.is_ignored("x.png", is_dir=False)
    assert rules.is_ignored("a1.jpg", is_dir=False)
    assert not rules.is_ignored("c1.jpg", is_dir=False)
    assert not rules.is_ignored("# a comment", is_dir=False)
