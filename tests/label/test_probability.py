"""The DAWM probability map (local false discovery rate) on tiny synthetic score fields (pure arrays)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_phantom
from scipy import ndimage

from dawm.label.config import LabelConfig
from dawm.label.normative import SelfNormativeModel
from dawm.label.pipeline import eligible_of, probability_map
from dawm.label.probability import GRID_EDGES, counted_voxels, dawm_probability, dawm_score, empirical_null, standardised_histogram

SHAPE = (40, 40, 40)
_IDX = np.indices(SHAPE)


def _ball(centre, radius: float) -> np.ndarray:
    return np.sqrt(((_IDX - np.asarray(centre, float)[:, None, None, None]) ** 2).sum(0)) <= radius


ELIGIBLE = _ball((19.5, 19.5, 19.5), 18.0)  # 24 464 voxels


def _noise(rng: np.random.Generator) -> np.ndarray:
    """Spatially correlated N(0, 1) scores (Gaussian-smoothed white noise, FWHM 1.5 voxels, like the
    smoothed z maps)."""
    x = ndimage.gaussian_filter(rng.standard_normal(SHAPE), 0.65)
    return (x / x[ELIGIBLE].std()).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_null_scores_give_almost_no_expected_dawm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z_t1, z_mtr = _noise(rng), _noise(rng)
    prob, fit = dawm_probability(dawm_score(z_t1, z_mtr, "chi2"), ELIGIBLE, ELIGIBLE)
    assert fit.expected_voxels < 0.01 * ELIGIBLE.sum() and fit.null_shape == "gaussian"
    assert abs(fit.null.centre) < 0.1 and abs(fit.null.sd - 1) < 0.1 and fit.pi0 > 0.98
    assert prob.sum() == pytest.approx(fit.expected_voxels, rel=1e-4, abs=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_expected_count_recovers_shifted_regions(seed: int) -> None:
    """5 % of the voxels, in four balls, with T1 z raised and MTR z lowered by 3 SD (the shift smoothed
    like the maps) on correlated noise: the expected count is within 25 % of the true count (81-102 %
    over 20 seeds), and the null is not pulled up by the shifted voxels. With the region only 3 SD
    above the null on the *combined* score, the zero assumption (P = 0 up to 2 SD) forgoes the
    region's voxels that score below 2 SD: 63-88 % of the count over 20 seeds, never more."""
    rng = np.random.default_rng(100 + seed)
    truth = np.zeros(SHAPE, bool)
    for _ in range(4):
        truth |= _ball(rng.uniform(12, 28, 3), 4.2)
    truth &= ELIGIBLE
    assert 0.03 < truth.sum() / ELIGIBLE.sum() < 0.07
    shift = 3.0 * ndimage.gaussian_filter(truth.astype(np.float32), 0.65)
    prob, fit = dawm_probability(dawm_score(_noise(rng) + shift, _noise(rng) - shift, "chi2"), ELIGIBLE, ELIGIBLE)
    assert fit.expected_voxels == pytest.approx(truth.sum(), rel=0.25)
    assert abs(fit.null.centre) < 0.1 and abs(fit.null.sd - 1) < 0.1 and fit.null.pi0 < 0.99
    assert prob[truth].mean() > 10 * prob[ELIGIBLE & ~truth].mean()
    _, weak = dawm_probability(_noise(rng) + 3.0 * truth, ELIGIBLE, ELIGIBLE)
    assert 0.55 * truth.sum() < weak.expected_voxels < truth.sum()


