"""How a model's label maps (0 normal, 1 lesion, 2 DAWM) agree with references over many sessions.

Dice itself is :mod:`dawm.metrics` (one definition for every stage; pooled vs mean over sessions);
its names are re-exported here for the callers that import them from this module.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from dawm.metrics import class_counts, dice, pooled_dice

__all__ = ["agreement", "class_counts", "dice", "pooled_dice"]


def agreement(preds: dict[str, np.ndarray], refs: dict[str, np.ndarray], voxel_ml: dict[str, float]) -> dict:
    """How ``preds`` (key -> label map) agree with ``refs`` (same keys, same grids) over all sessions:
    the pooled ``lesion_dice`` and ``dawm_dice`` (:func:`dawm.metrics.pooled_dice`, not the mean
    over sessions), the Spearman correlation ``dawm_spearman`` of the per-session DAWM volumes (NaN with fewer than 3 sessions or a constant volume), and the volumes
    themselves (``dawm_ml_pred``, ``dawm_ml_ref``, ml, in key order; ``voxel_ml``: key -> ml per voxel)."""
    keys = [k for k in preds if k in refs]
    if not keys:
        return {"lesion_dice": None, "dawm_dice": None, "dawm_spearman": None, "dawm_ml_pred": [], "dawm_ml_ref": []}
    d = pooled_dice([class_counts(preds[k], refs[k]) for k in keys])
    pv = [float((preds[k] == 2).sum()) * voxel_ml[k] for k in keys]
    rv = [float((refs[k] == 2).sum()) * voxel_ml[k] for k in keys]
    rho = float(stats.spearmanr(pv, rv).statistic) if len(keys) > 2 and np.std(pv) > 0 and np.std(rv) > 0 else float("nan")
    return {"lesion_dice": d[1], "dawm_dice": d[2], "dawm_spearman": rho, "dawm_ml_pred": pv, "dawm_ml_ref": rv}
