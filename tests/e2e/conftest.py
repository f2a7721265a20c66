"""A `make dev` server started for the browser tests, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class DevServer:
    origin: str
    stripe: str  # the emulator's base URL, as the server printed it
    output: list[str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def dev_server() -> Iterator[DevServer]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "layers/shared"), str(ROOT / "functions/portal")]),
    }
    for key in ("STRIPE_API_KEY", "STRIPE_API_BASE", "PORTAL_POLICY_FILE"):
        env.pop(key, None)
    process = subprocess.Popen(  # noqa: S603 - our own dev server
        [sys.executable, "-m", "local.dev_server", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("Ctrl-C to stop."):
            break
    banner = "\n".join(lines)
    found = re.search(r"Stripe emulator on (http://127\.0\.0\.1:\d+)", banner)
    assert found, f"make dev did not start:\n{banner}"
    # Keep reading the request log so the server never blocks on a full pipe.
    stdout = process.stdout
    drain = threading.Thread(target=lambda: lines.extend(line.rstrip() for line in stdout), daemon=True)
    drain.start()
    yield DevServer(f"http://127.0.0.1:{port}", found.group(1), lines)
    process.terminate()
    process.wait(timeout=20)
    drain.join(timeout=5)
    assert process.returncode == 0, "\n".join(lines)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port is free again: nothing was left behind


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
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
