"""A self-contained, offline HTML report: inline CSS, figures as base64 PNG data URIs, no external
resources. One small inline script records broken images and script errors into
``<div id="dawm-check">`` so a headless browser (:mod:`dawm.evaluate.browser_check`) can verify it."""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

import dawm
from dawm.atomic import atomic_target

CHECK_ID = "dawm-check"

# Runs first (in <head>): collects script errors; on load counts images that failed to decode.
CHECK_SCRIPT = """<script>
(function () {
  var errors = [], loaded = false;
  function render() {
    var d = document.getElementById("%(id)s");
    if (!d) { d = document.createElement("div"); d.id = "%(id)s"; d.hidden = true; document.body.appendChild(d); }
    var imgs = document.images, broken = 0;
    for (var i = 0; i < imgs.length; i++) { if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) broken++; }
    d.setAttribute("data-loaded", String(loaded));
    d.setAttribute("data-images", String(imgs.length));
    d.setAttribute("data-broken-images", String(broken));
    d.setAttribute("data-script-errors", JSON.stringify(errors));
  }
  window.addEventListener("error", function (e) {
    if (e.target && e.target !== window) return;  /* resource errors: counted via naturalWidth */
    errors.push(String(e.message || e.error || "error"));
    if (loaded) render();
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    errors.push("unhandled rejection: " + String(e.reason)); if (loaded) render();
  });
  window.addEventListener("load", function () { loaded = true; render(); });
})();
</script>""" % {"id": CHECK_ID}  # noqa: UP031 - JavaScript braces read better with % than with format()

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5rem 2rem;background:#fff}
h1{border-bottom:2px solid #1f77b4;padding-bottom:.3rem}
h2{margin-top:2rem;border-bottom:1px solid #ddd}
nav.toc{background:#f3f6fa;border:1px solid #dde4ee;padding:.6rem 1rem;margin:1rem 0}
nav.toc ul{margin:.2rem 0;padding-left:1.2rem}
nav.toc li.l3{margin-left:1rem}nav.toc li.l4{margin-left:2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3rem 0}
th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#eef2f7}tbody tr:nth-child(even){background:#f8f8f8}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9rem;color:#555}
code{background:#f1f1f1;padding:0 .2rem;border-radius:3px}
footer{margin-top:2rem;padding-top:.5rem;border-top:1px solid #ddd;font-size:.8rem;color:#777}
"""


def _inline(text: str) -> str:
    """Escape HTML, then render `code`, **bold** and *italic*."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])", r"<em>\1</em>", out)


def _fmt(value: Any, float_format: str) -> tuple[str, bool]:
    """Cell text (escaped) and whether it is numeric."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "—", True
    if isinstance(value, bool):
        return str(value), False
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"):
        return html.escape(float_format.format(float(value))), True
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return str(value), True
    return html.escape(str(value)), False


class HtmlReport:
    """Collects headings, text, tables and figures; :meth:`write` emits one offline HTML file."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = []
        self._toc: list[tuple[int, str, str]] = []  # (level, anchor, text)

    def add_heading(self, text: str, level: int = 2) -> str:
        """Add a heading (level 2-4) listed in the table of contents; returns its anchor id."""
        level = min(max(int(level), 2), 4)
        base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
        anchor, n = base, 2
        while any(a == anchor for _, a, _ in self._toc):
            anchor, n = f"{base}-{n}", n + 1
        self._toc.append((level, anchor, text))
        self._parts.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')
        return anchor

    def add_text(self, text: str) -> None:
        """Add paragraphs (blank-line separated; lines starting with "- " become a list), HTML-escaped."""
        for block in re.split(r"\n\s*\n", text.strip()):
            lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
            if lines and all(ln.startswith(("- ", "* ")) for ln in lines):
                items = "".join(f"<li>{_inline(ln[2:])}</li>" for ln in lines)
                self._parts.append(f"<ul>{items}</ul>")
            elif lines:
                self._parts.append(f"<p>{_inline(' '.join(lines))}</p>")

    def add_table(
        self, df: pd.DataFrame, caption: str = "", float_format: str = "{:.3g}", links: Mapping[str, Sequence[str | None]] | None = None
    ) -> None:
        """Add ``df`` as a table (index shown unless it is a default RangeIndex). ``links``: column
        -> one link target per row (a relative URL; a cell whose target is None, empty or ``n/a``
        stays plain text)."""
        show_index = not (isinstance(df.index, pd.RangeIndex) and df.index.name is None)
        head = ([html.escape(str(df.index.name or ""))] if show_index else []) + [html.escape(str(c)) for c in df.columns]
        targets = {df.columns.get_loc(c): list(t) for c, t in (links or {}).items() if c in df}
        rows = []
        for r, (idx, row) in enumerate(zip(df.index, df.itertuples(index=False, name=None))):
            cells = [f"<th>{html.escape(str(idx))}</th>"] if show_index else []
            for c, v in enumerate(row):
                text, num = _fmt(v, float_format)
                href = targets[c][r] if c in targets else None
                if isinstance(href, str) and href and href != "n/a":
                    text = f'<a href="{html.escape(href)}">{text}</a>'
                cells.append(f'<td class="num">{text}</td>' if num else f"<td>{text}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        if not rows:
            rows = [f'<tr><td colspan="{max(len(head), 1)}"><em>no data</em></td></tr>']
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(
            f"<table>{cap}<thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )

    def add_key_values(self, values: Mapping[str, Any], caption: str = "") -> None:
        """Add a two-column key/value table."""
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v, '{:.4g}')[0]}</td></tr>" for k, v in values.items())
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self._parts.append(f'<table class="kv">{cap}<tbody>{rows}</tbody></table>')

    def add_figure(self, fig: Figure, caption: str = "", dpi: int = 90) -> None:
        """Embed ``fig`` as a base64 PNG data URI, then close it."""
        buf = io.BytesIO()
        try:
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
        finally:
            if fig.canvas.manager is not None:  # a pyplot-managed figure: release it from pyplot's registry
                import matplotlib.pyplot as plt

                plt.close(fig)
            fig.clear()
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        alt = html.escape(caption or "figure")
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">{cap}</figure>')

    def to_html(self) -> str:
        """The whole document as a string."""
        toc = "".join(f'<li class="l{lvl}"><a href="#{a}">{html.escape(t)}</a></li>' for lvl, a, t in self._toc)
        nav = f'<nav class="toc"><strong>Contents</strong><ul>{toc}</ul></nav>' if toc else ""
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        title = html.escape(self.title)
        body = "\n".join(self._parts)
        return (
            f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n<style>{_CSS}</style>\n{CHECK_SCRIPT}\n</head>\n<body>\n<main>\n"
            f"<h1>{title}</h1>\n{nav}\n{body}\n"
            f"<footer>Generated by dawm {html.escape(dawm.__version__)} on {when}.</footer>\n"
            f'</main>\n<div id="{CHECK_ID}" hidden></div>\n</body>\n</html>\n'
        )

    def write(self, path: str | Path) -> Path:
        """Write the report atomically to ``path`` (UTF-8) and return it."""
        path = Path(path)
        with atomic_target(path, suffix=".html") as tmp:
            tmp.write_text(self.to_html(), encoding="utf-8")
        return path
