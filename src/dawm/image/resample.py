"""Resampling between grids given by (shape, affine) pairs, with explicit interpolation.

:func:`resample` is the one entry point: arrays indexed ``[i, j, k]`` with RAS voxel-to-world
affines, and a ``transform`` that maps *target-grid world* points to *source world* points (the pull
direction of scipy and SimpleITK), so a motion estimated by registration is applied directly.
``resample_to_grid`` (``transform_ras=``) and :func:`dawm.image.registration.warp` are the same
function under their older names.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import SimpleITK as sitk
from nibabel import affines
from scipy import ndimage

from dawm.image.sitk_bridge import as_sitk_transform, reference_image, to_sitk

Interpolation = Literal["nearest", "linear", "cubic"]
_ORDER = {"nearest": 0, "linear": 1, "cubic": 3}
_ITK_INTERPOLATORS = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "cubic": sitk.sitkBSpline}


def resample(
    array: np.ndarray,
    affine: np.ndarray,
    target_shape: tuple[int, int, int],
    target_affine: np.ndarray,
    transform=None,
    interpolation: Interpolation = "linear",
    fill_value: float = 0.0,
) -> np.ndarray:
    """Pull ``array`` (on ``affine``) onto the grid ``(target_shape, target_affine)``, through
    ``transform`` (target world -> source world points; None: the identity).

    * None or a 4x4 RAS matrix (array-like): ``scipy.ndimage.affine_transform`` with the one composed
      voxel-to-voxel matrix (exact for any affine map; ``cubic`` with a spline prefilter).
    * a SimpleITK transform, or a registration result (anything with ``to_sitk()``: a linear or
      deformable registration of :mod:`dawm.image.registration`, or a transform file read by
      ``load_transform``): ITK's resampler (dense displacement fields need it; registrations are
      applied the way they were estimated). ``array`` must be 3D.

    Labels use ``interpolation="nearest"``: the output keeps the input dtype (bool stays bool on the
    ITK path); otherwise float32 is returned. Outside the source grid the output is ``fill_value``.
    """
    if interpolation not in _ORDER:
        raise ValueError(f"unknown interpolation {interpolation!r}")
    if isinstance(transform, sitk.Transform) or callable(getattr(transform, "to_sitk", None)):
        return _resample_itk(array, affine, target_shape, target_affine, transform, interpolation, fill_value)
    return _resample_affine(array, affine, target_shape, target_affine, transform, interpolation, fill_value)


def _resample_itk(array, affine, target_shape, target_affine, transform, interpolation: Interpolation, fill_value: float) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"resample through a transform expects a 3D array, got shape {array.shape}")
    if len(tuple(target_shape)) != 3:
        raise ValueError(f"target_shape must have 3 entries, got {target_shape}")
    if interpolation == "nearest":
        dtype = array.dtype
        data = array.astype(np.uint8) if dtype == np.bool_ else array
    else:
        dtype = np.dtype(np.float32)
        data = array.astype(np.float32)
    src = to_sitk(data, affine)
    ref = reference_image(tuple(int(s) for s in target_shape), np.asarray(target_affine, dtype=float))
    out = sitk.Resample(src, ref, as_sitk_transform(transform), _ITK_INTERPOLATORS[interpolation], float(fill_value), src.GetPixelID())
    result = sitk.GetArrayFromImage(out).transpose(2, 1, 0)
    return result.astype(dtype, copy=False)


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
    """:func:`resample` with a 4x4 matrix (or None) as ``transform_ras``; kept for existing callers."""
    return resample(array, affine, target_shape, target_affine, transform_ras, interpolation, fill_value)


def _resample_affine(
    array, affine, target_shape, target_affine, transform_ras, interpolation: Interpolation, fill_value: float
) -> np.ndarray:
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


def isotropic_grid(shape: tuple[int, int, int], affine: np.ndarray, spacing_mm: float = 1.0) -> tuple[tuple[int, int, int], np.ndarray]:
    """A grid of ``spacing_mm`` voxels covering the field of view of ``(shape, affine)``.

    The new grid keeps the source's axis directions (so oblique acquisitions stay oblique and no
    field of view is cut) and its first voxel corner. Returns ``(shape, affine)``.
    """
    affine = np.asarray(affine, dtype=float)
    voxel_mm = voxel_sizes(affine)
    directions = affine[:3, :3] / voxel_mm
    extent_mm = np.asarray(shape) * voxel_mm
    new_shape = tuple(int(np.ceil(e / spacing_mm - 1e-6)) for e in extent_mm)
    corner = affine[:3, :3] @ np.full(3, -0.5) + affine[:3, 3]
    new_affine = np.eye(4)
    new_affine[:3, :3] = directions * spacing_mm
    new_affine[:3, 3] = corner + new_affine[:3, :3] @ np.full(3, 0.5)
    return new_shape, new_affine


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel edge lengths in mm along the array axes (float64): :func:`nibabel.affines.voxel_sizes`."""
    return affines.voxel_sizes(np.asarray(affine, dtype=float))
