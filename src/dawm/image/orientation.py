"""Canonical (closest RAS) voxel order, so a network sees the same array whatever the storage
orientation of the input (RAS, LPS, ...) and a figure shows every grid the same way round (the
subject's left on the left): a permutation/flip of axes, exact, no interpolation."""

from __future__ import annotations

import nibabel as nib
import numpy as np


def to_canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``array`` (..., X, Y, Z) reordered to the closest RAS axes; returns ``(array, affine)``."""
    ornt = nib.orientations.io_orientation(affine)
    shape = array.shape[-3:]
    lead = array.ndim - 3
    out = array
    # apply_orientation works on the first three axes: move spatial axes first
    out = np.moveaxis(out, list(range(lead, lead + 3)), [0, 1, 2]) if lead else out
    out = nib.orientations.apply_orientation(out, ornt)
    out = np.moveaxis(out, [0, 1, 2], list(range(lead, lead + 3))) if lead else out
    new_affine = affine @ nib.orientations.inv_ornt_aff(ornt, shape)
    return np.ascontiguousarray(out), new_affine


def from_canonical(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Undo :func:`to_canonical`: ``array`` (..., X', Y', Z') in canonical order back to the voxel
    order of the grid whose affine is ``affine`` (the original one)."""
    ornt = nib.orientations.io_orientation(affine)
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt(("R", "A", "S")), ornt)
    lead = array.ndim - 3
    out = np.moveaxis(array, list(range(lead, lead + 3)), [0, 1, 2]) if lead else array
    out = nib.orientations.apply_orientation(out, back)
    out = np.moveaxis(out, [0, 1, 2], list(range(lead, lead + 3))) if lead else out
    return np.ascontiguousarray(out)
