"""Segmentation and agreement metrics: predicted masks and volumes against reference labels.

Voxel overlap (:func:`overlap_metrics`; its Dice is :func:`dawm.metrics.dice`, one session's, which
the report averages over sessions: :func:`dawm.metrics.mean_dice`), lesion-wise detection
(:func:`lesion_detection`, components of :func:`dawm.image.components.components`; its recall per
lesion size: :func:`lesion_recall_by_size`) and agreement of
per-subject volumes (ICC, correlations, Bland-Altman, bootstrap CIs). Pure numpy/scipy.

Surface distances follow MONAI's definition (``compute_hausdorff_distance`` /
``compute_average_surface_distance``): the surface of a mask is ``mask ^ binary_erosion(mask)``
(6-connected erosion, voxels on the array border count as surface), distances are Euclidean in mm
between surface-voxel centres. HD95 is the larger of the two directed 95th percentiles (linear
interpolation); ASSD is the mean of all distances of both directions pooled.

Empty-mask conventions (so that summaries can average without special cases):

* a ratio whose denominator is empty is 1.0 ("nothing to get wrong"): both masks empty gives
  dice = precision = recall = 1; an empty prediction has precision 1, an empty reference recall 1;
  only one empty gives dice 0.
* both empty: hd95 = assd = 0, volume errors 0, relative volume error 0.
* exactly one empty: hd95 and assd are NaN (undefined; summaries use ``nanmean`` and report how
  many were undefined). relative_volume_error is NaN whenever the reference is empty but the
  prediction is not. Every other field is always a finite number.

Agreement functions drop pairs with a non-finite value and return NaN (never warn) when too few
pairs remain or the input is constant.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage, stats

from dawm.image.components import components
from dawm.metrics import dice_from_counts, overlap_counts

LOA_Z = 1.96  # Bland-Altman limits of agreement: bias ± 1.96 sd


@dataclass(frozen=True)
class OverlapMetrics:
    """Voxel-wise agreement of one predicted mask with its reference (see the module conventions)."""

    dice: float
    precision: float
    recall: float
    hd95_mm: float
    assd_mm: float
    volume_pred_ml: float
    volume_ref_ml: float
    volume_error_ml: float  # pred - ref
    relative_volume_error: float  # (pred - ref) / ref

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _check_pair(pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float] | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref shapes differ: {pred.shape} vs {ref.shape}")
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (pred.ndim,)).copy()
    return pred, ref, spacing


def _ratio(num: float, den: float) -> float:
    return 1.0 if den == 0 else num / den


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float] | float) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of ``pred`` to the surface of ``ref``, and back.

    ``pred``, ``ref``: boolean (X, Y, Z) (any ndim), both non-empty. Returns two 1-D float64 arrays
    (pred -> ref, ref -> pred), MONAI's surface definition (see the module docstring).
    """
    pred, ref, spacing = _check_pair(pred, ref, spacing_mm)
    if not (pred.any() and ref.any()):
        raise ValueError("surface distances need two non-empty masks")
    # crop to the union's bounding box plus one voxel, as MONAI (erosion treats outside as background)
    idx = np.argwhere(pred | ref)
    box = tuple(slice(max(lo - 1, 0), hi + 2) for lo, hi in zip(idx.min(0), idx.max(0)))
    pred, ref = pred[box], ref[box]
    edge_p = pred ^ ndimage.binary_erosion(pred)
    edge_r = ref ^ ndimage.binary_erosion(ref)
    to_ref = ndimage.distance_transform_edt(~edge_r, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~edge_p, sampling=spacing)
    return to_ref[edge_p], to_pred[edge_r]


