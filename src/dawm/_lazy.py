"""Lazy re-exports (PEP 562): a package names its public functions without importing their modules.

``import dawm`` (and ``import dawm.evaluate``) must stay light: the command line, worker processes
and ``dawm --version`` import the packages, and the stage modules pull in torch, MONAI, SimpleITK and
matplotlib. A package lists ``name -> defining module`` once; the module is imported on the first
access of one of its names, and the value is then cached in the package's namespace.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str], namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package ``package`` whose globals are ``namespace``:
    ``exports`` maps each public name to the module (absolute name) that defines it."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
