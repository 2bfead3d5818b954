"""DAWM evolution: transition volumes, simulator truth maps, follow-up registration."""

from __future__ import annotations

import numpy as np
import pytest

from dawm.evaluate.evolution import (
    followup_on_baseline,
    register_followup_to_baseline,
    transition_volumes,
    transitions_from_truth_map,
)

VOX_ML = 0.008  # 2 mm voxels


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """Baseline/follow-up label maps with hand-counted transitions (flat index ranges)."""
    b, f = np.zeros(64, np.uint8), np.zeros(64, np.uint8)
    b[0:10] = 2  # baseline DAWM: 10 voxels
    f[0:2] = 1  # DAWM -> lesion: 2
    f[2:5] = 0  # DAWM -> normal: 3
    f[5:10] = 2  # DAWM persistent: 5
    b[10:13] = 1
    f[10:13] = 1  # lesion persistent: 3
    f[20:24] = 2  # new DAWM: 4
    f[30] = 1  # new lesion: 1
    f[40] = 255  # outside the follow-up field of view: ignored
    return b.reshape(4, 4, 4), f.reshape(4, 4, 4)


def _truth_like_simulator(b: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The simulator's transition labelling (``pathology.evolve``) of a label-map pair."""
    dawm0, lesion0, dawm1, lesion1 = b == 2, b == 1, f == 2, f == 1
    t = np.zeros(b.shape, np.uint8)
    t[dawm0 & ~dawm1 & ~lesion1] = 1
    t[dawm0 & lesion1] = 2
    t[dawm0 & dawm1] = 3
    t[~dawm0 & ~lesion0 & dawm1] = 4
    t[~dawm0 & ~lesion0 & lesion1] = 5
    t[lesion0 & lesion1] = 6
    return t


def test_transition_volumes_hand_counted():
    out = transition_volumes(*_pair(), VOX_ML)
    expected_vox = {
        "dawm_to_lesion": 2,
        "dawm_to_normal": 3,
        "dawm_persistent": 5,
        "new_dawm": 4,
        "new_lesion": 1,
        "lesion_persistent": 3,
        "baseline_dawm": 10,
        "followup_dawm": 9,
    }
    for key, n in expected_vox.items():
        assert out[f"{key}_ml"] == pytest.approx(n * VOX_ML)
    assert out["dawm_change_ml"] == pytest.approx(-1 * VOX_ML)
    assert (out["dawm_to_lesion_frac"], out["dawm_to_normal_frac"], out["dawm_persistent_frac"]) == pytest.approx((0.2, 0.3, 0.5))

    empty = transition_volumes(np.zeros((2, 2, 2)), np.full((2, 2, 2), 2), 1.0)
    assert np.isnan(empty["dawm_to_lesion_frac"]) and empty["new_dawm_ml"] == 8.0
    with pytest.raises(ValueError):
        transition_volumes(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), 1.0)


def test_truth_map_matches_label_pair():
    b, f = _pair()
    f[f == 255] = 0
    predicted = transition_volumes(b, f, VOX_ML)
    truth = transitions_from_truth_map(_truth_like_simulator(b, f), VOX_ML)
    assert truth.keys() == predicted.keys()
    for key, val in predicted.items():
        assert truth[key] == pytest.approx(val), key
    assert np.isnan(transitions_from_truth_map(np.full((2, 2, 2), 5), 1.0)["dawm_persistent_frac"])


def _blobs(points: np.ndarray) -> np.ndarray:
    """A smooth asymmetric image of a few anisotropic Gaussians, evaluated at world points (N, 3)."""
    out = np.zeros(len(points))
    for centre, sigma, amp in [
        ((0, 0, 0), (14, 10, 8), 1.0),
        ((10, 6, -4), (5, 4, 6), 0.8),
        ((-8, -7, 6), (4, 6, 3), 0.6),
        ((4, -10, -8), (3, 3, 5), 0.5),
    ]:
        out += amp * np.exp(-0.5 * (((points - centre) / sigma) ** 2).sum(axis=1))
    return out


def _grid(origin) -> tuple[np.ndarray, np.ndarray]:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = origin
    ijk = np.stack(np.meshgrid(*[np.arange(32)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return affine, ijk @ affine[:3, :3].T + affine[:3, 3]


def test_registration_recovers_rigid_shift_and_aligns_labels():
    shift = np.array([3.0, -1.0, 0.5])  # follow-up content moved by +shift mm
    base_affine, base_pts = _grid((-31.0, -31.0, -31.0))
    fu_affine, fu_pts = _grid((-30.0, -31.0, -32.0))
    base = _blobs(base_pts).reshape(32, 32, 32)
    fu = _blobs(fu_pts - shift).reshape(32, 32, 32)

    m = register_followup_to_baseline(base, base_affine, fu, fu_affine)
    assert m.shape == (4, 4)
    inside = base_pts[base.ravel() > 0.2]
    moved = inside @ m[:3, :3].T + m[:3, 3]
    assert np.abs(moved - (inside + shift)).max() < 0.5  # pull: baseline world -> follow-up world

    fu_labels = np.where(fu > 0.5, 2, np.where(fu > 0.3, 1, 0)).astype(np.uint8)
    base_labels = np.where(base > 0.5, 2, np.where(base > 0.3, 1, 0)).astype(np.uint8)
    aligned = followup_on_baseline(fu_labels, fu_affine, base.shape, base_affine, m)
    assert aligned.dtype == np.uint8
    out = transition_volumes(base_labels, aligned, VOX_ML)
    assert out["dawm_persistent_frac"] > 0.9
    unaligned = transition_volumes(base_labels, followup_on_baseline(fu_labels, fu_affine, base.shape, base_affine, None), VOX_ML)
    assert unaligned["dawm_persistent_frac"] < out["dawm_persistent_frac"]