def overlap_metrics(pred: np.ndarray, ref: np.ndarray, spacing_mm: Sequence[float] | float) -> OverlapMetrics:
    """Dice, precision, recall, HD95, ASSD (mm) and volumes (ml) of boolean masks (X, Y, Z).

    ``spacing_mm``: voxel size per axis in mm (a scalar for isotropic voxels). Empty masks follow
    the conventions of the module docstring; no warnings are emitted.
    """
    pred, ref, spacing = _check_pair(pred, ref, spacing_mm)
    inter, n_p, n_r = overlap_counts(pred, ref)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    if n_p and n_r:
        d_pr, d_rp = surface_distances(pred, ref, spacing)
        hd95 = float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)))
        assd = float((d_pr.sum() + d_rp.sum()) / (d_pr.size + d_rp.size))
    else:
        hd95 = assd = 0.0 if n_p == n_r == 0 else float("nan")
    vol_p, vol_r = n_p * voxel_ml, n_r * voxel_ml
    if n_r:
        rel = (vol_p - vol_r) / vol_r
    else:
        rel = 0.0 if n_p == 0 else float("nan")
    return OverlapMetrics(
        dice=dice_from_counts(inter, n_p, n_r),
        precision=_ratio(inter, n_p),
        recall=_ratio(inter, n_r),
        hd95_mm=hd95,
        assd_mm=assd,
        volume_pred_ml=vol_p,
        volume_ref_ml=vol_r,
        volume_error_ml=vol_p - vol_r,
        relative_volume_error=rel,
    )


def lesion_detection(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing_mm: Sequence[float] | float,
    *,
    min_volume_mm3: float = 0.0,
    min_overlap_voxels: int = 1,
) -> dict[str, float]:
    """Lesion-wise detection (MSSEG-style) of boolean masks (X, Y, Z).

    Components are 26-connected; those smaller than ``min_volume_mm3`` are discarded in both masks.
    A reference lesion is detected when at least ``min_overlap_voxels`` predicted voxels fall in it;
    a predicted component is a true positive when it overlaps a reference lesion as much.
    Returns n_ref, n_pred, tp_ref, tp_pred, lesion_recall (tp_ref / n_ref), lesion_precision
    (tp_pred / n_pred) and lesion_f1 (2PR / (P + R), 0 when P + R = 0). An empty denominator gives
    1.0, so both masks empty gives 1.0 for all three scores.
    """
    pred, ref, spacing = _check_pair(pred, ref, spacing_mm)
    min_voxels = min_volume_mm3 / float(np.prod(spacing))
    lab_r, n_r = components(ref, min_voxels)
    lab_p, n_p = components(pred, min_voxels)
    hits_r = np.bincount(lab_r[lab_p > 0], minlength=n_r + 1)[1:]  # predicted voxels per ref lesion
    hits_p = np.bincount(lab_p[lab_r > 0], minlength=n_p + 1)[1:]  # reference voxels per pred lesion
    tp_r, tp_p = int((hits_r >= min_overlap_voxels).sum()), int((hits_p >= min_overlap_voxels).sum())
    recall, precision = _ratio(tp_r, n_r), _ratio(tp_p, n_p)
    f1 = 0.0 if recall + precision == 0 else 2 * precision * recall / (precision + recall)
    return {
        "n_ref": n_r,
        "n_pred": n_p,
        "tp_ref": tp_r,
        "tp_pred": tp_p,
        "lesion_recall": recall,
        "lesion_precision": precision,
        "lesion_f1": f1,
    }


#: Upper edges (mm³) of the lesion-size bins of :func:`lesion_recall_by_size`: about 3.9, 5.8 and
#: 8.3 mm equivalent diameters; the last bin is open.
SIZE_BIN_EDGES_MM3 = (30.0, 100.0, 300.0)


def size_bin_names(edges_mm3: Sequence[float] = SIZE_BIN_EDGES_MM3) -> list[str]:
    """Names of the bins cut at ``edges_mm3``: ``'<30'``, ``'30-100'``, ..., ``'>=300'`` (mm³)."""
    e = [f"{x:g}" for x in edges_mm3]
    return [f"<{e[0]}"] + [f"{a}-{b}" for a, b in zip(e, e[1:])] + [f">={e[-1]}"]


