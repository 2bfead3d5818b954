"""Logging set-up shared by every command: rich console output plus an optional log file."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)


def setup_logging(verbose: int = 0, logfile: str | Path | None = None) -> None:
    """Configure the ``dawm`` logger: INFO by default, DEBUG with ``verbose >= 1``."""
    level = logging.DEBUG if verbose > 0 else logging.INFO
    root = logging.getLogger("dawm")
    root.setLevel(level)
    root.handlers.clear()
    root.addHandler(RichHandler(console=console, show_path=False, rich_tracebacks=False, level=level))
    if logfile is not None:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(logfile)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.propagate = False
