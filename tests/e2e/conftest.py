"""A `make dev` server started for the browser tests, and the machine's Chromium driven by Playwright."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chromium import ChromiumMissing, find_chromium
from tests.dev_server import DevServer, running_dev_server

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "browser"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def dev_server() -> Iterator[DevServer]:
    with running_dev_server() as server:
        yield server


@pytest.fixture(scope="session")
def organizations_dev_server() -> Iterator[DevServer]:
    """`make dev ORGANIZATIONS=1`: organization mode, Acme's admin and member on the sign-in page."""
    with running_dev_server("--organizations") as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    try:
        chromium = find_chromium()
    except ChromiumMissing as missing:
        pytest.fail(f"{missing} (`make browser` installs it where it can)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


@pytest.fixture(scope="session")
def output() -> Path:
    shutil.rmtree(OUTPUT, ignore_errors=True)
    OUTPUT.mkdir(parents=True)
    return OUTPUT
