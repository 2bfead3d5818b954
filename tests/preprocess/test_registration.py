"""Registration on small realistic head phantoms built from the bundled MNI template at 2 mm.

The phantom head is the template brain plus a CSF rim, a dark skull and a bright scalp shell
(distance transforms of the brain mask), a smooth multiplicative bias field and Rician noise. Moved
copies are resampled onto oblique, LPS-stored, anisotropic int16 grids with a known rigid motion.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import SimpleITK as sitk
from phantoms import dice, head_phantom, mean_displacement_mm, oblique_lps_grid, rigid_matrix, smooth_deformation, to_int16
from scipy import ndimage

from dawm.image import registration
from dawm.image.registration import (
    LinearRegistration,
    load_transform,
    nonlinear_register,
    rigid_approximation,
    rigid_register,
    save_transform,
    transform_points,
    warp,
)
from dawm.image.resample import resample_to_grid
from dawm.image.sitk_bridge import itk_default_threads, ras_transform_to_sitk, single_threaded_itk
from dawm.image.template import load_template


# ------------------------------------------------------------------------------------ tests
def test_rigid_flair_to_t1_on_oblique_anisotropic_lps_grid():
    fixed, fixed_affine, brain = head_phantom("t1", seed=0)
    flair, flair_affine, _ = head_phantom("flair", seed=1)
    subject_to_template = rigid_matrix((8, -6, 10), (6, -9, 4))
    shape, moving_affine = oblique_lps_grid((0.9, 0.9, 5.0), (230, 230, 160), (12, -8, 5), (3, -10, 8))
    moving = to_int16(resample_to_grid(flair, flair_affine, shape, moving_affine, transform_ras=subject_to_template))
    result = rigid_register(fixed, fixed_affine, moving, moving_affine, seed=0)
    assert isinstance(result, LinearRegistration) and result.dof == 6
    truth = np.linalg.inv(subject_to_template)  # fixed world -> moving world
    error = mean_displacement_mm(result.matrix_ras, truth, brain, fixed_affine)
    print(f"rigid FLAIR(0.9x0.9x5, oblique, LPS) -> T1: mean displacement error {error:.3f} mm")
    assert error < 1.0
    assert result.metric < 0
    again = rigid_register(fixed, fixed_affine, moving, moving_affine, seed=0)
    np.testing.assert_array_equal(again.matrix_ras, result.matrix_ras)  # deterministic per seed
    aligned = resample_to_grid(moving, moving_affine, fixed.shape, fixed_affine, transform_ras=result.matrix_ras)
    # GM is brighter than WM in the FLAIR-like image: aligned contrast is inverted inside the brain.
    t = load_template(2)
    wm = np.pad(t.wm > 0.9, 8)
    gm = np.pad(t.gm > 0.7, 8)
    assert aligned[gm].mean() > aligned[wm].mean()


def test_affine_dof12_recovers_scaling():
    fixed, fixed_affine, brain = head_phantom("t1", seed=0)
    other, other_affine, _ = head_phantom("t1", seed=2)
    truth_subject_to_template = rigid_matrix((-5, 4, -7), (-4, 5, -3)) @ np.diag([1.06, 0.95, 1.03, 1.0])
    shape, moving_affine = oblique_lps_grid((1.2, 1.2, 2.5), (240, 240, 200), (-6, 5, 3), (0, 0, 0))
    moving = to_int16(resample_to_grid(other, other_affine, shape, moving_affine, transform_ras=truth_subject_to_template))
    result = rigid_register(fixed, fixed_affine, moving, moving_affine, dof=12, seed=3)
    error = mean_displacement_mm(result.matrix_ras, np.linalg.inv(truth_subject_to_template), brain, fixed_affine)
    print(f"affine (dof=12, 6% scaling): mean displacement error {error:.3f} mm")
    assert result.dof == 12 and error < 1.0


def test_nonlinear_improves_overlap_and_inverse_is_consistent(tmp_path):
    t = load_template(2)
    amplitude_mm, sigma_mm = 8.0, 15.0
    subject = smooth_deformation(t.t1, t.affine, amplitude_mm, sigma_mm, seed=3)
    subject_mask = smooth_deformation(t.brain_mask, t.affine, amplitude_mm, sigma_mm, seed=3) > 0.5
    subject = subject * subject_mask
    motion = rigid_matrix((5, -4, 6), (4, -6, 3))
    fixed = resample_to_grid(subject, t.affine, t.t1.shape, t.affine, transform_ras=motion)
    fixed_mask = resample_to_grid(subject_mask, t.affine, t.t1.shape, t.affine, interpolation="nearest", transform_ras=motion)
    rng = np.random.default_rng(0)
    fixed = np.sqrt((fixed + rng.normal(0, 0.02, fixed.shape)) ** 2 + rng.normal(0, 0.02, fixed.shape) ** 2)

    linear = rigid_register(fixed, t.affine, t.t1, t.affine, dof=12, seed=0)
    result = nonlinear_register(
        fixed, t.affine, t.t1, t.affine, initial=linear,
        fixed_mask=ndimage.binary_dilation(fixed_mask, iterations=3),
    )  # fmt: skip
    mask_affine = warp(t.brain_mask, t.affine, fixed.shape, t.affine, linear, "linear") > 0.5
    mask_nonlinear = warp(t.brain_mask, t.affine, fixed.shape, t.affine, result, "linear") > 0.5
    d_lin, d_nl = dice(mask_affine, fixed_mask), dice(mask_nonlinear, fixed_mask)
    print(f"brain-mask Dice affine {d_lin:.4f} -> nonlinear {d_nl:.4f}")
    assert d_nl > d_lin + 0.003
    assert result.mean_abs_diff < result.mean_abs_diff_linear

    # forward(inverse(y)) ~ y over the template brain, and the inverse pulls subject labels back.
    ijk = np.argwhere(t.brain_mask > 0)[::15]
    points = (np.c_[ijk, np.ones(len(ijk))] @ t.affine.T)[:, :3]
    round_trip = transform_points(result.forward, transform_points(result.inverse, points))
    error = float(np.mean(np.linalg.norm(round_trip - points, axis=1)))
    print(f"forward(inverse(y)) mean error {error:.3f} mm")
    assert error < 1.0
    back = warp(fixed_mask, t.affine, t.t1.shape, t.affine, result.inverse, "nearest")
    assert back.dtype == bool
    assert dice(back, t.brain_mask > 0) > 0.97

    # ITK .h5 round trip, both directions.
    for name, tx in (("forward", result.forward), ("inverse", result.inverse)):
        path = save_transform(tx, tmp_path / f"sub-01_from-T1w_to-MNI_mode-image_{name}_xfm.h5")
        loaded = load_transform(path)
        np.testing.assert_allclose(transform_points(loaded, points[:50]), transform_points(tx, points[:50]), atol=1e-6)
    path = save_transform(linear, tmp_path / "linear_xfm.h5")
    np.testing.assert_allclose(transform_points(load_transform(path), points[:20]), transform_points(linear, points[:20]), atol=1e-6)


def test_warp_identity_and_sitk_transform():
    fixed, affine, brain = head_phantom("t1", seed=0)
    same = warp(fixed, affine, fixed.shape, affine, np.eye(4))
    np.testing.assert_allclose(same, fixed, atol=1e-5)
    labels = warp(brain.astype(np.int16) * 3, affine, fixed.shape, affine, sitk.Euler3DTransform(), "nearest")
    assert labels.dtype == np.int16 and set(np.unique(labels)) == {0, 3}


def test_bad_inputs_raise_value_error():
    fixed, affine, brain = head_phantom("t1", seed=0)
    with pytest.raises(ValueError, match="3D"):
        rigid_register(fixed[..., None], affine, fixed, affine)
    with pytest.raises(ValueError, match="empty"):
        rigid_register(fixed, affine, np.zeros_like(fixed), affine)
    with pytest.raises(ValueError, match="does not match"):
        rigid_register(fixed, affine, fixed, affine, fixed_mask=brain[1:])
    with pytest.raises(ValueError, match="dof"):
        rigid_register(fixed, affine, fixed, affine, dof=9)
    with pytest.raises(ValueError, match="3D"):
        warp(fixed[..., None], affine, fixed.shape, affine)
    with pytest.raises(ValueError, match="not found"):
        load_transform("/nonexistent/xfm.h5")


def test_template_correlation_flags_a_missed_mni_registration() -> None:
    """The QC that fails a session whose MNI registration missed: the template against itself
    correlates ~1; displaced by 12 mm, the same brain correlates far below the 0.5 default."""
    from dawm.image.template import load_template
    from dawm.preprocess.config import PreprocessConfig
    from dawm.preprocess.pipeline import template_correlation

    tpl = load_template(2)
    brain = tpl.brain_mask > 0.5
    good = template_correlation({"T1w": tpl.t1}, brain, tpl.affine, tpl, sitk.Euler3DTransform())
    shifted = sitk.TranslationTransform(3, (12.0, 0.0, 12.0))
    bad = template_correlation({"T1w": tpl.t1}, brain, tpl.affine, tpl, shifted)
    assert good > 0.99 and bad < PreprocessConfig().min_template_correlation
    assert template_correlation({"FLAIR": tpl.t1}, brain, tpl.affine, tpl, shifted) is None  # no T1-like image: no check


def test_rigid_approximation_keeps_a_rotated_start_in_place():
    # A start rotated by ~15 degrees, re-centred ~100 mm from the origin: a naive ITK re-centring
    # would move it by ~28 mm; the approximation of a rigid matrix must be exact everywhere.
    start = rigid_matrix((12, -9, 6), (30, -60, 55))
    centre = (60.0, -50.0, 70.0)
    approx = rigid_approximation(start, centre)
    exact = ras_transform_to_sitk(start)
    for point in [(0.0, 0.0, 0.0), centre, (-80.0, 90.0, -40.0)]:
        np.testing.assert_allclose(approx.TransformPoint(point), exact.TransformPoint(point), atol=1e-6)
    # An affine start: the centre still lands where the affine sends it, with a pure rotation.
    scaled = start @ np.diag([1.1, 0.9, 1.05, 1.0])
    approx = rigid_approximation(scaled, centre)
    np.testing.assert_allclose(approx.TransformPoint(centre), ras_transform_to_sitk(scaled).TransformPoint(centre), atol=1e-6)
    rot = np.asarray(approx.GetMatrix()).reshape(3, 3)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-9)
    with pytest.raises(ValueError, match="reflection"):
        rigid_approximation(np.diag([-1.0, 1.0, 1.0, 1.0]), centre)


def test_multi_start_escapes_the_basin_of_a_ghost():
    # 150 mm above the head the fixed image holds a head-shaped blob of smooth noise (like the
    # background artefacts that made a head mask leak on a simulated session). Started on it, one
    # start stays there; a multi-start that also tries 150 mm lower finds the head, whose mutual
    # information is clearly better, and takes it although the blob is the primary guess.
    img, aff, brain = head_phantom("t1", seed=0)
    shape, grid = oblique_lps_grid((3.0, 3.0, 3.0), (240, 240, 420), (4, -3, 6), (0, 0, 40))
    motion = rigid_matrix((5, -4, 3), (6, -8, 10))  # fixed world -> phantom world
    ghost = rigid_matrix((0, 0, 0), (0, 0, -150)) @ motion
    rng = np.random.default_rng(3)
    texture = ndimage.gaussian_filter(rng.normal(size=img.shape), 3.0)
    blob = np.where(img > 0.05, 0.5 + 0.5 * texture / np.abs(texture).max(), 0.0)
    fixed = to_int16(
        resample_to_grid(img, aff, shape, grid, transform_ras=motion) + resample_to_grid(blob, aff, shape, grid, transform_ras=ghost)
    )
    in_brain = resample_to_grid(brain.astype(np.float32), aff, shape, grid, transform_ras=motion) > 0.5
    points = np.c_[np.argwhere(in_brain), np.ones(int(in_brain.sum()))] @ grid.T

    def error_mm(m):
        return float(np.mean(np.linalg.norm((points @ (m - motion).T)[:, :3], axis=1)))

    single = rigid_register(fixed, grid, img, aff, seed=0, initial=ghost)
    multi = rigid_register(fixed, grid, img, aff, seed=0, initial=[ghost, rigid_matrix((0, 0, 0), (0, 0, 150)) @ ghost])
    print(
        f"started on the blob: single start error {error_mm(single.matrix_ras):.1f} mm (metric {single.metric:.3f}), "
        f"multi-start {error_mm(multi.matrix_ras):.2f} mm (metric {multi.metric:.3f})"
    )
    assert error_mm(single.matrix_ras) > 100.0  # the trap is real
    assert error_mm(multi.matrix_ras) < 2.0
    assert multi.metric < single.metric


def test_multi_start_side_by_side_equals_one_after_the_other(monkeypatch):
    # The starts of a multi-start run in threads, each registration single-threaded: the result is
    # the serial run's to the bit, and ITK's thread default is back afterwards.
    img, aff, _ = head_phantom("t1", seed=1)
    motion = rigid_matrix((4, -3, 2), (5, -6, 8))
    fixed = to_int16(resample_to_grid(img, aff, img.shape, aff, transform_ras=motion))
    starts = [np.eye(4), rigid_matrix((0, 0, 0), (0, 0, 30)), rigid_matrix((0, 0, 0), (0, 0, -30))]
    threads_before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    side_by_side = rigid_register(fixed, aff, img, aff, seed=2, initial=starts, working_spacing_mm=4.0)
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads_before
    monkeypatch.setattr(registration, "map_threads", lambda fn, items: [fn(i) for i in items])
    serial = rigid_register(fixed, aff, img, aff, seed=2, initial=starts, working_spacing_mm=4.0)
    assert np.array_equal(side_by_side.matrix_ras, serial.matrix_ras) and side_by_side.metric == serial.metric


def test_single_threaded_itk_nests_across_threads_and_restores_the_default():
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(3)
    try:
        inside, release = threading.Event(), threading.Event()

        def hold():
            with single_threaded_itk():
                inside.set()
                release.wait(10)

        other = threading.Thread(target=hold)
        other.start()
        inside.wait(10)
        with single_threaded_itk():
            assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
            assert itk_default_threads() == 3  # what N4 takes meanwhile
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1  # the other thread still holds it
        release.set()
        other.join(10)
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 3 and itk_default_threads() == 3
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def test_deep_gm_prior_marks_the_nuclei_not_the_cortex_or_white_matter() -> None:
    """The template deep-GM prior (the model's deep-nuclei randomisation) is high in the thalamus
    and putamen, 0 in the cortex and the centrum semiovale; the simulator's anatomy uses the same rule."""
    from dawm.image.template import deep_gm_weight, load_template, mni_deep_gm_prior

    tpl = load_template(2)
    prior = mni_deep_gm_prior(None, tpl.t1.shape, tpl.affine)
    inv = np.linalg.inv(tpl.affine)

    def at(x: float, y: float, z: float) -> float:
        i, j, k = np.rint(inv[:3, :3] @ [x, y, z] + inv[:3, 3]).astype(int)
        return float(prior[i - 1 : i + 2, j - 1 : j + 2, k - 1 : k + 2].max())

    assert at(-11, -18, 7) > 0.5 and at(12, -18, 7) > 0.5  # thalami
    assert at(-25, 2, 0) > 0.5 and at(26, 2, 0) > 0.5  # putamina
    assert at(-40, -20, 60) < 0.05 and at(-26, -10, 34) < 0.05  # precentral cortex, centrum semiovale
    assert prior.max() <= 1.0 and prior.min() >= 0.0
    np.testing.assert_array_equal(deep_gm_weight(np.array([0.0, 18.0, 21.0, 24.0, 40.0])), np.array([0, 0, 0.5, 1, 1], np.float32))
