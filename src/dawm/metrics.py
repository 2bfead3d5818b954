"""One Dice for every stage: overlap counts of masks and label maps, and the two ways to summarise
many sessions.

Every Dice in dawm (and in its README and reports) is ``2 |P & R| / (|P| + |R|)`` from the counts
of :func:`overlap_counts` / :func:`class_counts`, computed by :func:`dice_from_counts`. Over many
sessions it is one of two figures, and each figure says which:

* **pooled Dice** (:func:`pooled_dice`): the counts summed over all sessions first, so every voxel
  weighs the same and a session without the class still counts its false positives; defined
  whenever any session predicts or holds the class. The training's validation Dice, the DAWM
  threshold calibration (:mod:`dawm.model.decision`), the baselines' fit and
  :func:`dawm.model.metrics.agreement` (the simulated-test benchmarks) are pooled.
* **mean Dice over sessions** (:func:`mean_dice`): each session's own Dice, averaged over the
  sessions whose reference holds the class (a session without it would score 1 or 0 by convention
  only), so every session weighs the same. ``dawm evaluate``'s ``*_dice_mean`` (with a
  subject-level bootstrap CI) is this mean.

Empty masks: the Dice of two empty masks is 1.0 ("nothing to get wrong", :func:`dice`); a pooled
Dice with nothing predicted or held anywhere is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Per label: (intersection, predicted voxels, reference voxels) of one session.
ClassCounts = dict[int, tuple[int, int, int]]


def overlap_counts(pred: np.ndarray, ref: np.ndarray) -> tuple[int, int, int]:
    """``(|pred & ref|, |pred|, |ref|)`` of two boolean arrays of one shape."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref shapes differ: {pred.shape} vs {ref.shape}")
    return int(np.count_nonzero(pred & ref)), int(np.count_nonzero(pred)), int(np.count_nonzero(ref))


def dice_from_counts(intersection, n_pred, n_ref, *, empty: float = 1.0):
    """``2 intersection / (n_pred + n_ref)``, ``empty`` where both counts are 0. Scalars give a
    float, arrays (e.g. one entry per threshold) an array of float64."""
    inter = np.asarray(intersection, dtype=np.float64)
    total = np.asarray(n_pred, dtype=np.float64) + np.asarray(n_ref, dtype=np.float64)
    out = np.divide(2.0 * inter, total, out=np.full(np.broadcast(inter, total).shape, float(empty)), where=total > 0)
    return float(out) if out.ndim == 0 else out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean arrays; 1.0 when both are empty."""
    return dice_from_counts(*overlap_counts(a, b))


def class_counts(pred: np.ndarray, truth: np.ndarray, labels: Sequence[int] = (1, 2)) -> ClassCounts:
    """Per label: ``(intersection, predicted voxels, true voxels)`` of two label maps, to pool or
    average Dice over many sessions."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    return {k: overlap_counts(pred == k, truth == k) for k in labels}


def pooled_dice(counts: list[ClassCounts]) -> dict[int, float]:
    """Pooled Dice per label: over all voxels of all sessions (``counts``: :func:`class_counts` of
    each); defined even when a session has no DAWM; NaN when no session predicts or holds the label."""
    out = {}
    for k in counts[0] if counts else ():
        out[k] = dice_from_counts(
            sum(c[k][0] for c in counts), sum(c[k][1] for c in counts), sum(c[k][2] for c in counts), empty=float("nan")
        )
    return out


def mean_dice(counts: list[ClassCounts]) -> dict[int, float]:
    """Mean Dice over sessions per label: each session's Dice, averaged over the sessions whose
    reference holds the label; NaN when none does."""
    out = {}
    for k in counts[0] if counts else ():
        held = [dice_from_counts(*c[k]) for c in counts if c[k][2] > 0]
        out[k] = float(np.mean(held)) if held else float("nan")
    return out
