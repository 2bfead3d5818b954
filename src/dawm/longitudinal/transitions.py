"""Voxel transitions between two label maps on one grid: DAWM -> lesion / normal / persistent, new
DAWM, new lesion voxels.

The array core shared by ``dawm evaluate`` (:mod:`dawm.evaluate.evolution`, against a reference)
and the reference-free longitudinal output (:mod:`dawm.longitudinal.outputs`).

Label maps are integer arrays of shape (X, Y, Z) with 0 = normal, 1 = lesion, 2 = DAWM; any other
value (:data:`NOT_COMPARED`, 255, e.g. outside a field of view) counts as none of these. Volumes
are in ml (``voxel_ml``: the volume of one voxel in ml, i.e. mm^3 / 1000); fractions are relative
to the baseline DAWM volume and are NaN (not 0) when the baseline has no DAWM, so that an empty
baseline is not mistaken for "nothing converted".
"""

from __future__ import annotations

import numpy as np

# The codes are :mod:`dawm.labels`': label maps 0 normal, 1 lesion, 2 DAWM; NOT_COMPARED (255) outside
# a field of view; TRANSITION_CODES those of :func:`transition_map` (1-6 are the simulator's, 7 and 8
# happen only in predictions: the simulator never removes a lesion).
from dawm.labels import DAWM, LESION, NORMAL, NOT_COMPARED, TRANSITION_CODES

__all__ = ["DAWM", "LESION", "NORMAL", "NOT_COMPARED", "TRANSITION_CODES", "transition_map", "transition_result", "transition_volumes"]

#: (baseline label, follow-up label) of each code of :data:`TRANSITION_CODES` (0 is normal -> normal).
_PAIRS = {
    1: (DAWM, NORMAL),
    2: (DAWM, LESION),
    3: (DAWM, DAWM),
    4: (NORMAL, DAWM),
    5: (NORMAL, LESION),
    6: (LESION, LESION),
    7: (LESION, NORMAL),
    8: (LESION, DAWM),
}
_FATES = ("dawm_to_lesion", "dawm_to_normal", "dawm_persistent")


def _check(baseline: np.ndarray, followup: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b, f = np.asarray(baseline), np.asarray(followup)
    if b.shape != f.shape:
        raise ValueError(f"label maps differ in shape: {b.shape} vs {f.shape}")
    return b, f


def transition_result(ml: dict[str, float], baseline_dawm_ml: float, followup_dawm_ml: float) -> dict[str, float]:
    """Volumes (ml) keyed ``<name>_ml`` plus the fractions of baseline DAWM and the DAWM change,
    the keys of :func:`transition_volumes` (``ml`` must hold the three fates of baseline DAWM)."""
    out = {f"{k}_ml": float(v) for k, v in ml.items()}
    for k in _FATES:
        out[f"{k}_frac"] = ml[k] / baseline_dawm_ml if baseline_dawm_ml > 0 else float("nan")
    out.update(
        baseline_dawm_ml=float(baseline_dawm_ml),
        followup_dawm_ml=float(followup_dawm_ml),
        dawm_change_ml=float(followup_dawm_ml - baseline_dawm_ml),
    )
    return out


def transition_volumes(baseline: np.ndarray, followup: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """Transition volumes between two label maps (X, Y, Z) on the same grid.

    Keys: ``dawm_to_lesion_ml``, ``dawm_to_normal_ml``, ``dawm_persistent_ml``, ``new_dawm_ml``
    (normal -> DAWM), ``new_lesion_ml`` (normal -> lesion, voxel-wise), ``lesion_persistent_ml``, the
    fractions of baseline DAWM ``dawm_to_lesion_frac``, ``dawm_to_normal_frac``,
    ``dawm_persistent_frac`` (NaN when the baseline has no DAWM), ``baseline_dawm_ml``,
    ``followup_dawm_ml`` and ``dawm_change_ml`` (follow-up minus baseline). A voxel whose label
    is not 0/1/2 in either map counts in none of them.
    """
    b, f = _check(baseline, followup)

    def ml(src: int, dst: int) -> float:
        return float(np.count_nonzero((b == src) & (f == dst))) * voxel_ml

    vols = {
        "dawm_to_lesion": ml(DAWM, LESION),
        "dawm_to_normal": ml(DAWM, NORMAL),
        "dawm_persistent": ml(DAWM, DAWM),
        "new_dawm": ml(NORMAL, DAWM),
        "new_lesion": ml(NORMAL, LESION),
        "lesion_persistent": ml(LESION, LESION),
    }
    return transition_result(vols, np.count_nonzero(b == DAWM) * voxel_ml, np.count_nonzero(f == DAWM) * voxel_ml)


def transition_map(baseline: np.ndarray, followup: np.ndarray) -> np.ndarray:
    """The voxel transition of each voxel (X, Y, Z), uint8 codes of :data:`TRANSITION_CODES`:
    0 normal -> normal, 1-8 the transitions, 255 where either map holds another label (not
    compared)."""
    b, f = _check(baseline, followup)
    out = np.full(b.shape, NOT_COMPARED, dtype=np.uint8)
    out[(b == NORMAL) & (f == NORMAL)] = 0
    for code, (src, dst) in _PAIRS.items():
        out[(b == src) & (f == dst)] = code
    return out
