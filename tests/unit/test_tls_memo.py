"""The agent's memo of TLS files that passed their check: any change means a full check."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
from pathlib import Path

import pytest

from photonic.tls import utc_now, validity_window
from photonic.tls_memo import MEMO_NAME, TlsMemo
from tests.support.pki import TestPki

NOW = utc_now()


@pytest.fixture
def files(tmp_path: Path, pki: TestPki) -> tuple[Path, Path, Path]:
    copies = []
    for src in (pki.agent_cert("laptop"), pki.agent_key("laptop"), pki.ca):
        dst = tmp_path / "tls" / src.name
        dst.parent.mkdir(exist_ok=True)
        shutil.copy2(src, dst)
        copies.append(dst)
    return copies[0], copies[1], copies[2]


def _remember(tmp_path: Path, files: tuple[Path, ...]) -> None:
    TlsMemo(tmp_path / "buffer", files).remember(*validity_window(files[0], files[2]))


def _passes(tmp_path: Path, files: tuple[Path, ...], now: dt.datetime = NOW) -> bool:
    return TlsMemo(tmp_path / "buffer", files).passed(now)


def test_unchanged_files_inside_their_validity_pass(tmp_path: Path,
                                                    files: tuple[Path, Path, Path]) -> None:
    _remember(tmp_path, files)
    assert _passes(tmp_path, files)
    assert stat.S_IMODE((tmp_path / "buffer" / MEMO_NAME).stat().st_mode) == 0o600
    assert not TlsMemo(tmp_path / "elsewhere", files).passed(NOW)


def test_outside_the_certificates_validity_the_memo_does_not_pass(
        tmp_path: Path, files: tuple[Path, Path, Path]) -> None:
    _remember(tmp_path, files)
    start, end = validity_window(files[0], files[2])
    assert not _passes(tmp_path, files, end + dt.timedelta(seconds=1))
    assert not _passes(tmp_path, files, start - dt.timedelta(seconds=1))


@pytest.mark.parametrize("change", ["chmod key", "rewrite cert", "replace ca", "other order"])
def test_any_change_to_the_files_means_a_full_check(
        tmp_path: Path, files: tuple[Path, Path, Path], pki: TestPki, change: str) -> None:
    _remember(tmp_path, files)
    cert, key, ca = files
    if change == "chmod key":
        key.chmod(0o644)
    elif change == "rewrite cert":
        data = cert.read_bytes()
        st = cert.stat()
        cert.write_bytes(data)
        os.utime(cert, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: ctime moves
    elif change == "replace ca":
        shutil.copy2(pki.ca, ca.with_name("new-ca"))
        ca.with_name("new-ca").replace(ca)
    else:
        files = (key, cert, ca)
    assert not _passes(tmp_path, files)


def test_a_damaged_memo_only_means_a_full_check(tmp_path: Path,
                                                files: tuple[Path, Path, Path]) -> None:
    _remember(tmp_path, files)
    for garbage in ("", "{", '{"files": 3}', '{"files": [], "valid_from": "x"}', "[]"):
        (tmp_path / "buffer" / MEMO_NAME).write_text(garbage)
        assert not _passes(tmp_path, files)


def test_what_is_remembered_is_the_files_as_they_were_before_the_check(
        tmp_path: Path, files: tuple[Path, Path, Path]) -> None:
    """A key opened to other users while its check ran is checked again at the next start."""
    memo = TlsMemo(tmp_path / "buffer", files)
    files[1].chmod(0o644)
    memo.remember(*validity_window(files[0], files[2]))
    assert not _passes(tmp_path, files)


def test_a_missing_file_neither_passes_nor_is_remembered(
        tmp_path: Path, files: tuple[Path, Path, Path]) -> None:
    gone = (files[0], files[1], files[2].with_name("absent.crt"))
    TlsMemo(tmp_path / "buffer", gone).remember(*validity_window(files[0], files[2]))
    assert not (tmp_path / "buffer" / MEMO_NAME).exists()
    assert not _passes(tmp_path, gone)
