"""Lesion-aware CSF / GM / WM segmentation: an EM Gaussian mixture with spatial priors.

The model follows Atropos (Avants et al. 2011, Neuroinformatics 9:381-400) in its prior-probability
mode: each brain voxel's posterior for class k is proportional to ``prior_k(x) * N(y | mu_k, S_k)``,
where ``y`` holds the z-normalised intensities of one or several co-registered, bias-corrected
channels, with a mean-field MRF term (``beta`` times the neighbourhood-average posterior) for
spatial smoothness. Class means/covariances are re-estimated from the posteriors (M-step).

MS-specific part. Focal lesions (T1w-dark, FLAIR-bright) and diffusely abnormal WM (slightly
T1w-darker, FLAIR-brighter) look GM- or CSF-like and a plain 3-class model swallows them into GM/CSF.
Two explicit mechanisms keep them in WM:

1. An *abnormal-WM* class shares the WM prior (``prior_abn = rho * prior_wm``) and has its own,
   broad Gaussian. Its posterior is added to WM at the end, so DAWM-ish voxels where the WM prior
   dominates land in WM (and in ``nawm_mask``), not in GM.
2. *Lesion candidates*: WM-prior-dominated voxels that are strong outliers in the lesion direction
   (brighter than GM by ``lesion_z`` GM standard deviations on a FLAIR/T2/PD channel; or, with T1-like
   channels only, darker than GM and away from CSF priors), grown by hysteresis at half that
   threshold. They are forced to WM, flagged in ``lesion_candidates`` and excluded from the class
   statistics. A given ``lesion_mask`` is treated the same way.

Channel roles come from the channel names: names containing "FLAIR", "T2" or "PD" are lesion-
hyperintense; all others (T1w, UNIT1, MPRAGE...) lesion-hypointense.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import apply_hysteresis_threshold

__all__ = ["TissuePriors", "TissueSegmentation", "segment_tissues", "CLASSES"]

log = logging.getLogger(__name__)

CLASSES = ("CSF", "GM", "WM")
_HYPERINTENSE_TAGS = ("FLAIR", "T2", "PD")


@dataclass(frozen=True)
class TissuePriors:
    """Spatial tissue priors on the image grid (already registered), float arrays in [0, 1], (X, Y, Z)."""

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray

    def __post_init__(self) -> None:
        shapes = {np.shape(self.csf), np.shape(self.gm), np.shape(self.wm)}
        if len(shapes) != 1:
            raise ValueError(f"tissue priors must share one shape, got {sorted(shapes)}")
        if len(next(iter(shapes))) != 3:
            raise ValueError(f"tissue priors must be 3D, got shape {next(iter(shapes))}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.wm))


@dataclass(frozen=True)
class TissueSegmentation:
    """Result of :func:`segment_tissues`.

    probabilities: {'CSF', 'GM', 'WM'} -> float32 (X, Y, Z) posteriors, summing to 1 in the brain
        mask, 0 outside. WM includes the abnormal-WM class and lesions.
    dseg: uint8 (X, Y, Z), 0 background, 1 CSF, 2 GM, 3 WM (argmax of ``probabilities``).
    nawm_mask: bool, ``dseg == 3`` minus lesions (given ``lesion_mask`` and ``lesion_candidates``);
        keeps DAWM-like voxels.
    lesion_candidates: bool, data-driven focal-lesion candidates (forced to WM).
    class_means: {'CSF', 'GM', 'WM', 'ABN'} -> per-channel means in z units (channel order of
        ``channels``).
    channels: channel names, in the order used.
    """

    probabilities: dict[str, np.ndarray]
    dseg: np.ndarray
    nawm_mask: np.ndarray
    lesion_candidates: np.ndarray
    class_means: dict[str, np.ndarray]
    channels: tuple[str, ...]


def _is_hyperintense(name: str) -> bool:
    upper = name.upper()
    return any(tag in upper for tag in _HYPERINTENSE_TAGS)


def _log_gauss(y: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Log density of N(mean, cov) at rows of ``y`` (N, C)."""
    chol = np.linalg.cholesky(cov)
    d = np.linalg.solve(chol, (y - mean).T)
    maha = np.einsum("ij,ij->j", d, d)
    logdet = 2.0 * np.log(np.diag(chol)).sum()
    return -0.5 * (maha + logdet + y.shape[1] * np.log(2 * np.pi))


def _weighted_stats(y: np.ndarray, w: np.ndarray, reg: float) -> tuple[np.ndarray, np.ndarray]:
    total = w.sum()
    if total < 1e-6:
        raise ValueError("a tissue class has no support in the brain mask")
    mean = (w[:, None] * y).sum(0) / total
    d = y - mean
    cov = (w[:, None] * d).T @ d / total
    cov += reg * np.eye(y.shape[1])
    return mean, cov


