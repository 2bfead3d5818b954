"""Load a report in headless Chromium and read back what its inline check script recorded.

Nothing is injected: the page itself (written by :class:`dawm.evaluate.report.HtmlReport`) fills
``<div id="dawm-check">`` on load; ``chromium --dump-dom`` prints the DOM after the load event.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from dawm.errors import DawmError
from dawm.evaluate.report import CHECK_ID

CHROMIUM_FLAGS = (
    "--headless=new",
    "--disable-gpu",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
)


class ChromiumNotFound(DawmError, FileNotFoundError):
    """No Chromium executable could be found."""


def find_chromium(chromium: str | None = None) -> str:
    """``chromium`` if given, else ``$DAWM_CHROMIUM``, else ``chromium``/``chromium-browser`` on PATH."""
    for cand in (chromium, os.environ.get("DAWM_CHROMIUM"), "chromium", "chromium-browser"):
        if cand and (found := shutil.which(cand)):
            return found
    raise ChromiumNotFound(
        "Chromium not found: install it (apt-get install -y chromium; `make test` does this), put "
        "`chromium` or `chromium-browser` on PATH, or set DAWM_CHROMIUM to its executable."
    )


class _CheckParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.attrs is None and dict(attrs).get("id") == CHECK_ID:
            self.attrs = dict(attrs)


def check_html_in_chromium(path: Path, chromium: str | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
    """Open ``path`` in headless Chromium; return ``{"images", "broken_images", "script_errors"}``.

    Raises :class:`ChromiumNotFound` without a browser, and ``RuntimeError`` when Chromium fails or
    the page has no completed check element (not written by ``HtmlReport``, or never loaded)."""
    exe = find_chromium(chromium)
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="dawm-chromium-") as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"Chromium did not finish within {timeout_s:g} s on {path}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"Chromium exited with {proc.returncode} on {path}: {proc.stderr[-2000:]}")
    parser = _CheckParser()
    parser.feed(proc.stdout)
    attrs = parser.attrs
    if attrs is None or attrs.get("data-loaded") != "true":
        raise RuntimeError(
            f'no completed <div id="{CHECK_ID}"> in the DOM of {path}: page not written by HtmlReport, or it never finished loading'
        )
    return {
        "images": int(attrs.get("data-images") or 0),
        "broken_images": int(attrs.get("data-broken-images") or 0),
        "script_errors": [str(e) for e in json.loads(attrs.get("data-script-errors") or "[]")],
    }
