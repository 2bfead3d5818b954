"""Lesion-aware tissue segmentation on a 2 mm MNI-derived T1w + FLAIR phantom with MS-like lesions."""

from __future__ import annotations

import numpy as np
import pytest
from nilearn import datasets
from scipy import ndimage

from dawm.preprocess.tissues import TissuePriors, TissueSegmentation, segment_tissues


@pytest.fixture(scope="module")
def phantom():
    gm = datasets.load_mni152_gm_template(resolution=2).get_fdata().astype(np.float32)
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata().astype(np.float32)
    mask = datasets.load_mni152_brain_mask(resolution=2).get_fdata() > 0
    gm, wm = gm * mask, wm * mask
    csf = np.clip(mask - gm - wm, 0, 1)
    rng = np.random.default_rng(0)
    ii, jj, kk = np.indices(mask.shape)
    deep = np.argwhere(ndimage.binary_erosion(wm > 0.9, iterations=3))
    lesions = np.zeros(mask.shape, bool)
    for c in deep[rng.choice(len(deep), 6, replace=False)]:
        lesions |= (ii - c[0]) ** 2 + (jj - c[1]) ** 2 + (kk - c[2]) ** 2 <= 2.5**2
    c = deep[rng.choice(len(deep))]
    dawm_w = np.exp(-((ii - c[0]) ** 2 + (jj - c[1]) ** 2 + (kk - c[2]) ** 2) / (2 * 3.0**2))
    dawm_w = dawm_w * (wm > 0.5) * ~lesions
    # DAWM: at its centre about half-way from WM to GM on T1w, a third of the way on FLAIR.
    t1 = 300 * csf + 600 * gm + 850 * wm * (1 - 0.15 * dawm_w)
    flair = 150 * csf + 700 * gm + 550 * wm * (1 + 0.1 * dawm_w)
    t1[lesions], flair[lesions] = 450, 1050
    images = {}
    for name, x in (("T1w", t1), ("FLAIR", flair)):
        x = ndimage.gaussian_filter(x, 0.5)
        s = 0.03 * 850
        images[name] = np.hypot(x + rng.normal(0, s, x.shape), rng.normal(0, s, x.shape))
    truth = np.where(mask, np.argmax(np.stack([csf, gm, wm]), 0) + 1, 0).astype(np.uint8)
    truth[lesions] = 3

    def prior(a):  # blurred and shifted by one voxel: imperfect registration
        return np.roll(ndimage.gaussian_filter(a, 1.0), 1, axis=0)

    priors = TissuePriors(csf=prior(csf), gm=prior(gm), wm=prior(wm))
    return dict(images=images, priors=priors, mask=mask, lesions=lesions, dawm=dawm_w > 0.5, truth=truth)


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def seg(phantom):
    return segment_tissues(phantom["images"], phantom["priors"], phantom["mask"])


def test_outputs_are_consistent(seg, phantom):
    assert isinstance(seg, TissueSegmentation)
    m = phantom["mask"]
    total = sum(seg.probabilities[c] for c in ("CSF", "GM", "WM"))
    np.testing.assert_allclose(total[m], 1.0, atol=1e-5)
    assert np.all(total[~m] == 0)
    assert seg.dseg.dtype == np.uint8 and set(np.unique(seg.dseg)) == {0, 1, 2, 3}
    assert np.all(seg.dseg[~m] == 0)
    assert not (seg.nawm_mask & seg.lesion_candidates).any()
    assert np.all(seg.dseg[seg.nawm_mask] == 3)


def test_wm_dice_with_imperfect_priors(seg, phantom):
    dice_wm = _dice(seg.dseg == 3, phantom["truth"] == 3)
    dice_gm = _dice(seg.dseg == 2, phantom["truth"] == 2)
    assert dice_wm >= 0.85, dice_wm
    assert dice_gm >= 0.8, dice_gm


def test_lesions_and_dawm_stay_in_wm(seg, phantom):
    les = phantom["lesions"]
    assert (seg.dseg[les] == 3).mean() >= 0.9
    assert seg.lesion_candidates[les].mean() >= 0.9
    assert (seg.lesion_candidates & ~les).sum() <= 0.1 * les.sum()
    # DAWM-ish voxels: WM and *normal-appearing* (not lesion candidates), so the DAWM stage sees them.
    assert seg.nawm_mask[phantom["dawm"]].mean() >= 0.9


def test_t1_only_keeps_most_lesions_in_wm(phantom):
    seg = segment_tissues({"T1w": phantom["images"]["T1w"]}, phantom["priors"], phantom["mask"])
    assert _dice(seg.dseg == 3, phantom["truth"] == 3) >= 0.85
    assert (seg.dseg[phantom["lesions"]] == 3).mean() >= 0.8


def test_given_lesion_mask_forced_to_wm(phantom):
    les = phantom["lesions"]
    seg = segment_tissues(phantom["images"], phantom["priors"], phantom["mask"], lesion_mask=les, n_iter=3)
    assert np.all(seg.dseg[les] == 3)
    assert not seg.nawm_mask[les].any()


def test_bad_input_raises(phantom):
    p, m = phantom["priors"], phantom["mask"]
    with pytest.raises(ValueError):
        segment_tissues({}, p, m)
    with pytest.raises(ValueError):
        segment_tissues({"T1w": np.zeros((3, 3, 3))}, p, m)
    with pytest.raises(ValueError):
        segment_tissues(phantom["images"], p, np.zeros_like(m))
    with pytest.raises(ValueError):
        TissuePriors(csf=np.zeros((2, 2, 2)), gm=np.zeros((2, 2, 2)), wm=np.zeros((2, 2, 3)))
