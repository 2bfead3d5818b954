"""Visual quality-control figure of a pre-processed session (matplotlib, no display needed).

One row per image, three columns (axial, coronal, sagittal) through the centre of the brain mask,
shown in RAS orientation (neurological convention: the subject's left on the left of each panel), with
the brain-mask contour in red and the tissue outlines (CSF/GM/WM borders of the dseg) in colours.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from nibabel.orientations import apply_orientation, io_orientation  # noqa: E402

_TISSUE_COLOURS = {1: "#1f77b4", 2: "#2ca02c", 3: "#ffbf00"}  # CSF, GM, WM outlines


def _to_ras(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Reorder/flip array axes so they run (approximately) along R, A, S."""
    return apply_orientation(array, io_orientation(affine))


def _planes(array: np.ndarray, centre: np.ndarray) -> list[np.ndarray]:
    """Axial, coronal, sagittal slices (transposed so superior/anterior is up)."""
    i, j, k = (int(c) for c in centre)
    return [array[:, :, k].T, array[:, j, :].T, array[i, :, :].T]


def qc_figure(
    images: Mapping[str, np.ndarray],
    affine: np.ndarray,
    brain_mask: np.ndarray,
    dseg: np.ndarray | None,
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Write the QC PNG of co-registered ``images`` (name -> (X, Y, Z) on one grid) to ``path``.

    ``affine``: the grid's 4x4 voxel -> RAS mm; ``brain_mask``: bool (X, Y, Z); ``dseg``: optional
    (X, Y, Z) labels 1 CSF / 2 GM / 3 WM. Written atomically; returns ``path``.
    """
    path = Path(path)
    mask = _to_ras(np.asarray(brain_mask, dtype=np.uint8), affine)
    seg = _to_ras(np.asarray(dseg, dtype=np.uint8), affine) if dseg is not None else None
    centre = np.round(np.argwhere(mask).mean(axis=0)) if mask.any() else np.asarray(mask.shape) // 2
    names = list(images)
    fig, axes = plt.subplots(len(names), 3, figsize=(9, 3 * len(names)), squeeze=False, facecolor="black")
    for row, name in enumerate(names):
        data = _to_ras(np.asarray(images[name], dtype=np.float32), affine)
        inside = data[mask > 0]
        lo, hi = np.percentile(inside, [1, 99]) if inside.size else (float(data.min()), float(data.max()))
        for col, (img2d, m2d) in enumerate(zip(_planes(data, centre), _planes(mask, centre))):
            ax = axes[row, col]
            ax.imshow(img2d, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, origin="lower", interpolation="nearest")
            if m2d.any():
                ax.contour(m2d, levels=[0.5], colors="red", linewidths=0.7)
            if seg is not None:
                s2d = _planes(seg, centre)[col]
                for label, colour in _TISSUE_COLOURS.items():
                    if (s2d == label).any():
                        ax.contour((s2d == label).astype(float), levels=[0.5], colors=colour, linewidths=0.4)
            ax.set_axis_off()
        axes[row, 0].set_title(name, color="white", fontsize=9, loc="left")
    if title:
        fig.suptitle(title, color="white", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=80, facecolor="black")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
