"""Z maps of T1 and MTR against a reference, and their joint (Mahalanobis / chi2) score.

Sign convention: z maps are plain standard scores ``(x - mean) / sd``. DAWM raises T1 (abnormal =
high T1 z) and lowers MTR (abnormal = low, i.e. negative, MTR z) (Vrenken et al., AJNR 2010; Ge et
al., AJNR 2003). The joint score uses the *abnormality* vector ``a = (z_T1, -z_MTR)``, both positive
when abnormal.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def masked_smooth(
    data: np.ndarray, mask: np.ndarray, fwhm_mm: float, spacing_mm: np.ndarray | float, *, out_mask: np.ndarray | None = None
) -> np.ndarray:
    """Gaussian smoothing of ``data`` (X, Y, Z) using only voxels in ``mask`` (normalised convolution),
    so CSF and GM values do not bleed into WM. ``mask`` is boolean, or non-negative weights (e.g. the
    number of samples behind each voxel's value: a weighted normalised convolution; the mask is then
    ``weights > 0``). Returns float32, 0 outside ``out_mask`` (default the mask; a wider ``out_mask``
    fills voxels left out of the mask from their neighbours)."""
    weight = np.asarray(mask, dtype=np.float32)
    mask = weight > 0
    out_mask = mask if out_mask is None else np.asarray(out_mask, bool)
    data = np.asarray(data, dtype=np.float32)
    if fwhm_mm <= 0 or not mask.any():
        return np.where(mask & out_mask, data, 0).astype(np.float32)
    sigma = fwhm_mm * FWHM_TO_SIGMA / np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
    num = ndimage.gaussian_filter(np.where(mask, data * weight, 0).astype(np.float32), sigma, truncate=3.0)
    den = ndimage.gaussian_filter(weight, sigma, truncate=3.0)
    return np.where(out_mask & (den > 1e-3), num / np.maximum(den, 1e-6), 0).astype(np.float32)


def zscore(values: np.ndarray, mean: np.ndarray | float, sd: np.ndarray | float) -> np.ndarray:
    """``(values - mean) / sd`` as float32 (0 where ``sd`` is not positive)."""
    sd = np.asarray(sd, dtype=np.float32)
    safe = np.where(sd > 0, sd, 1.0)
    return np.where(sd > 0, (np.asarray(values, np.float32) - mean) / safe, 0).astype(np.float32)


def abnormality(z_t1: np.ndarray, z_mtr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The abnormality components ``(z_T1, -z_MTR)``: both positive in the DAWM direction."""
    return np.asarray(z_t1, np.float32), -np.asarray(z_mtr, np.float32)


def mahalanobis_sq(a_t1: np.ndarray, a_mtr: np.ndarray, rho: float) -> np.ndarray:
    """Squared Mahalanobis distance of the 2-vector ``(a_t1, a_mtr)`` of unit-variance scores with
    correlation ``rho``: ``(a1^2 - 2 rho a1 a2 + a2^2) / (1 - rho^2)``. Chi2 with 2 dof under the
    reference."""
    rho = float(np.clip(rho, -0.95, 0.95))
    a1, a2 = np.asarray(a_t1, np.float64), np.asarray(a_mtr, np.float64)
    return ((a1 * a1 - 2 * rho * a1 * a2 + a2 * a2) / (1 - rho * rho)).astype(np.float32)


def chi2_pvalue(d2: np.ndarray, dof: int = 2) -> np.ndarray:
    """Upper-tail p value of a chi2 score (scipy.stats.chi2.sf)."""
    return stats.chi2.sf(np.asarray(d2, np.float64), dof).astype(np.float32)


def abnormality_correlation(z_t1: np.ndarray, z_mtr: np.ndarray, mask: np.ndarray) -> float:
    """Correlation of the abnormality components ``(z_T1, -z_MTR)`` over ``mask`` (reference NAWM);
    0 when there are too few voxels."""
    a1, a2 = abnormality(z_t1[mask], z_mtr[mask])
    if a1.size < 10 or a1.std() == 0 or a2.std() == 0:
        return 0.0
    return float(np.corrcoef(a1, a2)[0, 1])
