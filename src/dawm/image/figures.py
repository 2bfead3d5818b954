"""Three-plane panels and an axial mosaic of one image grid (Matplotlib Agg figures, no pyplot): the
one figure code of the preprocessing QC image, the QC page and the evaluation report's examples.

Arrays are put in RAS order (:func:`dawm.image.orientation.to_canonical`) and cropped to the brain with a
margin, so every panel is shown in the neurological convention (the subject's left on the left,
``L``/``R`` marked) at the voxel aspect of the grid. A :class:`Row` is one image with its layers:
outlines (brain mask, field of view), translucent label fills (tissues, lesions, DAWM) or
probability heat maps (transparent where the probability is low).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from nibabel.orientations import io_orientation

from dawm.image.orientation import to_canonical
from dawm.image.resample import voxel_sizes

LESION_COLOUR = "#ff2d2d"
DAWM_COLOUR = "#ffd21f"
TISSUE_COLOURS = {1: ("CSF", "#3a8fd9"), 2: ("GM", "#2ca02c"), 3: ("WM", "#f2a33a")}
PLANES = ("axial", "coronal", "sagittal")


@dataclass
class Layer:
    """``kind``: ``outline`` (bool mask, contour), ``fill`` (bool mask, translucent fill + contour)
    or ``heat`` (float map in [0, 1], coloured by ``cmap`` with opacity rising with the value)."""

    kind: str
    data: np.ndarray
    colour: str = "red"
    label: str = ""
    cmap: str = "autumn"
    linestyle: str = "solid"


@dataclass
class Row:
    """One image (``name`` shown left of the axial panel) and its layers."""

    name: str
    image: np.ndarray
    layers: list[Layer] = field(default_factory=list)


class Grid:
    """The session grid's RAS view: ``view(array)`` reorders and crops an array of the grid."""

    def __init__(self, affine: np.ndarray, brain: np.ndarray, margin_mm: float = 8.0) -> None:
        ornt = io_orientation(affine)
        spacing = np.empty(3)
        spacing[ornt[:, 0].astype(int)] = voxel_sizes(affine)
        self.affine, self.spacing = affine, spacing
        mask = to_canonical(np.asarray(brain, dtype=np.uint8), affine)[0] > 0
        if mask.any():
            idx = np.argwhere(mask)
            pad = np.ceil(margin_mm / spacing).astype(int)
            lo, hi = np.maximum(idx.min(0) - pad, 0), np.minimum(idx.max(0) + pad + 1, mask.shape)
        else:
            lo, hi = np.zeros(3, int), np.asarray(mask.shape)
        self.box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        self.brain = mask[self.box]

    def view(self, array: np.ndarray) -> np.ndarray:
        return to_canonical(np.asarray(array), self.affine)[0][self.box]

    def centre(self, weights: np.ndarray | None = None) -> tuple[int, int, int]:
        """Per plane, the slice holding most of ``weights`` (a viewed bool/float map: where the
        lesions are); the brain's centre where ``weights`` is empty or None."""
        brain_centre = np.round(np.argwhere(self.brain).mean(0)).astype(int) if self.brain.any() else np.asarray(self.brain.shape) // 2
        if weights is None or not np.any(weights):
            return tuple(int(c) for c in brain_centre)
        w = np.asarray(weights, dtype=float)
        return tuple(int(np.argmax(w.sum(axis=tuple(a for a in range(3) if a != ax)))) for ax in range(3))


def _slices(array: np.ndarray, centre) -> list[np.ndarray]:
    i, j, k = centre
    return [array[:, :, k].T, array[:, j, :].T, array[i, :, :].T]


