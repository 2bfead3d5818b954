"""Pooled Dice and cohort agreement of label maps (0 normal, 1 lesion, 2 DAWM)."""

from __future__ import annotations

import numpy as np
import pytest

from dawm.model.metrics import agreement, class_counts, pooled_dice


def _maps(dawm_voxels: int, lesion_voxels: int = 0, shift: int = 0) -> np.ndarray:
    m = np.zeros((10, 10, 10), np.uint8)
    m.reshape(-1)[shift : shift + dawm_voxels] = 2
    m.reshape(-1)[500 : 500 + lesion_voxels] = 1
    return m


def test_pooled_dice_counts_every_voxel_of_every_volume() -> None:
    a, b = _maps(10), _maps(10, shift=5)  # 5 of 10 DAWM voxels shared
    empty = np.zeros_like(a)
    d = pooled_dice([class_counts(a, b), class_counts(empty, empty)])
    assert d[2] == pytest.approx(0.5)
    assert np.isnan(d[1])  # nobody predicts or holds a lesion


def test_agreement_dice_volumes_and_rank_correlation() -> None:
    refs = {f"s{i}": _maps(10 * (i + 1), lesion_voxels=4) for i in range(4)}
    preds = {k: _maps(int((v == 2).sum()) // 2, lesion_voxels=4) for k, v in refs.items()}  # half the DAWM, same ranks
    a = agreement(preds, refs, {k: 0.008 for k in refs})
    assert a["lesion_dice"] == pytest.approx(1.0)
    assert a["dawm_dice"] == pytest.approx(2 * 50 / (50 + 100))
    assert a["dawm_spearman"] == pytest.approx(1.0)
    assert a["dawm_ml_ref"] == pytest.approx([0.08, 0.16, 0.24, 0.32])
    # sessions missing from the references are ignored; with fewer than 3 sessions rho is undefined
    b = agreement(preds, {k: refs[k] for k in ("s0", "s1")}, {k: 0.008 for k in refs})
    assert len(b["dawm_ml_pred"]) == 2 and np.isnan(b["dawm_spearman"])
    assert agreement(preds, {}, {})["dawm_dice"] is None
