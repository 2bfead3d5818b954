"""From class probabilities to a label map, and the DAWM threshold calibrated on validation data.

DAWM is a diffuse class learned from soft targets: its probability rarely wins an argmax against
"normal" even where the model's evidence is strongest, so a bare argmax says "no DAWM" almost
everywhere. The decision is therefore: lesion where the lesion class wins the argmax (lesions are a
hard class), DAWM where the voxel is not a lesion and P(DAWM) >= a threshold chosen on the
validation cases (:func:`calibrate_dawm_threshold`: the threshold of best pooled DAWM Dice against
the validation labels), normal elsewhere. The threshold is saved per fold and in ``model.json``
(``dawm_threshold``); a model without one (older model folders) keeps the argmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dawm.metrics import dice_from_counts

THRESHOLD_GRID = tuple(round(float(t), 2) for t in np.arange(0.05, 0.951, 0.05))


def labels_from_probabilities(probs: np.ndarray, dawm_threshold: float | None = None) -> np.ndarray:
    """Label map (X, Y, Z) uint8 (0 normal, 1 lesion, 2 DAWM) from ``probs`` (3, X, Y, Z) 0-1.

    ``dawm_threshold`` None: the argmax. Otherwise lesion where the argmax is lesion, DAWM where
    not a lesion and ``probs[2] >= dawm_threshold``."""
    arg = np.asarray(probs).argmax(0).astype(np.uint8)
    if dawm_threshold is None:
        return arg
    out = np.where(arg == 1, 1, 0).astype(np.uint8)
    out[(arg != 1) & (np.asarray(probs[2]) >= dawm_threshold)] = 2
    return out


def threshold_counts(probs: np.ndarray, truth: np.ndarray, grid: Sequence[float] = THRESHOLD_GRID) -> np.ndarray:
    """(len(grid), 3) int64: per threshold, the DAWM (intersection, predicted, true) voxel counts of
    :func:`labels_from_probabilities` against ``truth`` (X, Y, Z) 0/1/2; summed over cases they
    give the pooled Dice per threshold."""
    probs, truth = np.asarray(probs), np.asarray(truth)
    candidate = probs.argmax(0) != 1
    p = np.where(candidate, probs[2], -1.0)
    true = truth == 2
    n_true = int(true.sum())
    return np.array([[int((true & (p >= t)).sum()), int((p >= t).sum()), n_true] for t in grid], np.int64)


def calibrate_dawm_threshold(counts: np.ndarray, grid: Sequence[float] = THRESHOLD_GRID) -> tuple[float | None, float]:
    """``(threshold, dice)``: the grid threshold of best pooled DAWM Dice from ``counts`` (the sum of
    :func:`threshold_counts` over validation cases); ``(None, nan)`` when the cases hold no DAWM."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 2 or counts[0, 2] == 0:
        return None, float("nan")
    dice = dice_from_counts(counts[:, 0], counts[:, 1], counts[:, 2])
    best = int(np.argmax(dice))
    return float(grid[best]), float(dice[best])
