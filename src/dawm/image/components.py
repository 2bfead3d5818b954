"""Connected components of boolean masks: one labelling (scikit-image) and one filter for every stage.

``connectivity`` is scikit-image's: 1 for face neighbours (6-connected in 3D), ``mask.ndim`` (the
default, :data:`FULL`) for face, edge and corner neighbours (26-connected). Components are numbered
1..n in raster order of their first voxel (as ``scipy.ndimage.label`` numbers them).

What the stages keep of a mask, all through :func:`filter_components`:

* lesions a rater would draw, lesions scored lesion-wise, DAWM clusters: components of at least
  ``min_voxels`` voxels or ``min_volume`` mm3 (:func:`components` keeps them numbered);
* the ventricles: components of at least ``min_fraction`` of the largest;
* the head, the brain: the largest component (``largest=True``; the first of equal ones);
* hysteresis growth (``dawm label``): the components that hold a voxel of ``seeds``.
"""

from __future__ import annotations

import numpy as np
from skimage import measure

#: ``connectivity`` for face, edge and corner neighbours of a 3D mask (26-connected).
FULL = 3


def label_components(mask: np.ndarray, connectivity: int | None = None) -> tuple[np.ndarray, int]:
    """``(labels, n)``: the components of ``mask`` numbered 1..n (0 outside), ``connectivity`` 1
    (face neighbours) to ``mask.ndim`` (all neighbours, the default)."""
    mask = np.asarray(mask, bool)
    labels, n = measure.label(mask, background=0, connectivity=connectivity or mask.ndim, return_num=True)
    return labels, int(n)


def filter_components(
    mask: np.ndarray,
    *,
    connectivity: int | None = None,
    min_voxels: float = 0.0,
    min_volume: float = 0.0,
    voxel_volume: float = 1.0,
    min_fraction: float = 0.0,
    largest: bool = False,
    seeds: np.ndarray | None = None,
) -> np.ndarray:
    """The components of ``mask`` (bool) that pass every test given: at least ``min_voxels``
    voxels; at least ``min_volume`` in the unit of ``voxel_volume`` (e.g. mm3: voxels times
    ``voxel_volume`` >= ``min_volume``); at least ``min_fraction`` of the largest component's
    voxels; the largest one only (``largest``; the first in raster order among equal ones); holding
    a voxel of ``seeds`` (bool, same shape). Returns a bool mask (empty when ``mask`` is)."""
    labels, n = label_components(mask, connectivity)
    if n == 0:
        return np.zeros(np.shape(mask), bool)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.ones(n + 1, bool)
    keep[0] = False
    if min_voxels > 0:
        keep &= sizes >= min_voxels
    if min_volume > 0:
        keep &= sizes * float(voxel_volume) >= min_volume
    if min_fraction > 0:
        keep &= sizes >= min_fraction * sizes[1:].max()
    if largest:
        only = np.zeros(n + 1, bool)
        only[int(np.argmax(sizes[1:])) + 1] = True
        keep &= only
    if seeds is not None:
        hit = np.zeros(n + 1, bool)
        hit[np.unique(labels[np.asarray(seeds, bool)])] = True
        keep &= hit
    return keep[labels]


def components(mask: np.ndarray, min_voxels: float = 0.0, connectivity: int | None = None) -> tuple[np.ndarray, int]:
    """The components of ``mask`` of at least ``min_voxels`` voxels, renumbered 1..n in raster
    order: ``(labels, n)`` (``connectivity`` as :func:`label_components`; default 26-connected)."""
    labels, n = label_components(mask, connectivity)
    if n and min_voxels > 0:
        keep = np.bincount(labels.ravel(), minlength=n + 1) >= min_voxels
        keep[0] = False
        new = np.zeros(n + 1, dtype=labels.dtype)
        new[keep] = np.arange(1, int(keep.sum()) + 1)
        labels, n = new[labels], int(keep.sum())
    return labels, n


def count_components(mask: np.ndarray, connectivity: int | None = None) -> int:
    """The number of components of ``mask``."""
    return label_components(mask, connectivity)[1]
