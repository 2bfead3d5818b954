"""The DAWM rule as pure array functions (all arrays (X, Y, Z) on one grid, ``spacing_mm`` its voxel size).

A voxel is DAWM when it is

1. *eligible*: white matter (dseg WM, WM probability >= ``purity``), farther than ``lesion_margin_mm``
   from a lesion, farther than ``pv_margin_mm`` (and at least one voxel) from any voxel that is not
   such pure WM (the partial-volume shell at GM/CSF borders), and, given a population WM prior (the MNI152 WM
   probability warped to the session), where that prior is at least ``prior_min``;
2. *abnormal* by the rule: ``t1``: z_T1 >= thr; ``mtr``: z_MTR <= -thr; ``both``: both; ``either``:
   one of them; ``chi2``: the 2-dof Mahalanobis distance of (z_T1, -z_MTR) has p < p_thr and the
   voxel deviates in the DAWM direction (z_T1 - z_MTR > 0), so that low-T1/high-MTR voxels never count;
3. *not lesion-like*: T1 no more than ``max_t1_rise`` above its reference mean;
   with a grow level (hysteresis, :func:`grow_from_seeds`), voxels abnormal at the lower ``grow``
   z that are connected to a voxel abnormal at the threshold count too: DAWM has ill-defined
   margins, so a region is found by its core and followed out to where it fades;
4. part of a cluster of at least ``min_cluster_mm3`` (26-connectivity), after an optional closing.

By construction ``both`` ⊆ ``t1``, ``mtr`` ⊆ ``either``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dawm.image.components import FULL, filter_components
from dawm.label.config import Rule
from dawm.label.zscores import abnormality, chi2_pvalue, mahalanobis_sq


def _spacing(spacing_mm: np.ndarray | float) -> np.ndarray:
    return np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))


def within_mm(mask: np.ndarray, mm: float, spacing_mm: np.ndarray | float) -> np.ndarray:
    """Voxels within ``mm`` of ``mask`` (the mask dilated by a physical distance); ``mask`` itself when mm=0.
    A voxel exactly ``mm`` away counts as within, up to a relative 1e-6: the voxel sizes of an oblique
    affine are column norms such as 2.0000000003 mm, and a 2 mm margin must still reach every face
    neighbour."""
    mask = np.asarray(mask, bool)
    if mm <= 0 or not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask, sampling=_spacing(spacing_mm)) <= mm * (1 + 1e-6)


def pv_core(wm: np.ndarray, margin_mm: float, spacing_mm: np.ndarray | float) -> np.ndarray:
    """The voxels of ``wm`` (bool) farther than ``margin_mm`` from any voxel outside it. A positive
    margin removes at least the first layer of voxels (it is raised to the smallest voxel size): a
    1.5 mm margin on a 2 mm grid would otherwise remove nothing, since no voxel centre lies closer
    than 2 mm to its neighbour's."""
    wm = np.asarray(wm, bool)
    if margin_mm <= 0:
        return wm.copy()
    return wm & ~within_mm(~wm, max(margin_mm, float(_spacing(spacing_mm).min())), spacing_mm)


