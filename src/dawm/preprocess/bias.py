"""Intensity non-uniformity (bias field) correction with SimpleITK's N4.

N4 (Tustison et al. 2010, "N4ITK: improved N3 bias correction", IEEE TMI 29(6):1310-1320) models
the acquired image as ``v = u * f``: the true image ``u`` times a smooth multiplicative field ``f``,
represented as a B-spline in the log domain and fitted iteratively so that the intensity histogram
of ``u`` becomes as sharp as possible.

For speed N4 is fitted on a shrunk copy of the image; the fitted B-spline log field is then
evaluated on the full-resolution grid (``GetLogBiasFieldAsImage``), so the correction is exact
at full resolution and not an upsampled approximation. Shrinking is per axis so that the shrunk
voxels are roughly isotropic (a 0.9 x 0.9 x 5 mm stack is shrunk in-plane only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from dawm.image.resample import voxel_sizes
from dawm.image.sitk_bridge import itk_default_threads, to_sitk

__all__ = ["BiasCorrection", "correct_bias", "shrink_factors"]


@dataclass(frozen=True)
class BiasCorrection:
    """Result of :func:`correct_bias`.

    corrected: float32 (X, Y, Z), ``image / field`` (0 where the input was 0, negative or NaN).
    field: float32 (X, Y, Z), the multiplicative bias field, > 0 everywhere, mean 1 inside the mask.
    mask: bool (X, Y, Z), voxels N4 was fitted on.
    """

    corrected: np.ndarray
    field: np.ndarray
    mask: np.ndarray


def shrink_factors(spacing_mm: np.ndarray, shrink_factor: int) -> tuple[int, int, int]:
    """Integer shrink factor per axis giving shrunk voxels of about ``shrink_factor * min(spacing)``.

    Axes that are already coarse (e.g. 5 mm slices) are shrunk less, or not at all.
    """
    spacing_mm = np.asarray(spacing_mm, dtype=float)
    target_mm = shrink_factor * spacing_mm.min()
    return tuple(int(max(1, round(target_mm / s))) for s in spacing_mm)  # type: ignore[return-value]


def correct_bias(
    image: np.ndarray,
    affine: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    shrink_factor: int = 4,
    iterations: tuple[int, ...] = (50, 50, 30),
    convergence_threshold: float = 1e-6,
    spline_distance_mm: float = 200.0,
    spline_order: int = 3,
    bins: int = 200,
    n_threads: int | None = None,
) -> BiasCorrection:
    """Estimate and remove a smooth multiplicative bias field with N4 (Tustison et al. 2010).

    image: (X, Y, Z) non-negative intensities (negatives are clipped to 0; zeros and NaNs are
        ignored by the fit and stay 0 in ``corrected``).
    affine: 4x4 voxel -> RAS mm; gives voxel sizes (anisotropic voxels are fine).
    mask: optional bool (X, Y, Z) region to fit on (e.g. the brain or head); default all positive,
        finite voxels. It is intersected with the positive, finite voxels.
    shrink_factor: approximate in-plane shrink factor for the fit (per-axis, see
        :func:`shrink_factors`).
    iterations: maximum iterations per fitting level; ``len(iterations)`` levels, the B-spline mesh
        doubling in resolution at each level.
    spline_distance_mm: initial B-spline control-point spacing (ANTs' ``-b [distance]``).
    n_threads: SimpleITK threads for this filter (default: ITK's global default, :func:`dawm.image.sitk_bridge.itk_default_threads`).

    Returns a :class:`BiasCorrection` with ``corrected = image / field`` and ``field`` normalised to
    mean 1 inside the mask, so corrected intensities keep the input's overall scale.
    """
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 3:
        raise ValueError(f"correct_bias expects a 3D image, got shape {data.shape}")
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got {affine.shape}")
    if shrink_factor < 1:
        raise ValueError(f"shrink_factor must be >= 1, got {shrink_factor}")
    if len(iterations) == 0 or any(int(i) < 1 for i in iterations):
        raise ValueError(f"iterations must be a non-empty sequence of positive ints, got {iterations}")

    valid = np.isfinite(data) & (data > 0)
    data = np.where(valid, data, 0.0)
    if mask is None:
        fit_mask = valid
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != data.shape:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {data.shape}")
        fit_mask = mask & valid
    if fit_mask.sum() < 64:
        raise ValueError("bias-field mask has fewer than 64 positive voxels; nothing to fit")

    spacing_mm = voxel_sizes(affine)
    factors = shrink_factors(spacing_mm, shrink_factor)

    img = to_sitk(data.astype(np.float32), affine)
    msk = to_sitk(fit_mask.astype(np.uint8), affine)
    small_img = sitk.Shrink(img, factors) if max(factors) > 1 else img
    small_msk = sitk.Shrink(msk, factors) if max(factors) > 1 else msk
    # Shrink subsamples the mask; keep only voxels that are still in-mask with signal.
    small_msk = sitk.Cast((small_msk > 0) & (small_img > 0), sitk.sitkUInt8)

    extent_mm = np.asarray(small_img.GetSize()) * np.asarray(small_img.GetSpacing())
    mesh = [max(1, int(np.ceil(e / spline_distance_mm))) for e in extent_mm]

    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.SetConvergenceThreshold(float(convergence_threshold))
    n4.SetSplineOrder(int(spline_order))
    n4.SetNumberOfControlPoints([m + spline_order for m in mesh])
    n4.SetNumberOfHistogramBins(int(bins))
    # N4's result depends on its number of threads: ITK's default, unless the caller says.
    n4.SetNumberOfThreads(int(n_threads) if n_threads is not None else itk_default_threads())
    n4.Execute(small_img, small_msk)

    log_field_img = n4.GetLogBiasFieldAsImage(img)
    log_field = sitk.GetArrayFromImage(log_field_img).transpose(2, 1, 0).astype(np.float64)
    # Normalise so the field has mean 1 inside the fit mask (geometric centring first for stability).
    log_field -= log_field[fit_mask].mean()
    field = np.exp(log_field)
    field /= field[fit_mask].mean()

    corrected = np.where(valid, data / field, 0.0)
    return BiasCorrection(
        corrected=corrected.astype(np.float32),
        field=field.astype(np.float32),
        mask=fit_mask,
    )
