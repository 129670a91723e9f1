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


def _remembered(tmp_path: Path, files: tuple[Path, Path, Path]) -> TlsMemo:
    memo = TlsMemo(tmp_path / "buffer")
    memo.remember(files, *validity_window(files[0], files[2]))
    return memo


def test_unchanged_files_inside_their_validity_pass(tmp_path: Path,
                                                    files: tuple[Path, Path, Path]) -> None:
    memo = _remembered(tmp_path, files)
    assert memo.passed(files, NOW)
    assert stat.S_IMODE(memo.path.stat().st_mode) == 0o600
    assert not TlsMemo(tmp_path / "elsewhere").passed(files, NOW)


def test_outside_the_certificates_validity_the_memo_does_not_pass(
        tmp_path: Path, files: tuple[Path, Path, Path]) -> None:
    memo = _remembered(tmp_path, files)
    start, end = validity_window(files[0], files[2])
    assert not memo.passed(files, end + dt.timedelta(seconds=1))
    assert not memo.passed(files, start - dt.timedelta(seconds=1))


@pytest.mark.parametrize("change", ["chmod key", "rewrite cert", "replace ca", "other order"])
def test_any_change_to_the_files_means_a_full_check(
        tmp_path: Path, files: tuple[Path, Path, Path], pki: TestPki, change: str) -> None:
    memo = _remembered(tmp_path, files)
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
    assert not memo.passed(files, NOW)


def test_a_damaged_memo_only_means_a_full_check(tmp_path: Path,
                                                files: tuple[Path, Path, Path]) -> None:
    memo = _remembered(tmp_path, files)
    for garbage in ("", "{", '{"files": 3}', '{"files": [], "valid_from": "x"}', "[]"):
        (tmp_path / "buffer" / MEMO_NAME).write_text(garbage)
        assert not memo.passed(files, NOW)
