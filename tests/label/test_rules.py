"""The DAWM rule on tiny synthetic phantoms (pure arrays, no files)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SPACING, make_phantom, prepare_arrays
from scipy import ndimage, stats

from dawm.image.units import mtr_to_percent, t1_to_ms
from dawm.label.config import LabelConfig
from dawm.label.normative import SelfNormativeModel
from dawm.label.pipeline import apply_rule
from dawm.label.rules import abnormal_mask, clean_mask, eligible_wm, grow_from_seeds, pv_core, within_mm
from dawm.label.zscores import chi2_pvalue, mahalanobis_sq, masked_smooth
from dawm.metrics import dice

NO_SMOOTH = dict(smoothing_fwhm_mm=0.0, reference="self", threshold=2.0)


def _label(ph, config: LabelConfig) -> np.ndarray:
    ref = SelfNormativeModel(config).fit_transform(ph.prepared.maps)
    return apply_rule(ph.prepared, ref, config)


def test_control_like_volume_has_almost_no_dawm() -> None:
    config = LabelConfig(reference="self")
    for seed in range(3):
        ph = make_phantom(0.0, seed=seed, config=config)
        dseg = _label(ph, config)
        wm_voxels = ph.prepared.maps.wm.sum()
        assert (dseg == 2).sum() < 0.002 * wm_voxels


@pytest.mark.parametrize("rule", ["t1", "mtr", "both", "either", "chi2"])
def test_patch_found_at_k4_not_at_k1(rule: str) -> None:
    config = LabelConfig(rule=rule, **{**NO_SMOOTH, "threshold": 0.01 if rule == "chi2" else 2.0})
    strong = make_phantom(4.0, config=config)
    assert dice(_label(strong, config) == 2, strong.patch) > 0.8
    weak = make_phantom(1.0, config=config)
    assert dice(_label(weak, config) == 2, weak.patch) < 0.5  # "either" on unsmoothed noise: ~0.4, the others < 0.3


def test_smoothing_finds_a_subtler_patch() -> None:
    smooth = LabelConfig(reference="self", smoothing_fwhm_mm=4.0, threshold=2.0)
    ph = make_phantom(2.0, config=smooth)
    assert dice(_label(ph, smooth) == 2, ph.patch) > 0.7


def test_lesions_and_their_margin_are_never_dawm() -> None:
    config = LabelConfig(lesion_margin_mm=2.0, **NO_SMOOTH)  # threshold 2
    ph = make_phantom(4.0, config=config, lesion=True)
    dseg = _label(ph, config)
    lesion = ph.prepared.lesion
    assert lesion.any() and np.all(dseg[lesion] == 1)
    assert not np.any(dseg[within_mm(lesion, 2.0, SPACING)] == 2)
    assert (dseg == 2).sum() > 0.5 * (ph.patch & ~within_mm(lesion, 2.0, SPACING)).sum()


def test_units_do_not_change_labels() -> None:
    config = LabelConfig(reference="self", threshold=2.0)
    ms = make_phantom(4.0, seed=3, config=config)
    other = make_phantom(4.0, seed=3, config=config, t1_scale=1e-3, mtr_scale=1e-2)  # T1 in s, MTR as a fraction
    wm = ms.prepared.maps.wm
    t1_ms, unit_t1 = t1_to_ms(other.t1_raw, mask=wm)
    mtr_pu, unit_mtr = mtr_to_percent(other.mtr_raw, mask=wm)
    assert (unit_t1, unit_mtr) == ("s", "fraction")
    converted = prepare_arrays(t1_ms, mtr_pu, wm & (ms.prepared.dseg == 3), ms.prepared.lesion, config)
    ref = SelfNormativeModel(config).fit_transform(converted.maps)
    np.testing.assert_array_equal(apply_rule(converted, ref, config), _label(ms, config))


def test_rules_nest_as_documented() -> None:
    rng = np.random.default_rng(1)
    zt, zm = rng.normal(size=(2, 20, 20, 20)).astype(np.float32) * 2
    m = {r: abnormal_mask(zt, zm, r, z_threshold=2.0) for r in ("t1", "mtr", "both", "either")}
    assert np.all(m["both"] <= m["t1"]) and np.all(m["both"] <= m["mtr"])
    assert np.all(m["t1"] <= m["either"]) and np.all(m["mtr"] <= m["either"])
    assert m["both"].sum() < m["t1"].sum() < m["either"].sum()
    np.testing.assert_array_equal(m["t1"], zt >= 2.0)
    np.testing.assert_array_equal(m["mtr"], zm <= -2.0)
    chi = abnormal_mask(zt, zm, "chi2", chi2_p=0.01)
    assert not np.any(chi & (zt - zm <= 0))  # never the healthy direction (low T1 and high MTR)
    # one map missing: every rule falls back to the other map
    np.testing.assert_array_equal(abnormal_mask(zt, None, "both"), zt >= 2.0)
    with pytest.raises(ValueError):
        abnormal_mask(None, zm, "t1")


def test_chi2_matches_scipy_on_a_hand_case() -> None:
    a1, a2, rho = np.array([1.0]), np.array([2.0]), 0.0
    assert mahalanobis_sq(a1, a2, rho)[0] == pytest.approx(5.0)
    assert chi2_pvalue(mahalanobis_sq(a1, a2, rho))[0] == pytest.approx(stats.chi2.sf(5.0, 2), rel=1e-5)
    assert chi2_pvalue(np.array([5.0]))[0] == pytest.approx(np.exp(-2.5), rel=1e-5)  # 2 dof: sf = exp(-x/2)
    # with correlation: d2 = x' S^-1 x
    rho = -0.3
    x = np.array([1.0, 2.0])
    s = np.array([[1, rho], [rho, 1]])
    assert mahalanobis_sq(x[:1], x[1:], rho)[0] == pytest.approx(x @ np.linalg.solve(s, x), rel=1e-5)


def test_cluster_filter_by_physical_size() -> None:
    mask = np.zeros((20, 20, 20), bool)
    mask[2:4, 2:4, 2:4] = True  # 8 voxels
    mask[10:15, 10:15, 10:15] = True  # 125 voxels
    out = clean_mask(mask, 2.0, min_cluster_mm3=100.0)  # 8 voxels x 8 mm3 = 64 mm3 < 100
    assert not out[2, 2, 2] and out[12, 12, 12]
    assert clean_mask(mask, 1.0, min_cluster_mm3=100.0)[12, 12, 12] and not clean_mask(mask, 1.0, min_cluster_mm3=200.0).any()


def test_config_threshold_semantics() -> None:
    assert LabelConfig().z_threshold == 3.5 and LabelConfig().grow_threshold == 2.0
    assert LabelConfig(rule="chi2", threshold=0.001).chi2_p == 0.001
    assert LabelConfig(rule="t1", threshold=3.0).z_threshold == 3.0
    with pytest.raises(ValueError):
        LabelConfig(rule="chi2", threshold=2.0)


def test_eligible_wm_is_the_pure_core() -> None:
    """A voxel next to GM, next to a low-probability WM voxel, under a low WM prior or next to a
    lesion cannot be DAWM; deep pure WM can."""
    shape = (12, 12, 12)
    dseg = np.full(shape, 3, np.uint8)
    dseg[:, :, :2] = 2  # a GM slab
    wm_prob = np.ones(shape, np.float32)
    wm_prob[6, 6, 8] = 0.5  # one uncertain WM voxel
    prior = np.ones(shape, np.float32)
    prior[:3] = 0.5  # low population WM prior (e.g. near the deep grey nuclei)
    lesion = np.zeros(shape, bool)
    lesion[9, 9, 6] = True
    ok = eligible_wm(wm_prob, dseg, lesion, 1.0, purity=0.9, lesion_margin_mm=1.0, pv_margin_mm=1.5, wm_prior=prior, prior_min=0.85)
    assert not ok[:, :, :3].any()  # GM and the 1.5 mm shell next to it (faces and edges at 1 mm)
    assert ok[6, 6, 4] and ok[5, 5, 5]  # deep pure WM
    assert not ok[6, 6, 8] and not ok[6, 6, 7] and not ok[6, 7, 8] and ok[6, 6, 10]
    assert not ok[:3].any() and ok[3:, 4:, 4:].sum() > 0
    assert not ok[9, 9, 6] and not ok[9, 9, 5] and ok[9, 9, 4]
    without = eligible_wm(wm_prob, dseg, lesion, 1.0, purity=0.9, lesion_margin_mm=1.0)
    assert without[:3, 5, 5].all() and without[6, 6, 7] and without[:, :, 2].all()
    # on a 2 mm grid the 1.5 mm margin still takes the first layer off (no centre lies closer than 2 mm)
    coarse = eligible_wm(wm_prob, dseg, lesion, 2.0, purity=0.9, lesion_margin_mm=0.0, pv_margin_mm=1.5)
    assert not coarse[:, :, 2].any() and coarse[5, 5, 3] and not coarse[6, 6, 7] and coarse[6, 6, 6]
    # an excluded zone (e.g. near the deep grey nuclei, which a 3-class segmentation calls WM) is never eligible
    zone = np.zeros(shape, bool)
    zone[8:, 8:, 4:] = True
    excluded = eligible_wm(wm_prob, dseg, lesion, 1.0, purity=0.9, lesion_margin_mm=1.0, exclude=zone)
    assert not excluded[zone].any() and (excluded == (without & ~zone)).all()


def test_pv_core_takes_at_least_one_layer_off() -> None:
    """The core of a WM block: margin 0 keeps it whole; 1.5 mm takes one layer off on 1 mm and on
    2 mm grids (raised to the voxel size there); 2.5 mm takes two layers off at 1 mm."""
    wm = np.zeros((10, 10, 10), bool)
    wm[1:9, 1:9, 1:9] = True
    assert (pv_core(wm, 0.0, 1.0) == wm).all()
    for spacing in (1.0, 2.0):
        assert pv_core(wm, 1.5, spacing).sum() == 6**3
    # the floor is the smallest voxel size: across 3 mm slices the neighbour lies 3 mm away and stays
    assert pv_core(wm, 1.5, (1.0, 1.0, 3.0)).sum() == 6 * 6 * 8
    assert pv_core(wm, 2.5, 1.0).sum() == 4**3
    # an oblique affine's voxel sizes are column norms, a hair off 2 mm: still one layer on every side
    assert pv_core(wm, 1.5, (2.0000000002563674, 2.0000000002563674, 2.0)).sum() == 6**3
    assert within_mm(~wm, 2.0, (2.0000000002563674, 2.0, 2.0)).sum() == 10**3 - 6**3


def test_grow_from_seeds_keeps_only_seeded_components() -> None:
    cand = np.zeros((10, 10, 10), bool)
    cand[1:4, 1:4, 1:4] = True  # holds a seed
    cand[6:9, 6:9, 6:9] = True  # no seed
    seeds = np.zeros_like(cand)
    seeds[2, 2, 2] = True
    seeds[0, 9, 9] = True  # a seed outside the candidates is kept alone
    allowed = np.ones_like(cand)
    grown = grow_from_seeds(seeds, cand, allowed)
    assert grown[1:4, 1:4, 1:4].all() and not grown[6:9, 6:9, 6:9].any() and grown[0, 9, 9]
    allowed[2, 2, 2] = False  # a seed that is not allowed seeds nothing
    assert not grow_from_seeds(seeds, cand, allowed)[1:4, 1:4, 1:4].any()


def test_growth_follows_a_soft_edged_patch_out_from_its_core() -> None:
    """A patch at 2.5 SD with a 4.5 SD core: seeds at z 4 alone find the core; growing to z 2
    recovers most of the patch, and a control-like volume stays clean."""
    plain = LabelConfig(threshold=4.0, grow_threshold=None, **{k: v for k, v in NO_SMOOTH.items() if k != "threshold"})
    grow = plain.model_copy(update={"grow_threshold": 2.0})
    ph = make_phantom(2.5, config=plain)
    core = np.zeros_like(ph.patch)
    core[24:28, 16:20, 16:20] = True
    ph.prepared.maps.raw["T1"][core] += 2.0 * 25.0
    ph.prepared.maps.maps["T1"][core] += 2.0 * 25.0
    ph.prepared.maps.raw["MTR"][core] -= 2.0
    ph.prepared.maps.maps["MTR"][core] -= 2.0
    d_plain = dice(_label(ph, plain) == 2, ph.patch)
    d_grow = dice(_label(ph, grow) == 2, ph.patch)
    assert d_grow > d_plain + 0.2 and d_grow > 0.6
    control = make_phantom(0.0, config=grow)
    assert (_label(control, grow) == 2).sum() < 0.002 * control.prepared.maps.wm.sum()


def test_masked_smooth_keeps_values_out_of_the_mask_and_weighs_voxels_by_their_weights() -> None:
    """A 0/1 mask: the smoothed value inside is untouched by the bright voxels outside it. Weights
    (e.g. sample counts): the weighted normalised convolution sum(K * w * x) / sum(K * w)."""
    rng = np.random.default_rng(0)
    data = np.full((12, 12, 12), 10.0, np.float32)
    mask = np.zeros(data.shape, bool)
    mask[:, :6] = True
    data[~mask] = 1000.0
    smooth = masked_smooth(data, mask, 4.0, 1.0)
    np.testing.assert_allclose(smooth[mask], 10.0, rtol=1e-5)
    assert (smooth[~mask] == 0).all()

    data = rng.normal(0, 1, (12, 12, 12)).astype(np.float32)
    weights = rng.integers(0, 4, data.shape).astype(np.float32)
    weighted = masked_smooth(data, weights, 4.0, 1.0, out_mask=np.ones(data.shape, bool))
    sigma = 4.0 / np.sqrt(8 * np.log(2))
    expected = ndimage.gaussian_filter(data * weights, sigma, truncate=3.0) / ndimage.gaussian_filter(weights, sigma, truncate=3.0)
    np.testing.assert_allclose(weighted, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(
        masked_smooth(data, weights > 0, 4.0, 1.0), masked_smooth(data, (weights > 0).astype(np.float32), 4.0, 1.0)
    )