def _healthy(rng: np.random.Generator, shift: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(z_T1, z_MTR) of a healthy-looking brain with a one-sided structure that raises T1 and lowers
    MTR together (like partial volume: no DAWM, but DAWM-like), plus ``shift`` SD of DAWM."""
    common = 0.25 * np.abs(_noise(rng)) ** 3
    return _noise(rng) + common + shift, _noise(rng) - common - shift


def _controls_null(rng: np.random.Generator, n: int = 3) -> np.ndarray:
    """Pooled standardised ``both`` scores of ``n`` :func:`_healthy` control phantoms."""
    counts = np.zeros(GRID_EDGES.size - 1, np.int64)
    for _ in range(n):
        score = dawm_score(*_healthy(rng))
        counts += standardised_histogram(score[ELIGIBLE], empirical_null(score[ELIGIBLE]))
    return counts


@pytest.mark.parametrize("seed", range(3))
def test_controls_null_shape_calibrates_the_both_score(seed: int) -> None:
    """Healthy NAWM with a DAWM-like one-sided structure: the Gaussian null counts it as DAWM, the
    null shape of three control phantoms does not (a control gets 0.01-0.7 % of its voxels over 10
    seeds, 3.7-4.4 % with the Gaussian null), and the
    regions of a patient 3 SD up in T1 and down in MTR are still counted (the ``both`` score, the
    minimum of the two components, keeps 62-84 % of the true count over 10 seeds)."""
    rng = np.random.default_rng(200 + seed)
    shape = _controls_null(rng)
    control = dawm_score(*_healthy(rng))
    _, gaussian = dawm_probability(control, ELIGIBLE, ELIGIBLE)
    _, fit0 = dawm_probability(control, ELIGIBLE, ELIGIBLE, null_shape=shape, n_controls=3)
    assert fit0.null_shape == "controls" and fit0.n_controls == 3
    assert fit0.expected_voxels < 0.01 * ELIGIBLE.sum() and gaussian.expected_voxels > 0.02 * ELIGIBLE.sum()
    truth = np.zeros(SHAPE, bool)
    for _ in range(4):
        truth |= _ball(rng.uniform(12, 28, 3), 4.2)
    truth &= ELIGIBLE
    patient = dawm_score(*_healthy(rng, 3.0 * ndimage.gaussian_filter(truth.astype(np.float32), 0.65)))
    _, fit = dawm_probability(patient, ELIGIBLE, ELIGIBLE, null_shape=shape)
    assert 0.55 * truth.sum() < fit.expected_voxels < 1.1 * truth.sum()


def _noise_null(rng: np.random.Generator, min_cluster_voxels: int, n: int = 3) -> np.ndarray:
    """Pooled standardised ``both`` scores of ``n`` pure-noise controls under the cluster support."""
    counts = np.zeros(GRID_EDGES.size - 1, np.int64)
    for _ in range(n):
        score = dawm_score(_noise(rng), _noise(rng))
        null = empirical_null(score[ELIGIBLE])
        counts += standardised_histogram(score[counted_voxels(score, ELIGIBLE, null, min_cluster_voxels=min_cluster_voxels)], null)
    return counts


@pytest.mark.parametrize("seed", range(3))
def test_cluster_support_drops_specks_and_keeps_regions(seed: int) -> None:
    """250 isolated abnormal voxels (an artefact's specks, 1 % of the WM, +6 SD on both maps) are DAWM
    to the voxel-wise lfdr (P = 1) but not under a cluster support of 8 voxels whose null is made the
    same way (0-8 % of them keep P > 0 over 8 seeds: those that fall next to noise above the zone);
    four DAWM regions 3 SD up keep 71-74 % of their count in P (60-65 % without the support, whose
    null the specks distort)."""
    rng = np.random.default_rng(300 + seed)
    truth = np.zeros(SHAPE, bool)
    for _ in range(4):
        truth |= _ball(rng.uniform(12, 28, 3), 4.2)
    truth &= ELIGIBLE
    shift = 3.0 * ndimage.gaussian_filter(truth.astype(np.float32), 0.65)
    z_t1, z_mtr = _noise(rng) + shift, _noise(rng) - shift
    specks = np.zeros(SHAPE, bool)
    specks.flat[rng.choice(np.flatnonzero(ELIGIBLE & ~ndimage.binary_dilation(truth, iterations=3)), 250, replace=False)] = True
    z_t1[specks], z_mtr[specks] = 6.0, -6.0
    score = dawm_score(z_t1, z_mtr)
    plain, plain_fit = dawm_probability(score, ELIGIBLE, ELIGIBLE, null_shape=_noise_null(rng, 0))
    support, fit = dawm_probability(score, ELIGIBLE, ELIGIBLE, null_shape=_noise_null(rng, 8), min_cluster_voxels=8)
    assert fit.min_cluster_voxels == 8 and fit.n_eligible == plain_fit.n_eligible == ELIGIBLE.sum()
    assert plain[specks].mean() > 0.9 and (support[specks] > 0).mean() < 0.15
    assert 0.6 * truth.sum() < support[truth].sum() <= truth.sum() and support[truth].sum() > plain[truth].sum()
    assert fit.expected_voxels < plain_fit.expected_voxels - 0.5 * specks.sum() + 0.2 * truth.sum()
    # without a measured null (Gaussian) the support is off; min_cluster_voxels <= 1 counts every candidate
    _, gaussian = dawm_probability(score, ELIGIBLE, ELIGIBLE, min_cluster_voxels=8)
    assert gaussian.min_cluster_voxels == 0
    assert np.array_equal(counted_voxels(score, ELIGIBLE, fit.null, min_cluster_voxels=1), ELIGIBLE)


def test_probabilities_bounded_masked_and_monotone() -> None:
    rng = np.random.default_rng(7)
    truth = _ball((14, 20, 20), 5.0) & ELIGIBLE
    score = _noise(rng) + 4.0 * truth
    score[_ball((26, 20, 20), 3.0)] = 12.0  # a lesion-like spot, excluded
    lesion = _ball((26, 20, 20), 3.0)
    eligible = ELIGIBLE & ~_ball((20, 30, 20), 4.0)  # a hole: not eligible although abnormal
    score[_ball((20, 30, 20), 4.0)] = 6.0
    prob, fit = dawm_probability(score, eligible, eligible & ~lesion, exclude=lesion)
    assert prob.dtype == np.float32 and prob.min() >= 0 and prob.max() <= 1
    assert not prob[~eligible].any() and not prob[lesion].any()
    inside = eligible & ~lesion
    order = np.argsort(score[inside], kind="stable")
    assert np.all(np.diff(prob[inside][order]) >= 0)  # non-decreasing in the score
    assert not prob[inside & (score <= fit.null.centre + fit.zero_sd * fit.null.sd)].any()
    assert prob[truth].mean() > 0.8 and fit.expected_voxels > 0.7 * truth.sum()
    # the DAWM direction only: the same region 4 SD *below* the null is no DAWM
    low, _ = dawm_probability(_noise(rng) - 4.0 * truth, eligible, eligible)
    assert low[truth].sum() < 0.05 * truth.sum()


def test_score_and_null_edge_cases() -> None:
    z = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    assert np.allclose(dawm_score(z, -z, "chi2"), np.sqrt(2) * z) and np.array_equal(dawm_score(z, None), z)
    assert np.array_equal(dawm_score(None, z), -z) and np.array_equal(dawm_score(z, -2 * z), z)  # both: min
    assert np.array_equal(dawm_score(z, -2 * z, "either"), 2 * z) and np.array_equal(dawm_score(z, -2 * z, "mtr"), 2 * z)
    with pytest.raises(ValueError):
        dawm_score(None, None)
    with pytest.raises(ValueError):
        empirical_null(np.zeros(10))
    prob, fit = dawm_probability(np.zeros(SHAPE, np.float32), ELIGIBLE, ELIGIBLE)  # no spread: no fit, P = 0
    assert not prob.any() and fit.expected_voxels == 0


def test_probability_map_of_a_phantom_session() -> None:
    """The pipeline's probability map (self reference): the raised patch (and its margin blurred by the
    smoothing) gets the probability mass, a control-like phantom (almost) none; lesions are excluded."""
    config = LabelConfig(reference="self")
    patient = make_phantom(4.0, config=config, lesion=True)
    ref = SelfNormativeModel(config).fit_transform(patient.prepared.maps)
    prob, fit = probability_map(patient.prepared, ref, config)
    eligible = eligible_of(patient.prepared, config)
    assert not prob[~eligible].any() and not prob[patient.prepared.lesion].any()
    patch = patient.patch & eligible
    near = ndimage.binary_dilation(patient.patch, iterations=2)  # the 3 mm smoothing blurs the patch's margin
    assert prob[patch].mean() > 0.9 and patch.sum() < fit.expected_voxels < (near & eligible).sum()
    assert fit.expected_voxels == pytest.approx(prob.sum(dtype=np.float64), rel=1e-4)
    control = make_phantom(0.0, config=config)
    ref0 = SelfNormativeModel(config).fit_transform(control.prepared.maps)
    _, fit0 = probability_map(control.prepared, ref0, config)
    assert fit0.expected_voxels < 0.005 * fit0.n_eligible