def eligible_wm(
    wm_prob: np.ndarray,
    dseg: np.ndarray,
    lesion: np.ndarray,
    spacing_mm: np.ndarray | float,
    *,
    purity: float = 0.5,
    lesion_margin_mm: float = 2.0,
    pv_margin_mm: float = 0.0,
    wm_prior: np.ndarray | None = None,
    prior_min: float = 0.0,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Voxels that may be DAWM: pure WM (``dseg == 3`` and ``wm_prob >= purity``), not within
    ``lesion_margin_mm`` of a lesion, not within ``pv_margin_mm`` of a voxel that is not pure WM,
    ``wm_prior >= prior_min`` where a prior is given, and not in ``exclude`` (e.g. near the deep grey
    nuclei) where given (bool (X, Y, Z)). A positive ``pv_margin_mm`` removes at least the first layer
    of voxels next to non-pure WM (:func:`pv_core`)."""
    pure = (np.asarray(dseg) == 3) & (np.asarray(wm_prob) >= purity)
    ok = pv_core(pure, pv_margin_mm, spacing_mm) & ~within_mm(lesion, lesion_margin_mm, spacing_mm)
    if wm_prior is not None and prior_min > 0:
        ok &= np.asarray(wm_prior) >= prior_min
    if exclude is not None:
        ok &= ~np.asarray(exclude, bool)
    return ok


def abnormal_mask(
    z_t1: np.ndarray | None,
    z_mtr: np.ndarray | None,
    rule: Rule,
    *,
    z_threshold: float = 2.0,
    chi2_p: float = 0.01,
    rho: float = 0.0,
) -> np.ndarray:
    """Voxels abnormal by ``rule`` (see the module docstring). With one map missing, every rule falls
    back to the available modality's single-map rule; ``ValueError`` when the rule's only map is missing."""
    if z_t1 is None and z_mtr is None:
        raise ValueError("no z map given")
    if z_t1 is None or z_mtr is None:
        if rule == "t1" and z_t1 is None or rule == "mtr" and z_mtr is None:
            raise ValueError(f"rule {rule} needs the {'T1' if rule == 't1' else 'MTR'} map")
        return z_t1 >= z_threshold if z_t1 is not None else z_mtr <= -z_threshold
    high_t1 = z_t1 >= z_threshold
    low_mtr = z_mtr <= -z_threshold
    if rule == "t1":
        return high_t1
    if rule == "mtr":
        return low_mtr
    if rule == "both":
        return high_t1 & low_mtr
    if rule == "either":
        return high_t1 | low_mtr
    if rule == "chi2":
        a1, a2 = abnormality(z_t1, z_mtr)
        return (chi2_pvalue(mahalanobis_sq(a1, a2, rho)) < chi2_p) & (a1 + a2 > 0)
    raise ValueError(f"unknown rule {rule!r}")


def grow_from_seeds(seeds: np.ndarray, candidates: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The 26-connected components of ``candidates & allowed`` that hold a voxel of ``seeds & allowed``
    (hysteresis thresholding with the two masks; all bool (X, Y, Z)); ``seeds`` should be a subset of
    ``candidates``."""
    allowed = np.asarray(allowed, bool)
    grown = (np.asarray(candidates, bool) | np.asarray(seeds, bool)) & allowed
    return filter_components(grown, connectivity=FULL, seeds=np.asarray(seeds, bool) & allowed)


def lesion_like(t1_ms: np.ndarray | None, t1_reference_ms: np.ndarray | None, max_rise: float) -> np.ndarray | None:
    """Voxels whose T1 exceeds the reference mean by more than ``max_rise`` (a fraction): focal-lesion
    values, never DAWM. None without a T1 map."""
    if t1_ms is None or t1_reference_ms is None:
        return None
    return np.asarray(t1_ms) > (1.0 + max_rise) * np.asarray(t1_reference_ms)


def clean_mask(
    mask: np.ndarray,
    spacing_mm: np.ndarray | float,
    *,
    min_cluster_mm3: float = 50.0,
    closing_mm: float = 0.0,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Close ``mask`` by ``closing_mm`` (kept inside ``allowed``), then drop 26-connected clusters
    smaller than ``min_cluster_mm3``."""
    spacing = _spacing(spacing_mm)
    out = np.asarray(mask, bool).copy()
    if closing_mm > 0:
        radius = np.maximum(np.round(closing_mm / spacing).astype(int), 0)
        if radius.any():
            grid = np.indices(2 * radius + 1) - radius[:, None, None, None]
            ball = ((grid * spacing[:, None, None, None]) ** 2).sum(0) <= closing_mm**2
            out = ndimage.binary_closing(out, structure=ball)
            if allowed is not None:
                out &= allowed
    if min_cluster_mm3 > 0 and out.any():
        out = filter_components(out, connectivity=FULL, min_volume=min_cluster_mm3, voxel_volume=float(np.prod(spacing)))
    return out


def label_dawm(
    eligible: np.ndarray,
    abnormal: np.ndarray,
    lesion: np.ndarray,
    spacing_mm: np.ndarray | float,
    *,
    lesion_like_mask: np.ndarray | None = None,
    min_cluster_mm3: float = 50.0,
    closing_mm: float = 0.0,
) -> np.ndarray:
    """The DAWM segmentation (uint8, :data:`dawm.labels.DAWM_LABELS`): 1 lesion, 2 DAWM (eligible & abnormal & not
    lesion-like, cleaned by :func:`clean_mask`), 0 otherwise. Lesions are never DAWM."""
    allowed = np.asarray(eligible, bool) & ~np.asarray(lesion, bool)
    if lesion_like_mask is not None:
        allowed &= ~lesion_like_mask
    dawm = clean_mask(abnormal & allowed, spacing_mm, min_cluster_mm3=min_cluster_mm3, closing_mm=closing_mm, allowed=allowed)
    out = np.zeros(np.shape(eligible), np.uint8)
    out[dawm] = 2
    out[np.asarray(lesion, bool)] = 1
    return out


def automatic_lesion_mask(
    flair: np.ndarray | None,
    t1_ms: np.ndarray | None,
    wm: np.ndarray,
    spacing_mm: np.ndarray | float,
    *,
    flair_z: float = 3.0,
    t1_rise: float = 0.30,
    min_cluster_mm3: float = 10.0,
) -> np.ndarray:
    """A documented automatic lesion mask when none is given: voxels of the WM region ``wm`` (dilated
    by 2 mm, lesions lower the WM probability) that are FLAIR hyperintense (robust z over ``wm`` >
    ``flair_z``, median/1.4826 MAD) AND have T1 clearly high (> (1 + ``t1_rise``) x the WM median T1),
    in clusters of at least ``min_cluster_mm3``. With only one of the two images, that image's test alone."""
    region = within_mm(wm, 2.0, spacing_mm)
    hit = region.copy()
    used = False
    if flair is not None:
        vals = flair[wm]
        med = float(np.median(vals))
        mad = 1.4826 * float(np.median(np.abs(vals - med))) or 1.0
        hit &= (flair - med) / mad > flair_z
        used = True
    if t1_ms is not None:
        hit &= t1_ms > (1.0 + t1_rise) * float(np.median(t1_ms[wm]))
        used = True
    if not used:
        return np.zeros(wm.shape, bool)
    return clean_mask(hit, spacing_mm, min_cluster_mm3=min_cluster_mm3)
