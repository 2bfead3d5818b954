"""The one Dice, the one component filter, the one resampler, voxel sizes and the poly LR schedule:
each against the code it replaced (kept here as the reference) and hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from nibabel.affines import voxel_sizes as nib_voxel_sizes
from scipy import ndimage

from dawm import metrics
from dawm.evaluate.metrics import overlap_metrics
from dawm.image.components import FULL, components, count_components, filter_components, label_components
from dawm.image.registration import LinearRegistration, warp
from dawm.image.resample import resample, resample_to_grid, voxel_sizes
from dawm.image.sitk_bridge import ras_transform_to_sitk, reference_image, to_sitk
from dawm.model.decision import calibrate_dawm_threshold
from dawm.model.train import lr_schedule, stretch_schedule


def blobs(shape, seed: int, thr: float = 0.52, sigma: float = 1.2) -> np.ndarray:
    return ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma) > thr


# ------------------------------------------------------------------------------------------ Dice


def test_dice_by_hand_and_empty_conventions() -> None:
    a, b = np.zeros(10, bool), np.zeros(10, bool)
    assert metrics.dice(a, b) == 1.0  # nothing to get wrong
    a[:3], b[2:4] = True, True
    assert metrics.overlap_counts(a, b) == (1, 3, 2)
    assert metrics.dice(a, b) == 0.4
    assert metrics.dice(a, np.zeros(10, bool)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.dice(a, b[:5])
    np.testing.assert_array_equal(metrics.dice_from_counts(np.array([1, 0, 0]), np.array([3, 0, 2]), np.array([2, 0, 0])), [0.4, 1.0, 0.0])
    assert np.isnan(metrics.dice_from_counts(0, 0, 0, empty=float("nan")))


def test_pooled_and_mean_over_sessions_differ_as_documented() -> None:
    # session A: 10 voxels found exactly; session B: 1 false positive, 9 missed; label 2 only in A
    counts = [{1: (10, 10, 10), 2: (3, 4, 4)}, {1: (0, 1, 9), 2: (0, 2, 0)}]
    pooled, mean = metrics.pooled_dice(counts), metrics.mean_dice(counts)
    assert pooled[1] == pytest.approx(20 / 30) and mean[1] == 0.5
    assert pooled[2] == pytest.approx(6 / 10) and mean[2] == pytest.approx(6 / 8)  # B's false positives count only when pooled
    assert np.isnan(metrics.pooled_dice([{1: (0, 0, 0)}])[1]) and np.isnan(metrics.mean_dice([{1: (0, 3, 0)}])[1])
    assert metrics.pooled_dice([]) == {} == metrics.mean_dice([])


def test_one_dice_gives_the_numbers_of_the_five_old_codes() -> None:
    for seed in range(8):
        a, b = blobs((20, 22, 18), seed), blobs((20, 22, 18), 50 + seed)
        if seed == 7:
            a, b = a & False, b & False
        # model.metrics.dice / preprocess.evaluate.dice (now simulate.preprocess_accuracy; the same code twice)
        total = int(a.sum()) + int(b.sum())
        old = 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total
        assert metrics.dice(a, b) == old
        # evaluate.metrics.overlap_metrics: _ratio(2 inter, n_p + n_r)
        n_p, n_r, inter = int(a.sum()), int(b.sum()), int(np.count_nonzero(a & b))
        assert overlap_metrics(a, b, 1.0).dice == (1.0 if n_p + n_r == 0 else 2.0 * inter / (n_p + n_r))
        if total:  # preprocess.brain: the affine / deformable brain-mask agreement
            assert metrics.dice(a, b) == float(2 * (a & b).sum() / (a.sum() + b.sum()))
        # model.metrics.pooled_dice
        labels_a, labels_b = a.astype(np.uint8) + 2 * (b & ~a), b.astype(np.uint8)
        counts = [metrics.class_counts(labels_a, labels_b), metrics.class_counts(labels_b, labels_a)]
        for k in (1, 2):
            i, t = sum(c[k][0] for c in counts), sum(c[k][1] + c[k][2] for c in counts)
            old_pooled = 2.0 * i / t if t else float("nan")
            assert metrics.pooled_dice(counts)[k] == old_pooled or (np.isnan(old_pooled) and np.isnan(metrics.pooled_dice(counts)[k]))
    # model.decision: the best threshold's pooled Dice, one count row per threshold
    rng = np.random.default_rng(1)
    rows = np.c_[rng.integers(0, 50, 16), rng.integers(50, 200, 16), np.full(16, 80)].astype(np.float64)
    grid = np.linspace(0.05, 0.8, 16)
    old = 2 * rows[:, 0] / np.maximum(rows[:, 1] + rows[:, 2], 1)
    assert calibrate_dawm_threshold(rows, grid) == (float(grid[int(np.argmax(old))]), float(old.max()))


# ------------------------------------------------------------------------------------ components


def _old_keep_min(mask, min_voxels):  # simulate.subject._rater_lesion_mask (6-connected)
    labels, n = ndimage.label(mask)
    if n:
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        mask = np.isin(labels, np.flatnonzero(sizes >= min_voxels) + 1)
    return mask


def _old_ventricles(mask):  # simulate.anatomy / label.locations (6-connected, >= 2 % of the largest)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    return np.isin(labels, np.flatnonzero(sizes >= max(0.02 * sizes.max(), 1)) + 1)


def _old_largest(mask):  # preprocess.brain._largest_component / quality.head_mask (6-connected)
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def _old_grow(seeds, grown):  # label.rules.grow_from_seeds (26-connected)
    labels, n = ndimage.label(grown, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return grown
    hit = np.zeros(n + 1, bool)
    hit[np.unique(labels[seeds])] = True
    hit[0] = False
    return hit[labels]


def _old_clean(mask, voxel_mm3, min_mm3):  # label.rules.clean_mask (26-connected, mm3)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:] * voxel_mm3
    return np.concatenate([[False], sizes >= min_mm3])[labels]


def _old_components(mask, min_voxels):  # evaluate.metrics.components (26-connected, renumbered)
    lab, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, mask.ndim))
    if n and min_voxels > 0:
        keep = np.bincount(lab.ravel(), minlength=n + 1) >= min_voxels
        keep[0] = False
        new = np.zeros(n + 1, dtype=lab.dtype)
        new[keep] = np.arange(1, int(keep.sum()) + 1)
        lab, n = new[lab], int(keep.sum())
    return lab, n


@pytest.mark.parametrize("seed", range(6))
def test_one_component_filter_gives_the_masks_of_the_five_old_filters(seed: int) -> None:
    shape = (24 + seed, 26, 22)
    mask, seeds = blobs(shape, seed, 0.53, 1.0), blobs(shape, 100 + seed, 0.56, 1.0)
    seeds &= mask
    for conn, structure in ((1, None), (FULL, np.ones((3, 3, 3), bool))):
        labels, n = label_components(mask, conn)
        old, n_old = ndimage.label(mask, structure=structure)
        np.testing.assert_array_equal(labels, old)  # same numbering, raster order
        assert n == n_old == count_components(mask, conn) and n > 3
    np.testing.assert_array_equal(filter_components(mask, connectivity=1, min_voxels=10), _old_keep_min(mask, 10))
    np.testing.assert_array_equal(filter_components(mask, connectivity=1, min_fraction=0.02), _old_ventricles(mask))
    np.testing.assert_array_equal(filter_components(mask, connectivity=1, largest=True), _old_largest(mask))
    np.testing.assert_array_equal(filter_components(mask, seeds=seeds), _old_grow(seeds, mask))
    for voxel_mm3 in (1.0, 3.375, 0.9375 * 0.9375 * 3.0):
        np.testing.assert_array_equal(filter_components(mask, min_volume=50.0, voxel_volume=voxel_mm3), _old_clean(mask, voxel_mm3, 50.0))
    for min_voxels in (0, 5, 40):
        new, old = components(mask, min_voxels), _old_components(mask, min_voxels)
        np.testing.assert_array_equal(new[0], old[0])
        assert new[1] == old[1]
    empty = np.zeros(shape, bool)
    assert not filter_components(empty, largest=True).any() and components(empty)[1] == 0


def test_component_filter_by_hand() -> None:
    m = np.zeros((9, 9, 9), bool)
    m[0:2, 0:2, 0:2] = True  # 8 voxels
    m[5, 5, 5] = m[6, 6, 6] = True  # corner neighbours: one 26-connected component of 2, two of 1 when 6-connected
    m[8, 0, 0] = True
    assert count_components(m, 1) == 4 and count_components(m) == 3
    assert filter_components(m, min_voxels=2).sum() == 10
    assert filter_components(m, connectivity=1, min_voxels=2).sum() == 8
    assert filter_components(m, largest=True).sum() == 8
    assert filter_components(m, min_fraction=0.25).sum() == 10  # 2 >= 0.25 * 8
    seeds = np.zeros_like(m)
    seeds[6, 6, 6] = True
    assert filter_components(m, seeds=seeds).sum() == 2


# ------------------------------------------------------------------------------------ resampler


def _grids():
    affine = np.eye(4)
    affine[:3, :3] = np.diag([1.5, 1.2, 2.0]) @ np.array([[1, 0.1, 0], [0, 1, 0.05], [0, 0, 1.0]])
    affine[:3, 3] = [-10, 5, 3]
    target = np.diag([2.0, 2.0, 2.0, 1.0])
    target[:3, 3] = [-8, 6, 2]
    return affine, (12, 14, 10), target


@pytest.mark.parametrize("interpolation", ["nearest", "linear", "cubic"])
def test_one_resampler_gives_the_numbers_of_both_old_ones(interpolation: str) -> None:
    rng = np.random.default_rng(3)
    image = rng.random((20, 22, 18)).astype(np.float32)
    data = (image > 0.5).astype(np.uint8) if interpolation == "nearest" else image
    affine, shape, target = _grids()
    motion = np.eye(4)
    motion[:3, 3] = rng.normal(size=3)
    # the old resample_to_grid: scipy, one composed voxel-to-voxel matrix
    pull = np.linalg.inv(affine) @ motion @ target
    order = {"nearest": 0, "linear": 1, "cubic": 3}[interpolation]
    scipy_old = ndimage.affine_transform(
        data if order == 0 else data.astype(np.float32),
        pull[:3, :3],
        offset=pull[:3, 3],
        output_shape=shape,
        order=order,
        mode="constant",
        cval=0.0,
        prefilter=order > 1,
    )
    for new in (
        resample(data, affine, shape, target, motion, interpolation),
        resample(data, affine, shape, target, motion.tolist(), interpolation),
        resample_to_grid(data, affine, shape, target, interpolation=interpolation, transform_ras=motion),
    ):
        assert new.dtype == scipy_old.dtype
        np.testing.assert_array_equal(new, scipy_old)
    # the old warp: SimpleITK's resampler for registration results and ITK transforms
    itk = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear, "cubic": sitk.sitkBSpline}[interpolation]
    src = to_sitk(data if order == 0 else data.astype(np.float32), affine)
    itk_old = sitk.GetArrayFromImage(
        sitk.Resample(src, reference_image(shape, target), ras_transform_to_sitk(motion), itk, 0.0, src.GetPixelID())
    ).transpose(2, 1, 0)
    for new in (
        resample(data, affine, shape, target, LinearRegistration(motion, -0.5, 6), interpolation),
        resample(data, affine, shape, target, ras_transform_to_sitk(motion), interpolation),
        warp(data, affine, shape, target, motion, interpolation),
    ):  # warp keeps ITK for a matrix too
        np.testing.assert_array_equal(new, itk_old.astype(new.dtype))
    assert resample(image > 0.5, affine, shape, target, sitk.Transform(), "nearest").dtype == bool
    with pytest.raises(ValueError, match="interpolation"):
        resample(data, affine, shape, target, None, "spline")


# ------------------------------------------------------------------------------------ voxel sizes


def test_voxel_sizes_are_nibabels_and_the_old_norms() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        affine = np.eye(4)
        affine[:3, :3] = rng.normal(size=(3, 3)) * rng.uniform(0.1, 5)
        old = np.linalg.norm(affine[:3, :3], axis=0)
        np.testing.assert_array_equal(voxel_sizes(affine), old)
        np.testing.assert_array_equal(nib_voxel_sizes(affine), old)
    assert voxel_sizes(np.diag([2, 3, 4, 1]).astype(np.float32)).dtype == np.float64


# ------------------------------------------------------------------------------------ poly LR


def _lrs(make, total: int, lr: float = 3e-4) -> np.ndarray:
    """The learning rate of each of ``total`` optimizer steps."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


