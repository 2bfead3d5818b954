"""Overlap metrics of label maps (0 normal, 1 lesion, 2 DAWM)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean arrays; 1.0 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def class_counts(pred: np.ndarray, truth: np.ndarray, labels=(1, 2)) -> dict[int, tuple[int, int, int]]:
    """Per label: (intersection, predicted voxels, true voxels), to pool Dice over many volumes."""
    return {k: (int(((pred == k) & (truth == k)).sum()), int((pred == k).sum()), int((truth == k).sum())) for k in labels}


def pooled_dice(counts: list[dict[int, tuple[int, int, int]]]) -> dict[int, float]:
    """Dice per label over all voxels of all volumes (defined even when a volume has no DAWM);
    NaN when no volume predicts or holds the label."""
    out = {}
    for k in counts[0] if counts else ():
        inter = sum(c[k][0] for c in counts)
        total = sum(c[k][1] + c[k][2] for c in counts)
        out[k] = 2.0 * inter / total if total else float("nan")
    return out


def agreement(preds: dict[str, np.ndarray], refs: dict[str, np.ndarray], voxel_ml: dict[str, float]) -> dict:
    """How ``preds`` (key -> label map) agree with ``refs`` (same keys, same grids) over all sessions:
    pooled ``lesion_dice`` and ``dawm_dice``, the Spearman correlation ``dawm_spearman`` of the
    per-session DAWM volumes (NaN with fewer than 3 sessions or a constant volume), and the volumes
    themselves (``dawm_ml_pred``, ``dawm_ml_ref``, ml, in key order; ``voxel_ml``: key -> ml per voxel)."""
    keys = [k for k in preds if k in refs]
    if not keys:
        return {"lesion_dice": None, "dawm_dice": None, "dawm_spearman": None, "dawm_ml_pred": [], "dawm_ml_ref": []}
    d = pooled_dice([class_counts(preds[k], refs[k]) for k in keys])
    pv = [float((preds[k] == 2).sum()) * voxel_ml[k] for k in keys]
    rv = [float((refs[k] == 2).sum()) * voxel_ml[k] for k in keys]
    rho = float(stats.spearmanr(pv, rv).statistic) if len(keys) > 2 and np.std(pv) > 0 and np.std(rv) > 0 else float("nan")
    return {"lesion_dice": d[1], "dawm_dice": d[2], "dawm_spearman": rho, "dawm_ml_pred": pv, "dawm_ml_ref": rv}
