"""No-reference image-quality metrics (IQMs) of a structural image, following MRIQC.

Definitions follow MRIQC (Esteban et al. 2017, "MRIQC: Advancing the automatic prediction of image
quality in MRI from unseen sites", PLoS ONE 12(9):e0184661) and its ``mriqc.qc.anatomical`` module:

- ``snr_{csf,gm,wm}``: mu_k / (sigma_k * sqrt(n / (n - 1))) within tissue k; ``snr_total`` their mean.
- ``snr_dietrich_{csf,gm,wm}``: mu_k / sigma_air * sqrt(2 / (4 - pi))^-1, i.e. the background
  standard deviation corrected for the Rayleigh distribution of magnitude noise in air
  (Dietrich et al. 2007, JMRI 26:375-385); ``snr_dietrich`` their mean.
- ``cnr``: |mu_GM - mu_WM| / sqrt(sigma_air^2 + sigma_GM^2 + sigma_WM^2).
- ``cjv``: (sigma_WM + sigma_GM) / |mu_WM - mu_GM| (Ganzetti et al. 2016). Higher is worse.
- ``efc``: entropy focus criterion (Atkinson et al. 1997) normalised by its maximum, as MRIQC:
  sum((x / b_max) ln(x / b_max)) / (n ln(1/sqrt(n)) / sqrt(n)), b_max = sqrt(sum x^2). Higher is worse.
- ``fber``: foreground-background energy ratio, median |x|^2 in the head over median |x|^2 in air
  (MRIQC's implementation uses medians).
- ``wm2max``: median WM intensity over the 99.95th percentile of the image.
- ``inu_range`` / ``inu_median``: 95th - 5th percentile / median of the bias field in the brain.
- ``fwhm_{x,y,z}_mm`` / ``fwhm_mm``: smoothness from first differences (AFNI 3dFWHMx "classic"):
  per axis FWHM = spacing * sqrt(-2 ln 2 / ln(1 - var(dI) / (2 var(I)))); ``fwhm_mm`` is their
  geometric mean. Computed inside the brain, so tissue contrast inflates it like in MRIQC.

Air (background) is everything outside a dilated head mask (Otsu threshold, largest component,
hole filling, dilation), excluding exact zeros (padding, defacing). Metrics that cannot be computed
(no tissues, no usable air because the field of view is tight or the image is masked) are NaN, with
the reason logged; this function never raises on such data, only on malformed input.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from dawm.image.components import filter_components

__all__ = ["image_quality", "air_mask", "head_mask"]

log = logging.getLogger(__name__)

DIETRICH_FACTOR = 1.0 / math.sqrt(2.0 / (4.0 - math.pi))  # ~0.655
_TISSUES = {"csf": 1, "gm": 2, "wm": 3}
_MIN_VOXELS = 50


def head_mask(image: np.ndarray, brain_mask: np.ndarray | None = None) -> np.ndarray:
    """Head (foreground) mask: Otsu threshold, largest connected component, holes filled, OR brain."""
    data = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
    positive = data[data > 0]
    if positive.size < 2 or positive.min() == positive.max():
        head = data > 0
    else:
        head = data > threshold_otsu(positive)
    head = filter_components(head, connectivity=1, largest=True)
    if brain_mask is not None:
        head |= brain_mask
    head = ndimage.binary_closing(head, iterations=2, border_value=0) | head
    return ndimage.binary_fill_holes(head)


def air_mask(
    image: np.ndarray,
    brain_mask: np.ndarray | None = None,
    *,
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
    dilate_mm: float = 10.0,
    head: np.ndarray | None = None,
) -> np.ndarray:
    """Background air: outside the head mask dilated by ``dilate_mm``, excluding exact zeros/NaNs.

    ``head``: a head mask already computed by :func:`head_mask` (computed here when None)."""
    if head is None:
        head = head_mask(image, brain_mask)
    # A Euclidean distance threshold is the dilation by a ball, in a fraction of the time.
    dilated = ndimage.distance_transform_edt(~head, sampling=np.asarray(spacing_mm, dtype=float)) <= dilate_mm
    data = np.asarray(image, dtype=np.float64)
    return ~dilated & np.isfinite(data) & (data != 0)


def _fwhm_axis(data: np.ndarray, mask: np.ndarray, axis: int) -> float:
    lo = [slice(None)] * 3
    hi = [slice(None)] * 3
    lo[axis] = slice(0, -1)
    hi[axis] = slice(1, None)
    both = mask[tuple(lo)] & mask[tuple(hi)]
    if both.sum() < _MIN_VOXELS:
        return float("nan")
    diff = (data[tuple(hi)] - data[tuple(lo)])[both]
    var_i = data[mask].var()
    if var_i <= 0:
        return float("nan")
    r = 1.0 - diff.var() / (2.0 * var_i)
    if not 0.0 < r < 1.0:
        return float("nan")
    return math.sqrt(-2.0 * math.log(2.0) / math.log(r))


def image_quality(
    image: np.ndarray,
    *,
    brain_mask: np.ndarray,
    tissues: np.ndarray | None = None,
    bias_field: np.ndarray | None = None,
    spacing_mm: Sequence[float],
) -> dict[str, float]:
    """MRIQC-style IQMs of ``image`` (X, Y, Z, non-negative magnitude) as a flat ``{name: float}``.

    brain_mask: bool (X, Y, Z). tissues: optional dseg (X, Y, Z) with 1 CSF, 2 GM, 3 WM (0 elsewhere).
    bias_field: optional multiplicative field (X, Y, Z) from :func:`dawm.preprocess.bias.correct_bias`.
    spacing_mm: voxel sizes (3,) in mm, for the air-mask dilation and FWHM.
    Compute IQMs on the *uncorrected* image for acquisition quality (MRIQC does so for most metrics).
    """
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 3:
        raise ValueError(f"image_quality expects a 3D image, got shape {data.shape}")
    brain = np.asarray(brain_mask, dtype=bool)
    if brain.shape != data.shape:
        raise ValueError(f"brain_mask shape {brain.shape} does not match image shape {data.shape}")
    if not brain.any():
        raise ValueError("brain_mask is empty")
    spacing = np.asarray(spacing_mm, dtype=float)
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise ValueError(f"spacing_mm must be 3 positive numbers, got {spacing_mm!r}")
    if tissues is not None and np.shape(tissues) != data.shape:
        raise ValueError(f"tissues shape {np.shape(tissues)} does not match image shape {data.shape}")
    if bias_field is not None and np.shape(bias_field) != data.shape:
        raise ValueError(f"bias_field shape {np.shape(bias_field)} does not match {data.shape}")

    nan = float("nan")
    finite = np.isfinite(data)
    data = np.where(finite, data, 0.0)
    if (data < 0).any():
        log.info("image has negative values; clipped to 0 for the IQMs")
        data = np.clip(data, 0.0, None)
    out: dict[str, float] = {}

    # Background air.
    head = head_mask(data, brain)
    air = air_mask(data, brain, spacing_mm=spacing, head=head)
    if air.sum() < _MIN_VOXELS:
        log.debug("background air mask has %d voxels (tight FOV or masked image); air-based metrics are NaN", int(air.sum()))
        sigma_air = nan
        air_ok = False
    else:
        sigma_air = float(data[air].std())
        air_ok = sigma_air > 0
        if not air_ok:
            log.warning("background air is constant; air-based metrics are NaN")
            sigma_air = nan
    out["sigma_air"] = sigma_air

    # Tissue statistics.
    stats: dict[str, tuple[float, float, int]] = {}
    if tissues is None:
        log.debug("no tissue segmentation given: tissue SNR, CNR, CJV, wm2max are NaN")
    else:
        dseg = np.asarray(tissues)
        for name, label in _TISSUES.items():
            sel = (dseg == label) & brain & finite
            n = int(sel.sum())
            if n < 2:
                log.warning("tissue %s has %d voxels; its metrics are NaN", name.upper(), n)
                continue
            v = data[sel]
            stats[name] = (float(v.mean()), float(v.std()), n)

    for name in _TISSUES:
        if name in stats:
            mu, sd, n = stats[name]
            out[f"snr_{name}"] = mu / (sd * math.sqrt(n / (n - 1))) if sd > 0 else nan
            out[f"snr_dietrich_{name}"] = DIETRICH_FACTOR * mu / sigma_air if air_ok else nan
        else:
            out[f"snr_{name}"] = nan
            out[f"snr_dietrich_{name}"] = nan
    snrs = [out[f"snr_{n}"] for n in _TISSUES if np.isfinite(out[f"snr_{n}"])]
    out["snr_total"] = float(np.mean(snrs)) if snrs else nan
    snrd = [out[f"snr_dietrich_{n}"] for n in _TISSUES if np.isfinite(out[f"snr_dietrich_{n}"])]
    out["snr_dietrich"] = float(np.mean(snrd)) if snrd else nan

    if "gm" in stats and "wm" in stats:
        (mu_gm, sd_gm, _), (mu_wm, sd_wm, _) = stats["gm"], stats["wm"]
        delta = abs(mu_wm - mu_gm)
        out["cjv"] = (sd_wm + sd_gm) / delta if delta > 0 else nan
        out["cnr"] = delta / math.sqrt(sigma_air**2 + sd_gm**2 + sd_wm**2) if air_ok else nan
        if not air_ok:
            log.debug("cnr is NaN: no usable background air")
        p9995 = float(np.percentile(data[finite], 99.95))
        wm_median = float(np.median(data[(np.asarray(tissues) == 3) & brain & finite]))
        out["wm2max"] = wm_median / p9995 if p9995 > 0 else nan
    else:
        out["cjv"] = out["cnr"] = out["wm2max"] = nan

    # Entropy focus criterion over the whole image (non-finite voxels = frame, excluded).
    x = data[finite]
    n_vox = x.size
    b_max = math.sqrt(float((x**2).sum()))
    if b_max > 0 and n_vox > 1:
        efc_max = n_vox * (1.0 / math.sqrt(n_vox)) * math.log(1.0 / math.sqrt(n_vox))
        xn = x / b_max
        out["efc"] = float(np.sum(xn * np.log(xn + 1e-16)) / efc_max)
    else:
        out["efc"] = nan

    # Foreground-background energy ratio.
    if air_ok:
        fg = float(np.median(data[head] ** 2))
        bg = float(np.median(data[air] ** 2))
        out["fber"] = fg / bg if bg > 0 else nan
    else:
        out["fber"] = nan

    # Intensity non-uniformity.
    if bias_field is None:
        out["inu_range"] = out["inu_median"] = nan
    else:
        f = np.asarray(bias_field, dtype=np.float64)[brain]
        f = f[np.isfinite(f)]
        if f.size == 0:
            log.warning("bias field has no finite values in the brain; INU metrics are NaN")
            out["inu_range"] = out["inu_median"] = nan
        else:
            p5, p50, p95 = np.percentile(f, [5, 50, 95])
            out["inu_range"] = float(p95 - p5)
            out["inu_median"] = float(p50)

    # Smoothness.
    fw = [_fwhm_axis(data, brain & finite, a) * spacing[a] for a in range(3)]
    for a, v in zip("xyz", fw):
        out[f"fwhm_{a}_mm"] = float(v)
    out["fwhm_mm"] = float(np.exp(np.mean(np.log(fw)))) if all(np.isfinite(fw)) else nan
    return {k: float(v) for k, v in out.items()}
