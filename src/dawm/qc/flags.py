"""The warnings of one predicted session, as a researcher reviewing its QC page needs them.

Every warning that preprocessing recorded in its log (``Warnings``: skull-stripped input, MNI
registration fallback, partial field of view, ...) is kept verbatim, and a few *low quality* flags
are derived from the recorded metrics. Their thresholds flag images far below the clinical 2D
scans of ``real-ms`` (T1w/FLAIR tissue SNR 5-7, CNR 0.7-0.8, template correlation 0.75-0.9 there),
not the MRIQC research-grade ranges those scans themselves miss. They were set with those scans in
view, so they are display flags only (they never change a result, a mask or a volume) and are to be
checked on other clinical data before anyone relies on them:

* tissue SNR (``snr_total``) below :data:`MIN_SNR` or GM/WM CNR below :data:`MIN_CNR`;
* T1-like template correlation after MNI registration below :data:`BORDERLINE_CORRELATION`
  (the session fails below ``PreprocessConfig.min_template_correlation``, 0.5);
* a brain mask outside :data:`BRAIN_ML_RANGE` (adult brains are 1.0-1.6 L);
* a missing input whose measured lesion Dice (the model's ``input_accuracy``) is below
  :data:`UNRELIABLE_LESION_DICE` (the bundled model from T1w alone).

An empty prediction is not flagged: no lesion is a valid answer.

Notes (expected, not a problem) say which model inputs were missing, what the bundled model is
good for, and whether the tissue segmentation used a given lesion mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

MIN_SNR = 3.0
MIN_CNR = 0.3
BORDERLINE_CORRELATION = 0.65
BRAIN_ML_RANGE = (800.0, 2000.0)
#: Below this lesion Dice (measured on simulated sessions for the input set a session had, the
#: prediction's ``InputAccuracy``) the missing-modality note becomes a warning: lesion maps that far
#: from the truth are no measurement (the field's tools reach 0.6-0.7 on FLAIR, LST-AI 0.65).
UNRELIABLE_LESION_DICE = 0.5


@dataclass(frozen=True)
class Flag:
    """``level``: ``warning`` or ``note``; ``source``: ``preprocessing``, ``quality`` or ``prediction``."""

    level: str
    source: str
    text: str


def _finite(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def session_flags(preproc_log: dict, iqm: pd.DataFrame | None, prediction: dict, *, bundled_model: bool = False) -> list[Flag]:
    """Warnings then notes of a session from its preprocess log, IQM table (one row per image,
    column ``role``) and prediction sidecar (``Inputs``, ``MissingInputs``); ``bundled_model``:
    predicted by the model bundled with dawm (a note says what it is good for)."""
    flags = [Flag("warning", "preprocessing", str(w)) for w in preproc_log.get("Warnings", [])]
    if iqm is not None and not iqm.empty:
        for row in iqm.to_dict("records"):
            role = row.get("role", "image")
            snr, cnr = _finite(row.get("snr_total")), _finite(row.get("cnr"))
            if snr is not None and snr < MIN_SNR:
                flags.append(Flag("warning", "quality", f"{role}: low quality, tissue SNR {snr:.1f} (below {MIN_SNR:g})"))
            if cnr is not None and cnr < MIN_CNR:
                flags.append(Flag("warning", "quality", f"{role}: low quality, GM/WM contrast-to-noise {cnr:.2f} (below {MIN_CNR:g})"))
    r = _finite(preproc_log.get("TemplateCorrelation"))
    if r is not None and r < BORDERLINE_CORRELATION:
        flags.append(
            Flag(
                "warning",
                "quality",
                f"MNI registration borderline: T1-like template correlation {r:.2f} "
                f"(below {BORDERLINE_CORRELATION:g}; good ones give 0.8-0.9): check the brain mask",
            )
        )
    ml = _finite(preproc_log.get("BrainVolume_ml"))
    lo, hi = BRAIN_ML_RANGE
    if ml is not None and not lo <= ml <= hi:
        flags.append(Flag("warning", "quality", f"brain mask of {ml:.0f} ml, outside {lo:.0f}-{hi:.0f} ml: check it"))
    missing = list(prediction.get("MissingInputs", []))
    accuracy = prediction.get("InputAccuracy") or {}
    if missing and accuracy.get("lesion_dice") is not None:
        flags.append(
            Flag(
                "warning" if accuracy["lesion_dice"] < UNRELIABLE_LESION_DICE else "note",
                "prediction",
                f"predicted without {', '.join(missing)} (not acquired): the model's missing-modality path, "
                f"whose lesion Dice from {accuracy['inputs']} was {accuracy['lesion_dice']:g} on simulated sessions "
                f"it never saw ({accuracy['lesion_dice_all_inputs']:g} with every input)",
            )
        )
    elif missing:
        flags.append(
            Flag(
                "note",
                "prediction",
                f"predicted without {', '.join(missing)} (not acquired): the model's "
                f"missing-modality path, less accurate than with every input",
            )
        )
    if preproc_log.get("InputOnMNIGrid"):
        flags.append(
            Flag(
                "note",
                "preprocessing",
                f"input on the {preproc_log['InputOnMNIGrid']} grid: the MNI registration started from the identity",
            )
        )
    if bundled_model:
        flags.append(
            Flag(
                "note",
                "prediction",
                "the model bundled with dawm was trained on simulated data only: on real "
                "scans its lesion and DAWM maps are for method development, not yet for measurement",
            )
        )
    if preproc_log.get("LesionMask") == "given":
        flags.append(Flag("note", "preprocessing", "the tissue segmentation used a given lesion mask"))
    return flags
