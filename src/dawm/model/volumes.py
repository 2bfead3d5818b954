"""Lesion and DAWM volumes per location class, and MNI coordinates of a session grid.

Location classes come from the label stage (:func:`dawm.label.locations.location_classes`:
1 periventricular, 2 juxtacortical, 3 deep, 4 infratentorial), computed on the white matter of the
preprocess dseg together with the predicted lesions and DAWM; the infratentorial class needs the
session's MNI coordinates, pulled through ``from-MNI152NLin2009cSym_to-session_mode-image_xfm.h5``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from dawm.image.registration import load_transform
from dawm.image.resample import voxel_sizes
from dawm.image.template import mni_coordinates as template_coordinates
from dawm.label.locations import location_classes
from dawm.labels import LOCATION_LABELS

log = logging.getLogger(__name__)


def mni_coordinates(transform_path: str | Path, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray | None:
    """(3, X, Y, Z) float32 MNI RAS mm of every voxel of the grid ``(shape, affine)``, through the
    pull transform at ``transform_path`` (session world -> MNI world); None when it is absent.
    Voxels that fall outside the template grid get -1e4 mm, as in the label stage."""
    path = Path(transform_path)
    if not path.exists():
        return None
    return np.nan_to_num(template_coordinates(load_transform(path), shape, affine), nan=-1e4)


def volume_table(
    pred: np.ndarray,
    dseg: np.ndarray,
    brain: np.ndarray,
    affine: np.ndarray,
    *,
    mni_xyz: np.ndarray | None = None,
    probs: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per location (``all`` and each class): ``lesion_ml``, ``dawm_ml``, ``wm_ml`` (WM of the
    dseg plus predicted lesion/DAWM there) and ``lesion_pct_wm`` / ``dawm_pct_wm``; with ``probs``
    also ``lesion_expected_ml`` / ``dawm_expected_ml``: the sum of the class probabilities times
    the voxel volume (for ``all`` over the whole brain, for a class over its voxels), the volume
    the model expects without a threshold.

    ``pred`` (X, Y, Z) 0/1/2, ``dseg`` 1 CSF 2 GM 3 WM, ``brain`` bool, ``affine`` voxel -> mm,
    ``probs`` (3, X, Y, Z) 0-1."""
    spacing = voxel_sizes(affine)
    vox_ml = float(np.prod(spacing)) / 1000.0
    wm = (dseg == 3) | (pred > 0)
    loc = location_classes(dseg, brain, spacing, wm=wm, mni_xyz=mni_xyz, affine=affine)
    rows = []
    for k, name in [(None, "all"), *((k, v) for k, v in LOCATION_LABELS.items() if k > 0)]:
        region = wm if k is None else loc == k
        wm_ml = float(region.sum()) * vox_ml
        les, daw = float(((pred == 1) & region).sum()) * vox_ml, float(((pred == 2) & region).sum()) * vox_ml
        row = {
            "location": name,
            "lesion_ml": les,
            "dawm_ml": daw,
            "wm_ml": wm_ml,
            "lesion_pct_wm": 100 * les / wm_ml if wm_ml else float("nan"),
            "dawm_pct_wm": 100 * daw / wm_ml if wm_ml else float("nan"),
        }
        if probs is not None:
            where = np.asarray(brain, bool) if k is None else region
            row["lesion_expected_ml"] = float(probs[1][where].sum()) * vox_ml
            row["dawm_expected_ml"] = float(probs[2][where].sum()) * vox_ml
        rows.append(row)
    return pd.DataFrame(rows)
