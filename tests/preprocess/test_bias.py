"""N4 bias correction on a 2 mm MNI-derived T1w-like phantom with a known multiplicative field."""

from __future__ import annotations

import numpy as np
import pytest
from nilearn import datasets

from dawm.preprocess.bias import BiasCorrection, correct_bias, shrink_factors


@pytest.fixture(scope="module")
def phantom():
    gm_img = datasets.load_mni152_gm_template(resolution=2)
    affine = gm_img.affine
    gm = gm_img.get_fdata()
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata()
    mask = datasets.load_mni152_brain_mask(resolution=2).get_fdata() > 0
    csf = np.clip(mask - gm - wm, 0, 1)
    t1 = (300 * csf + 600 * gm + 850 * wm) * mask
    i, j, k = np.meshgrid(*[np.linspace(-1, 1, s) for s in t1.shape], indexing="ij")
    field = np.exp(0.25 * i + 0.2 * j**2 - 0.15 * k + 0.1 * i * k)
    rng = np.random.default_rng(0)
    sigma = 15.0
    noisy = np.hypot(t1 * field + rng.normal(0, sigma, t1.shape), rng.normal(0, sigma, t1.shape))
    return dict(image=noisy, affine=affine, mask=mask, field=field, wm=(wm > 0.9) & mask)


def _cv(x, sel):
    return x[sel].std() / x[sel].mean()


def test_n4_removes_known_field(phantom):
    res = correct_bias(phantom["image"], phantom["affine"], mask=phantom["mask"], n_threads=1)
    assert isinstance(res, BiasCorrection)
    m = phantom["mask"]
    cv_before = _cv(phantom["image"], phantom["wm"])
    cv_after = _cv(res.corrected, phantom["wm"])
    assert cv_after < 0.5 * cv_before, (cv_before, cv_after)
    corr = np.corrcoef(np.log(phantom["field"][m]), np.log(res.field[m]))[0, 1]
    assert corr > 0.9, corr
    assert res.field.min() > 0
    assert res.field[m].mean() == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(res.corrected[m] * res.field[m], phantom["image"][m], rtol=1e-3)


def test_anisotropic_negative_and_nan_input(phantom):
    # Keep every 3rd slice: 2 x 2 x 6 mm voxels.
    image = phantom["image"][:, :, ::3].copy()
    affine = phantom["affine"] @ np.diag([1.0, 1.0, 3.0, 1.0])
    image[0, 0, 0] = -5.0
    image[1, 0, 0] = np.nan
    res = correct_bias(image, affine, mask=phantom["mask"][:, :, ::3], n_threads=1)
    assert res.corrected.shape == image.shape
    assert np.isfinite(res.corrected).all() and np.isfinite(res.field).all()
    assert res.corrected[0, 0, 0] == 0 and res.corrected[1, 0, 0] == 0
    sel = phantom["wm"][:, :, ::3]
    assert _cv(res.corrected, sel) < 0.6 * _cv(np.nan_to_num(image), sel)


def test_no_mask_uses_positive_voxels(phantom):
    image = np.where(phantom["mask"], phantom["image"], 0.0)
    res = correct_bias(image, phantom["affine"], n_threads=1)
    assert res.mask.sum() == (image > 0).sum()


def test_shrink_factors_anisotropic():
    assert shrink_factors(np.array([0.9, 0.9, 5.0]), 4) == (4, 4, 1)
    assert shrink_factors(np.array([1.0, 1.0, 1.0]), 4) == (4, 4, 4)


def test_bad_input_raises(phantom):
    aff = phantom["affine"]
    with pytest.raises(ValueError):
        correct_bias(np.zeros((4, 4)), aff)
    with pytest.raises(ValueError):
        correct_bias(phantom["image"], aff, mask=np.ones((3, 3, 3), bool))
    with pytest.raises(ValueError):
        correct_bias(np.zeros((10, 10, 10)), aff)
    with pytest.raises(ValueError):
        correct_bias(phantom["image"], aff, shrink_factor=0)
