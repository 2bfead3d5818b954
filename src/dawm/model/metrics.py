"""Overlap metrics of label maps (0 normal, 1 lesion, 2 DAWM)."""

from __future__ import annotations

import numpy as np


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
