"""`python -m tests.chromium`, the command `make browser-deps` runs: which browser it picks, when it
installs one, and the one line it prints when it cannot."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chromium import INSTALL_COMMAND, NAMES_ON_PATH

ROOT = Path(__file__).resolve().parents[2]


def executable(path: Path, script: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def discover(path: Path, *args: str, chromium: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(path), "HOME": str(path)}
    if chromium is not None:
        env["CHROMIUM"] = chromium
    return subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "tests.chromium", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    found = tmp_path / "bin"
    found.mkdir()
    return found


def test_the_chromium_setting_names_the_browser_used(bin_dir, tmp_path):
    # Given a browser outside PATH and another one on it
    chosen = executable(tmp_path / "my-chrome")
    executable(bin_dir / "chromium")

    # When CHROMIUM points at the first
    result = discover(bin_dir, chromium=str(chosen))

    # Then that one is used
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{chosen}\n"


def test_a_chromium_setting_that_points_nowhere_is_one_clear_line_and_installs_nothing(bin_dir, tmp_path):
    # Given apt-get that would record being called
    calls = tmp_path / "apt-calls"
    executable(bin_dir / "apt-get", f'#!/bin/sh\necho "$@" >> {calls}\n')
    executable(bin_dir / "chromium")

    # When CHROMIUM names a missing file
    result = discover(bin_dir, "--install", chromium=str(tmp_path / "missing"))

    # Then one line says so, and nothing on PATH was silently used instead, nor installed
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"make test: CHROMIUM={tmp_path / 'missing'} is not an executable; "
        "point it at a Chromium or Chrome, or unset it to search PATH\n"
    )
    assert not calls.exists()


@pytest.mark.parametrize("name", NAMES_ON_PATH)
def test_each_known_browser_name_on_path_is_found(bin_dir, name):
    # Given only this browser on PATH
    browser = executable(bin_dir / name)

    # When discovery runs
    result = discover(bin_dir)

    # Then it is found
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{browser}\n"


def test_chromium_is_preferred_to_chrome(bin_dir):
    executable(bin_dir / "google-chrome")
    chromium = executable(bin_dir / "chromium")

    assert discover(bin_dir).stdout == f"{chromium}\n"


def test_nothing_on_path_and_no_apt_get_is_one_clear_line_naming_the_command(bin_dir):
    # Given an empty PATH (no browser, no apt-get)
    # When make test asks for a browser, installing if it can
    result = discover(bin_dir, "--install")

    # Then one line names the command to run and the setting
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"make test: no Chromium or Chrome found; run `{INSTALL_COMMAND}` or set CHROMIUM=/path/to/chrome\n"
    )


def test_without_install_nothing_on_path_is_the_same_line(bin_dir):
    result = discover(bin_dir)

    assert result.returncode == 1
    assert result.stderr.startswith("make test: no Chromium or Chrome found; run `")
    assert result.stderr.count("\n") == 1


def test_missing_browser_is_installed_with_apt_get_as_ci_did(bin_dir, tmp_path):
    # Given apt-get (a stand-in that records its calls and "installs" chromium), env, and sudo for non-root
    calls, installed = tmp_path / "apt-calls", bin_dir / "chromium"
    executable(
        bin_dir / "apt-get",
        "#!/bin/sh\n"
        f'echo "$DEBIAN_FRONTEND apt-get $*" >> {calls}\n'
        f'[ "$1" = install ] || exit 0\n'
        f'printf "#!/bin/sh\\n" > {installed} && {shutil.which("chmod")} +x {installed}\n',
    )
    os.symlink(shutil.which("env") or "/usr/bin/env", bin_dir / "env")
    executable(bin_dir / "sudo", '#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    executable(bin_dir / "true")

    # When make test asks for a browser
    result = discover(bin_dir, "--install")

    # Then apt-get ran update, then a quiet non-interactive install, and the new browser is used
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == [
        "noninteractive apt-get update -qq",
        "noninteractive apt-get install -y -qq chromium",
    ]
    assert result.stdout == f"{installed}\n"
    assert "installing chromium with apt-get" in result.stderr


def test_a_failed_apt_get_ends_in_one_clear_line(bin_dir):
    executable(bin_dir / "apt-get", "#!/bin/sh\necho 'E: Unable to locate package chromium' >&2\nexit 100\n")
    os.symlink(shutil.which("env") or "/usr/bin/env", bin_dir / "env")
    executable(bin_dir / "sudo", '#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    executable(bin_dir / "true")

    result = discover(bin_dir, "--install")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"make test: apt-get could not install chromium (see above); run `{INSTALL_COMMAND}` "
        "or set CHROMIUM=/path/to/chrome"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root needs no sudo")
def test_without_passwordless_sudo_nothing_is_installed(bin_dir, tmp_path):
    calls = tmp_path / "apt-calls"
    executable(bin_dir / "apt-get", f'#!/bin/sh\necho "$@" >> {calls}\n')
    os.symlink(shutil.which("env") or "/usr/bin/env", bin_dir / "env")
    executable(bin_dir / "sudo", "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n")

    result = discover(bin_dir, "--install")

    assert result.returncode == 1
    assert result.stderr.startswith("make test: no Chromium or Chrome found; run `")
    assert not calls.exists()
