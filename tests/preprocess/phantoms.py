"""Head phantoms for the pre-processing tests, built from the bundled MNI template at 2 mm.

The phantom head is the template brain plus a CSF rim, a dark skull and a bright scalp shell
(distance transforms of the brain mask), a smooth multiplicative bias field and Rician noise.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from dawm.image.template import load_template
from dawm.metrics import dice  # noqa: F401  (re-exported for the tests)
from dawm.simulate.acquisition import rigid_matrix  # noqa: F401  (x, y, z rotations then translation)


def oblique_lps_grid(voxel_mm, fov_mm, tilt_deg, centre_mm):
    """An oblique grid stored LPS (i -> left, j -> posterior) with the given voxel size."""
    lin = rigid_matrix(tilt_deg, (0, 0, 0))[:3, :3] @ np.diag([-1.0, -1.0, 1.0]) @ np.diag(voxel_mm)
    shape = tuple(int(round(f / v)) for f, v in zip(fov_mm, voxel_mm))
    affine = np.eye(4)
    affine[:3, :3] = lin
    affine[:3, 3] = np.asarray(centre_mm) - lin @ ((np.asarray(shape) - 1) / 2.0)
    return shape, affine


@functools.lru_cache(maxsize=4)
def head_phantom(contrast: str = "t1", seed: int = 0):
    """(image, affine, brain_mask) of a 2 mm head phantom on a padded template grid."""
    t = load_template(2)
    rng = np.random.default_rng(seed)
    brain = t.brain_mask > 0
    dist_mm = ndimage.distance_transform_edt(~brain) * 2.0
    if contrast == "t1":
        inside, rim, skull, scalp = t.t1, 0.12, 0.03, 0.85
    else:  # FLAIR/T2-like: grey matter brighter than white matter
        inside, rim, skull, scalp = 0.35 * t.wm + 0.75 * t.gm + 0.1 * t.csf, 0.08, 0.02, 0.6
    img = np.where(brain, inside, 0.0)
    img = np.where(~brain & (dist_mm <= 3), rim, img)
    img = np.where((dist_mm > 3) & (dist_mm <= 8), skull, img)
    img = np.where((dist_mm > 8) & (dist_mm <= 14), scalp, img)
    img, brain = np.pad(img, 8), np.pad(brain, 8)
    affine = t.affine.copy()
    affine[:3, 3] -= 16.0
    ijk = np.indices(img.shape, dtype=np.float32) / np.reshape(img.shape, (3, 1, 1, 1)) - 0.5
    bias = np.exp(0.25 * (rng.uniform(-1, 1, 3) @ ijk.reshape(3, -1)).reshape(img.shape))
    img = img * bias
    noise = rng.normal(0, 0.03, (2,) + img.shape)
    img = np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2).astype(np.float32)
    return img, affine, brain


def smooth_deformation(image, affine, amplitude_mm, sigma_mm, seed, order=1):
    """Pull ``image`` (2 mm grid with diagonal affine) through a smooth random displacement."""
    rng = np.random.default_rng(seed)
    field = np.stack([ndimage.gaussian_filter(rng.normal(size=image.shape), sigma_mm / 2.0) for _ in range(3)])
    field *= amplitude_mm / np.abs(field).max()
    ijk = np.indices(image.shape, dtype=np.float32)
    coords = [ijk[a] + field[a] / affine[a, a] for a in range(3)]
    return ndimage.map_coordinates(np.asarray(image, dtype=np.float32), coords, order=order, mode="constant")


def to_int16(image):
    return np.round(image / image.max() * 1000).astype(np.int16)


def mean_displacement_mm(m_est, m_true, mask, affine) -> float:
    pts = np.c_[np.argwhere(mask), np.ones(int(mask.sum()))] @ affine.T
    return float(np.mean(np.linalg.norm((pts @ (m_est - m_true).T)[:, :3], axis=1)))
