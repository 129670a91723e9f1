"""The dashboard in a real headless Chromium against real daemons: login, the overview of the
connected agent, a new photo reaching the library page live (by WebSocket, and by long-poll
when WebSockets are blocked), a conflict settled from the page, a ZIP processed by a real
face-crop worker and its results downloaded, a running job's progress moving its bar by
events, and cross-site POSTs refused."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page

from photonic.jobs_model import WorkDone, WorkProgress
from tests.browser.conftest import LIVE_S, Dashboard
from tests.support.daemons import run_cli, sha256_of
from tests.support.jobs import ScriptedWorker
from tests.support.models import astronaut_jpeg
from tests.support.photos import make_jpeg

pytestmark = pytest.mark.e2e

MS = 1000
JOB_S = 180.0
BLOCK_WEBSOCKET = """
window.WebSocket = function () { throw new Error("WebSocket blocked by the test"); };
"""


def _until_true(page: Page, function: str, timeout_s: float) -> None:
    """Polls a JS function from here: page.wait_for_function evaluates its predicate with
    eval inside the page, which the dashboard's Content-Security-Policy (no unsafe-eval)
    refuses; page.evaluate is not subject to it."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(function):
        assert time.monotonic() < deadline, f"not true within {timeout_s}s: {function}"
        time.sleep(0.1)


def test_the_dashboard_needs_a_login_and_opens_with_the_token(dashboard: Dashboard) -> None:
    """Without a credential / sends the browser to /login and the API answers 401; a wrong
    token is refused with a message; the right one opens the dashboard, live by WebSocket."""
    context = dashboard.context()
    try:
        page = context.new_page()
        page.goto(dashboard.base + "/")
        assert page.url == dashboard.base + "/login"
        assert context.request.get(dashboard.base + "/api/v1/agents").status == 401
        page.get_by_label("Admin token").fill("not-a-token")
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("alert").get_by_text("not known").wait_for()
        assert page.url == dashboard.base + "/login"
        dashboard.shot(page, "login")
        page.get_by_label("Admin token").fill(dashboard.token)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(dashboard.base + "/")
        page.get_by_role("heading", name="Overview").wait_for()
        page.locator("#live", has_text="live (websocket)").wait_for(timeout=LIVE_S * MS)
        assert context.request.get(dashboard.base + "/api/v1/agents").status == 200
    finally:
        context.close()


def test_the_overview_shows_the_connected_agent_and_pauses_it(dashboard: Dashboard) -> None:
    """The laptop's row shows its state and what it has on the server; its pause button
    pauses it in the catalog and resume undoes it. The worker is listed with face crop; the
    Backups section says this server holds the only copy."""
    context = dashboard.context()
    try:
        page = dashboard.logged_in(context, "#/overview")
        row = page.locator("tr[data-agent=laptop]")
        row.wait_for()
        assert "photo" in row.inner_text()
        page.get_by_text("No backup server is set up").wait_for()  # /api/v1/replication
        page.locator("#workers", has_text="facecrop").or_(
            page.locator(".notice-unavailable")).first.wait_for(timeout=LIVE_S * MS)
        dashboard.shot(page, "overview")
        row.get_by_role("button", name="Pause uploads from laptop").click()
        row.get_by_text("Paused").wait_for()
        assert dashboard.api("/api/v1/agents/laptop")[1]["paused"] is True
        row.get_by_role("button", name="Resume uploads from laptop").click()
        row.get_by_role("button", name="Pause uploads from laptop").wait_for()
        assert dashboard.api("/api/v1/agents/laptop")[1]["paused"] is False
    finally:
        context.close()


def _tile_appears_live(dashboard: Dashboard, init_script: str, name: str, seed: int,
                       mode: str, shot: str = "") -> list[str]:
    context = dashboard.context(init_script=init_script)
    sockets: list[str] = []
    try:
        page = dashboard.logged_in(context, "#/library?folder=laptop/photos")
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.locator("#live", has_text=f"live ({mode})").wait_for(timeout=LIVE_S * MS)
        page.locator("#photos img[alt='beach.jpg']").wait_for()
        page.evaluate("window.__notReloaded = true")
        make_jpeg(dashboard.laptop.watches["photos"] / name, seed=seed)
        tile = page.locator(f"#photos img[alt='{name}']")
        tile.wait_for(timeout=LIVE_S * MS)
        assert page.evaluate("window.__notReloaded") is True
        _until_true(page, f"() => document.querySelector(\"#photos img[alt='{name}']\")"
                          ".complete", 10)
        assert tile.evaluate("img => img.naturalWidth") > 0, "the thumbnail did not load"
        if shot:
            dashboard.shot(page, shot)
        return sockets
    finally:
        context.close()


