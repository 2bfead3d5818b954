"""Visual quality-control figure of a pre-processed session (matplotlib, no display needed).

One row per image, three columns (axial, coronal, sagittal) through the centre of the brain mask,
drawn by the one three-plane figure code (:mod:`dawm.image.figures`): RAS orientation
(neurological convention: the subject's left on the left of each panel), the brain-mask contour in
red and the tissue outlines (CSF/GM/WM borders of the dseg) in colours.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dawm.atomic import atomic_target
from dawm.image.figures import TISSUE_COLOURS, Grid, Layer, Row, planes_figure


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
    brain = np.asarray(brain_mask) > 0
    grid = Grid(affine, brain)
    layers = [Layer("outline", grid.brain, colour="red", label="brain mask")]
    if dseg is not None:
        seg = grid.view(np.asarray(dseg, dtype=np.uint8))
        layers += [Layer("outline", seg == k, colour=colour, label=name) for k, (name, colour) in TISSUE_COLOURS.items()]
    rows = [Row(name, grid.view(np.asarray(image, dtype=np.float32)), layers) for name, image in images.items()]
    fig = planes_figure(grid, rows, grid.centre())
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_target(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80, facecolor="white")
    return path
