"""Soft DAWM targets, the thresholded decision and its calibration, expected volumes."""

from __future__ import annotations

import numpy as np
import torch

from dawm.model.cache import dawm_target
from dawm.model.decision import THRESHOLD_GRID, calibrate_dawm_threshold, labels_from_probabilities, threshold_counts
from dawm.model.train import model_dawm_threshold, soft_targets
from dawm.model.volumes import volume_table


def _probs(p_lesion: np.ndarray, p_dawm: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - p_lesion - p_dawm, p_lesion, p_dawm]).astype(np.float32)


def test_dawm_target_uses_the_probability_map_and_keeps_lesions_hard() -> None:
    label = np.array([[[0, 1, 2, 2]]], np.uint8)
    prob = np.array([[[0.3, 0.9, 0.6, np.nan]]], np.float32)
    np.testing.assert_allclose(dawm_target(label, prob), [[[0.3, 0.0, 0.6, 0.0]]])
    np.testing.assert_array_equal(dawm_target(label, None), [[[0.0, 0.0, 1.0, 1.0]]])


def test_soft_targets_sum_to_one_and_reduce_to_one_hot() -> None:
    label = torch.tensor([[[[0, 1, 2, 0]]]])  # (1, 1, 1, 4)
    soft = soft_targets(label, torch.tensor([[[[0.4, 0.8, 0.7, 0.0]]]]))
    assert soft.shape == (3, 1, 1, 4)
    torch.testing.assert_close(soft.sum(0), torch.ones(1, 1, 4))
    torch.testing.assert_close(soft[:, 0, 0, 1], torch.tensor([0.0, 1.0, 0.0]))  # a lesion stays a lesion
    torch.testing.assert_close(soft[:, 0, 0, 0], torch.tensor([0.6, 0.0, 0.4]))
    hard = soft_targets(label, (label == 2).float())
    torch.testing.assert_close(hard, torch.nn.functional.one_hot(label[0], 3).permute(3, 0, 1, 2).float())


def test_threshold_decision_finds_dawm_that_argmax_misses() -> None:
    p_dawm = np.array([[[0.1, 0.3, 0.45, 0.2]]])
    p_lesion = np.array([[[0.0, 0.0, 0.0, 0.7]]])
    probs = _probs(p_lesion, p_dawm)
    np.testing.assert_array_equal(labels_from_probabilities(probs), [[[0, 0, 0, 1]]])  # argmax: no DAWM at all
    np.testing.assert_array_equal(labels_from_probabilities(probs, 0.25), [[[0, 2, 2, 1]]])


def test_calibration_picks_the_threshold_of_best_pooled_dice() -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((20, 20, 20), np.uint8)
    truth[5:12, 5:12, 5:12] = 2
    p_dawm = np.where(truth == 2, 0.35, 0.1) + rng.uniform(-0.05, 0.05, truth.shape)
    probs = _probs(np.zeros_like(p_dawm), p_dawm)
    counts = threshold_counts(probs, truth)
    assert counts.shape == (len(THRESHOLD_GRID), 3)
    threshold, dice = calibrate_dawm_threshold(counts + threshold_counts(probs, truth))  # two cases pooled
    assert 0.15 <= threshold <= 0.3 and dice == 1.0
    assert calibrate_dawm_threshold(threshold_counts(probs, np.zeros_like(truth)))[0] is None  # no DAWM to calibrate on
    assert model_dawm_threshold({"0": {"dawm_threshold": 0.2}, "1": {"dawm_threshold": 0.4}, "2": {"dawm_threshold": None}}) == 0.3
    assert model_dawm_threshold({"0": {}}) is None


def test_volume_table_reports_expected_volumes() -> None:
    shape = (10, 10, 10)
    dseg = np.full(shape, 3, np.uint8)
    brain = np.ones(shape, bool)
    p_dawm = np.full(shape, 0.1, np.float32)
    p_lesion = np.zeros(shape, np.float32)
    probs = _probs(p_lesion, p_dawm)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    pred = labels_from_probabilities(probs, 0.5)
    table = volume_table(pred, dseg, brain, affine, probs=probs).set_index("location")
    assert table.loc["all", "dawm_ml"] == 0.0
    np.testing.assert_allclose(table.loc["all", "dawm_expected_ml"], 0.1 * 1000 * 8 / 1000, rtol=1e-5)
    assert "dawm_expected_ml" not in volume_table(pred, dseg, brain, affine).columns
