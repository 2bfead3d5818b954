"""Provenance written beside every stage's outputs: dawm version, the config, the environment."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

import dawm

_PACKAGES = ("numpy", "scipy", "nibabel", "SimpleITK", "torch", "monai", "scikit-learn", "nilearn")


def provenance(stage: str, config: Any) -> dict[str, Any]:
    """A JSON-ready record of who made an output and how (no timestamps: outputs stay reproducible)."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    cfg = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    return {
        "stage": stage,
        "dawm_version": dawm.__version__,
        "config": cfg,
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "packages": versions,
    }
