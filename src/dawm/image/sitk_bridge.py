"""Convert between (array, affine) pairs and SimpleITK images without losing geometry.

Convention: ``array`` is indexed ``[i, j, k]`` (nibabel order) and ``affine`` maps voxel indices
to RAS+ world millimetres. SimpleITK stores arrays ``[k, j, i]`` and uses LPS+ world coordinates,
so both the axis order and the sign of the first two world axes are converted here, once. ITK's
global thread setting is shared by every Python thread: :func:`single_threaded_itk` changes it
safely.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import SimpleITK as sitk
from nibabel.affines import voxel_sizes

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """Wrap a 3D ``array`` (shape X, Y, Z) with its RAS ``affine`` (4x4) as a SimpleITK image."""
    if array.ndim != 3:
        raise ValueError(f"expected a 3D array, got shape {array.shape}")
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    lps = _RAS_TO_LPS @ np.asarray(affine, dtype=float)
    linear = lps[:3, :3]
    spacing = voxel_sizes(lps)
    if np.any(spacing <= 0):
        raise ValueError("affine has a zero-length voxel axis")
    img.SetSpacing([float(s) for s in spacing])
    img.SetDirection([float(v) for v in (linear / spacing).ravel()])
    img.SetOrigin([float(v) for v in lps[:3, 3]])
    return img


def from_sitk(img: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(array, affine)`` from a SimpleITK image: array X, Y, Z; affine voxel -> RAS mm."""
    array = sitk.GetArrayFromImage(img).transpose(2, 1, 0)
    return array, sitk_affine(img)


def sitk_affine(img: sitk.Image) -> np.ndarray:
    """The RAS voxel-to-world 4x4 affine of a SimpleITK image."""
    direction = np.asarray(img.GetDirection(), dtype=float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(img.GetSpacing(), dtype=float)
    lps[:3, 3] = img.GetOrigin()
    return _RAS_TO_LPS @ lps


def ras_transform_to_sitk(matrix_ras: np.ndarray) -> sitk.AffineTransform:
    """A 4x4 world-to-world RAS matrix as a SimpleITK AffineTransform (which works in LPS).

    SimpleITK transforms map *fixed* (output) points to *moving* (input) points, so pass the matrix
    that maps reference-space world coordinates to the moving image's world coordinates.
    """
    lps = _RAS_TO_LPS @ np.asarray(matrix_ras, dtype=float) @ _RAS_TO_LPS
    tx = sitk.AffineTransform(3)
    tx.SetMatrix([float(v) for v in lps[:3, :3].ravel()])
    tx.SetTranslation([float(v) for v in lps[:3, 3]])
    return tx


def sitk_transform_to_ras(tx: sitk.Transform) -> np.ndarray:
    """The 4x4 RAS world-to-world matrix of a linear SimpleITK transform (fixed -> moving points)."""
    matrix = np.eye(4)
    origin = np.zeros(3)
    probe = np.eye(3)
    # Evaluate the transform on the origin and unit vectors: works for any linear transform type.
    o = np.asarray(tx.TransformPoint(tuple(origin)))
    for axis in range(3):
        matrix[:3, axis] = np.asarray(tx.TransformPoint(tuple(probe[axis]))) - o
    matrix[:3, 3] = o
    return _RAS_TO_LPS @ matrix @ _RAS_TO_LPS


def reference_image(shape: tuple[int, int, int], affine: np.ndarray) -> sitk.Image:
    """An empty SimpleITK image with the grid ``(shape, affine)`` (what ``sitk.Resample`` samples onto)."""
    ref = sitk.Image([int(s) for s in shape], sitk.sitkUInt8)
    lps = np.eye(4)
    lps[:3, :] = np.diag([-1.0, -1.0, 1.0, 1.0])[:3] @ np.asarray(affine, dtype=float)
    spacing = voxel_sizes(lps)
    ref.SetSpacing([float(s) for s in spacing])
    ref.SetDirection([float(v) for v in (lps[:3, :3] / spacing).ravel()])
    ref.SetOrigin([float(v) for v in lps[:3, 3]])
    return ref


def as_sitk_transform(transform) -> sitk.Transform:
    """Any supported transform as a SimpleITK pull transform (fixed/target -> moving/source points).

    Accepts a SimpleITK transform, a registration result (anything with a ``to_sitk()`` method:
    :class:`dawm.image.registration.LinearRegistration`, and ``NonlinearRegistration``, its
    ``forward``), a 4x4 RAS matrix, or None (identity).
    """
    if transform is None:
        return sitk.Transform()
    if isinstance(transform, sitk.Transform):
        return transform
    if callable(getattr(transform, "to_sitk", None)):
        return transform.to_sitk()
    matrix = np.asarray(transform, dtype=float)
    if matrix.shape != (4, 4):
        raise ValueError(f"expected a 4x4 RAS matrix or a transform, got shape {matrix.shape}")
    return ras_transform_to_sitk(matrix)


_ITK_THREADS_LOCK = threading.Lock()
_itk_single_users = 0
_itk_saved_threads = 0


@contextmanager
def single_threaded_itk() -> Iterator[None]:
    """ITK's global default of one thread while the block runs (nestable, and safe when several
    Python threads hold it at once: the default is restored when the last one leaves).

    ITK's metric threads sum partial results in a scheduling-dependent order; one thread makes a
    linear registration bit-for-bit reproducible for a seed. Independent registrations then run side
    by side in Python threads instead (:func:`dawm.parallel.map_threads`; ITK releases the GIL): the
    same results as one after the other, in less time on several cores. Filters whose result depends
    on their number of threads (N4) take :func:`itk_default_threads` explicitly, so that a block held
    by another thread does not change them."""
    global _itk_single_users, _itk_saved_threads
    with _ITK_THREADS_LOCK:
        if _itk_single_users == 0:
            _itk_saved_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        _itk_single_users += 1
    try:
        yield
    finally:
        with _ITK_THREADS_LOCK:
            _itk_single_users -= 1
            if _itk_single_users == 0:
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(_itk_saved_threads)


def itk_default_threads() -> int:
    """ITK's global default number of threads outside :func:`single_threaded_itk` blocks (what a filter
    gets when no such block is held), whatever other Python threads hold."""
    with _ITK_THREADS_LOCK:
        return _itk_saved_threads if _itk_single_users else sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
