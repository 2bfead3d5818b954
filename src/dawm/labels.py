"""Label maps and location classes: the integer codes every stage writes and reads, defined once.

The simulator's truth, ``dawm preprocess``, ``dawm label``, the model (training targets, ``dawm
predict``), ``dawm evaluate`` and the longitudinal output all import their codes from here, so that
a ``desc-dawm_dseg`` written by one stage means the same to every other (and to the ``_dseg.tsv``
look-up tables written beside the maps). Plain constants only: no stage is imported.
"""

from __future__ import annotations

# --- the DAWM segmentation (``desc-dawm_dseg``; the simulator's ``desc-pathology_dseg``) -----------
NORMAL, LESION, DAWM = 0, 1, 2
#: Classes of a DAWM segmentation (the network's softmax channels, in this order).
DAWM_LABELS: dict[int, str] = {NORMAL: "normal", LESION: "lesion", DAWM: "DAWM"}

# --- tissues (``dawm preprocess``'s ``_dseg``; the simulator's subject-space ``_dseg``) -----------
CSF, GM, WM = 1, 2, 3
TISSUE_LABELS: dict[int, str] = {CSF: "CSF", GM: "GM", WM: "WM"}

# --- location classes (``desc-location_dseg``; volumes per location) -------------------------------
#: White-matter location classes; 0 is outside white matter. See :mod:`dawm.label.locations`.
LOCATION_LABELS: dict[int, str] = {0: "none", 1: "periventricular", 2: "juxtacortical", 3: "deep", 4: "infratentorial"}

# --- transitions between two sessions (``desc-transition_dseg``) ----------------------------------
#: Label of voxels left out of a comparison (outside a field of view).
NOT_COMPARED = 255
#: Voxel transition codes between a session and the one before. 1-6 are the ones the simulator
#: writes (:data:`SIMULATED_TRANSITIONS`); 7 and 8 happen only in predictions (the simulator never
#: removes a lesion).
TRANSITION_CODES: dict[int, str] = {
    0: "none",
    1: "DAWM_to_normal",
    2: "DAWM_to_lesion",
    3: "DAWM_persistent",
    4: "new_DAWM",
    5: "new_lesion",
    6: "lesion_persistent",
    7: "lesion_to_normal",
    8: "lesion_to_DAWM",
    NOT_COMPARED: "not_compared",
}
#: The codes of :data:`TRANSITION_CODES` that the simulator's truth holds (0-6).
SIMULATED_TRANSITIONS: dict[int, str] = {k: v for k, v in TRANSITION_CODES.items() if k <= 6}

#: Fate of DAWM over 5 years in the literature (Gabr & Narayana 2021): the fractions that convert
#: to lesion, persist and resolve. The simulator draws its transitions from it; the evaluation
#: report shows it beside the measured fates.
DAWM_FATE_5Y: dict[str, float] = {"lesion": 0.15, "persist": 0.45, "resolve": 0.40}