@pytest.mark.parametrize("total", [4, 100, 1500])
def test_polynomial_lr_gives_the_old_lambda_schedule(total: int) -> None:
    old = _lrs(lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: (1.0 - min(s, total - 1) / total) ** 0.9), total)
    new = _lrs(lambda o: lr_schedule(o, total), total)
    np.testing.assert_allclose(new, old, rtol=1e-13, atol=0)  # PolynomialLR multiplies step ratios: float64 rounding only
    np.testing.assert_array_equal(new.astype(np.float32), old.astype(np.float32))
    if total == 4:
        np.testing.assert_array_equal(new, old)
    assert new[0] == 3e-4 and new[-1] == pytest.approx(3e-4 * (1 / total) ** 0.9, rel=1e-12)


def test_resume_with_more_steps_stretches_the_schedule() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-2)
    sched = lr_schedule(opt, 10)
    for _ in range(4):
        opt.step()
        sched.step()
    state = sched.state_dict()
    same = opt.param_groups[0]["lr"]
    stretch_schedule(sched, 10, stored=state)  # unchanged run: the exact resume keeps its state
    assert opt.param_groups[0]["lr"] == same
    stretch_schedule(sched, 20, stored=state)  # max_epochs doubled: the old closed form lr0 (1 - s / T) ** 0.9 of the new T
    lrs = []
    for _ in range(16):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [1e-2 * (1 - s / 20) ** 0.9 for s in range(4, 20)], rtol=1e-12)
    old_checkpoint = {k: v for k, v in state.items() if k not in ("total_iters", "power")}  # made by the LambdaLR trainer
    sched2 = lr_schedule(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-2), 10)
    sched2.load_state_dict(old_checkpoint)
    stretch_schedule(sched2, 10, stored=old_checkpoint)
    assert sched2.optimizer.param_groups[0]["lr"] == 1e-2 * (1 - 4 / 10) ** 0.9
