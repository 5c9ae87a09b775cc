"""Fixtures for the dashboard tests: Debian's chromium driven headless by Playwright (never a
downloaded browser), the real service on FUSE fake cameras, and screenshots kept as test
artefacts under test-artifacts/ (gitignored)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from camera_service.app import Application
from camera_service.testing import fakecams

CHROMIUM = "/usr/bin/chromium"
# No sandbox (root in CI), and nothing that would make chromium reach out to the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]


def _skip_reason() -> str | None:
    if async_playwright is None:
        return "the Python package playwright is not installed (pip install -e .[test])"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt install chromium; `make test` installs it)"
    return None


class BrowserPage:
    """One chromium page with the errors it logged; `open()` loads the dashboard."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        page.on(
            "console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda exc: self.console_errors.append(f"page error: {exc}"))

    async def open(self, app: Any) -> Page:
        await self.page.goto(f"http://127.0.0.1:{app.port}/")
        return self.page

    async def sign_in(self, app: Any, token: str) -> Page:
        page = await self.open(app)
        await page.get_by_label("JWT or API key").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        return page

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"dashboard-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    """One chromium for the module (launching it is the slow part); tests get fresh contexts.
    Everything of these tests runs in the module's event loop, the service included."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()
    finally:
        await playwright.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def browser(chromium: Browser) -> AsyncIterator[Any]:
    """`await browser(width=..., height=...)` -> a BrowserPage in a fresh context (no cookies,
    no storage, nothing shared with other tests)."""
    contexts = []

    async def open_page(width: int = 1280, height: int = 900) -> BrowserPage:
        context = await chromium.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(10000)  # well above anything the page should take
        return BrowserPage(page)

    yield open_page
    for context in contexts:
        await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def dashboard_app(make_config, fake_cameras) -> AsyncIterator[Any]:
    """`await dashboard_app(extra)` -> the service on the fake mount with two streaming cameras
    (an MJPG one, video0, and a YUYV one, video2); recordings in H.264 so browsers play them.
    (Not conftest's start_app: that one runs in each test's own loop.)"""
    fake_cameras.add("video0", fakecams.streaming_camera())
    fake_cameras.add("video2", fakecams.yuyv_only_camera())
    apps: list[Application] = []

    async def start(extra: dict[str, dict[str, Any]] | None = None) -> Application:
        overrides: dict[str, dict[str, Any]] = {
            "camera": {"device_dir": fake_cameras.dev_dir},
            "capture": {"idle_stop_seconds": 0.5},
            "recording": {"codec": "h264"},
        }
        for section, values in (extra or {}).items():
            overrides.setdefault(section, {}).update(values)
        app = Application(make_config(overrides), env={})
        await app.start()
        apps.append(app)
        await app.monitor.wait_ready(10)
        return app

    yield start
    for app in reversed(apps):
        await app.stop()
