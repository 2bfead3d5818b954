"""Segmentation and agreement metrics on tiny hand-computed cases and against MONAI."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from dawm.evaluate.metrics import (
    OverlapMetrics,
    agreement_table,
    bland_altman,
    bootstrap_ci,
    correlations,
    icc_a1,
    icc_c1,
    lesion_detection,
    lesion_recall_by_size,
    overlap_metrics,
    size_bin_names,
    surface_distances,
)

SPACING = (1.0, 1.0, 3.0)


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _blob(seed: int, shape=(32, 28, 12)) -> np.ndarray:
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), (2.0, 2.0, 0.8))
    return noise > 0.5 * noise.std()


def _ball(shape, centre_vox, radius_mm, spacing) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre_vox, spacing))
    return d2 <= radius_mm**2


def test_overlap_counts_and_volumes_by_hand(no_warnings) -> None:
    pred = np.zeros((4, 4, 4), bool)
    ref = np.zeros_like(pred)
    pred[1, 1, 0:4] = True  # 4 voxels
    ref[1, 1, 2:4] = ref[2, 1, 2] = True  # 3 voxels, 2 shared
    m = overlap_metrics(pred, ref, SPACING)
    assert isinstance(m, OverlapMetrics)
    assert m.dice == pytest.approx(4 / 7) and m.precision == 0.5 and m.recall == pytest.approx(2 / 3)
    assert m.volume_pred_ml == pytest.approx(4 * 3e-3) and m.volume_ref_ml == pytest.approx(3 * 3e-3)
    assert m.volume_error_ml == pytest.approx(3e-3) and m.relative_volume_error == pytest.approx(1 / 3)
    assert set(m.as_dict()) == {
        "dice",
        "precision",
        "recall",
        "hd95_mm",
        "assd_mm",
        "volume_pred_ml",
        "volume_ref_ml",
        "volume_error_ml",
        "relative_volume_error",
    }


def test_single_voxels_distance_is_exact(no_warnings) -> None:
    pred = np.zeros((6, 6, 6), bool)
    ref = np.zeros_like(pred)
    pred[1, 1, 1] = ref[2, 3, 3] = True
    m = overlap_metrics(pred, ref, SPACING)
    assert m.hd95_mm == pytest.approx(math.sqrt(1 + 4 + 36)) and m.assd_mm == pytest.approx(math.sqrt(41))
    assert m.dice == 0.0


def test_shifted_balls_have_hausdorff_equal_to_the_shift(no_warnings) -> None:
    shape = (30, 24, 12)
    ref = _ball(shape, (12, 12, 5), 6.0, SPACING)
    pred = _ball(shape, (12, 12, 7), 6.0, SPACING)  # 2 slices = 6 mm along z
    d_pr, d_rp = surface_distances(pred, ref, SPACING)
    assert d_pr.max() == pytest.approx(6.0) and d_rp.max() == pytest.approx(6.0)
    # a translated point-symmetric shape: both directions have the same distances
    np.testing.assert_allclose(np.sort(d_pr), np.sort(d_rp))
    m = overlap_metrics(pred, ref, SPACING)
    assert 0 < m.assd_mm < m.hd95_mm <= 6.0
    assert m.volume_error_ml == pytest.approx(0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distances_match_monai(seed: int) -> None:
    torch = pytest.importorskip("torch")
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    pred, ref = _blob(seed), _blob(seed + 100)
    pred[0, :, 3] = True  # touch the array border: border voxels are surface in both
    assert pred.any() and ref.any() and not (pred == ref).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = overlap_metrics(pred, ref, SPACING)
    y_pred, y = (torch.from_numpy(a[None, None].astype(np.float32)) for a in (pred, ref))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI's own deprecation notice
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=SPACING)
        assd = compute_average_surface_distance(y_pred, y, include_background=True, symmetric=True, spacing=SPACING)
    # same surface definition; MONAI returns float32 (observed differences < 2e-7 mm)
    assert m.hd95_mm == pytest.approx(float(hd95), abs=1e-6)
    assert m.assd_mm == pytest.approx(float(assd), abs=1e-6)


def test_empty_mask_conventions(no_warnings) -> None:
    empty, some = np.zeros((5, 5, 5), bool), np.zeros((5, 5, 5), bool)
    some[2, 2, 1:3] = True
    both = overlap_metrics(empty, empty, SPACING)
    assert (both.dice, both.precision, both.recall, both.hd95_mm, both.assd_mm) == (1.0, 1.0, 1.0, 0.0, 0.0)
    assert both.relative_volume_error == 0.0 and both.volume_error_ml == 0.0

    missed = overlap_metrics(empty, some, SPACING)  # nothing predicted
    assert (missed.dice, missed.precision, missed.recall) == (0.0, 1.0, 0.0)
    assert math.isnan(missed.hd95_mm) and math.isnan(missed.assd_mm)
    assert missed.relative_volume_error == -1.0 and missed.volume_error_ml == pytest.approx(-6e-3)

    false_pos = overlap_metrics(some, empty, SPACING)  # nothing to find
    assert (false_pos.dice, false_pos.precision, false_pos.recall) == (0.0, 0.0, 1.0)
    assert math.isnan(false_pos.hd95_mm) and math.isnan(false_pos.relative_volume_error)
    finite = [k for k, v in false_pos.as_dict().items() if k not in ("hd95_mm", "assd_mm", "relative_volume_error")]
    assert all(math.isfinite(false_pos.as_dict()[k]) for k in finite)

    with pytest.raises(ValueError):
        overlap_metrics(empty, np.zeros((5, 5, 4), bool), SPACING)


def _lesion_scene() -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros((20, 20, 20), bool)
    pred = np.zeros_like(ref)
    ref[2:4, 2:4, 2:4] = True  # A: found by P1 (1 voxel overlap)
    ref[10:12, 2:4, 2:4] = True  # B: found by P2
    ref[2:4, 10:13, 10:13] = True  # C: missed
    ref[15, 15, 15] = True  # E: 1 voxel, missed
    pred[3:5, 3:5, 3:5] = True  # P1
    pred[10:12, 2:4, 2:4] = True  # P2
    pred[15:17, 5:7, 5:7] = True  # P3: false positive
    pred[7, 15, 2] = pred[8, 16, 3] = True  # P4: corner-touching = one 26-connected false positive
    return pred, ref


def test_lesion_detection_on_constructed_components(no_warnings) -> None:
    pred, ref = _lesion_scene()
    det = lesion_detection(pred, ref, (1, 1, 2))
    assert (det["n_ref"], det["n_pred"], det["tp_ref"], det["tp_pred"]) == (4, 4, 2, 2)
    assert det["lesion_recall"] == det["lesion_precision"] == det["lesion_f1"] == 0.5

    # voxels are 2 mm3: 3 mm3 drops the 1-voxel lesion E but keeps the 2-voxel P4
    det = lesion_detection(pred, ref, (1, 1, 2), min_volume_mm3=3.0)
    assert (det["n_ref"], det["n_pred"], det["tp_ref"]) == (3, 4, 2)
    assert det["lesion_recall"] == pytest.approx(2 / 3)
    assert det["lesion_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))

    det = lesion_detection(pred, ref, (1, 1, 2), min_overlap_voxels=2)  # A's single shared voxel no longer counts
    assert (det["tp_ref"], det["tp_pred"]) == (1, 1)


def test_lesion_recall_by_size_counts_each_bin(no_warnings) -> None:
    pred, ref = _lesion_scene()  # voxels of 2 mm3: A 16 mm3 and B 16 mm3 found, C 36 mm3 and E 2 mm3 missed
    assert size_bin_names((10, 20)) == ["<10", "10-20", ">=20"]
    by_size = lesion_recall_by_size(pred, ref, (1, 1, 2), edges_mm3=(10, 20))
    assert by_size == {"<10": {"n_ref": 1, "detected": 0}, "10-20": {"n_ref": 2, "detected": 2}, ">=20": {"n_ref": 1, "detected": 0}}
    assert sum(b["n_ref"] for b in by_size.values()) == lesion_detection(pred, ref, (1, 1, 2))["n_ref"]
    # a lesion exactly on an edge belongs to the bin above it; two overlapping voxels are needed for A now
    by_size = lesion_recall_by_size(pred, ref, (1, 1, 2), edges_mm3=(16,), min_overlap_voxels=2)
    assert by_size == {"<16": {"n_ref": 1, "detected": 0}, ">=16": {"n_ref": 3, "detected": 1}}
    empty = lesion_recall_by_size(pred, np.zeros_like(ref), 1.0)
    assert list(empty) == size_bin_names() and all(b == {"n_ref": 0, "detected": 0} for b in empty.values())
    with pytest.raises(ValueError):
        lesion_recall_by_size(pred, ref[:-1], 1.0)


def test_lesion_detection_empty(no_warnings) -> None:
    pred, ref = _lesion_scene()
    empty = np.zeros_like(ref)
    both = lesion_detection(empty, empty, 1.0)
    assert both["n_ref"] == both["n_pred"] == 0
    assert both["lesion_recall"] == both["lesion_precision"] == both["lesion_f1"] == 1.0
    none_found = lesion_detection(empty, ref, 1.0)
    assert (none_found["lesion_recall"], none_found["lesion_precision"], none_found["lesion_f1"]) == (0.0, 1.0, 0.0)


def test_icc_shrout_fleiss_and_hand_case(no_warnings) -> None:
    # Shrout & Fleiss (1979) Table 2: 6 targets x 4 judges; ICC(2,1) = 0.29, ICC(3,1) = 0.71
    sf = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
    assert round(icc_a1(sf), 2) == 0.29 and round(icc_c1(sf), 2) == 0.71
    # two raters, constant offset of 1: MSR = 2, MSC = 1.5, MSE = 0 -> A = 2 / (2 + 2/3 * 1.5), C = 1
    x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0])
    assert icc_a1(x, y) == pytest.approx(2 / 3) and icc_c1(x, y) == pytest.approx(1.0)
    assert icc_a1(x, x) == pytest.approx(1.0)
    assert math.isnan(icc_a1([1.0], [2.0])) and math.isnan(icc_a1([2.0, 2.0], [2.0, 2.0]))
    assert icc_a1([1.0, 2.0, np.nan, 3.0], [2.0, 3.0, 5.0, 4.0]) == pytest.approx(2 / 3)  # NaN pair dropped


def test_bland_altman_by_hand(no_warnings) -> None:
    ba = bland_altman([1, 2, 3, 4], [0, 2, 2, 2])  # differences 1, 0, 1, 2
    sd = math.sqrt(2 / 3)
    assert ba["bias"] == 1.0 and ba["sd"] == pytest.approx(sd) and ba["n"] == 4
    assert ba["loa_low"] == pytest.approx(1 - 1.96 * sd) and ba["loa_high"] == pytest.approx(1 + 1.96 * sd)
    one = bland_altman([1.0], [0.5])
    assert one["bias"] == 0.5 and math.isnan(one["sd"]) and one["n"] == 1


def test_correlations_and_degenerate_inputs(no_warnings) -> None:
    c = correlations([1, 2, 3, 4, 5], [2, 4, 5, 9, 30])
    assert c["spearman_rho"] == pytest.approx(1.0) and 0 < c["pearson_r"] < 1 and 0 <= c["pearson_p"] < 0.2
    for pred, ref in (([1, 2], [1, 3]), ([1, 2, 3], [5, 5, 5]), ([], [])):
        assert all(math.isnan(v) for v in correlations(pred, ref).values())


def test_bootstrap_ci_is_deterministic_and_resamples_clusters(no_warnings) -> None:
    values = np.random.default_rng(3).normal(10, 2, size=40)
    est, low, high = bootstrap_ci(values, np.mean, n_boot=500, seed=1)
    assert est == pytest.approx(values.mean()) and low < est < high
    assert bootstrap_ci(values, np.mean, n_boot=500, seed=1) == (est, low, high)
    assert bootstrap_ci(values, np.mean, n_boot=500, seed=2) != (est, low, high)

    # two subjects with three identical sessions each: cluster means can only be 0, 0.5 or 1
    v, g = np.array([0, 0, 0, 1, 1, 1.0]), np.array(["a", "a", "a", "b", "b", "b"])
    assert bootstrap_ci(v, np.mean, n_boot=400, groups=g) == (0.5, 0.0, 1.0)
    _, low_rows, high_rows = bootstrap_ci(v, np.mean, n_boot=400)
    assert 0.0 < low_rows < 0.5 < high_rows < 1.0

    x = np.arange(20.0)
    est, low, high = bootstrap_ci((x, 2 * x + 1), icc_c1, n_boot=200)  # paired; 2 cov / (var x + var y) = 0.8
    assert est == pytest.approx(0.8) and low == pytest.approx(0.8) and high == pytest.approx(0.8)


def test_agreement_table_bundles_everything(no_warnings) -> None:
    rng = np.random.default_rng(0)
    ref = rng.uniform(1, 20, size=30)
    pred = ref * 1.1 + rng.normal(0, 1, size=30)
    groups = np.repeat(np.arange(10), 3)
    t = agreement_table(pred, ref, groups, n_boot=200)
    assert t["n"] == 30 and t["n_groups"] == 10
    assert t["icc_a1"] == pytest.approx(icc_a1(pred, ref)) and t["icc_c1"] == pytest.approx(icc_c1(pred, ref))
    assert t["bias"] == pytest.approx(bland_altman(pred, ref)["bias"])
    assert t["spearman_rho"] == pytest.approx(correlations(pred, ref)["spearman_rho"])
    assert t["icc_a1_ci_low"] <= t["icc_a1"] <= t["icc_a1_ci_high"]
    assert t["spearman_rho_ci_low"] <= t["spearman_rho"] <= t["spearman_rho_ci_high"]
    assert agreement_table(pred, ref, groups, n_boot=200) == t
    tiny = agreement_table([1.0, np.nan], [1.0, 2.0], n_boot=50)
    assert tiny["n"] == 1 and math.isnan(tiny["icc_a1"]) and math.isnan(tiny["spearman_rho_ci_low"])
