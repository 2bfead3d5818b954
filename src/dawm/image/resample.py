"""Resampling between grids given by (shape, affine) pairs, with explicit interpolation.

All functions take arrays indexed ``[i, j, k]`` with RAS voxel-to-world affines. ``transform_ras``
(optional, 4x4) maps *target-grid world* points to *source world* points (the pull direction used by
scipy and SimpleITK), so a rigid motion estimated by registration can be applied directly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

Interpolation = Literal["nearest", "linear", "cubic"]
_ORDER = {"nearest": 0, "linear": 1, "cubic": 3}


def resample_to_grid(
    array: np.ndarray,
    affine: np.ndarray,
    target_shape: tuple[int, int, int],
    target_affine: np.ndarray,
    *,
    interpolation: Interpolation = "linear",
    transform_ras: np.ndarray | None = None,
    fill_value: float = 0.0,
) -> np.ndarray:
    """Resample ``array`` (on ``affine``) onto the grid ``(target_shape, target_affine)``.

    Labels must use ``interpolation="nearest"``. Returns float32 (or the input dtype for nearest).
    """
    pull = np.linalg.inv(affine)
    if transform_ras is not None:
        pull = pull @ np.asarray(transform_ras, dtype=float)
    pull = pull @ np.asarray(target_affine, dtype=float)
    order = _ORDER[interpolation]
    data = array if order == 0 else np.asarray(array, dtype=np.float32)
    out = ndimage.affine_transform(
        data,
        pull[:3, :3],
        offset=pull[:3, 3],
        output_shape=tuple(int(s) for s in target_shape),
        order=order,
        mode="constant",
        cval=fill_value,
        prefilter=order > 1,
    )
    return out


def isotropic_grid(
    shape: tuple[int, int, int], affine: np.ndarray, spacing_mm: float = 1.0
) -> tuple[tuple[int, int, int], np.ndarray]:
    """A grid of ``spacing_mm`` voxels covering the field of view of ``(shape, affine)``.

    The new grid keeps the source's axis directions (so oblique acquisitions stay oblique and no
    field of view is cut) and its first voxel corner. Returns ``(shape, affine)``.
    """
    affine = np.asarray(affine, dtype=float)
    voxel_mm = np.linalg.norm(affine[:3, :3], axis=0)
    directions = affine[:3, :3] / voxel_mm
    extent_mm = np.asarray(shape) * voxel_mm
    new_shape = tuple(int(np.ceil(e / spacing_mm - 1e-6)) for e in extent_mm)
    corner = affine[:3, :3] @ np.full(3, -0.5) + affine[:3, 3]
    new_affine = np.eye(4)
    new_affine[:3, :3] = directions * spacing_mm
    new_affine[:3, 3] = corner + new_affine[:3, :3] @ np.full(3, 0.5)
    return new_shape, new_affine


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel edge lengths in mm along the array axes."""
    return np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)
