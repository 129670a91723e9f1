"""One real deployment for the dashboard's browser tests, shared by the module (a few minutes
at most on two cores): a server with its web layer and an admin token, a laptop agent daemon
syncing a watch folder (with one conflict parked), a worker agent with the face-crop executor,
and one headless Chromium. Each test opens its own browser context (cookies, scripts)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import api, headless_chromium, screenshot_dir
from tests.support.daemons import (
    AgentHandle,
    ServerHandle,
    free_port,
    make_agent,
    start_server,
    wait_until,
    web_token,
)
from tests.support.models import fetched_models
from tests.support.photos import make_jpeg
from tests.support.pki import TestPki

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

LIVE_S = 60.0
"""How long a change may take to reach the page (sync settle + upload + event)."""


@dataclass
class Dashboard:
    server: ServerHandle
    laptop: AgentHandle
    worker: AgentHandle
    token: str
    browser: Browser
    shots: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def api(self, path: str, *, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        return api(self.base, path, self.token, method=method, body=body)

    def context(self, *, init_script: str = "") -> BrowserContext:
        context = self.browser.new_context(viewport={"width": 1280, "height": 900},
                                           accept_downloads=True)
        if init_script:
            context.add_init_script(init_script)
        return context

    def logged_in(self, context: BrowserContext, hash_path: str = "") -> Page:
        """A page of the dashboard after logging in through the login page's own request."""
        reply = context.request.post(self.base + "/login", data={"token": self.token})
        assert reply.status == 200, reply.text()
        page = context.new_page()
        page.goto(self.base + "/" + hash_path)
        page.wait_for_selector("#live.live-websocket, #live.live-polling", timeout=LIVE_S * 1000)
        return page

    def shot(self, page: Page, name: str) -> Path:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def _disabled_capture_print(request: pytest.FixtureRequest, text: str) -> None:
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():
        print(text)


@pytest.fixture(scope="module")
def dashboard(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
              pki: TestPki) -> Iterator[Dashboard]:
    root = tmp_path_factory.mktemp("dashboard")
    models = fetched_models(tmp_path_factory.mktemp("models"))
    port = free_port()
    server = start_server(root / "server", pki, extra={
        "server": {"web_ui_port": port},
        "agents": {"admin": {"scopes": ["admin"]}, "laptop": {"scopes": ["sync"]},
                   "worker": {"scopes": ["sync", "work"]}}})
    server.http_port = port
    started: list[AgentHandle] = []
    try:
        token = web_token(server, "ops")
        laptop = _laptop_with_a_conflict(root, pki, server)
        started.append(laptop.start())
        worker = make_agent(root / "worker", pki, "worker", server, extra={
            "work": {"enabled": True, "models_dir": str(models), "executors": ["facecrop"]}})
        started.append(worker.start())
        with headless_chromium() as browser:
            shots = screenshot_dir(tmp_path_factory)
            _disabled_capture_print(request, f"\ndashboard screenshots: {shots}")
            board = Dashboard(server, laptop, worker, token, browser, shots)
            wait_until(lambda: _connected(board), LIVE_S,
                       message=f"laptop connected; log:\n{laptop.daemon.log()[-2000:]}")
            yield board
    finally:
        for agent in started:
            _stop(agent.daemon)
        _stop(server.daemon)


def _laptop_with_a_conflict(root: Path, pki: TestPki, server: ServerHandle) -> AgentHandle:
    """The laptop synced two photos, then lost its index while one of them was rewritten: the
    rewrite is parked as a conflict (manual resolution) for the conflicts page."""
    laptop = make_agent(root / "laptop", pki, "laptop", server,
                        extra={"sync": {"conflict_resolution": "manual"}})
    photo = make_jpeg(laptop.watches["photos"] / "2024" / "IMG_1.jpg", seed=5)
    make_jpeg(laptop.watches["photos"] / "beach.jpg", seed=6)
    assert laptop.once()["files_uploaded"] == 2
    shutil.rmtree(laptop.buffer)
    make_jpeg(photo, seed=7)
    assert laptop.once()["conflicts"] == 1
    return laptop


def _connected(board: Dashboard) -> bool:
    status, body = board.api("/api/v1/agents/laptop")
    return status == 200 and body["state"] in ("monitoring", "conflict", "syncing")


def _stop(daemon: Any) -> None:
    if daemon.running:
        try:
            daemon.terminate(10)
        except AssertionError:
            daemon.kill()
