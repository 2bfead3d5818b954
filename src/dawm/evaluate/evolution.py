"""DAWM evolution between two sessions of a subject: voxel transitions and follow-up alignment.

Label maps use 0 = normal, 1 = lesion, 2 = DAWM (other values, e.g. outside the field of view,
count as none of these). Transition volumes are in ml; fractions are relative to the baseline DAWM
volume and are NaN (not 0) when the baseline has no DAWM, so that an empty baseline is not
mistaken for "nothing converted".
"""

from __future__ import annotations

import numpy as np

from dawm.image.resample import resample_to_grid
from dawm.preprocess.registration import rigid_register
from dawm.simulate.pathology import TRANSITIONS

NORMAL, LESION, DAWM = 0, 1, 2
#: Simulator transition names (``desc-transition_dseg``) -> keys used here.
_TRUTH_NAMES = {
    "DAWM_to_normal": "dawm_to_normal",
    "DAWM_to_lesion": "dawm_to_lesion",
    "DAWM_persistent": "dawm_persistent",
    "new_DAWM": "new_dawm",
    "new_lesion": "new_lesion",
    "lesion_persistent": "lesion_persistent",
}
_FATES = ("dawm_to_lesion", "dawm_to_normal", "dawm_persistent")


def _result(ml: dict[str, float], baseline_dawm_ml: float, followup_dawm_ml: float) -> dict[str, float]:
    out = {f"{k}_ml": float(v) for k, v in ml.items()}
    for k in _FATES:
        out[f"{k}_frac"] = ml[k] / baseline_dawm_ml if baseline_dawm_ml > 0 else float("nan")
    out.update(baseline_dawm_ml=float(baseline_dawm_ml), followup_dawm_ml=float(followup_dawm_ml),
               dawm_change_ml=float(followup_dawm_ml - baseline_dawm_ml))
    return out


def transition_volumes(baseline: np.ndarray, followup: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """Transition volumes between two label maps on the same grid.

    Keys: ``dawm_to_lesion_ml``, ``dawm_to_normal_ml``, ``dawm_persistent_ml``, ``new_dawm_ml``
    (normal -> DAWM), ``new_lesion_ml`` (normal -> lesion), ``lesion_persistent_ml``, the fractions
    of baseline DAWM ``dawm_to_lesion_frac``, ``dawm_to_normal_frac``, ``dawm_persistent_frac``
    (NaN when the baseline has no DAWM), ``baseline_dawm_ml``, ``followup_dawm_ml`` and
    ``dawm_change_ml`` (follow-up minus baseline).
    """
    b, f = np.asarray(baseline), np.asarray(followup)
    if b.shape != f.shape:
        raise ValueError(f"label maps differ in shape: {b.shape} vs {f.shape}")

    def ml(src: int, dst: int) -> float:
        return float(np.count_nonzero((b == src) & (f == dst))) * voxel_ml

    vols = {"dawm_to_lesion": ml(DAWM, LESION), "dawm_to_normal": ml(DAWM, NORMAL),
            "dawm_persistent": ml(DAWM, DAWM), "new_dawm": ml(NORMAL, DAWM),
            "new_lesion": ml(NORMAL, LESION), "lesion_persistent": ml(LESION, LESION)}
    return _result(vols, np.count_nonzero(b == DAWM) * voxel_ml, np.count_nonzero(f == DAWM) * voxel_ml)


def transitions_from_truth_map(transition_map: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """The simulator's ``desc-transition_dseg`` (see ``dawm.simulate.pathology.TRANSITIONS``) as
    the keys of :func:`transition_volumes`.

    Baseline DAWM is DAWM->normal + DAWM->lesion + DAWM persistent; follow-up DAWM is DAWM
    persistent + new DAWM (the simulator never turns a lesion into DAWM, so this is complete).
    """
    t = np.asarray(transition_map)
    codes = {name: code for code, name in TRANSITIONS.items()}
    missing = set(_TRUTH_NAMES) - set(codes)
    if missing:
        raise KeyError(f"transition labels {sorted(missing)} not in the simulator's TRANSITIONS")
    vols = {key: float(np.count_nonzero(t == codes[name])) * voxel_ml for name, key in _TRUTH_NAMES.items()}
    baseline = vols["dawm_to_normal"] + vols["dawm_to_lesion"] + vols["dawm_persistent"]
    return _result(vols, baseline, vols["dawm_persistent"] + vols["new_dawm"])


def register_followup_to_baseline(
    baseline_img: np.ndarray,
    baseline_affine: np.ndarray,
    followup_img: np.ndarray,
    followup_affine: np.ndarray,
    *,
    baseline_mask: np.ndarray | None = None,
    followup_mask: np.ndarray | None = None,
    seed: int = 0,
    working_spacing_mm: float = 2.0,
) -> np.ndarray:
    """Rigid (6 dof, Mattes MI) registration of the follow-up image onto the baseline.

    A thin wrapper of :func:`dawm.preprocess.registration.rigid_register`. Returns the 4x4 pull
    matrix mapping baseline-world RAS mm to follow-up-world RAS mm, as ``transform_ras`` of
    :func:`followup_on_baseline`.
    """
    reg = rigid_register(baseline_img, baseline_affine, followup_img, followup_affine,
                         fixed_mask=baseline_mask, moving_mask=followup_mask, dof=6, seed=seed,
                         working_spacing_mm=working_spacing_mm)
    return reg.matrix_ras


def followup_on_baseline(
    labels: np.ndarray,
    followup_affine: np.ndarray,
    baseline_shape: tuple[int, int, int],
    baseline_affine: np.ndarray,
    transform_ras: np.ndarray | None,
    *,
    fill_value: int = 0,
) -> np.ndarray:
    """Follow-up label map resampled (nearest neighbour) onto the baseline grid.

    ``transform_ras`` is the pull matrix of :func:`register_followup_to_baseline` (None: the two
    sessions already share a world). Voxels outside the follow-up field of view get ``fill_value``
    (0 = normal; pass e.g. 255 to keep them out of :func:`transition_volumes`).
    """
    return resample_to_grid(labels, followup_affine, baseline_shape, baseline_affine,
                            interpolation="nearest", transform_ras=transform_ras, fill_value=fill_value)
