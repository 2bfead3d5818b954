"""Load and save NIfTI images, making scaling, shape and non-finite values explicit.

``load_volume`` is the single entry point for reading an image anywhere in dawm: it applies the
header's ``scl_slope``/``scl_inter`` (int16 scanner output), squeezes a singleton 4th axis, and turns
every failure (missing file, corrupt gzip, 4D series, empty image) into an ``InputError`` that names
the file. ``save_volume`` writes atomically (temporary file + rename), so an interrupted run never
leaves a truncated image behind.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes

from dawm.atomic import atomic_target
from dawm.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Volume:
    """A 3D image: ``data`` (X, Y, Z) float32 in scanner units after header scaling, ``affine``
    voxel -> RAS mm, ``path`` it came from, and ``n_nonfinite`` NaN/inf voxels that were set to 0."""

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    n_nonfinite: int = 0

    @property
    def spacing_mm(self) -> np.ndarray:
        return voxel_sizes(self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]


def load_volume(path: str | Path, *, allow_empty: bool = False) -> Volume:
    """Read a 3D NIfTI image as float32 with scaling applied and NaN/inf set to 0.

    Raises ``InputError`` naming ``path`` for: a missing or unreadable file, a corrupt gzip
    stream, a true 4D/5D image, a degenerate affine, or (unless ``allow_empty``) an image whose
    voxels are all zero.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)  # applies scl_slope / scl_inter
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: corrupt or truncated compressed file ({exc})") from None
    except (nib.filebasedimages.ImageFileError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable NIfTI image ({exc})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D image, got shape {data.shape} (a 4D series?)")
    if min(data.shape) < 1:
        raise InputError(f"{path}: image has an empty axis, shape {data.shape}")
    affine = np.asarray(img.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(f"{path}: the header's affine is degenerate (no valid orientation)")
    finite = np.isfinite(data)
    n_bad = int(data.size - finite.sum())
    if n_bad:
        log.info("%s: %d NaN/inf voxels set to 0", path.name, n_bad)
        data = np.where(finite, data, 0).astype(np.float32)
    if not allow_empty and not np.any(data):
        raise InputError(f"{path}: image is empty (all voxels are zero)")
    return Volume(data=data, affine=affine, path=path, n_nonfinite=n_bad)


def as_closest_canonical(vol: Volume) -> Volume:
    """The same image with its array axes permuted and flipped to the closest RAS order (the affine
    adjusted, so every voxel keeps its world position). An image stored LPS (or in any other array
    order) and the same image stored RAS then give identical arrays, so what is computed on them
    (registration metric sampling, working grids, session grids) does not depend on how a scanner or
    converter ordered the voxels. Oblique affines keep their tilt (the closest axes are chosen)."""
    ornt = nib.orientations.io_orientation(vol.affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return vol
    data = np.ascontiguousarray(nib.orientations.apply_orientation(vol.data, ornt))
    affine = vol.affine @ nib.orientations.inv_ornt_aff(ornt, vol.data.shape)
    return Volume(data=data, affine=affine, path=vol.path, n_nonfinite=vol.n_nonfinite)


def save_volume(
    data: np.ndarray,
    affine: np.ndarray,
    path: str | Path,
    *,
    dtype: np.dtype | type | None = None,
    scaled: bool = False,
) -> Path:
    """Write ``data`` atomically as NIfTI (gzip when the name ends with .gz).

    ``dtype`` sets the on-disk type (default: the array's; bool is stored as uint8). With an
    integer ``dtype`` and ``scaled=True``, float data are stored as integers with ``scl_slope`` /
    ``scl_inter`` chosen by nibabel to span the type, the way scanners write int16 images.
    Returns the path.
    """
    path = Path(path)
    arr = np.asarray(data)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    out_dtype = np.dtype(dtype) if dtype is not None else arr.dtype
    if scaled:
        img = nib.Nifti1Image(arr.astype(np.float32), np.asarray(affine, dtype=float))
        img.set_data_dtype(out_dtype)  # nibabel picks scl_slope/scl_inter at write time
    else:
        img = nib.Nifti1Image(arr.astype(out_dtype), np.asarray(affine, dtype=float))
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix
    with atomic_target(path, suffix) as tmp:
        nib.save(img, tmp)
    return path
