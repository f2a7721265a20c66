"""What a release carries agrees with itself: the CHANGELOG's newest version is the package's version."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_newest_changelog_entry_is_the_package_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())

    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.MULTILINE)

    assert released
    assert released[0] == pyproject["project"]["version"]


def test_the_license_is_mit():
    assert (
        (ROOT / "LICENSE")
        .read_text()
        .startswith("MIT License\n\nCopyright (c) 2026 Portal Links contributors\n")
    )
