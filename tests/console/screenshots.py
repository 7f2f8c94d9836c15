"""Screenshots of every console page for docs/console.md, taken in Debian's chromium.

    .venv/bin/python -m tests.console.screenshots docs/console

Starts `mloop serve` on the browser tests' demo data (`build_console_data`, auth on) plus an
A/B deployment with traffic, labelled predictions and a job, logs in as `root` (admin: every
page, Jobs included, every action enabled) with its API key through the login form and saves
one PNG per page in light mode, the monitoring page in dark mode and the deployments page at
phone width. Same harness as the browser tests (`tests/console/browser`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx

from tests.console.browser import DESKTOP, PHONE, launch, start_playwright
from tests.console.conftest import build_console_data
from tests.support.env import home_env
from tests.support.loopkit import churn_rows
from tests.support.serverproc import served
from tests.support.waiting import wait_for

AB = {
    "name": "churn-ab",
    "policy": "ab",
    "variants": [
        {"name": "control", "model": "churn@production", "weight": 70},
        {"name": "challenger", "model": "churn/2", "weight": 30},
    ],
}
PAGES = [  # (file name, path)
    ("models", "/ui/models"),
    ("deployments", "/ui/deployments"),
    ("deployment", "/ui/deployments/churn-ab"),
    ("monitoring", "/ui/monitoring"),
    ("feature", "/ui/monitoring/features/tenure_months"),
    ("approvals", "/ui/approvals"),
    ("audit", "/ui/audit"),
    ("jobs", "/ui/jobs"),
]


def traffic(base: str, key: str) -> None:
    """Predictions (half of them drifted) with labels, A/B traffic and one async job."""
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.post(f"{base}/deployments", json=AB, headers=auth, timeout=60).status_code == 201
    rows = churn_rows(300) + churn_rows(300, seed=9, drift=True)

    def batch() -> httpx.Response | None:
        answer = httpx.post(f"{base}/predict/batch", json={"instances": rows}, headers=auth)
        return answer if answer.status_code == 200 else None

    answer = wait_for(batch, "the demo server answering", timeout=120)
    ids = [p["prediction_id"] for p in answer.json()["predictions"]]
    labels = [{"prediction_id": i, "actual": int(n % 3 == 0)} for n, i in enumerate(ids)]
    httpx.post(f"{base}/feedback", json={"feedback": labels}, headers=auth, timeout=60)
    for n, row in enumerate(rows[:60]):
        body = {"features": row, "user_id": f"user-{n}"}
        httpx.post(f"{base}/deployments/churn-ab/predict", json=body, headers=auth, timeout=60)
    httpx.post(f"{base}/predict/async", json={"instances": rows[:50]}, headers=auth, timeout=60)


def take(base: str, folder: Path, key: str) -> list[Path]:
    """Log in and save every page (light), monitoring (dark), deployments (phone)."""
    playwright = start_playwright()
    saved = []
    try:
        browser = launch(playwright)
        context = browser.new_context(viewport=DESKTOP, base_url=base, color_scheme="light")
        page = context.new_page()
        page.goto("/ui/login")
        saved.append(_shot(page, folder / "login.png"))
        page.fill("input[name=api_key]", key)
        page.click("button[type=submit].primary")
        page.wait_for_url("**/ui/models")
        for name, path in PAGES:
            page.goto(path)
            if page.locator("[data-chart]").count():
                page.wait_for_selector("[data-chart] .main-svg")
            saved.append(_shot(page, folder / f"{name}.png"))
        page.goto("/ui/monitoring")
        page.click("[data-theme-toggle]")
        page.wait_for_selector("[data-chart] .main-svg")
        saved.append(_shot(page, folder / "monitoring-dark.png"))
        page.click("[data-theme-toggle]")
        page.set_viewport_size(PHONE)
        page.goto("/ui/deployments")
        saved.append(_shot(page, folder / "deployments-phone.png"))
        browser.close()
    finally:
        playwright.stop()
    return saved


def _shot(page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    return path


def main(folder: str) -> None:
    out = Path(folder).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mloop-shots-") as scratch:
        home = Path(scratch) / "home"
        with home_env(home):
            data = build_console_data(home)
            with served(data.settings, folder=Path(scratch), MLOOP_AUTH="on") as server:
                traffic(server.url, data.keys["root"])
                for path in take(server.url, out, data.keys["root"]):
                    print(path)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/console")