def lesion_recall_by_size(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing_mm: Sequence[float] | float,
    *,
    edges_mm3: Sequence[float] = SIZE_BIN_EDGES_MM3,
    min_overlap_voxels: int = 1,
) -> dict[str, dict[str, int]]:
    """Reference lesions (26-connected components of the boolean ``ref`` (X, Y, Z)) counted per
    volume bin (mm³, cut at ``edges_mm3``; names from :func:`size_bin_names`) and how many of them
    ``pred`` detects (at least ``min_overlap_voxels`` predicted voxels inside, as in
    :func:`lesion_detection`). Returns ``{bin: {"n_ref": n, "detected": k}}`` for every bin, so
    that counts of several sessions can be added before the recall is taken."""
    pred, ref, spacing = _check_pair(pred, ref, spacing_mm)
    lab, n = components(ref, 0)
    names = size_bin_names(edges_mm3)
    out = {name: {"n_ref": 0, "detected": 0} for name in names}
    if n == 0:
        return out
    volume_mm3 = np.bincount(lab.ravel(), minlength=n + 1)[1:] * float(np.prod(spacing))
    hits = np.bincount(lab[pred], minlength=n + 1)[1:]
    which = np.searchsorted(np.asarray(edges_mm3, float), volume_mm3, side="right")
    for b, name in enumerate(names):
        in_bin = which == b
        out[name] = {"n_ref": int(in_bin.sum()), "detected": int((in_bin & (hits >= min_overlap_voxels)).sum())}
    return out


# ----------------------------------------------------------------------------- agreement


