"""The web dashboard (PROTOCOL 11, section 7 `GET /`) in a real browser: Debian's chromium,
headless, driven by Playwright, against the real service on FUSE fake cameras, with real JWTs
and API keys. Screenshots of the main views go to test-artifacts/ (not committed)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import socket
import time

import pytest
from conftest import mint_token, wait_until, ws_url

from camera_service.auth.api_keys import ApiKeyStore
from camera_service.auth.sessions import AuthenticationFailed
from camera_service.client import RpcClient
from camera_service.testing import fakecams

# Missing playwright skips these tests with that reason (chromium: see dashboard_fixtures).
expect = pytest.importorskip(
    "playwright.async_api", reason="the Python package playwright is not installed"
).expect

# One event loop for the module: the browser (dashboard_fixtures.chromium) lives in it.
pytestmark = [pytest.mark.fuse, pytest.mark.asyncio(loop_scope="module")]
# The `browser` and `dashboard_app` fixtures.
pytest_plugins = ["dashboard_fixtures"]

CARD = "li.camera[data-name={}]"
# Distinct frames seen in an <img> (up to 3, within a second), drawn through a small canvas.
DISTINCT_FRAMES_JS = """async (selector) => {
  const img = document.querySelector(selector);
  const canvas = Object.assign(document.createElement("canvas"), {width: 160, height: 90});
  const ctx = canvas.getContext("2d");
  const seen = new Set();
  for (let i = 0; i < 20 && seen.size < 3; i++) {
    ctx.drawImage(img, 0, 0, 160, 90);
    seen.add(canvas.toDataURL());
    await new Promise((r) => setTimeout(r, 50));
  }
  return seen.size;
}"""
SHA256_OF_URL_JS = """async (url) => {
  const response = await fetch(url);
  const digest = await crypto.subtle.digest("SHA-256", await response.arrayBuffer());
  return [response.status, [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")];
}"""


async def wait_js(page, function: str, arg=None, timeout: float = 10.0) -> None:
    """Poll a JS function in the page until it returns true. (The page's CSP forbids eval,
    which Playwright's wait_for_function uses for its predicate.)"""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(function, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {function}")
        await asyncio.sleep(0.05)


async def live_frames(page, name: str) -> tuple[int, int]:
    """(naturalWidth, distinct frames within ~1 s) of camera `name`'s live view."""
    img = f"{CARD.format(name)} img.live"
    await wait_js(page, "(sel) => document.querySelector(sel)?.naturalWidth > 0", img)
    width = await page.eval_on_selector(img, "i => i.naturalWidth")
    return width, await page.evaluate(DISTINCT_FRAMES_JS, img)


def token(role: str) -> str:
    return mint_token(role, user=f"{role}-user")


def sha256_file(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


async def test_page_is_static_cached_and_sign_in_needs_a_valid_key(browser, dashboard_app):
    app = await dashboard_app()
    key, entry = ApiKeyStore(app.authenticator.api_keys.path).create("admin", "dashboard test")

    def key_loaded() -> bool:  # the server picks the new key file up through inotify
        try:
            app.authenticator.api_keys.verify(key)
            return True
        except AuthenticationFailed:
            return False

    await wait_until(key_loaded, 5, "the API key to be loaded")
    tab = await browser()
    page = await tab.open(app)

    # `/` is the static page, cached with an ETag, and shows nothing without credentials.
    base = f"http://127.0.0.1:{app.port}"
    first = await page.request.get(f"{base}/")
    assert first.status == 200
    assert first.headers["content-type"].startswith("text/html")
    assert "max-age" in first.headers["cache-control"]
    assert "connect-src 'self'" in first.headers["content-security-policy"]
    assert first.headers["referrer-policy"] == "no-referrer"
    again = await page.request.get(f"{base}/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status == 304
    script = await page.request.get(f"{base}/dashboard/app.js")
    assert script.status == 200 and "javascript" in script.headers["content-type"]
    assert (await page.request.get(f"{base}/dashboard/__init__.py")).status == 404
    assert (await page.request.get(f"{base}/dashboard/../app.py")).status == 404
    assert await page.locator("#dashboard").is_hidden()
    assert await page.locator("li.camera").count() == 0

    await page.get_by_label("JWT or API key").fill("cs_" + "x" * 43)
    await page.get_by_role("button", name="Sign in").click()
    errors = page.locator("#errors")
    await errors.get_by_text("Authentication failed").wait_for()
    assert "authenticate: Authentication failed (-32001)" in await errors.inner_text()
    assert await page.locator("#sign-in").is_visible()
    assert await page.locator("#dashboard").is_hidden()
    assert await page.evaluate("sessionStorage.length") == 0
    await tab.screenshot("sign-in-failed")

    # After the refusal the key field has the focus again: sign in from the keyboard.
    assert await page.evaluate("document.activeElement.id") == "token"
    await page.keyboard.type(key)
    await page.keyboard.press("Enter")
    await page.locator(CARD.format("camera0")).wait_for()
    assert (
        await page.locator("#conn").inner_text() == f"Connected as api_key:{entry.key_id} (admin)"
    )
    assert await errors.get_by_text("Authentication failed").count() == 0  # cleared on sign-in
    assert await page.evaluate("Object.values(sessionStorage)") == [key]
    assert await page.evaluate("localStorage.length") == 0
    # A reload in the same tab signs in again from sessionStorage.
    await page.reload()
    await page.locator(CARD.format("camera2")).wait_for()
    assert await page.locator("#sign-in").is_hidden()
    # Signing out forgets the key.
    await page.get_by_role("button", name="Sign out").click()
    await page.locator("#sign-in").wait_for()
    assert await page.evaluate("sessionStorage.length") == 0
    assert await page.locator("li.camera").count() == 0
    assert tab.console_errors == []


async def test_grid_shows_live_cameras_and_follows_hot_plug(browser, dashboard_app, fake_cameras):
    app = await dashboard_app()
    tab = await browser()
    page = await tab.sign_in(app, token("admin"))
    for name in ("camera0", "camera2"):  # MJPG passed through, YUYV encoded by the service
        card = page.locator(CARD.format(name))
        await card.wait_for()
        assert await card.locator("dd.status").inner_text() == "CONNECTED"
        assert await card.locator("dl").inner_text() == (
            "Status\nCONNECTED\nResolution\n1280x720\nFPS\n30"
        )
        width, distinct = await live_frames(page, name)
        assert width == 1280
        assert distinct >= 2, f"{name}: the live image did not change"
    assert await page.locator("#camera-count").inner_text() == "(2)"
    await tab.screenshot("grid")

    fake_cameras.add("video6", fakecams.streaming_camera(card="Plugged Camera"))
    t0 = time.monotonic()
    card = page.locator(CARD.format("camera6"))
    await card.wait_for(timeout=2000)
    assert time.monotonic() - t0 < 2.0
    assert await card.locator(".camera-name").inner_text() == "Plugged Camera"
    assert await card.locator("dd.status").inner_text() == "CONNECTED"
    assert (await live_frames(page, "camera6"))[0] == 1280
    assert await page.locator("#camera-count").inner_text() == "(3)"

    fake_cameras.remove("video6")
    t0 = time.monotonic()
    await card.wait_for(state="detached", timeout=2000)
    assert time.monotonic() - t0 < 2.0
    assert await page.locator("#camera-count").inner_text() == "(2)"
    # The browser let go of the unplugged camera's stream; the others still play.
    assert (await live_frames(page, "camera0"))[1] >= 2
    assert tab.console_errors == []


async def test_snapshot_button_download_delete_and_paging(browser, dashboard_app):
    app = await dashboard_app()
    tab = await browser()
    page = await tab.sign_in(app, token("operator"))
    card = page.locator(CARD.format("camera0"))
    await card.get_by_role("button", name="Take snapshot").click()
    row = page.locator("#snapshots tbody tr").first
    await row.wait_for()
    filename = await row.get_attribute("data-filename")
    assert filename.startswith("camera0_snapshot_") and filename.endswith(".jpg")
    assert "1280x720" in await row.inner_text()
    on_disk = os.path.join(app.config.snapshots.path, filename)
    link = row.get_by_role("link", name=f"Download {filename}")
    href = await link.get_attribute("href")
    assert href.startswith(f"/files/snapshots/{filename}?token=")
    status, digest = await page.evaluate(SHA256_OF_URL_JS, href)
    assert (status, digest) == (200, sha256_file(on_disk))
    # The link really downloads (Content-Disposition) the same bytes.
    async with page.expect_download() as info:
        await link.click()
    download = await info.value
    assert download.suggested_filename == filename
    assert sha256_file(await download.path()) == sha256_file(on_disk)

    # Paging: eleven more files put there behind the service's back (the index sees them).
    for n in range(11):
        shutil.copy(on_disk, os.path.join(app.config.snapshots.path, f"extra_{n:02d}.jpg"))
    await wait_until(lambda: app.snapshot_files.list(1, 0)[1] == 12, 5, "the index to see 12")
    snapshots = page.locator("#snapshots")
    await snapshots.get_by_role("button", name="Refresh").click()
    await snapshots.locator(".range").get_by_text("1-10 of 12").wait_for()
    assert await snapshots.locator("tbody tr").count() == 10
    await snapshots.get_by_role("button", name="Next").click()
    await snapshots.locator(".range").get_by_text("11-12 of 12").wait_for()
    assert await snapshots.locator("tbody tr").count() == 2
    assert await snapshots.get_by_role("button", name="Next").is_disabled()
    await snapshots.get_by_role("button", name="Previous").click()
    await snapshots.locator(".range").get_by_text("1-10 of 12").wait_for()
    await tab.screenshot("snapshots")

    # Delete asks first: Cancel keeps the file, Delete removes it. The first snapshot is the
    # oldest file now, on the second page.
    await snapshots.get_by_role("button", name="Next").click()
    target = snapshots.locator(f'tr[data-filename="{filename}"]')
    await target.get_by_role("button", name=f"Delete {filename}").click()
    dialog = page.locator("dialog#confirm")
    await dialog.wait_for()
    assert filename in await dialog.inner_text()
    # The safe choice has the focus; Escape cancels.
    assert await page.evaluate("document.activeElement.textContent") == "Cancel"
    await page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    assert os.path.exists(on_disk)
    await target.get_by_role("button", name=f"Delete {filename}").click()
    await dialog.get_by_role("button", name="Delete").click()
    await target.wait_for(state="detached")
    assert not os.path.exists(on_disk)
    await snapshots.locator(".range").get_by_text("11-11 of 11").wait_for()
    assert tab.console_errors == []


async def test_recording_started_in_the_page_plays_in_the_page(browser, dashboard_app):
    app = await dashboard_app()
    tab = await browser()
    page = await tab.sign_in(app, token("admin"))
    await page.locator(CARD.format("camera2")).get_by_role("button", name="Take snapshot").click()
    await page.locator("#snapshots tbody tr").first.wait_for()
    card = page.locator(CARD.format("camera0"))
    state = card.locator(".rec-state")

    # A recording started by another client shows up from its notification; after a reload
    # the elapsed time continues from the camera's `elapsed_time`, not from zero.
    other = await RpcClient.connect(ws_url(app))
    await other.authenticate(token("operator"))
    await other.call("start_recording", {"device": "camera0"})
    await state.get_by_text("Recording 0:00:0").wait_for()
    await asyncio.sleep(1.2)
    await page.reload()
    await expect(state).to_have_text(re.compile(r"^Recording 0:00:0[1-9]$"), timeout=1000)
    await other.call("stop_recording", {"device": "camera0"})
    await other.close()
    await state.wait_for(state="hidden")

    await card.get_by_role("button", name="Start recording").click()
    await state.get_by_text("Recording 0:00:01").wait_for()
    assert (
        await card.get_by_role("button", name="Stop recording").get_attribute("aria-pressed")
        == "true"
    )
    await tab.screenshot("recording")
    await card.get_by_role("button", name="Stop recording").click()
    await state.wait_for(state="hidden")
    await card.get_by_role("button", name="Start recording").wait_for()

    # The page's recording is the newest of the two, listed first.
    await expect(page.locator("#recordings tbody tr")).to_have_count(2)
    filename = await page.locator("#recordings tbody tr").first.get_attribute("data-filename")
    assert filename.startswith("camera0_")
    row = page.locator(f'#recordings tr[data-filename="{filename}"]')
    await page.locator("#recordings").get_by_role("button", name="Refresh").click()
    # The duration column, read from the finished file by the service.
    await expect(row.locator("td").nth(2)).to_have_text(re.compile(r"^\d+\.\d s$"))
    # The whole admin view (this one is docs/dashboard.png in the README).
    await page.locator("#storage-meter").wait_for()
    await tab.screenshot("overview")
    await row.get_by_role("button", name=f"Play {filename}").click()
    await wait_js(
        page,
        "() => { const v = document.getElementById('player');"
        " return v.readyState >= 2 && v.duration > 0; }",
    )
    duration = await page.eval_on_selector("#player", "v => v.duration")
    assert 0.8 < duration < 30
    assert (await page.locator("#player").get_attribute("src")).startswith(
        f"/files/recordings/{filename}?token="
    )
    await tab.screenshot("playback")

    # Admin: storage counts the new files; the retention policy set in the page is the
    # service's policy; cleanup runs it (nothing is old enough to go).
    recordings_count = page.locator('#storage-facts dt:text-is("Recordings") + dd')
    await expect(recordings_count).to_have_text(re.compile(r"^2 \(\d"))
    form = page.locator("#retention-form")
    await form.get_by_label("Policy").select_option("age")
    await form.get_by_label("Delete files older than (days)").fill("7")
    await form.get_by_label("Enabled").check()
    await form.get_by_role("button", name="Save policy").click()
    await page.locator("#announce").get_by_text("Retention policy updated").wait_for()
    client = await RpcClient.connect(ws_url(app))
    await client.authenticate(token("viewer"))
    policy = await client.call("get_retention_policy")
    await client.close()
    assert (policy["policy_type"], policy["enabled"], policy["max_age_days"]) == ("age", True, 7)
    await form.get_by_role("button", name="Clean up now").click()
    await page.locator("#announce").get_by_text("Cleanup: 0 files deleted").wait_for()
    assert os.path.exists(os.path.join(app.config.recording.path, filename))
    assert await page.locator("#errors li").count() == 0
    assert tab.console_errors == []


async def test_viewer_sees_no_controls_at_phone_width(browser, dashboard_app):
    app = await dashboard_app()
    operator = await RpcClient.connect(ws_url(app))
    await operator.authenticate(token("operator"))
    snapshot = await operator.call("take_snapshot", {"device": "camera0"})
    await operator.close()
    tab = await browser(width=390, height=844)
    page = await tab.sign_in(app, token("viewer"))
    await page.locator(f'#snapshots tr[data-filename="{snapshot["filename"]}"]').wait_for()
    width, distinct = await live_frames(page, "camera0")
    assert width == 1280 and distinct >= 2
    assert await page.locator("#conn").inner_text() == "Connected as viewer-user (viewer)"
    # What a viewer may use is there (live view, lists, downloads); no control is.
    assert await page.get_by_role("link", name=f"Download {snapshot['filename']}").count() == 1
    for name in ("Take snapshot", "Start recording", "Stop recording", "Delete", "Clean up now"):
        assert await page.get_by_role("button", name=name).count() == 0, name
    assert await page.locator(".controls, button.delete, button.snapshot").count() == 0
    assert await page.locator("#admin").is_hidden()
    # Phone width: one column, nothing wider than the screen.
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    boxes = [await page.locator(CARD.format(n)).bounding_box() for n in ("camera0", "camera2")]
    assert boxes[0]["x"] == boxes[1]["x"] and boxes[1]["y"] > boxes[0]["y"]
    await tab.screenshot("viewer-phone")
    assert tab.console_errors == []


async def test_api_errors_are_shown_in_the_page(browser, dashboard_app, fake_cameras):
    fake_cameras.add("video4", fakecams.streamon_fails_camera())
    # The default codec: the camera's MJPEG packets as they are, which browsers cannot play.
    app = await dashboard_app({"recording": {"codec": "copy"}})
    operator = await RpcClient.connect(ws_url(app))
    await operator.authenticate(token("operator"))
    await operator.call("start_recording", {"device": "camera0"})
    await asyncio.sleep(1)
    stopped = await operator.call("stop_recording", {"device": "camera0"})
    await operator.close()
    tab = await browser()
    page = await tab.sign_in(app, token("admin"))
    card = page.locator(CARD.format("camera4"))
    await card.get_by_role("button", name="Take snapshot").click()
    alert = page.get_by_role("alert")
    await alert.get_by_text("take_snapshot: Camera not available (-1001)").wait_for()
    # Its live view answered 503: the card says why instead of showing a broken image.
    note = card.locator(".view-note")
    await expect(note).to_have_text(
        re.compile(r"^Live view unavailable: .*VIDIOC_STREAMON failed.* \(HTTP 503\)$")
    )
    await tab.screenshot("api-error")
    await alert.get_by_role("button", name="Dismiss").first.click()
    await alert.get_by_text("take_snapshot").wait_for(state="detached")

    # A recording the browser cannot decode says so and points to the download.
    name = stopped["filename"]
    await page.get_by_role("button", name=f"Play {name}").click()
    await alert.get_by_text(f"Cannot play {name} here").wait_for()
    assert "use Download for MJPEG ones" in await alert.inner_text()


async def test_page_reconnects_after_the_service_restarts(browser, dashboard_app):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = await dashboard_app({"server": {"port": port}})
    tab = await browser()
    page = await tab.sign_in(app, token("operator"))
    await live_frames(page, "camera0")
    await app.stop()
    await page.locator("#conn").get_by_text("Not connected; retrying").wait_for()
    await asyncio.sleep(1)  # a few failed attempts (backoff) while nothing listens
    restarted = await dashboard_app({"server": {"port": port}})
    await page.locator("#conn").get_by_text("Connected as").wait_for(timeout=10000)
    width, distinct = await live_frames(page, "camera0")
    assert width == 1280 and distinct >= 2
    device = os.path.join(restarted.config.camera.device_dir, "video0")
    await wait_until(
        lambda: device in restarted.live.viewers and restarted.live.viewers[device].count > 0,
        5,
        "the page's live view on the restarted service",
    )
