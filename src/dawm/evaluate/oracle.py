"""Oracle references for benchmarks on simulated cohorts: figures computed knowing the truth.

They bound what a method could reach rather than score one: the best threshold of a score map
chosen with the truth in view (:func:`best_threshold_dice`), and the simulator's own pure-WM core
(:func:`true_wm_core`), where partial volume with grey matter or CSF cannot mimic DAWM.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dawm.label.rules import pv_core
from dawm.metrics import dice_from_counts

#: the white-matter label of a tissue ``dseg`` (1 CSF, 2 GM, 3 WM)
WM = 3


def best_threshold_dice(
    score: np.ndarray, truth: np.ndarray, thresholds: Iterable[float], *, mask: np.ndarray | None = None
) -> tuple[float, float]:
    """``(Dice, threshold)``: the best of ``thresholds`` for ``score > threshold`` (inside ``mask``
    when given) against ``truth`` (bool, same shape), an oracle since the threshold is chosen
    knowing the truth. Dice is :func:`dawm.metrics.dice_from_counts` (0 when both are empty). Of thresholds
    with the same Dice the highest is kept; when none finds any true voxel (Dice 0 throughout, or
    no thresholds) the result is ``(0.0, nan)``."""
    score = np.asarray(score)
    truth = np.asarray(truth, bool)
    inside = np.ones(score.shape, bool) if mask is None else np.asarray(mask, bool)
    n_true = int(truth.sum())
    best = (0.0, float("nan"))
    for thr in thresholds:
        found = inside & (score > thr)
        best = max(best, (dice_from_counts(int((found & truth).sum()), int(found.sum()), n_true, empty=0.0), float(thr)))
    return best


def true_wm_core(tissue: np.ndarray, margin_mm: float, spacing_mm: np.ndarray | float) -> np.ndarray:
    """(X, Y, Z) bool: the *true* pure-WM core of a simulated session, its true WM (``tissue`` ==
    3, the simulator's tissue ``dseg`` on the session grid) farther than ``margin_mm`` (and at least
    one voxel layer, :func:`dawm.label.rules.pv_core`) from any true non-WM voxel. Scoring inside it
    sets a labelling rule's own errors apart from the DAWM the simulator draws where white matter
    meets grey matter or CSF (partial volume)."""
    return pv_core(np.rint(np.asarray(tissue)).astype(int) == WM, margin_mm, spacing_mm)