def segment_tissues(
    images: Mapping[str, np.ndarray],
    priors: TissuePriors,
    brain_mask: np.ndarray,
    *,
    lesion_mask: np.ndarray | None = None,
    n_iter: int = 6,
    mrf_beta: float = 1.0,
    prior_floor: float = 0.01,
    abnormal_fraction: float = 0.1,
    lesion_z: float = 3.0,
    wm_dominance: float = 0.5,
) -> TissueSegmentation:
    """Segment CSF / GM / WM in ``brain_mask``, keeping MS lesions and DAWM in WM.

    images: channel name -> (X, Y, Z) bias-corrected intensities, co-registered (e.g. {'T1w', 'FLAIR'}
        or {'UNIT1'}); each is z-normalised within the brain (lesions excluded).
    priors: CSF/GM/WM prior probabilities on the same grid (need not sum to 1; renormalised).
    brain_mask: bool (X, Y, Z).
    lesion_mask: optional bool (X, Y, Z) known lesions, forced to WM and excluded from the fit.
    n_iter: EM iterations.
    mrf_beta: weight of the mean-field MRF term (0 disables spatial smoothing of posteriors).
    prior_floor: added to each prior before renormalising, so data can override a prior of 0.
    abnormal_fraction: share ``rho`` of the WM prior given to the abnormal-WM class.
    lesion_z: outlier threshold, in GM standard deviations beyond the GM mean, for lesion candidates.
    wm_dominance: minimum normalised WM prior for a voxel to become a lesion candidate.
    """
    if not images:
        raise ValueError("segment_tissues needs at least one image channel")
    brain_mask = np.asarray(brain_mask, dtype=bool)
    if brain_mask.ndim != 3:
        raise ValueError(f"brain_mask must be 3D, got shape {brain_mask.shape}")
    shape = brain_mask.shape
    if priors.shape != shape:
        raise ValueError(f"priors shape {priors.shape} does not match brain_mask shape {shape}")
    for name, img in images.items():
        if np.shape(img) != shape:
            raise ValueError(f"image {name!r} shape {np.shape(img)} does not match mask shape {shape}")
    if lesion_mask is not None:
        lesion_mask = np.asarray(lesion_mask, dtype=bool)
        if lesion_mask.shape != shape:
            raise ValueError(f"lesion_mask shape {lesion_mask.shape} does not match {shape}")
    finite = np.ones(shape, dtype=bool)
    for img in images.values():
        finite &= np.isfinite(img)
    mask = brain_mask & finite
    if mask.sum() < 100:
        raise ValueError("brain mask has fewer than 100 voxels with finite intensities")
    if n_iter < 1:
        raise ValueError("n_iter must be >= 1")

    channels = tuple(images)
    hyper = np.array([_is_hyperintense(c) for c in channels])
    given = lesion_mask[mask] if lesion_mask is not None else np.zeros(int(mask.sum()), bool)

    # Features: z-normalised within the brain, lesions excluded from the normalisation statistics.
    y = np.empty((int(mask.sum()), len(channels)), dtype=np.float64)
    for c, name in enumerate(channels):
        v = np.asarray(images[name], dtype=np.float64)[mask]
        ref = v[~given] if (~given).sum() > 10 else v
        sd = ref.std()
        if sd <= 0:
            raise ValueError(f"image {name!r} is constant inside the brain mask")
        y[:, c] = (v - ref.mean()) / sd

    # Priors: CSF, GM, WM, ABN (share of WM), floored and renormalised per voxel.
    p3 = np.stack([np.clip(np.asarray(p, dtype=np.float64)[mask], 0, 1) for p in (priors.csf, priors.gm, priors.wm)], axis=1)
    p3 += prior_floor
    p3 /= p3.sum(1, keepdims=True)
    wm_prior = p3[:, 2]
    prior = np.column_stack([p3[:, 0], p3[:, 1], wm_prior * (1 - abnormal_fraction), wm_prior * abnormal_fraction])
    log_prior = np.log(prior)

    # Initialisation: statistics weighted by sharpened priors (confident voxels dominate).
    reg = 1e-3
    means, covs = [], []
    for k in range(3):
        w = p3[:, k] ** 4 * ~given
        m, s = _weighted_stats(y, w, reg)
        means.append(m)
        covs.append(s)
    means.append(means[2])
    covs.append(covs[2])
    _tie_abnormal(means, covs)
    n_cls = 4

    candidates = np.zeros_like(given)
    post = prior.copy()
    idx = np.nonzero(mask)
    vol = np.zeros(shape, dtype=np.float32)
    for it in range(n_iter):
        # E-step with mean-field MRF on the previous posteriors (WM and ABN pooled as "white").
        loglik = np.column_stack([_log_gauss(y, means[k], covs[k]) for k in range(n_cls)])
        logit = log_prior + loglik
        if mrf_beta > 0 and it > 0:
            pooled = [post[:, 0], post[:, 1], post[:, 2] + post[:, 3]]
            smooth = []
            for p in pooled:
                vol[idx] = p
                smooth.append(ndimage.uniform_filter(vol, size=3, mode="constant")[idx])
            norm = np.maximum(sum(smooth), 1e-6)
            s = [sm / norm for sm in smooth]
            logit += mrf_beta * np.column_stack([s[0], s[1], s[2], s[2]])
        logit -= logit.max(1, keepdims=True)
        post = np.exp(logit)
        post /= post.sum(1, keepdims=True)

        # Lesion candidates: WM-prior-dominated strong outliers in the lesion direction.
        candidates = _lesion_candidates(y, means, covs, hyper, p3, mask, idx, shape, lesion_z, wm_dominance)
        forced = given | candidates
        post[forced] = 0.0
        post[forced, 3] = 1.0

        # M-step (forced voxels excluded).
        keep = ~forced
        for k in range(3):
            w = post[:, k] * keep
            if k == 2:
                w = w + post[:, 3] * keep  # abnormal WM is WM tissue for the WM statistics
            if w.sum() < 10:
                continue  # keep the previous estimate for an (almost) empty class
            means[k], covs[k] = _weighted_stats(y, w, reg)
        _tie_abnormal(means, covs)

    probs3 = np.column_stack([post[:, 0], post[:, 1], post[:, 2] + post[:, 3]]).astype(np.float32)
    probabilities: dict[str, np.ndarray] = {}
    for k, name in enumerate(CLASSES):
        out = np.zeros(shape, dtype=np.float32)
        out[idx] = probs3[:, k]
        probabilities[name] = out
    dseg = np.zeros(shape, dtype=np.uint8)
    dseg[idx] = (np.argmax(probs3, axis=1) + 1).astype(np.uint8)
    cand = np.zeros(shape, dtype=bool)
    cand[idx] = candidates
    lesions = cand | (lesion_mask if lesion_mask is not None else False)
    nawm = (dseg == 3) & ~lesions
    log.debug("segment_tissues: %d lesion-candidate voxels, %d NAWM voxels", cand.sum(), nawm.sum())
    return TissueSegmentation(
        probabilities=probabilities,
        dseg=dseg,
        nawm_mask=nawm,
        lesion_candidates=cand,
        class_means={n: np.asarray(m) for n, m in zip(("CSF", "GM", "WM", "ABN"), means)},
        channels=channels,
    )


