"""Logging set-up shared by every command: a quiet rich console plus a log file in the output folder.

The console shows warnings and errors only (the commands print their progress bars and summary
tables themselves), each distinct message once per process (a warning that every pass over a
cohort repeats, such as a session's reference fallback, reaches the log file every time);
``-v`` adds the INFO and DEBUG details there. Every command that writes an
output folder also writes its details (INFO, DEBUG with ``-v``) to
``OUTPUT/logs/dawm-<command>-<UTC time>.log`` (:func:`log_to_folder`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

import dawm

console = Console(stderr=True)

#: The sub-folder of an output folder that holds the command logs.
LOG_DIR = "logs"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: int = 0, logfile: str | Path | None = None) -> None:
    """Configure the ``dawm`` logger: the console shows WARNING and above (everything with
    ``verbose >= 1``); records of level INFO (DEBUG with ``verbose >= 1``) reach the other handlers,
    e.g. ``logfile`` or the file of :func:`log_to_folder`."""
    root = logging.getLogger("dawm")
    root.setLevel(logging.DEBUG if verbose > 0 else logging.INFO)
    root.handlers.clear()
    shown = RichHandler(console=console, show_path=False, rich_tracebacks=False, level=logging.DEBUG if verbose > 0 else logging.WARNING)
    shown.addFilter(OncePerMessage())
    root.addHandler(shown)
    if logfile is not None:
        root.addHandler(_FolderFileHandler(logfile))
    root.propagate = False


class OncePerMessage(logging.Filter):
    """Let each distinct (level, message) through once: the console filter of :func:`setup_logging`."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


#: Attribute of a record that a worker process already wrote to the log file and the parent only
#: shows on the console (:func:`forward_warnings`, :func:`dawm.parallel.run_all`).
FORWARDED = "dawm_forwarded"


def _not_forwarded(record: logging.LogRecord) -> bool:
    return not getattr(record, FORWARDED, False)


@contextlib.contextmanager
def forward_warnings() -> Iterator[list[tuple[int, str]]]:
    """In a worker process: while the block runs, the console handlers of the ``dawm`` logger show
    nothing and every WARNING or worse record is collected as ``(level, message)`` into the yielded
    list, for the parent to show once (a worker that inherited the command's log file writes
    every record there itself; see :func:`writes_log_file`)."""
    collected: list[tuple[int, str]] = []
    root = logging.getLogger("dawm")

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append((record.levelno, record.getMessage()))

    collector = _Collect(level=logging.WARNING)
    consoles = [h for h in root.handlers if isinstance(h, RichHandler)]

    def mute(record: logging.LogRecord) -> bool:
        return False

    for handler in consoles:
        handler.addFilter(mute)
    root.addHandler(collector)
    try:
        yield collected
    finally:
        root.removeHandler(collector)
        for handler in consoles:
            handler.removeFilter(mute)


def writes_log_file() -> bool:
    """Whether this process's ``dawm`` logger writes a command log file (a forked pool worker
    inherits the parent's; a Dask worker process has none)."""
    return any(isinstance(h, _FolderFileHandler) for h in logging.getLogger("dawm").handlers)


class _FolderFileHandler(logging.FileHandler):
    """A file handler that creates its folder and file at the first record (a command stopped by a
    usage error leaves no folder behind); the file starts with the dawm version and command line."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, delay=True, encoding="utf-8")
        self.setFormatter(logging.Formatter(FORMAT))
        self.addFilter(_not_forwarded)  # the worker that logged it wrote it already

    def _open(self):  # noqa: ANN202 - logging.FileHandler's hook
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        stream = super()._open()
        if stream.tell() == 0:  # not again when a worker process opens the same file
            stream.write(f"# dawm {dawm.__version__}: {' '.join(sys.argv)}\n")
        return stream


def log_file_path(folder: str | Path, command: str) -> Path:
    """``folder/logs/dawm-<command>-<UTC time>.log``, the log file of one run of ``command``."""
    return Path(folder) / LOG_DIR / f"dawm-{command}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"


@contextlib.contextmanager
def log_to_folder(folder: str | Path, command: str) -> Iterator[Path]:
    """While the block runs, write the ``dawm`` logger's records to :func:`log_file_path` (created
    at the first record); yields the file's path."""
    path = log_file_path(folder, command)
    handler = _FolderFileHandler(path)
    root = logging.getLogger("dawm")
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
