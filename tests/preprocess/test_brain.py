"""Brain extraction on 2 mm head phantoms (skull, scalp, bias field, Rician noise, local deformation).

The phantom head is the MNI template brain plus a CSF rim, a dark skull and a bright scalp shell built
from distance transforms of the brain mask; it is deformed smoothly (so the template is not an exact
match), moved rigidly onto an oblique, LPS-stored int16 grid, and compared with the moved brain mask.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from phantoms import dice, head_phantom, rigid_matrix, smooth_deformation

from dawm.image.resample import resample_to_grid
from dawm.preprocess.brain import BrainExtraction, extract_brain, head_flattened


@functools.lru_cache(maxsize=4)
def subject(contrast: str = "t1", seed: int = 0):
    """(image int16, affine, true brain mask) of a deformed, moved 2 mm head phantom."""
    img, affine, brain = head_phantom("flair" if contrast == "flair" else "t1", seed)
    rng = np.random.default_rng(seed)
    # Smooth local deformation (up to 6 mm): the subject is not a scaled template.
    img = smooth_deformation(img, affine, amplitude_mm=6.0, sigma_mm=15.0, seed=seed + 100)
    brain = smooth_deformation(brain.astype(np.float32), affine, amplitude_mm=6.0, sigma_mm=15.0, seed=seed + 100)
    # Move onto an oblique LPS-stored grid (head rotated and shifted in the scanner).
    lin = rigid_matrix((10, -6, 4), (0, 0, 0))[:3, :3] @ np.diag([-2.0, -2.0, 2.0])
    shape = (120, 120, 100)
    new_affine = np.eye(4)
    new_affine[:3, :3] = lin
    new_affine[:3, 3] = np.array([4.0, -12.0, 10.0]) - lin @ ((np.asarray(shape) - 1) / 2.0)
    motion = rigid_matrix((6, -5, 8), (5, -8, 3))
    moved = resample_to_grid(img, affine, shape, new_affine, transform_ras=motion)
    truth = resample_to_grid(brain, affine, shape, new_affine, transform_ras=motion) > 0.5
    if contrast == "unit1":  # MP2RAGE UNIT1: salt-and-pepper noise wherever there is no signal
        signal = resample_to_grid((img > 0.1).astype(np.float32), affine, shape, new_affine, transform_ras=motion)
        moved = np.where(signal < 0.5, rng.uniform(0, 1, shape), moved)
    return np.round(moved / moved.max() * 4000).astype(np.int16), new_affine, truth


@pytest.mark.parametrize("contrast,nonlinear", [("t1", True), ("unit1", True), ("flair", False)])
def test_brain_mask_dice(contrast, nonlinear):
    image, affine, truth = subject(contrast)
    result = extract_brain(image, affine, nonlinear=nonlinear, seed=0)
    assert isinstance(result, BrainExtraction) and result.method == "template"
    assert result.mask.dtype == bool and result.mask.shape == image.shape
    score = dice(result.mask, truth)
    affine_only = dice(result.probability > 0.5, truth) if result.nonlinear is None else float("nan")
    print(f"{contrast}: brain-mask Dice {score:.4f} (nonlinear={nonlinear}) {affine_only:.4f}")
    assert score >= 0.95
    assert result.template_to_subject is not None and result.template_to_subject.dof == 12


def test_user_mask_is_honoured():
    image, affine, truth = subject("t1")
    user = np.zeros(image.shape, dtype=np.uint8)
    user[30:90, 30:90, 20:80] = 1
    result = extract_brain(image, affine, initial_mask=user)
    assert result.method == "user" and result.template_to_subject is None
    np.testing.assert_array_equal(result.mask, user.astype(bool))


def test_bad_input_raises_value_error():
    image, affine, truth = subject("t1")
    with pytest.raises(ValueError, match="3D"):
        extract_brain(np.stack([image, image], axis=-1), affine)
    with pytest.raises(ValueError, match="empty"):
        extract_brain(np.zeros_like(image), affine)
    with pytest.raises(ValueError, match="does not match"):
        extract_brain(image, affine, initial_mask=truth[:-1])
    with pytest.raises(ValueError, match="empty"):
        extract_brain(image, affine, initial_mask=np.zeros_like(truth))


def test_small_head_is_registered_at_its_size():
    """An adult brain is 0.75-0.95 times the MNI152 brain's size: the affine starts from the head's
    size (left-right and front-back widths), so a head at 0.8 x (a 0.96 L brain) is extracted as well
    as a template-sized one."""
    image, affine, truth = subject("t1")
    small = affine.copy()
    centre = affine[:3, :3] @ ((np.asarray(image.shape) - 1) / 2.0) + affine[:3, 3]
    small[:3, :3] *= 0.8
    small[:3, 3] = centre - small[:3, :3] @ ((np.asarray(image.shape) - 1) / 2.0)
    result = extract_brain(image, small, nonlinear=False, seed=0)
    assert 0.72 <= result.info["initial_scale"] <= 0.88
    assert dice(result.mask, truth) >= 0.93


def _side_to_side(image: np.ndarray, affine: np.ndarray, gain: float) -> np.ndarray:
    """``image`` times a receive-coil-like field rising ``exp(gain)``-fold from left to right (world x)."""
    ijk = np.indices(image.shape, dtype=np.float64).reshape(3, -1)
    x = (affine[:3, :3] @ ijk + affine[:3, 3:4])[0].reshape(image.shape)
    return image * np.exp(gain * (x - x.mean()) / (x.max() - x.min()))


def test_head_flattened_removes_a_strong_side_to_side_field():
    image, affine, truth = subject("t1")
    biased = _side_to_side(image.astype(np.float64), affine, 1.2)  # 3.3-fold across the head
    head = biased > 0.1 * np.percentile(biased, 99)
    flat = head_flattened(biased, affine, head)
    assert flat.shape == image.shape and flat.dtype == np.float32
    x = np.indices(image.shape)[0]  # LPS-stored grid: voxel axis 0 runs right -> left
    halves = [truth & (x < image.shape[0] // 2), truth & (x >= image.shape[0] // 2)]

    def ratio(a):
        return float(np.median(a[halves[0]]) / np.median(a[halves[1]]))

    assert abs(np.log(ratio(flat))) < 0.25 * abs(np.log(ratio(biased)))


def test_brain_of_a_strongly_biased_head():
    """A 3-fold side-to-side field leaves the brain mask as good as on the phantom's own mild field
    (0.977; the template-made phantom registers well even unflattened, 0.975: the benefit of
    head_flattened shows on simulated heads, see its docstring)."""
    image, affine, truth = subject("t1")
    biased = _side_to_side(image.astype(np.float64), affine, 1.1)
    result = extract_brain(biased, affine, nonlinear=False, seed=0)
    assert dice(result.mask, truth) >= 0.93


def test_doubtful_affine_tries_the_whole_image_and_the_flattened_head(monkeypatch):
    """Below DOUBTFUL_FIT (raised here: the template-made phantom fits the priors at 0.87) the
    alternatives are tried and the best-scoring one is kept, each recorded in ``info``."""
    import dawm.preprocess.brain as brain_module

    monkeypatch.setattr(brain_module, "DOUBTFUL_FIT", 0.99)
    image, affine, truth = subject("flair")
    result = extract_brain(image, affine, nonlinear=False, seed=0)
    fits = result.info["affine_candidates"]
    assert fits["head-masked"] < brain_module.DOUBTFUL_FIT
    assert set(fits) == {"head-masked", "whole-image", "head-masked, bias-flattened"}
    assert fits[result.info["affine_chosen"]] == max(fits.values())  # (rounded in info)
    assert dice(result.mask, truth) >= 0.93