def _ratings(x: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """(n subjects, k raters) matrix from two paired vectors or one matrix; non-finite rows dropped."""
    data = np.asarray(x, float) if y is None else np.column_stack([np.asarray(x, float), np.asarray(y, float)])
    if data.ndim != 2:
        raise ValueError("ratings must be two vectors or one (n, k) matrix")
    return data[np.isfinite(data).all(axis=1)]


def _icc_mean_squares(data: np.ndarray) -> tuple[float, float, float, int, int]:
    """Two-way ANOVA mean squares (rows MSR, columns MSC, error MSE) of an (n, k) matrix."""
    n, k = data.shape
    grand = data.mean()
    ss_rows = k * ((data.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((data.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((data - grand) ** 2).sum() - ss_rows - ss_cols
    return ss_rows / (n - 1), ss_cols / (k - 1), ss_err / ((n - 1) * (k - 1)), n, k


def _icc(x: np.ndarray, y: np.ndarray | None, absolute: bool) -> float:
    data = _ratings(x, y)
    if data.shape[0] < 2 or data.shape[1] < 2:
        return float("nan")
    msr, msc, mse, n, k = _icc_mean_squares(data)
    den = msr + (k - 1) * mse + (k / n * (msc - mse) if absolute else 0.0)
    return float((msr - mse) / den) if den > 0 else float("nan")


def icc_a1(x: np.ndarray, y: np.ndarray | None = None) -> float:
    """ICC(A,1): two-way, absolute agreement, single rater (McGraw & Wong 1996; Shrout & Fleiss ICC(2,1)).

    ``x``, ``y``: paired ratings (n,), e.g. predicted and reference volumes in ml; or ``x`` alone an
    (n subjects, k raters) matrix. NaN with fewer than 2 complete subjects or zero variance.
    """
    return _icc(x, y, absolute=True)


def icc_c1(x: np.ndarray, y: np.ndarray | None = None) -> float:
    """ICC(C,1): two-way, consistency, single rater (McGraw & Wong; Shrout & Fleiss ICC(3,1)). As :func:`icc_a1`."""
    return _icc(x, y, absolute=False)


def _paired(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred, float).ravel(), np.asarray(ref, float).ravel()
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref lengths differ: {pred.size} vs {ref.size}")
    ok = np.isfinite(pred) & np.isfinite(ref)
    return pred[ok], ref[ok]


def bland_altman(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Bland-Altman of paired values (n,): bias = mean(pred - ref), sd (ddof 1), limits of agreement
    bias ± 1.96 sd (units of the input), n. sd and limits are NaN when n < 2."""
    p, r = _paired(pred, ref)
    d = p - r
    bias = float(d.mean()) if d.size else float("nan")
    sd = float(d.std(ddof=1)) if d.size >= 2 else float("nan")
    return {"bias": bias, "sd": sd, "loa_low": bias - LOA_Z * sd, "loa_high": bias + LOA_Z * sd, "n": int(d.size)}


def _corr_defined(p: np.ndarray, r: np.ndarray) -> bool:
    return p.size >= 3 and np.ptp(p) > 0 and np.ptp(r) > 0


def correlations(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Spearman rho and Pearson r with two-sided p values of paired values (n,) (scipy.stats).
    All NaN when fewer than 3 complete pairs or either input is constant; never warns."""
    p, r = _paired(pred, ref)
    out = dict.fromkeys(("spearman_rho", "spearman_p", "pearson_r", "pearson_p"), float("nan"))
    if _corr_defined(p, r):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s, pe = stats.spearmanr(p, r), stats.pearsonr(p, r)
        out.update(spearman_rho=float(s[0]), spearman_p=float(s[1]), pearson_r=float(pe[0]), pearson_p=float(pe[1]))
    return out


def _spearman_rho(p: np.ndarray, r: np.ndarray) -> float:
    """Spearman rho (Pearson of average ranks), NaN when undefined; fast for bootstrap loops."""
    p, r = _paired(p, r)
    if not _corr_defined(p, r):
        return float("nan")
    a, b = stats.rankdata(p), stats.rankdata(r)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def bootstrap_ci(
    data: np.ndarray | tuple[np.ndarray, ...],
    statistic: Callable[..., float],
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap: ``(estimate, low, high)`` of ``statistic`` at level ``1 - alpha``.

    ``data``: one array whose rows (axis 0, n) are subjects, called as ``statistic(rows)``; or a
    *tuple* of paired arrays of equal length n, called as ``statistic(*arrays)``. Rows are
    resampled with replacement; with ``groups`` (n,) whole clusters are resampled instead (e.g. a
    subject's sessions together). Replicates where the statistic is NaN are ignored; bounds are NaN
    when none is finite. Deterministic for a given ``seed``.
    """
    arrays = tuple(np.asarray(a) for a in data) if isinstance(data, tuple) else (np.asarray(data),)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("paired arrays must have the same length")

    def stat(idx: np.ndarray) -> float:
        with warnings.catch_warnings():  # a resample may be degenerate (constant, too small)
            warnings.simplefilter("ignore")
            return float(statistic(*(a[idx] for a in arrays)))

    estimate = stat(np.arange(n))
    if n == 0:
        return estimate, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = (rng.integers(0, n, n) for _ in range(n_boot))
    else:
        if len(groups) != n:
            raise ValueError("groups must have one entry per row")
        inverse = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
        members = [np.flatnonzero(inverse == g) for g in range(inverse.max() + 1)]
        m = len(members)
        draws = (np.concatenate([members[g] for g in rng.integers(0, m, m)]) for _ in range(n_boot))
    boot = np.array([stat(idx) for idx in draws])
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return estimate, float("nan"), float("nan")
    low, high = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return estimate, float(low), float(high)


def agreement_table(
    pred_ml: np.ndarray,
    ref_ml: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any]:
    """Agreement of paired volumes (n,) in ml as one flat row: n, icc_a1, icc_c1, correlations,
    Bland-Altman (bias, sd, loa_low, loa_high in ml) and percentile-bootstrap CIs (``icc_a1_ci_low``,
    ``icc_a1_ci_high``, ``spearman_rho_ci_low``, ``spearman_rho_ci_high``). ``groups`` (n,) makes the
    bootstrap resample clusters (subjects with several sessions). Non-finite pairs are dropped."""
    p, r = np.asarray(pred_ml, float).ravel(), np.asarray(ref_ml, float).ravel()
    ok = np.isfinite(p) & np.isfinite(r)
    g = None if groups is None else np.asarray(groups)[ok]
    p, r = p[ok], r[ok]
    ba = bland_altman(p, r)
    out: dict[str, Any] = {"n": int(p.size), "n_groups": int(p.size if g is None else np.unique(g).size)}
    boot = dict(n_boot=n_boot, alpha=alpha, seed=seed, groups=g)
    out["icc_a1"], out["icc_a1_ci_low"], out["icc_a1_ci_high"] = bootstrap_ci((p, r), icc_a1, **boot)
    out["icc_c1"] = icc_c1(p, r)
    out.update(correlations(p, r))
    _, out["spearman_rho_ci_low"], out["spearman_rho_ci_high"] = bootstrap_ci((p, r), _spearman_rho, **boot)
    out.update({k: ba[k] for k in ("bias", "sd", "loa_low", "loa_high")})
    return out
