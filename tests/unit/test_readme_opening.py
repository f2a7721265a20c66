"""The README's opening is what a newcomer follows: every command, setting and prerequisite it names holds."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.chromium import INSTALL_COMMAND, MACOS_APPS, NAMES_ON_PATH, find_chromium

ROOT = Path(__file__).resolve().parents[2]
OPENING = (ROOT / "README.md").read_text().split("\n## What it does")[0]
MAKE = shutil.which("make") or "make"


def make_dry_run(*args: str, path: str | None = None) -> str:
    """What `make -n` would run: recipes are shown, not executed, so this is cheap and changes nothing."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    if path is not None:
        env["PATH"] = path
    result = subprocess.run(  # noqa: S603 - make with our own arguments
        [MAKE, "--no-print-directory", "-n", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_every_make_command_in_the_opening_is_a_target():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", OPENING))

    assert {"dev", "test"} <= named
    assert named <= targets


def test_the_python_version_the_opening_names_is_the_one_required():
    (stated,) = re.findall(r"Python ≥ (3\.\d+)", OPENING)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())

    assert pyproject["project"]["requires-python"] == f">={stated}"
    assert f"sys.version_info < ({stated.replace('.', ', ')})" in (ROOT / "Makefile").read_text()


def test_every_setting_the_opening_names_is_checked_here():
    # A new `NAME` or `NAME=…` in the opening needs a test here that shows it is honoured.
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)(?:=[^`]*)?`", OPENING)) - {"PATH"}

    assert named == {"PORT", "PYTHON_313", "CHROMIUM", "STRIPE_API_KEY", "STRIPE_API_BASE"}


def test_make_dev_reads_the_stripe_settings_it_names():
    # What they do is shown end to end in tests/integration/test_dev_server.py.
    stack = (ROOT / "local" / "stack.py").read_text()

    assert 'environ.get("STRIPE_API_KEY")' in stack
    assert 'environ.get("STRIPE_API_BASE")' in stack


def test_port_moves_make_dev():
    assert "local.dev_server --port 4321" in make_dry_run("dev", "PORT=4321")


def test_python_313_is_what_the_layer_build_compiles_with():
    assert "Python 3.13" in OPENING
    assert "Runtime: python3.13" in (ROOT / "template.yaml").read_text()

    recipe = make_dry_run(
        "-C", "layers/shared", "build-SharedLayer", "ARTIFACTS_DIR=/tmp/x", "PYTHON_313=/opt/py"
    )

    assert '"/opt/py" -m pip install' in recipe
    assert '"/opt/py" -m compileall' in recipe


def fake_python(path: Path, version_ok: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nexit {0 if version_ok else 1}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def chosen_python(path: Path) -> str:
    recipe = make_dry_run("-C", "layers/shared", "build-SharedLayer", "ARTIFACTS_DIR=/tmp/x", path=str(path))
    chosen = re.search(r'^test -n "([^"]*)"', recipe, re.MULTILINE)
    assert chosen is not None
    return chosen.group(1)


@pytest.mark.parametrize(
    ("on_path", "under_pyenv", "expected"),
    [
        (True, True, "python3.13"),
        (False, True, "{pyenv}/versions/3.13.9/bin/python3.13"),
        (None, True, "{pyenv}/versions/3.13.9/bin/python3.13"),
        (None, None, ""),
    ],
    ids=["PATH first", "a python3.13 that is not 3.13 is passed over", "pyenv when PATH has none", "none"],
)
def test_python_313_is_found_as_the_opening_says(tmp_path, on_path, under_pyenv, expected):
    # Given a PATH with a python3.13 (3.13 or not) and/or a pyenv whose root holds a 3.13
    bin_dir, pyenv_root = tmp_path / "bin", tmp_path / "pyenv"
    bin_dir.mkdir()
    if on_path is not None:
        fake_python(bin_dir / "python3.13", version_ok=on_path)
    if under_pyenv is not None:
        fake_python(pyenv_root / "versions" / "3.13.9" / "bin" / "python3.13", version_ok=under_pyenv)
        (bin_dir / "pyenv").write_text(f"#!/bin/sh\necho {pyenv_root}\n")
        (bin_dir / "pyenv").chmod(0o755)

    assert "`python3.13` on `PATH`, then pyenv's `$(pyenv root)/versions/3.13*/bin/python3.13`" in " ".join(
        OPENING.split()
    )

    # When the layer build picks its Python
    chosen = chosen_python(bin_dir)

    # Then it is the one the opening promises (none: the build stops and asks for PYTHON_313)
    assert chosen == expected.format(pyenv=pyenv_root)


def test_chromium_names_the_browser_and_the_search_is_the_one_described(tmp_path):
    assert find_chromium({"CHROMIUM": sys.executable, "PATH": str(tmp_path)}) == sys.executable
    listed = re.search(
        r"the first of\s+(.*?)\s+on `PATH`", OPENING.split("**Chromium or Chrome**")[1], re.DOTALL
    )

    assert listed is not None
    assert re.findall(r"`([^`]+)`", listed.group(1)) == list(NAMES_ON_PATH)
    for app in MACOS_APPS:
        assert f"`{app.split('/Contents/')[0]}`" in OPENING


def test_the_install_command_the_opening_names_is_the_one_printed():
    assert f"`{INSTALL_COMMAND}`" in OPENING


def test_make_test_looks_for_the_browser_before_every_other_check():
    commands = make_dry_run("test").splitlines()
    checks = [
        "ruff check",
        "mypy",
        "sam validate",
        "tests/unit",
        "tests/integration",
        "sam build",
        "tests/e2e",
    ]

    def first(fragment: str) -> int:
        return next(i for i, command in enumerate(commands) if fragment in command)

    assert all(first(check) > first("-m tests.chromium --install") for check in checks)
    assert "-m tests.chromium --install" in make_dry_run("browser")


def test_ci_runs_make_test_and_nothing_else():
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    assert lines == ["set -euo pipefail", 'cd "$(dirname "$0")/.."', "make test"]
    assert "`.ci/run`, what CI calls, runs `make test` and nothing else" in " ".join(OPENING.split())
