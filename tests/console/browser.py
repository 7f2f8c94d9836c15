"""The browser harness: Playwright (the Python package) driving Debian's /usr/bin/chromium.

`ConsolePage` wraps one page of a fresh browser context: it logs in through the real form,
accepts `data-confirm` dialogs, saves numbered screenshots under
`test-artifacts/console/<test>/<n>-<name>.png`, and records every console error and page
error, which the fixture turns into a test failure. Playwright's own browser download is not
used (nor reachable here): the tests skip, or fail under MLOOP_REQUIRE_SERVICES=1, without
chromium or playwright.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.conftest import service_missing

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "console"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def launch(playwright: Any) -> Any:
    """Chromium from Debian's package (skips/fails through service_missing when absent)."""
    if not CHROMIUM.exists():
        service_missing(f"{CHROMIUM} is absent: apt-get install chromium")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)


def start_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        service_missing("playwright is not installed: pip install 'mloop[dev]'")
    return sync_playwright().start()


class ConsolePage:
    """One browser page on the live console, with screenshots and error capture."""

    def __init__(self, browser: Any, base_url: str, test_name: str) -> None:
        self.base_url = base_url
        self.context = browser.new_context(viewport=DESKTOP, base_url=base_url)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("dialog", lambda dialog: dialog.accept())  # data-confirm: confirmed
        self.folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.shots = 0
        self.expected: list[tuple[str, int]] = []

    def expect_status(self, url_part: str, status: int) -> None:
        """A refusal the test provokes on purpose: chromium logs the page's 4xx as a console
        error ("Failed to load resource"); that one is not a failure."""
        self.expected.append((url_part, status))

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url") or self.page.url
        for part, status in self.expected:
            if part in url and f"status of {status}" in message.text:
                return
        self.errors.append(f"console error on {url}: {message.text}")

    def goto(self, path: str) -> Any:
        """Open `path`; returns the response (its status is checked by the caller)."""
        return self.page.goto(path)

    def login(self, name: str, password: str) -> None:
        self.goto("/ui/login")
        self.page.fill("input[name=username]", name)
        self.page.fill("input[name=password]", password)
        self.page.click("button[type=submit].primary")
        self.page.wait_for_url(re.compile(r".*/ui/models$"))

    def shot(self, name: str, *, width: dict[str, int] | None = None) -> Path:
        """A full-page screenshot, numbered in the order taken (optionally at a width)."""
        if width is not None:
            self.page.set_viewport_size(width)
        self.shots += 1
        path = self.folder / f"{self.shots}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        if width is not None:
            self.page.set_viewport_size(DESKTOP)
        return path

    def close(self) -> None:
        self.context.close()