def _window(image: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
    inside = image[brain] if brain.any() else image.ravel()
    inside = inside[np.isfinite(inside)]
    if not inside.size:
        return 0.0, 1.0
    lo, hi = np.percentile(inside, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _draw(ax, image2d: np.ndarray, window, layers: list[tuple[Layer, np.ndarray]], aspect: float) -> None:
    ax.imshow(np.nan_to_num(image2d), cmap="gray", vmin=window[0], vmax=window[1], origin="lower", aspect=aspect, interpolation="nearest")
    for layer, sl in layers:
        if layer.kind == "heat":
            p = np.clip(np.nan_to_num(sl.astype(float)), 0, 1)
            if (p > 0.02).any():
                ax.imshow(
                    np.ma.masked_where(p <= 0.02, p),
                    cmap=layer.cmap,
                    vmin=0,
                    vmax=1,
                    origin="lower",
                    aspect=aspect,
                    interpolation="nearest",
                    alpha=np.clip(0.25 + p, 0, 0.95),
                )
            continue
        m = sl > 0
        if not m.any():
            continue
        if layer.kind == "fill":
            ax.imshow(
                np.ma.masked_where(~m, m.astype(float)),
                cmap=ListedColormap([layer.colour]),
                vmin=0,
                vmax=1,
                origin="lower",
                aspect=aspect,
                interpolation="nearest",
                alpha=0.45,
            )
        if not m.all():
            ax.contour(
                m.astype(float),
                levels=[0.5],
                colors=[layer.colour],
                linewidths=0.6 if layer.kind == "fill" else 0.9,
                linestyles=layer.linestyle,
            )


def _orientation_marks(ax, plane: str) -> None:
    left, right = ("P", "A") if plane == "sagittal" else ("L", "R")
    style = dict(color="white", fontsize=8, fontweight="bold", transform=ax.transAxes, va="center")
    ax.text(0.02, 0.5, left, ha="left", **style)
    ax.text(0.98, 0.5, right, ha="right", **style)


def planes_figure(grid: Grid, rows: list[Row], centre: tuple[int, int, int], *, colorbars: dict[str, str] | None = None) -> Figure:
    """One row per image: axial, coronal and sagittal panels through ``centre`` (viewed voxel
    indices), with its layers drawn; a legend of the named layers; ``colorbars``: label -> cmap of
    heat layers to explain (probability 0-1)."""
    sx, sy, sz = grid.spacing
    shape = grid.brain.shape
    widths = [shape[0] * sx, shape[0] * sx, shape[1] * sy]
    height = shape[1] * sy  # the tallest panel (axial: A-P) sets the row height
    aspects = [sy / sx, sz / sx, sz / sy]
    fig_w = 10.5
    row_h = fig_w * height / sum(widths) + 0.35
    fig = Figure(figsize=(fig_w, row_h * len(rows) + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 3, squeeze=False, gridspec_kw={"width_ratios": widths})
    named: dict[str, str] = {}
    for r, row in enumerate(rows):
        image = row.image.astype(np.float32)
        window = _window(image, grid.brain)
        cuts = (
            list(zip(_slices(image, centre), *[_slices(layer.data, centre) for layer in row.layers]))
            if row.layers
            else [(s,) for s in _slices(image, centre)]
        )
        for c, plane in enumerate(PLANES):
            ax = axes[r, c]
            parts = cuts[c]
            _draw(ax, parts[0], window, list(zip(row.layers, parts[1:])), aspects[c])
            ax.set_axis_off()
            _orientation_marks(ax, plane)
            index = centre[2] if plane == "axial" else centre[1] if plane == "coronal" else centre[0]
            ax.set_title(f"{row.name} · {plane} {index}" if c == 0 else f"{plane} {index}", fontsize=9, loc="left")
        for layer in row.layers:
            if layer.label and layer.kind != "heat":
                named.setdefault(layer.label, layer.colour)
    handles = [Patch(facecolor=c, edgecolor=c, alpha=0.7, label=lab) for lab, c in named.items()]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=8, frameon=False)
    if colorbars:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        for r, row in enumerate(rows):
            heat = next((layer for layer in row.layers if layer.kind == "heat"), None)
            if heat is not None:
                label = next((lab for lab, cmap in colorbars.items() if cmap == heat.cmap), "")
                fig.colorbar(
                    ScalarMappable(Normalize(0, 1), cmap=heat.cmap),
                    ax=axes[r, :],
                    location="right",
                    shrink=0.8,
                    aspect=15,
                    label=f"{label} probability".strip(),
                    pad=0.01,
                )
    return fig


def axial_mosaic(grid: Grid, image: np.ndarray, layers: list[Layer], *, n: int = 12, columns: int = 6) -> Figure:
    """``n`` axial slices evenly spread over the brain (its top and bottom 8 % left out), each with
    ``layers``: an overview of every lesion a three-plane cut misses."""
    sx, sy, _ = grid.spacing
    zs = np.flatnonzero(grid.brain.any(axis=(0, 1))) if grid.brain.any() else np.arange(grid.brain.shape[2])
    lo, hi = zs[0] + 0.08 * (zs[-1] - zs[0]), zs[-1] - 0.08 * (zs[-1] - zs[0])
    ks = np.unique(np.round(np.linspace(lo, hi, n)).astype(int))
    rows = int(np.ceil(len(ks) / columns))
    shape = grid.brain.shape
    panel_w = 10.5 / columns
    fig = Figure(figsize=(10.5, rows * panel_w * (shape[1] * sy) / (shape[0] * sx) + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    image = image.astype(np.float32)
    window = _window(image, grid.brain)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, k in zip(axes.ravel(), ks):
        _draw(ax, image[:, :, k].T, window, [(layer, layer.data[:, :, k].T) for layer in layers], sy / sx)
        ax.set_title(f"axial {k}", fontsize=8, loc="left")
    _orientation_marks(axes[0, 0], "axial")
    handles = [Patch(facecolor=layer.colour, alpha=0.7, label=layer.label) for layer in layers if layer.label]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return fig
