"""Packaging (issue 19): a torch range for the library, the exact torch of make test in
constraints.txt, one version string, LICENSE and py.typed."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import dawm

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_torch_range_in_the_library_exact_torch_in_make() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch = [d for d in project["dependencies"] if d.replace(" ", "").startswith("torch")]
    assert torch == ["torch>=2.3,<3"]
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().splitlines()
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()


def test_one_version_string() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dawm.__version__"}
    assert importlib.metadata.version("dawm") == dawm.__version__


def test_license_and_py_typed() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert (Path(dawm.__file__).parent / "py.typed").exists()