def test_a_new_photo_appears_in_the_library_without_a_reload(dashboard: Dashboard) -> None:
    """A photo dropped into the laptop's watch folder shows up as a thumbnail in the open
    library folder, carried by the WebSocket; its tile opens the photo's page with its
    SHA-256 and a download link for the original."""
    _tile_appears_live(dashboard, "", "sunset.jpg", 11, "websocket", shot="library")
    sha = sha256_of(dashboard.laptop.watches["photos"] / "sunset.jpg")
    context = dashboard.context()
    try:
        page = dashboard.logged_in(context, "#/library?folder=laptop/photos")
        page.locator("#photos img[alt='sunset.jpg']").click()
        page.get_by_role("heading", name="sunset.jpg").wait_for()
        page.locator("dl.facts, .notice-unavailable").first.wait_for()
        assert page.locator("dl.facts").get_by_text(sha).is_visible()
        link = page.get_by_role("link", name="Download the original")
        assert link.get_attribute("href") == f"/download/{sha}"
        dashboard.shot(page, "photo")
    finally:
        context.close()


def test_with_websockets_blocked_the_page_updates_by_long_polling(
        dashboard: Dashboard) -> None:
    """With WebSocket made to throw in the page, the indicator says polling and a new photo
    still appears, through /api/v1/events long-polls; no WebSocket was opened."""
    sockets = _tile_appears_live(dashboard, BLOCK_WEBSOCKET, "harbour.jpg", 12, "polling")
    assert sockets == []


def test_safety_says_a_card_is_safe_to_format_only_when_nothing_is_left_behind(
        dashboard: Dashboard) -> None:
    """The laptop paused with a new photo in its folder: its shoot says "Not yet" and counts
    the photo as only on the laptop; resumed, the photo reaches the server and the same page
    turns to "Safe to format the card" without a reload."""
    context = dashboard.context()
    try:
        page = dashboard.logged_in(context, "#/safety")
        page.locator("article.shoot, .notice-unavailable").first.wait_for(timeout=LIVE_S * MS)
        assert page.locator(".verdict-unsafe").count() == 0, page.locator("main").inner_text()
        assert page.get_by_text("Safe to format the card.").first.is_visible()
        dashboard.api("/api/v1/agents/laptop/pause", method="POST", body={"paused": True})
        try:
            make_jpeg(dashboard.laptop.watches["photos"] / "pending.jpg", seed=13)
            unsafe = page.locator(".verdict-unsafe", has_text="still only on laptop")
            unsafe.wait_for(timeout=LIVE_S * MS)
            dashboard.shot(page, "safety")
        finally:
            dashboard.api("/api/v1/agents/laptop/pause", method="POST", body={"paused": False})
        page.locator(".verdict-unsafe").first.wait_for(state="detached", timeout=LIVE_S * MS)
        assert page.get_by_text("Safe to format the card.").first.is_visible()
    finally:
        context.close()


def test_a_shoot_on_the_safety_page_opens_its_photos_in_the_library(
        dashboard: Dashboard) -> None:
    """Each shoot links to its photos: the library opens on the shoot's folder narrowed to
    its span, every tile a photo of the shoot, and a link back to the whole folder."""
    [status, body] = dashboard.api("/api/v1/shoots")
    assert status == 200
    shoot = next(s for s in body["shoots"] if s["on_server_verified"])
    folder = f"{shoot['agent_id']}/{shoot['folder']}"
    [_, level] = dashboard.api(f"/api/v1/library?folder={folder}")
    expected = sorted(p["name"] for p in level["photos"]
                      if shoot["start_ms"] <= p["taken_ms"] <= shoot["end_ms"])
    assert expected, "the shoot's photos are in its folder"
    context = dashboard.context()
    try:
        page = dashboard.logged_in(context, "#/safety")
        page.locator("a.shoot-photos").first.wait_for(timeout=LIVE_S * MS)
        links = page.locator("a.shoot-photos")
        hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
        wanted = next(h for h in hrefs if h and f"from={shoot['start_ms']}&" in h
                      and f"to={shoot['end_ms']}" in h)
        page.locator(f"a.shoot-photos[href='{wanted}']").click()
        page.locator("#shoot").wait_for()
        page.locator("#photos img").first.wait_for(timeout=LIVE_S * MS)
        shown = sorted(page.locator("#photos img").evaluate_all(
            "imgs => imgs.map(i => i.alt)"))
        assert shown == expected
        assert page.get_by_role("link", name="Show the whole folder").is_visible()
    finally:
        context.close()


