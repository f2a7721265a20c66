"""The layer `sam build` produced is for Lambda's python3.13 on arm64, with bytecode Lambda can use as is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / ".aws-sam" / "build" / "SharedLayer" / "python"


@pytest.fixture(scope="module")
def layer() -> Path:
    if not LAYER.is_dir():
        pytest.fail("run `make build` first: .aws-sam/build/SharedLayer is missing")
    return LAYER


def test_native_extensions_are_aarch64_for_cpython_313(layer):
    extensions = [path.name for path in layer.rglob("*.so")]

    assert extensions, "expected native extensions (cryptography, cffi)"
    for name in extensions:
        assert "x86_64" not in name, name
        assert re.search(r"cpython-313-aarch64-linux-gnu\.so$|\.abi3\.so$", name), name
    wheel_tags = " ".join(path.read_text() for path in layer.glob("*.dist-info/WHEEL"))
    assert "x86_64" not in wheel_tags
    assert "manylinux" in wheel_tags
    assert "aarch64" in wheel_tags


def test_cryptography_binary_is_an_arm64_elf(layer):
    [binding] = list(layer.glob("cryptography/hazmat/bindings/_rust*.so"))

    header = binding.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


def test_all_bytecode_is_for_cpython_313_and_covers_every_module(layer):
    caches = list(layer.rglob("*.pyc"))
    sources = [path for path in layer.rglob("*.py") if "dist-info" not in str(path)]

    assert caches
    assert all(path.name.endswith(".cpython-313.pyc") for path in caches)
    missing = [
        src for src in sources if not (src.parent / "__pycache__" / f"{src.stem}.cpython-313.pyc").exists()
    ]
    assert missing == []


def test_our_package_is_in_the_layer(layer):
    assert (layer / "portal_links" / "portal.py").is_file()
    assert (layer / "portal_links" / "__pycache__" / "portal.cpython-313.pyc").is_file()


def test_built_function_holds_only_the_handler():
    function = ROOT / ".aws-sam" / "build" / "PortalFunction"

    assert (function / "portal_handler.py").is_file()
    assert not (function / "portal_links").exists()
