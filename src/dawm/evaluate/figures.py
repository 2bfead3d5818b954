"""Report figures (Matplotlib, Agg canvas, no pyplot state, no file I/O).

Every function returns a :class:`matplotlib.figure.Figure`. Empty, all-NaN or otherwise unusable
input never raises: the figure then just says "no data".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from dawm.image.figures import Grid, Layer, Row, planes_figure

# Fixed colours by label name (fallback: the tab10 cycle), so the same class looks the same everywhere.
_LABEL_COLOURS = {
    "reference dawm": "#1f77b4",
    "predicted dawm": "#ff7f0e",
    "reference lesion": "#d62728",
    "predicted lesion": "#9467bd",
}
_CYCLE = ["#2ca02c", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
_BAR_COLOURS = ["#ff7f0e", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf"]
_TRANSITIONS = ["DAWM→lesion", "DAWM→normal", "persistent DAWM", "new DAWM"]


def _figure(width: float = 6.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def no_data_figure(title: str = "", message: str = "no data") -> Figure:
    """A small figure that only says ``message`` (used for empty/NaN inputs)."""
    fig = _figure(4.0, 2.5)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, color="0.4", transform=ax.transAxes)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def _clean(df: pd.DataFrame | None, columns: Sequence[str | None]) -> pd.DataFrame | None:
    """``df[columns]`` with rows holding NaN dropped (numeric columns coerced); None when unusable."""
    cols = [c for c in dict.fromkeys(columns) if c is not None]
    if df is None or not isinstance(df, pd.DataFrame) or any(c not in df.columns for c in cols):
        return None
    out = df[cols].copy()
    out = out.dropna()
    return None if out.empty else out


def _numeric(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    df = df.copy()
    for c in cols:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.dropna(subset=list(cols))


def _colour(name: str, i: int) -> str:
    return _LABEL_COLOURS.get(name.lower(), _CYCLE[i % len(_CYCLE)])


def overlay_three_planes(
    image: np.ndarray,
    labels: Mapping[str, np.ndarray] | None = None,
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
    title: str = "",
) -> Figure:
    """Axial, coronal and sagittal slices of a 3D ``image`` (voxel axes i, j, k ~ x, y, z, closest
    RAS order: :func:`dawm.image.orientation.to_canonical`) through the slices holding most of the
    first non-empty label mask (else the centre of the image), with each label drawn as a
    translucent fill plus contour; drawn by :func:`dawm.image.figures.planes_figure` (cropped to the
    non-zero image, aspect ratios from ``spacing_mm``)."""
    img = np.asarray(image, dtype=float) if image is not None else np.empty(0)
    if img.ndim != 3 or img.size == 0 or not np.isfinite(img).any():
        return no_data_figure(title)
    masks = {str(k): np.asarray(v) > 0 for k, v in (labels or {}).items() if v is not None and np.shape(v) == img.shape}
    sx, sy, sz = (list(map(float, spacing_mm)) + [1.0, 1.0, 1.0])[:3]
    shown = np.isfinite(img) & (img != 0)
    grid = Grid(np.diag([sx, sy, sz, 1.0]), shown if shown.any() else np.ones(img.shape, bool))
    first = next((m for m in masks.values() if m.any()), None)
    layers = [Layer("fill", grid.view(m), colour=_colour(lab, n), label=lab) for n, (lab, m) in enumerate(masks.items())]
    return planes_figure(grid, [Row(title, grid.view(img), layers)], grid.centre(None if first is None else grid.view(first)))


def bland_altman_plot(
    pred: Sequence[float] | np.ndarray, ref: Sequence[float] | np.ndarray, *, label: str = "", unit: str = "ml"
) -> Figure:
    """Bland-Altman plot of ``pred`` vs ``ref``: difference against mean, bias and 95 % limits."""
    p = np.asarray(pred, dtype=float).ravel() if pred is not None else np.empty(0)
    r = np.asarray(ref, dtype=float).ravel() if ref is not None else np.empty(0)
    title = f"Bland-Altman: {label}" if label else "Bland-Altman"
    if p.size == 0 or p.size != r.size:
        return no_data_figure(title)
    ok = np.isfinite(p) & np.isfinite(r)
    if not ok.any():
        return no_data_figure(title)
    p, r = p[ok], r[ok]
    mean, diff = (p + r) / 2, p - r
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(mean, diff, s=18, alpha=0.7, color="#1f77b4", label=f"sessions (n = {diff.size})")
    ax.axhline(bias, color="k", lw=1.2, label=f"bias {bias:.3g} {unit}")
    for lim in (bias - 1.96 * sd, bias + 1.96 * sd):
        ax.axhline(lim, color="#d62728", ls="--", lw=1)
    ax.plot([], [], color="#d62728", ls="--", label=f"±1.96 SD ({bias - 1.96 * sd:.3g}, {bias + 1.96 * sd:.3g})")
    ax.set_xlabel(f"mean of predicted and reference ({unit})")
    ax.set_ylabel(f"predicted − reference ({unit})")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def boxplot_by(df: pd.DataFrame, value: str, by: str, *, title: str = "") -> Figure:
    """Boxplots of ``value`` per level of ``by`` (e.g. scanner, lesion location), points overlaid."""
    data = _clean(df, [value, by])
    data = _numeric(data, value) if data is not None else None
    if data is None or data.empty:
        return no_data_figure(title)
    groups = [(str(k), g[value].to_numpy()) for k, g in data.groupby(by, sort=True)]
    fig = _figure(max(4.0, 1.0 + 0.8 * len(groups)), 4.0)
    ax = fig.add_subplot()
    ax.boxplot([g for _, g in groups], showfliers=False, widths=0.6)
    rng = np.random.default_rng(0)
    for pos, (_, g) in enumerate(groups, start=1):
        ax.scatter(pos + rng.uniform(-0.15, 0.15, g.size), g, s=12, alpha=0.6, color="#1f77b4", zorder=3)
    ax.set_xticks(range(1, len(groups) + 1), [f"{k}\n(n={g.size})" for k, g in groups])
    ax.set_xlabel(by)
    ax.set_ylabel(value)
    ax.set_title(title)
    return fig


def _grouped_axes(df: pd.DataFrame, x: str, y: str, hue: str | None, *, numeric: tuple[str, ...]):
    """``(figure, axes, clean data, groups by hue)`` for a scatter or line plot; None when no data is left."""
    data = _clean(df, [x, y, hue])
    data = _numeric(data, *numeric) if data is not None else None
    if data is None or data.empty:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    return fig, ax, data, (data.groupby(hue, sort=True) if hue else [(None, data)])


def scatter_with_fit(df: pd.DataFrame, x: str, y: str, *, hue: str | None = None, title: str = "") -> Figure:
    """Scatter of ``y`` against ``x`` (coloured by ``hue``) with the OLS line; Spearman rho in the legend."""
    started = _grouped_axes(df, x, y, hue, numeric=(x, y))
    if started is None:
        return no_data_figure(title)
    fig, ax, data, groups = started
    for n, (key, g) in enumerate(groups):
        ax.scatter(
            g[x],
            g[y],
            s=18,
            alpha=0.75,
            color=_CYCLE[n % len(_CYCLE)] if hue else "#1f77b4",
            label=f"{hue} = {key}" if hue else f"n = {len(g)}",
        )
    xs, ys = data[x].to_numpy(float), data[y].to_numpy(float)
    if xs.size >= 2 and np.ptp(xs) > 0:
        slope, intercept = np.polyfit(xs, ys, 1)
        grid = np.linspace(xs.min(), xs.max(), 50)
        fit = f"OLS: y = {slope:.3g}x + {intercept:.3g}"
        if xs.size >= 3 and np.ptp(ys) > 0:
            rho, pval = stats.spearmanr(xs, ys)
            fit += f"\nSpearman ρ = {rho:.2f} (p = {pval:.2g}, n = {xs.size})"
        ax.plot(grid, slope * grid + intercept, color="k", lw=1.2, label=fit)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def transition_bars(df: pd.DataFrame, *, title: str = "Longitudinal DAWM transitions") -> Figure:
    """Grouped bars of ``fraction`` per ``transition`` (x) and ``source`` (bar colour)."""
    data = _clean(df, ["source", "transition", "fraction"])
    data = _numeric(data, "fraction") if data is not None else None
    if data is None or data.empty:
        return no_data_figure(title)
    table = data.pivot_table(index="transition", columns="source", values="fraction", aggfunc="mean")
    order = [t for t in _TRANSITIONS if t in table.index] + sorted(t for t in table.index if t not in _TRANSITIONS)
    table = table.loc[order]
    n_src = table.shape[1]
    width = 0.8 / n_src
    fig = _figure(max(5.0, 1.5 * len(order)), 4.0)
    ax = fig.add_subplot()
    pos = np.arange(len(order))
    for s, src in enumerate(table.columns):
        ax.bar(
            pos + (s - (n_src - 1) / 2) * width,
            table[src].fillna(0).to_numpy(),
            width,
            label=str(src),
            color=_BAR_COLOURS[s % len(_BAR_COLOURS)],
        )
    ax.set_xticks(pos, [str(t) for t in order])
    ax.set_ylabel("fraction")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def line_plot(df: pd.DataFrame, x: str, y: str, hue: str | None = None, title: str = "") -> Figure:
    """Lines of ``y`` against ``x`` (sorted by ``x``), one per ``hue`` level (dose-response curves)."""
    started = _grouped_axes(df, x, y, hue, numeric=(y,))
    if started is None:
        return no_data_figure(title)
    fig, ax, _, groups = started
    for n, (key, g) in enumerate(groups):
        g = g.sort_values(x)
        ax.plot(g[x], g[y], marker="o", ms=4, color=_CYCLE[n % len(_CYCLE)] if hue else "#1f77b4", label=f"{hue} = {key}" if hue else None)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    if hue:
        ax.legend(fontsize=8)
    return fig
