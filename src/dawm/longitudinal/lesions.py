"""Lesion-wise change between two sessions on one grid: new and enlarging lesions.

Definitions (fixed a priori, never tuned on real scans):

* A *lesion* is a 26-connected component of the lesion mask (X, Y, Z).
* A **new lesion** is a follow-up lesion of at least ``min_voxels`` voxels (default 3, the size
  of the smallest lesion the simulator's rater masks keep) that touches no baseline lesion voxel
  (of any size). Its whole component is the new-lesion mask.
* An **enlarging lesion** is a follow-up lesion that touches baseline lesions and is at least
  ``growth_ratio`` (1.5, i.e. +50 %) times their volume (the baseline components it touches,
  taken together, so that merging lesions count once) and at least ``min_growth_voxels`` (3)
  voxels larger. Its enlarging mask is the part of it outside the baseline lesions (the grown
  voxels), which is what an expert lesion-change mask marks.

Counts are lesions; volumes are ml (``voxel_ml`` = one voxel's volume in ml).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dawm.image.components import components

#: Values of :attr:`LesionChanges.change_map`.
CHANGE_CODES = {0: "none", 1: "new_lesion", 2: "enlarging_lesion"}


@dataclass(frozen=True)
class LesionChanges:
    """New and enlarging lesions of a follow-up against its baseline (same grid, X, Y, Z).

    ``new``: bool mask of the new lesions (whole components); ``enlarging``: bool mask of the grown
    part of the enlarging lesions; ``n_*``: lesion counts; ``*_ml``: volumes in ml
    (``enlarging_ml`` is the grown volume only).
    """

    new: np.ndarray
    enlarging: np.ndarray
    n_baseline: int
    n_followup: int
    n_new: int
    n_enlarging: int
    new_ml: float
    enlarging_ml: float

    @property
    def change_map(self) -> np.ndarray:
        """uint8 (X, Y, Z): 0 none, 1 new lesion, 2 grown part of an enlarging lesion."""
        out = np.zeros(self.new.shape, dtype=np.uint8)
        out[self.new] = 1
        out[self.enlarging] = 2
        return out

    def as_dict(self) -> dict[str, float]:
        """The counts and volumes, for a table row."""
        return {
            "n_baseline_lesions": self.n_baseline,
            "n_followup_lesions": self.n_followup,
            "n_new_lesions": self.n_new,
            "new_lesions_ml": self.new_ml,
            "n_enlarging_lesions": self.n_enlarging,
            "enlarging_lesions_ml": self.enlarging_ml,
            "new_or_enlarging_ml": self.new_ml + self.enlarging_ml,
        }


def lesion_changes(
    baseline_lesion: np.ndarray,
    followup_lesion: np.ndarray,
    voxel_ml: float,
    *,
    min_voxels: int = 3,
    growth_ratio: float = 1.5,
    min_growth_voxels: int = 3,
) -> LesionChanges:
    """New and enlarging lesions (see the module docstring) of two boolean lesion masks (X, Y, Z)
    on the same grid; voxels the comparison leaves out must be False in ``followup_lesion``."""
    b, f = np.asarray(baseline_lesion, dtype=bool), np.asarray(followup_lesion, dtype=bool)
    if b.shape != f.shape:
        raise ValueError(f"lesion masks differ in shape: {b.shape} vs {f.shape}")
    lab_b, n_b = components(b)
    lab_f, n_f = components(f)
    size_b = np.bincount(lab_b.ravel(), minlength=n_b + 1)
    size_f = np.bincount(lab_f.ravel(), minlength=n_f + 1)
    new, enlarging = np.zeros(b.shape, bool), np.zeros(b.shape, bool)
    n_new = n_enl = n_follow = 0
    objects = ndimage.find_objects(lab_f)
    for j, box in enumerate(objects, start=1):
        if box is None or size_f[j] < min_voxels:
            continue
        n_follow += 1
        comp = lab_f[box] == j
        touched = np.unique(lab_b[box][comp])
        touched = touched[touched > 0]
        if touched.size == 0:
            new[box] |= comp
            n_new += 1
            continue
        # the touched baseline lesions may reach outside this box: their full sizes
        before = int(size_b[touched].sum())
        after = int(size_f[j])
        if after >= growth_ratio * before and after - before >= min_growth_voxels:
            enlarging[box] |= comp & ~b[box]
            n_enl += 1
    n_base = int(np.count_nonzero(size_b[1:] >= min_voxels))
    return LesionChanges(
        new=new,
        enlarging=enlarging,
        n_baseline=n_base,
        n_followup=n_follow,
        n_new=n_new,
        n_enlarging=n_enl,
        new_ml=float(new.sum()) * voxel_ml,
        enlarging_ml=float(enlarging.sum()) * voxel_ml,
    )