def test_a_conflict_resolved_on_the_page_changes_the_catalog(dashboard: Dashboard) -> None:
    """The parked conflict shows both versions; "keep the new version" makes the laptop's
    rewrite the current version, as the API and `photonic conflicts list` then say."""
    [conflict] = dashboard.api("/api/v1/conflicts")[1]["conflicts"]
    context = dashboard.context()
    try:
        page = dashboard.logged_in(context, "#/conflicts")
        card = page.locator(f"article[data-conflict='{conflict['id']}']")
        card.wait_for()
        assert card.get_by_role("heading", name="2024/IMG_1.jpg").is_visible()
        assert card.locator("img, .thumb-missing").count() == 2
        _until_true(page, """() => [...document.querySelectorAll('article.conflict img')]
            .every(img => img.complete && img.naturalWidth > 0)""", LIVE_S)
        card.locator("dl.facts").nth(1).wait_for()
        dashboard.shot(page, "conflicts")
        card.get_by_role("button", name="Keep the new version from laptop").click()
        page.get_by_text("No conflicts").wait_for(timeout=LIVE_S * MS)
    finally:
        context.close()
    assert dashboard.api("/api/v1/conflicts")[1]["conflicts"] == []
    level = dashboard.api("/api/v1/library?folder=laptop/photos/2024")[1]
    heads = {p["name"]: p["sha256"] for p in level["photos"]}
    assert heads["IMG_1.jpg"] == conflict["incoming_sha256"]
    admin = Path(dashboard.server.root).parent / "admin"
    listed = run_cli("conflicts", "list", "--config", str(_admin_config(dashboard, admin)))
    assert listed.returncode == 0, listed.stderr
    assert "IMG_1.jpg" not in listed.stdout


def _admin_config(dashboard: Dashboard, root: Path) -> Path:
    from tests.support.daemons import make_agent

    return make_agent(root, dashboard.server.pki, "admin", dashboard.server).config_path


def _portraits_zip(folder: Path) -> Path:
    photo = astronaut_jpeg(folder / "astronaut.jpg")
    archive = folder / "portraits.zip"
    with Image.open(photo) as image, zipfile.ZipFile(archive, "w") as zf:
        zf.write(photo, "portraits/astronaut.jpg")
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "mirrored.jpg")
        zf.write(folder / "mirrored.jpg", "portraits/mirrored.jpg")
    return archive


def test_a_zip_uploaded_on_the_processing_page_is_processed_and_downloads(
        dashboard: Dashboard, tmp_path: Path) -> None:
    """A ZIP of two portraits, face crop at 128 px: the page uploads it, shows each photo's
    job until done, and "download all" gives a ZIP whose every file Pillow opens as a
    128 x 128 image."""
    archive = _portraits_zip(tmp_path)
    context = dashboard.context()
    try:
        page = dashboard.logged_in(context, "#/processing")
        page.get_by_label("Crop to the face").check()
        page.get_by_label("Output size (pixels, 16 to 4096)").fill("128")
        page.locator("#files").set_input_files(str(archive))
        page.get_by_text("1 file chosen").wait_for()
        page.get_by_role("button", name="Upload and start").click()
        page.locator("#watch .notice, #download-all").first.wait_for(timeout=LIVE_S * MS)
        if page.locator(".notice-unavailable").count():
            dashboard.shot(page, "processing-unavailable")
            pytest.skip("this server has no POST /api/v1/uploads: the page says so")
        page.locator("#download-all[aria-disabled=false]").wait_for(timeout=JOB_S * MS)
        assert page.locator("#upload-files li").count() == 2
        assert page.get_by_text("Finished: 2 of 2 photos done.").is_visible(), \
            page.locator("#watch").inner_text()
        dashboard.shot(page, "processing")
        with page.expect_download() as download:
            page.locator("#download-all").click()
        data = Path(download.value.path()).read_bytes()
        page.goto(dashboard.base + "/#/jobs")
        batch = page.locator("#jobs-recent article.job", has_text="Crop to the face").first
        batch.get_by_text("2 of 2 done").wait_for(timeout=LIVE_S * MS)
        batch.get_by_text("Photos in this batch").click()
        batch.locator("ul.children li", has_text="Done").nth(1).wait_for()
        assert batch.get_by_role("link", name="Download all results (ZIP)").is_visible()
        dashboard.shot(page, "jobs")
    finally:
        context.close()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        assert len(names) == 2, names
        for name in names:
            with Image.open(io.BytesIO(zf.read(name))) as image:
                image.load()
                assert image.size == (128, 128), (name, image.size)


