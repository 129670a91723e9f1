"""Headless Chromium for the dashboard's browser tests: Debian's `chromium` driven by
Playwright through executable_path (Playwright's own browser download is never used). A test
skips, with the reason printed, only when the browser or Playwright is truly absent here;
`make test-deps` installs chromium, `pip install -e '.[dev]'` Playwright."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CANDIDATES = ("chromium", "chromium-browser")
"""Debian names the binary chromium; Ubuntu's transitional package chromium-browser."""


def chromium_path() -> str | None:
    """The Chromium executable on PATH, or None."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@contextmanager
def headless_chromium() -> Iterator[Browser]:
    """A running headless Chromium, closed at the end; skips the test when there is none."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium on PATH: run `make test-deps` (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, headless=True,
                                         args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


def api(base: str, path: str, token: str, *, method: str = "GET",
        body: Any = None) -> tuple[int, Any]:
    """(status, JSON body) of one API call with a Bearer token, outside the browser."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text.decode("utf-8", "replace")


def screenshot_dir(factory: pytest.TempPathFactory) -> Path:
    """Where a run's screenshots go (printed, so a person can look at them)."""
    path = factory.mktemp("screenshots")
    print(f"\nbrowser screenshots: {path}")
    return path
