"""From a signal on the subject grid to an image as a scanner writes it.

An acquisition has its own voxel grid in scanner coordinates (field of view, voxel size, slice
orientation, oblique tilt, RAS or LPS storage). The head sits in the scanner at a pose
(``subject_to_scanner``, 4x4 world mm -> world mm). :func:`acquire` samples the subject-grid signal
on that grid after blurring it with the acquisition's point-spread function (thick 2D slices get a
slice profile), then :func:`receive_field`, :func:`add_complex_noise` (magnitude -> Rician) and
:func:`ghosting` (motion along the phase-encoding axis) make it look acquired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel.affines import voxel_sizes
from scipy import ndimage
from scipy.spatial.transform import Rotation

from dawm.simulate.anatomy import _smooth_noise


@dataclass(frozen=True)
class Grid:
    """An acquisition grid: ``shape`` and ``affine`` (voxel -> scanner RAS mm); ``slice_axis`` the
    array axis of the slices; ``psf_fwhm_mm`` per array axis."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    slice_axis: int
    psf_fwhm_mm: tuple[float, float, float]


def rigid_matrix(rotation_deg, translation_mm) -> np.ndarray:
    """4x4 rigid transform: rotation (x, y, z Euler angles in degrees), then translation (mm)."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", rotation_deg, degrees=True).as_matrix()
    m[:3, 3] = translation_mm
    return m


def make_grid(
    voxel_mm: tuple[float, float, float],
    fov_mm: tuple[float, float, float],
    *,
    orientation: str = "axial",
    storage: str = "RAS",
    oblique_deg: float = 0.0,
    centre_mm=(0.0, -18.0, 12.0),
    slice_gap_mm: float = 0.0,
) -> Grid:
    """A grid whose last array axis is the slice axis (``orientation`` axial or sagittal).

    ``voxel_mm`` is (in-plane, in-plane, slice thickness); slices are spaced by thickness + gap.
    ``fov_mm`` is the extent along (in-plane 1, in-plane 2, slice) directions. ``oblique_deg``
    tilts the slab about the left-right axis (AC-PC angulation). ``storage="LPS"`` flips the first
    two array axes, as many converters write.
    """
    if orientation == "axial":
        axes = np.eye(3)  # i: R, j: A, k: S
    elif orientation == "sagittal":
        axes = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)  # i: A, j: S, k: R
    else:
        raise ValueError(f"orientation must be axial or sagittal, not {orientation}")
    if storage == "LPS":
        axes = axes @ np.diag([-1, -1, 1]) if orientation == "axial" else axes @ np.diag([-1, 1, -1])
    tilt = Rotation.from_euler("x", oblique_deg, degrees=True).as_matrix()
    axes = tilt @ axes
    spacing = np.array([voxel_mm[0], voxel_mm[1], voxel_mm[2] + slice_gap_mm])
    shape = tuple(int(np.ceil(f / s)) for f, s in zip(fov_mm, spacing))
    affine = np.eye(4)
    affine[:3, :3] = axes * spacing
    affine[:3, 3] = np.asarray(centre_mm) - affine[:3, :3] @ ((np.array(shape) - 1) / 2)
    return Grid(shape=shape, affine=affine, slice_axis=2, psf_fwhm_mm=tuple(float(v) for v in voxel_mm))


def acquire(signal: np.ndarray, subject_affine: np.ndarray, grid: Grid, subject_to_scanner: np.ndarray) -> np.ndarray:
    """Sample ``signal`` (subject grid, real or complex) on ``grid`` through the head pose.

    The PSF (Gaussian with the acquisition's voxel size as FWHM, less the subject grid's own
    resolution) is applied on the subject grid along the axes closest to the acquisition axes.
    """
    sub_vox = voxel_sizes(subject_affine)
    # Direction of each acquisition axis in subject voxel space.
    acq_dirs = np.linalg.inv(subject_to_scanner[:3, :3]) @ (grid.affine[:3, :3] / voxel_sizes(grid.affine))
    sigma = np.zeros(3)
    for a in range(3):
        sub_axis = int(np.argmax(np.abs(np.linalg.inv(subject_affine[:3, :3] / sub_vox) @ acq_dirs[:, a])))
        extra = max(grid.psf_fwhm_mm[a] ** 2 - sub_vox[sub_axis] ** 2, 0.0) ** 0.5
        sigma[sub_axis] = max(sigma[sub_axis], extra / 2.355 / sub_vox[sub_axis])
    pull = np.linalg.inv(subject_affine) @ np.linalg.inv(subject_to_scanner) @ grid.affine

    def sample(x: np.ndarray) -> np.ndarray:
        if np.any(sigma > 0.3):
            x = ndimage.gaussian_filter(x, sigma)
        return ndimage.affine_transform(x, pull[:3, :3], offset=pull[:3, 3], output_shape=grid.shape, order=1, mode="constant")

    if np.iscomplexobj(signal):
        return (sample(signal.real.astype(np.float32)) + 1j * sample(signal.imag.astype(np.float32))).astype(np.complex64)
    return sample(signal.astype(np.float32))


def smooth_field_on_grid(rng: np.random.Generator, grid: Grid, amplitude: float, scale_mm: float = 60.0) -> np.ndarray:
    """A smooth random field exp(amplitude * n) on ``grid`` (n: unit-variance noise smoothed over
    ``scale_mm``), plus a gentle linear gradient, like a receive-coil sensitivity profile."""
    spacing = voxel_sizes(grid.affine)
    # 1e-6: an oblique affine's column norms are 2.0000000003 mm and the like; the coarse shape (and
    # with it how many random numbers are drawn) must not depend on that rounding.
    coarse = tuple(max(int(np.ceil(s * sp / 16.0 - 1e-6)), 3) for s, sp in zip(grid.shape, spacing))
    noise = _smooth_noise(rng, coarse, scale_mm / 16.0 / 2.0)
    noise = ndimage.zoom(noise, [s / c for s, c in zip(grid.shape, coarse)], order=1)[: grid.shape[0], : grid.shape[1], : grid.shape[2]]
    idx = np.indices(grid.shape, dtype=np.float32)
    ramp = sum(rng.normal(0, 0.5) * (idx[a] / max(grid.shape[a] - 1, 1) - 0.5) for a in range(3))
    return np.exp(amplitude * (noise + ramp)).astype(np.float32)


def add_complex_noise(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Add complex Gaussian noise of std ``sigma`` per channel (magnitude of the result is Rician)."""
    out = np.empty(signal.shape, np.complex64)
    out.real = rng.standard_normal(signal.shape, dtype=np.float32)
    out.imag = rng.standard_normal(signal.shape, dtype=np.float32)
    out *= np.float32(sigma)
    out += signal
    return out


def ghosting(rng: np.random.Generator, image: np.ndarray, strength: float, pe_axis: int = 1) -> np.ndarray:
    """Motion ghosts: random phase errors on a fraction of k-space lines along ``pe_axis``."""
    if strength <= 0:
        return image
    k = np.fft.fft(image, axis=pe_axis)
    n = image.shape[pe_axis]
    lines = rng.random(n) < 0.25
    phase = np.ones(n, np.complex64)
    phase[lines] = np.exp(1j * rng.normal(0, strength, int(lines.sum())))
    shape = [1, 1, 1]
    shape[pe_axis] = n
    return np.fft.ifft(k * phase.reshape(shape), axis=pe_axis).astype(np.complex64)