def _tie_abnormal(means: list[np.ndarray], covs: list[np.ndarray]) -> None:
    """Abnormal-WM Gaussian, tied to WM and GM: centred half-way from WM towards GM (the lesion
    direction on T1w *and* FLAIR), spread along the WM-GM axis so that it covers mild (DAWM) to
    GM-like intensities. Updates ``means[3]``, ``covs[3]`` in place."""
    d = means[1] - means[2]
    means[3] = means[2] + 0.5 * d
    covs[3] = 0.5 * (covs[1] + covs[2]) + 0.25 * np.outer(d, d)


def _lesion_candidates(
    y: np.ndarray,
    means: list[np.ndarray],
    covs: list[np.ndarray],
    hyper: np.ndarray,
    p3: np.ndarray,
    mask: np.ndarray,
    idx: tuple[np.ndarray, ...],
    shape: tuple[int, ...],
    lesion_z: float,
    wm_dominance: float,
) -> np.ndarray:
    """Voxels (flat, in-mask) beyond GM by ``lesion_z`` GM sds in the lesion direction, in WM prior.

    Score per channel: signed distance from the GM mean towards the lesion side, in GM sds; the
    score is the minimum over channels (all channels must agree). With only lesion-hypointense
    channels, voxels with a CSF prior above 0.1 are excluded (CSF is dark too).
    """
    gm_mean, gm_sd = means[1], np.sqrt(np.diag(covs[1]))
    direction = np.where(hyper, 1.0, -1.0)
    score = ((y - gm_mean) * direction / gm_sd).min(axis=1)
    if hyper.any():
        # FLAIR-bright voxels: CSF is dark on FLAIR, so the hyperintense channels carry the decision;
        # T1-like channels only need to be "not brighter than WM".
        score = ((y[:, hyper] - gm_mean[hyper]) / gm_sd[hyper]).min(axis=1)
        if (~hyper).any():
            wm_mean = means[2]
            not_bright = (y[:, ~hyper] <= wm_mean[~hyper]).all(axis=1)
            score = np.where(not_bright, score, -np.inf)
        eligible = p3[:, 2] >= wm_dominance
    else:
        eligible = (p3[:, 2] >= wm_dominance) & (p3[:, 0] < 0.1)
    score = np.where(eligible, score, -np.inf)
    vol = np.full(shape, -np.inf, dtype=np.float32)
    vol[idx] = score
    grown = apply_hysteresis_threshold(vol, 0.5 * lesion_z, lesion_z)
    return grown[idx]
