"""The FLAIR-threshold and voxel-logistic baselines on tiny synthetic sessions with known labels."""

from __future__ import annotations

import numpy as np
import pytest

from dawm.evaluate.baselines import BaselineSession, FlairThreshold, VoxelLogistic, robust_z
from dawm.model.metrics import dice


def _session(seed: int, with_t1: bool = True) -> BaselineSession:
    rng = np.random.default_rng(seed)
    shape = (24, 24, 24)
    target = np.zeros(shape, np.uint8)
    target[4:12, 4:14, 4:14] = 2  # a diffuse patch
    target[15:19, 15:19, 15:19] = 1  # a lesion
    flair = 100 + rng.normal(0, 4, shape) + np.where(target == 2, 14, 0) + np.where(target == 1, 45, 0)
    t1 = 800 + rng.normal(0, 20, shape) - np.where(target == 2, 40, 0) - np.where(target == 1, 200, 0)
    images = {"FLAIR": flair, **({"T1w": t1} if with_t1 else {})}
    dseg = np.full(shape, 3, np.uint8)
    dseg[:2] = 2
    return BaselineSession(images=images, dseg=dseg, brain=np.ones(shape, bool), spacing_mm=(2.0, 2.0, 2.0), target=target)


def test_robust_z_is_centred_on_wm() -> None:
    x = np.arange(100, dtype=float).reshape(10, 10, 1)
    z = robust_z(x, np.ones_like(x, bool))
    assert abs(float(np.median(z))) < 1e-6 and z.dtype == np.float32


def test_flair_threshold_finds_lesions_and_dawm() -> None:
    train = [_session(0), _session(1)]
    model = FlairThreshold().fit(train)
    assert model.z_dawm_ < model.z_lesion_
    test = _session(2)
    pred = model.predict(test)
    assert dice(pred == 1, test.target == 1) > 0.8
    assert dice(pred == 2, test.target == 2) > 0.5
    assert set(np.unique(pred[test.dseg != 3])) == {0}  # only eligible voxels are labelled


def test_voxel_logistic_is_calibrated_and_works_without_t1w() -> None:
    train = [_session(0), _session(1)]
    model = VoxelLogistic(voxels_per_session=6000).fit(train)
    test = _session(3)
    probs = model.predict_proba(test)
    assert probs.shape == (3, 24, 24, 24)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    expected_ml = float(probs[2].sum()) * 8 / 1000
    true_ml = float((test.target == 2).sum()) * 8 / 1000
    assert expected_ml == pytest.approx(true_ml, rel=0.25)  # natural class frequencies: sums are volumes
    pred = model.predict(test)
    assert model.dawm_threshold_ is not None
    assert dice(pred == 2, test.target == 2) > 0.6 and dice(pred == 1, test.target == 1) > 0.7
    flair_only = model.predict(_session(4, with_t1=False))  # a missing input is a zero feature, not an error
    assert flair_only.shape == (24, 24, 24)
    with pytest.raises(RuntimeError):
        VoxelLogistic().predict_proba(test)
