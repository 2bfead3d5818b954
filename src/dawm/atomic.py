"""Atomic file writing: write to a temporary file beside the target, then rename over it.

An interrupted run never leaves a truncated output behind, and readers never see half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _default_mode() -> int:
    """The permissions a plain ``open(path, "w")`` would give (0o666 less the umask): mkstemp's
    0o600 would hide outputs from the rest of a lab's group. Read per call (os.umask can only be
    read by setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_target(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same ``suffix``); it replaces ``path`` on success
    and is removed on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
