"""The web layer's TLS decision: plain HTTP on loopback only, HTTPS with the server's
certificate anywhere else, and a clear refusal when there is no certificate."""

from __future__ import annotations

from pathlib import Path

import pytest

from photonic import errors
from photonic.web.site import is_loopback, web_ssl_context
from tests.support.pki import TestPki


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("192.0.2.2", False), ("::", False), ("photos.example", False),
])
def test_loopback_is_recognised(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_loopback_is_plain_http(pki: TestPki) -> None:
    assert web_ssl_context("127.0.0.1", pki.server_cert, pki.server_key) is None


def test_beyond_loopback_without_a_certificate_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.ConfigError) as refused:
        web_ssl_context("0.0.0.0", tmp_path / "missing.crt", tmp_path / "missing.key")
    assert "web_ui_bind" in str(refused.value) and "HTTPS" in str(refused.value)
    with pytest.raises(errors.ConfigError):
        web_ssl_context("192.0.2.2", None, None)


def test_beyond_loopback_is_https_with_the_server_certificate(pki: TestPki) -> None:
    context = web_ssl_context("0.0.0.0", pki.server_cert, pki.server_key)
    assert context is not None
