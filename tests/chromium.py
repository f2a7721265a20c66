"""Where the browser tests find a Chromium or Chrome, and how `make test` installs one when it can.

`python -m tests.chromium` prints the browser's path; with `--install` it first installs Debian's chromium
through apt-get when none is found and this user may (root, or passwordless sudo). Anything it cannot fix
ends in one line on stderr naming what to do, and exit status 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

SETTING = "CHROMIUM"
NAMES_ON_PATH = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
MACOS_APPS = (
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
APT_PACKAGE = "chromium"
INSTALL_COMMAND = f"sudo apt-get install -y {APT_PACKAGE}"


class ChromiumMissing(Exception):
    """No usable browser; the message is the one line that says what to do."""


def find_chromium(environ: Mapping[str, str] = os.environ) -> str:
    """The CHROMIUM setting when given, else the first known browser on PATH (or in /Applications)."""
    path = environ.get("PATH", os.defpath)
    chosen = environ.get(SETTING, "")
    if chosen:
        found = shutil.which(chosen, path=path)
        if found is None:
            raise ChromiumMissing(
                f"{SETTING}={chosen} is not an executable; point it at a Chromium or Chrome, "
                "or unset it to search PATH"
            )
        return found
    for name in NAMES_ON_PATH:
        found = shutil.which(name, path=path)
        if found is not None:
            return found
    if sys.platform == "darwin":
        for app in MACOS_APPS:
            if os.access(app, os.X_OK):
                return app
    raise nothing_found()


def nothing_found() -> ChromiumMissing:
    install = "brew install --cask chromium" if sys.platform == "darwin" else INSTALL_COMMAND
    return ChromiumMissing(f"no Chromium or Chrome found; run `{install}` or set {SETTING}=/path/to/chrome")


def apt_install_prefix(environ: Mapping[str, str]) -> list[str] | None:
    """How to run apt-get here: directly as root, through passwordless sudo, or None when we cannot."""
    path = environ.get("PATH", os.defpath)
    apt_get, env = shutil.which("apt-get", path=path), shutil.which("env", path=path)
    if not sys.platform.startswith("linux") or apt_get is None or env is None:
        return None
    if os.geteuid() == 0:
        return [env]
    sudo = shutil.which("sudo", path=path)
    if sudo is None:
        return None
    # -n: never prompt; a password prompt inside `make test` would look like a hang.
    may_sudo = subprocess.run([sudo, "-n", "true"], capture_output=True, check=False)  # noqa: S603 - fixed argv
    return [sudo, "-n", env] if may_sudo.returncode == 0 else None


def install_chromium(environ: Mapping[str, str]) -> str:
    """What .ci/run used to do: apt-get update, then a quiet, non-interactive install of chromium."""
    prefix = apt_install_prefix(environ)
    if prefix is None:
        raise nothing_found()
    print(f"make test: no Chromium found; installing {APT_PACKAGE} with apt-get", file=sys.stderr, flush=True)
    apt = [*prefix, "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    for step in ([*apt, "update", "-qq"], [*apt, "install", "-y", "-qq", APT_PACKAGE]):
        # apt's progress goes to stderr so stdout stays the browser's path alone.
        if subprocess.run(step, stdout=sys.stderr, check=False).returncode:  # noqa: S603 - fixed argv
            raise ChromiumMissing(
                f"apt-get could not install {APT_PACKAGE} (see above); run `{INSTALL_COMMAND}` "
                f"or set {SETTING}=/path/to/chrome"
            )
    try:
        return find_chromium(environ)
    except ChromiumMissing:
        raise ChromiumMissing(
            f"apt-get installed {APT_PACKAGE} but none of {', '.join(NAMES_ON_PATH)} is on PATH; "
            f"set {SETTING}=/path/to/chrome"
        ) from None


def chromium_for_make(environ: Mapping[str, str], install: bool) -> str:
    try:
        return find_chromium(environ)
    except ChromiumMissing:
        # A CHROMIUM that points nowhere is the user's explicit choice: report it, install nothing.
        if not install or environ.get(SETTING):
            raise
        return install_chromium(environ)


def main(argv: Sequence[str]) -> int:
    try:
        print(chromium_for_make(os.environ, install="--install" in argv))
    except ChromiumMissing as missing:
        print(f"make test: {missing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
