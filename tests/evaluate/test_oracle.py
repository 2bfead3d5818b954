"""Oracle references of the benchmarks (:mod:`dawm.evaluate.oracle`) on tiny arrays."""

from __future__ import annotations

import math

import numpy as np

from dawm.evaluate.oracle import best_threshold_dice, true_wm_core
from dawm.label.rules import pv_core


def _brute(score, truth, thresholds, mask):
    out = []
    for t in thresholds:
        found = mask & (score > t)
        out.append((2 * (found & truth).sum() / max(found.sum() + truth.sum(), 1), t))
    return out


def test_best_threshold_dice_is_the_best_of_the_grid() -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((12, 12, 6), bool)
    truth[3:8, 3:8, 2:4] = True
    score = rng.normal(size=truth.shape) + 2.5 * truth
    mask = np.ones(truth.shape, bool)
    mask[:, :2] = False
    grid = np.arange(0.0, 4.01, 0.25)
    dice, thr = best_threshold_dice(score, truth, grid, mask=mask)
    brute = _brute(score, truth, grid, mask)
    assert dice == max(d for d, _ in brute) and (dice, thr) in [(float(d), float(t)) for d, t in brute]
    assert 0.5 < dice < 1.0
    # without a mask: the whole volume
    assert best_threshold_dice(score, truth, grid)[0] == max(d for d, _ in _brute(score, truth, grid, np.ones(truth.shape, bool)))


def test_best_threshold_dice_ties_and_empty() -> None:
    truth = np.array([True, True, False, False])
    score = np.array([5.0, 5.0, 1.0, 0.0])
    assert best_threshold_dice(score, truth, [1.5, 2.0, 3.0]) == (1.0, 3.0)  # equal Dice: the highest threshold
    d, t = best_threshold_dice(score, truth, [6.0, 7.0])  # nothing found
    assert d == 0.0 and math.isnan(t)
    d, t = best_threshold_dice(score, truth, [])
    assert d == 0.0 and math.isnan(t)
    # a mask that leaves out the truth
    assert best_threshold_dice(score, truth, [1.5], mask=np.array([False, False, True, True]))[0] == 0.0


def test_true_wm_core_is_the_pv_core_of_true_wm() -> None:
    tissue = np.full((9, 9, 9), 3.0)
    tissue[:, :, :2] = 2.0  # grey matter below
    tissue[4, 4, 4] = 1.04  # CSF, as a resampled float label
    core = true_wm_core(tissue, 1.5, (2.0, 2.0, 2.0))
    assert core.dtype == bool and np.array_equal(core, pv_core(np.rint(tissue) == 3, 1.5, (2.0, 2.0, 2.0)))
    assert not core[:, :, :3].any() and core[0, 0, 6] and not core[4, 4, 5]