def test_a_cross_site_post_or_one_without_the_csrf_token_is_refused(
        dashboard: Dashboard) -> None:
    """Logged in, a form on another origin that posts to the pause endpoint gets 403 (the
    session cookie alone is not enough), and so does a POST from the dashboard's own origin
    that leaves out X-CSRF-Token; the agent stays unpaused."""
    evil = "http://127.0.0.1:9/evil.html"  # never reached: the page is served by the route
    context = dashboard.context()
    try:
        page = dashboard.logged_in(context, "#/overview")
        status = page.evaluate("""async () => (await fetch('/api/v1/agents/laptop/pause', {
            method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({paused: true})})).status""")
        assert status == 403
        context.route(evil, lambda route: route.fulfill(content_type="text/html", body=(
            f'<form method="post" enctype="text/plain" '
            f'action="{dashboard.base}/api/v1/agents/laptop/pause">'
            '<input name=\'{"paused": true, "x": "\' value=\'"}\'>'
            '<button>win a prize</button></form>')))
        attacker = context.new_page()
        attacker.goto(evil)
        with attacker.expect_navigation() as landed:
            attacker.get_by_role("button", name="win a prize").click()
        assert landed.value is not None and landed.value.status == 403
    finally:
        context.close()
    assert dashboard.api("/api/v1/agents/laptop")[1]["paused"] is False


def test_the_jobs_page_moves_a_running_job_s_bar_from_progress_events(
        dashboard: Dashboard) -> None:
    """A worker reports progress on a running job: on the open Jobs page that job's bar and
    message move to what it reported, carried by a job_progress event; the page does not
    read the job list again to show it (no /api/v1/jobs request after it loaded)."""
    worker = ScriptedWorker(dashboard.server, "worker", ["bgremove"])
    context = dashboard.context()
    try:
        status, job = dashboard.api("/api/v1/jobs", method="POST", body={
            "kind": "bgremove", "library_paths": ["laptop/photos/beach.jpg"]})
        assert status == 201, job
        leased = worker.next_assignment().job
        worker.send(WorkProgress(leased.job_id, leased.attempts, 0.1, "processing",
                                 processing=True))
        page = dashboard.logged_in(context, "#/jobs")
        card = page.locator(f"#jobs-running article[data-job='{leased.job_id}']")
        card.locator(".progress-message", has_text="processing").wait_for(
            timeout=LIVE_S * MS)
        reads: list[str] = []
        page.on("request", lambda r: reads.append(r.url) if "/api/v1/jobs" in r.url else None)
        worker.send(WorkProgress(leased.job_id, leased.attempts, 0.5, "rendition 4 of 8",
                                 processing=True))
        card.locator(".progress-message", has_text="rendition 4 of 8").wait_for(
            timeout=LIVE_S * MS)
        bar = card.locator(":scope > progress")
        assert bar.evaluate("p => p.value") == 0.5
        assert bar.get_attribute("aria-label", timeout=MS).endswith(": 50%")
        assert reads == [], reads
        output = worker.upload(leased, b"cut-out" * 100, "beach.png")
        worker.send(WorkDone(leased.job_id, leased.attempts, (output,)))
        page.locator(f"#jobs-recent article[data-job='{leased.job_id}']").wait_for(
            timeout=LIVE_S * MS)
    finally:
        context.close()
        worker.close()
