"""Brain extraction on 2 mm head phantoms (skull, scalp, bias field, Rician noise, local deformation).

The phantom head is the MNI template brain plus a CSF rim, a dark skull and a bright scalp shell built
from distance transforms of the brain mask; it is deformed smoothly (so the template is not an exact
match), moved rigidly onto an oblique, LPS-stored int16 grid, and compared with the moved brain mask.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import ndimage

from dawm.image.resample import resample_to_grid
from dawm.preprocess.brain import BrainExtraction, extract_brain
from dawm.preprocess.template import load_template


def rigid_matrix(angles_deg, translation_mm) -> np.ndarray:
    rx, ry, rz = np.deg2rad(angles_deg)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    m = np.eye(4)
    m[:3, :3] = (
        np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    )
    m[:3, 3] = translation_mm
    return m


@functools.lru_cache(maxsize=4)
def subject(contrast: str = "t1", seed: int = 0):
    """(image int16, affine, true brain mask) of a deformed, moved 2 mm head phantom."""
    t = load_template(2)
    rng = np.random.default_rng(seed)
    brain = t.brain_mask > 0
    dist_mm = ndimage.distance_transform_edt(~brain) * 2.0
    if contrast == "flair":  # grey matter brighter than white matter
        inside, rim, skull, scalp = 0.35 * t.wm + 0.75 * t.gm + 0.1 * t.csf, 0.08, 0.02, 0.6
    else:  # t1 and unit1
        inside, rim, skull, scalp = t.t1, 0.12, 0.03, 0.85
    img = np.where(brain, inside, 0.0)
    img = np.where(~brain & (dist_mm <= 3), rim, img)
    img = np.where((dist_mm > 3) & (dist_mm <= 8), skull, img)
    img = np.where((dist_mm > 8) & (dist_mm <= 14), scalp, img)
    img, brain = np.pad(img, 8), np.pad(brain, 8).astype(np.float32)
    affine = t.affine.copy()
    affine[:3, 3] -= 16.0
    # Smooth local deformation (up to 6 mm): the subject is not a scaled template.
    field = np.stack([ndimage.gaussian_filter(rng.normal(size=img.shape), 7.5) for _ in range(3)])
    field *= 3.0 / np.abs(field).max()
    coords = np.indices(img.shape, dtype=np.float32) + field
    img = ndimage.map_coordinates(img, coords, order=1)
    brain = ndimage.map_coordinates(brain, coords, order=1)
    # Bias field and Rician noise.
    ijk = np.indices(img.shape, dtype=np.float32) / np.reshape(img.shape, (3, 1, 1, 1)) - 0.5
    img = img * np.exp(0.25 * (rng.uniform(-1, 1, 3) @ ijk.reshape(3, -1)).reshape(img.shape))
    noise = rng.normal(0, 0.03, (2,) + img.shape)
    img = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)
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


def dice(a, b) -> float:
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


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
