"""Start `make dev`'s server as a subprocess on a free port, as a developer would, and stop it cleanly."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DevServer:
    origin: str
    stripe: str  # where the server says Stripe is: the emulator's base URL or the one it was given
    output: list[str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_dev_server(*arguments: str, **environment: str) -> Iterator[DevServer]:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STRIPE_API_KEY", "STRIPE_API_BASE", "PORTAL_POLICY_FILE", "PORTAL_POLICY")
    }
    env.update(environment)
    env["PYTHONPATH"] = os.pathsep.join(
        str(ROOT / part) for part in ("layers/shared", "functions/portal", "functions/webhook")
    )
    process = subprocess.Popen(  # noqa: S603 - our own dev server
        [sys.executable, "-m", "local.dev_server", "--port", str(port), *arguments],
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
    found = re.search(r"Stripe +(?:emulator on|at) (http://127\.0\.0\.1:\d+)", banner)
    if not found:
        process.kill()
        raise AssertionError(f"make dev did not start:\n{banner}")
    # Keep reading the request log so the server never blocks on a full pipe.
    stdout = process.stdout
    drain = threading.Thread(target=lambda: lines.extend(line.rstrip() for line in stdout), daemon=True)
    drain.start()
    try:
        yield DevServer(f"http://127.0.0.1:{port}", found.group(1), lines)
    finally:
        process.terminate()
        process.wait(timeout=20)
        drain.join(timeout=5)
    assert process.returncode == 0, "\n".join(lines)
    with socket.socket() as probe:
        # Nothing listens there any more (closed connections may linger in TIME_WAIT, which is fine).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
