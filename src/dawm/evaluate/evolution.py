"""DAWM evolution between two sessions of a subject: voxel transitions and follow-up alignment.

Label maps use 0 = normal, 1 = lesion, 2 = DAWM (other values, e.g. outside the field of view,
count as none of these). Transition volumes are in ml; fractions are relative to the baseline DAWM
volume and are NaN (not 0) when the baseline has no DAWM, so that an empty baseline is not
mistaken for "nothing converted".

The array core (:func:`transition_volumes`) and the alignment (:func:`register_followup_to_baseline`,
:func:`followup_on_baseline`) live in :mod:`dawm.longitudinal`, which the reference-free
longitudinal output uses as well; this module adds the simulator's truth maps.
"""

from __future__ import annotations

import numpy as np

from dawm.labels import DAWM, LESION, NORMAL, SIMULATED_TRANSITIONS
from dawm.longitudinal.alignment import followup_on_baseline, register_followup_to_baseline
from dawm.longitudinal.transitions import transition_result, transition_volumes

__all__ = [
    "DAWM",
    "LESION",
    "NORMAL",
    "followup_on_baseline",
    "register_followup_to_baseline",
    "transition_volumes",
    "transitions_from_truth_map",
]

#: Simulator transition names (``desc-transition_dseg``) -> keys used here.
_TRUTH_NAMES = {
    "DAWM_to_normal": "dawm_to_normal",
    "DAWM_to_lesion": "dawm_to_lesion",
    "DAWM_persistent": "dawm_persistent",
    "new_DAWM": "new_dawm",
    "new_lesion": "new_lesion",
    "lesion_persistent": "lesion_persistent",
}


def transitions_from_truth_map(transition_map: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """The simulator's ``desc-transition_dseg`` (codes :data:`dawm.labels.SIMULATED_TRANSITIONS`) as
    the keys of :func:`transition_volumes`.

    Baseline DAWM is DAWM->normal + DAWM->lesion + DAWM persistent; follow-up DAWM is DAWM
    persistent + new DAWM (the simulator never turns a lesion into DAWM, so this is complete).
    """
    t = np.asarray(transition_map)
    codes = {name: code for code, name in SIMULATED_TRANSITIONS.items()}
    missing = set(_TRUTH_NAMES) - set(codes)
    if missing:
        raise KeyError(f"transition labels {sorted(missing)} not in the simulator's transition codes (SIMULATED_TRANSITIONS)")
    vols = {key: float(np.count_nonzero(t == codes[name])) * voxel_ml for name, key in _TRUTH_NAMES.items()}
    baseline = vols["dawm_to_normal"] + vols["dawm_to_lesion"] + vols["dawm_persistent"]
    return transition_result(vols, baseline, vols["dawm_persistent"] + vols["new_dawm"])
