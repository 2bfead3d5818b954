"""Longitudinal output of a ``dawm predict`` folder, from the predictions alone (no reference).

For every subject with two or more predicted sessions (sorted by session label; the first is the
baseline), each follow-up is aligned rigidly to the baseline (:func:`dawm.longitudinal.alignment.align_sessions`
on the preprocessed T1w, else FLAIR, within the brain masks), its maps are pulled onto the baseline
grid (labels nearest neighbour, probabilities linear), and the voxel transitions
(:mod:`dawm.longitudinal.transitions`) and new / enlarging lesions (:mod:`dawm.longitudinal.lesions`)
are measured inside the field of view both sessions cover (``desc-fov_mask`` of each).

Written (``PRED`` the predict folder, ``F`` a follow-up session):

* ``PRED/sub-X/ses-F/anat/sub-X_ses-F_space-baseline_...`` on the baseline's session grid:
  ``desc-dawm_dseg`` (0 normal, 1 lesion, 2 DAWM; 0 outside the follow-up's field of view),
  ``label-{lesion,DAWM}_probseg``, ``desc-transition_dseg`` (codes of
  :data:`dawm.longitudinal.transitions.TRANSITION_CODES`, 255 = not compared),
  ``desc-lesionchange_dseg`` (1 new lesion, 2 grown part of an enlarging lesion), each with a JSON
  sidecar naming the baseline grid (``SpatialReference``); and
  ``sub-X_ses-F_from-session_to-baseline_mode-image_xfm.json`` (the 4x4 pull matrix, RAS mm);
* ``PRED/sub-X/sub-X_desc-longitudinal_transitions.tsv`` (one row per follow-up, volumes in ml,
  columns described in its JSON sidecar :data:`COLUMNS`);
* ``PRED/transitions.tsv`` (+ ``.json``): every subject's rows.

A subject with one session is skipped; a follow-up that cannot be aligned (or read) gets a row
with ``status`` ``failed: <reason>`` and no maps, and the others go on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from dawm.bids.derivative_files import PredictFiles, PreprocessFiles
from dawm.bids.derivatives import write_json, write_tsv
from dawm.bids.layout import DERIVATIVES, participant_id, session_id
from dawm.errors import InputError
from dawm.image.io import load_volume, save_volume
from dawm.longitudinal.alignment import Alignment, AlignmentError, align_sessions, followup_on_baseline
from dawm.longitudinal.lesions import CHANGE_CODES, lesion_changes
from dawm.longitudinal.sessions import PredictedSession, predicted_sessions
from dawm.longitudinal.transitions import DAWM, LESION, NORMAL, NOT_COMPARED, TRANSITION_CODES, transition_map, transition_volumes

log = logging.getLogger(__name__)

_ML = "ml"
#: Columns of the transition tables: name -> (description, units or None).
COLUMNS: dict[str, tuple[str, str | None]] = {
    "participant_id": ("subject", None),
    "baseline": ("baseline session (the first session label)", None),
    "followup": ("follow-up session, aligned to the baseline", None),
    "status": ("ok, or 'failed: <reason>' (then no other value)", None),
    "alignment_image": ("preprocessed image pair registered (role; 'A->B' when the sessions share none)", None),
    "alignment_mattes_mi": ("final Mattes mutual information of the rigid registration (negative, lower is better)", None),
    "alignment_brain_dice": ("Dice of the baseline brain mask and the aligned follow-up brain mask (below 0.8 the alignment fails)", None),
    "alignment_translation_mm": ("displacement of the baseline grid's centre by the alignment", "mm"),
    "alignment_rotation_deg": ("rotation angle of the alignment", "degree"),
    "compared_brain_ml": (
        "baseline brain volume inside both sessions' fields of view (everything below is measured inside both fields of view)",
        _ML,
    ),
    "baseline_lesion_ml": ("baseline lesion volume (compared region)", _ML),
    "followup_lesion_ml": ("follow-up lesion volume on the baseline grid (compared region)", _ML),
    "lesion_change_ml": ("follow-up minus baseline lesion volume", _ML),
    "dawm_to_lesion_ml": ("baseline DAWM that is lesion at follow-up (voxel-wise)", _ML),
    "dawm_to_normal_ml": ("baseline DAWM that is normal at follow-up", _ML),
    "dawm_persistent_ml": ("baseline DAWM that is DAWM at follow-up", _ML),
    "new_dawm_ml": ("baseline normal that is DAWM at follow-up", _ML),
    "new_lesion_ml": ("baseline normal that is lesion at follow-up (voxel-wise; lesion-wise counts below)", _ML),
    "lesion_persistent_ml": ("baseline lesion that is lesion at follow-up", _ML),
    "lesion_to_normal_ml": ("baseline lesion that is normal at follow-up (shrinking or resolved lesions, or prediction noise)", _ML),
    "lesion_to_dawm_ml": ("baseline lesion that is DAWM at follow-up", _ML),
    "dawm_to_lesion_frac": ("share of baseline DAWM that became lesion (n/a without baseline DAWM)", None),
    "dawm_to_normal_frac": ("share of baseline DAWM that became normal", None),
    "dawm_persistent_frac": ("share of baseline DAWM that stayed DAWM", None),
    "baseline_dawm_ml": ("baseline DAWM volume (compared region)", _ML),
    "followup_dawm_ml": ("follow-up DAWM volume on the baseline grid (compared region)", _ML),
    "dawm_change_ml": ("follow-up minus baseline DAWM volume", _ML),
    "n_baseline_lesions": ("baseline lesions (26-connected components of >= 3 voxels)", None),
    "n_followup_lesions": ("follow-up lesions (26-connected components of >= 3 voxels, baseline grid)", None),
    "n_new_lesions": ("new lesions: follow-up lesions of >= 3 voxels touching no baseline lesion voxel", None),
    "new_lesions_ml": ("volume of the new lesions", _ML),
    "n_enlarging_lesions": (
        "enlarging lesions: follow-up lesions touching baseline lesions and >= 1.5 times "
        "their volume (the touched baseline lesions together) and >= 3 voxels larger",
        None,
    ),
    "enlarging_lesions_ml": ("grown volume of the enlarging lesions (their voxels outside the baseline lesions)", _ML),
    "new_or_enlarging_ml": ("new_lesions_ml + enlarging_lesions_ml", _ML),
}


def _sidecar() -> dict:
    out = {}
    for name, (description, units) in COLUMNS.items():
        out[name] = {"Description": description, **({"Units": units} if units else {})}
    return out


def _session_data(s: PredictedSession) -> dict:
    """A session's label map, probabilities, preprocessed images and masks (its session grid)."""
    if not s.images:
        raise AlignmentError(f"no preprocessed T1w or FLAIR found ({DERIVATIVES}/{PreprocessFiles.NAME})")
    dseg = load_volume(s.dseg, allow_empty=True)
    images = {r: load_volume(p) for r, p in s.images.items()}
    first = next(iter(images.values()))
    brain = load_volume(s.brain).data > 0.5 if s.brain else first.data > 0
    fov = load_volume(s.fov, allow_empty=True).data > 0.5 if s.fov else np.ones(dseg.shape, bool)
    for what, shape in [("brain mask", brain.shape), ("fov mask", fov.shape), *((r, v.shape) for r, v in images.items())]:
        if shape != dseg.shape:
            raise InputError(f"{s.key}: {what} shape {shape} differs from the prediction's {dseg.shape}")
    return {
        "labels": np.rint(dseg.data).astype(np.uint8),
        "affine": dseg.affine,
        "images": {r: v.data for r, v in images.items()},
        "brain": brain,
        "fov": fov,
        "probs": {k: load_volume(p, allow_empty=True).data for k, p in s.probseg.items()},
    }


def _stale_outputs(f: PredictedSession, predict_dir: Path) -> list[Path]:
    return PredictFiles(predict_dir).longitudinal_files(f)


def _ids(baseline: PredictedSession, followup: PredictedSession) -> dict:
    return {"participant_id": baseline.participant_id, "baseline": session_id(baseline.session), "followup": session_id(followup.session)}


def compare_sessions(baseline: PredictedSession, followup: PredictedSession, predict_dir: Path) -> dict:
    """Align ``followup`` to ``baseline``, write its baseline-space maps and return its table row
    (the :data:`COLUMNS`; raises :class:`AlignmentError` / ``InputError`` on failure)."""
    b, f = _session_data(baseline), _session_data(followup)
    aln: Alignment = align_sessions(
        b["images"],
        f["images"],
        b["affine"],
        f["affine"],
        b["brain"],
        f["brain"],
        baseline_reference=baseline.reference,
        followup_reference=followup.reference,
    )
    shape, affine, tx = b["labels"].shape, b["affine"], aln.matrix_ras

    def pull(a: np.ndarray, interpolation: str = "nearest", fill: float = 0) -> np.ndarray:
        return followup_on_baseline(a, f["affine"], shape, affine, tx, fill_value=fill, interpolation=interpolation)

    moved = pull(f["labels"], fill=NOT_COMPARED)
    compared = b["fov"] & (pull(f["fov"].astype(np.uint8)) > 0) & (moved != NOT_COMPARED)
    base_c = np.where(compared, b["labels"], NOT_COMPARED).astype(np.uint8)
    moved_c = np.where(compared, moved, NOT_COMPARED).astype(np.uint8)
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    tmap = transition_map(base_c, moved_c)
    changes = lesion_changes(base_c == LESION, moved_c == LESION, voxel_ml)

    def ml(mask: np.ndarray) -> float:
        return float(np.count_nonzero(mask)) * voxel_ml

    row = {
        **_ids(baseline, followup),
        "status": "ok",
        **aln.as_dict(),
        "compared_brain_ml": ml(compared & b["brain"]),
        "baseline_lesion_ml": ml(base_c == LESION),
        "followup_lesion_ml": ml(moved_c == LESION),
        "lesion_change_ml": ml(moved_c == LESION) - ml(base_c == LESION),
        **transition_volumes(base_c, moved_c, voxel_ml),
        "lesion_to_normal_ml": ml((base_c == LESION) & (moved_c == NORMAL)),
        "lesion_to_dawm_ml": ml((base_c == LESION) & (moved_c == DAWM)),
        **changes.as_dict(),
    }

    # the maps, on the baseline grid, in the follow-up's folder
    for old in _stale_outputs(followup, predict_dir):
        old.unlink()
    reference = str(baseline.dseg.relative_to(predict_dir))
    common = {"SpatialReference": reference, "Sources": [str(followup.dseg.relative_to(predict_dir))], "Alignment": aln.as_dict()}

    files = PredictFiles(predict_dir)
    labels_on_baseline = np.where(moved == NOT_COMPARED, NORMAL, moved).astype(np.uint8)
    save_volume(labels_on_baseline, affine, files.baseline_dseg(followup), dtype=np.uint8)
    write_json(
        files.sidecar(files.baseline_dseg(followup)),
        {
            **common,
            "Description": "follow-up prediction (0 normal, 1 lesion, 2 DAWM) on the baseline grid, nearest neighbour; "
            "0 outside the follow-up's field of view",
        },
    )
    for label, prob in f["probs"].items():
        save_volume(pull(prob, "linear").astype(np.float32), affine, files.baseline_probseg(followup, label), dtype=np.float32)
        write_json(
            files.sidecar(files.baseline_probseg(followup, label)),
            {**common, "Description": f"follow-up {label} probability on the baseline grid (linear interpolation)"},
        )
    save_volume(tmap, affine, files.transition_dseg(followup), dtype=np.uint8)
    write_json(
        files.sidecar(files.transition_dseg(followup)),
        {
            **common,
            "Description": "voxel transition from the baseline to this follow-up",
            "Labels": {str(k): v for k, v in TRANSITION_CODES.items()},
        },
    )
    save_volume(changes.change_map, affine, files.lesion_change_dseg(followup), dtype=np.uint8)
    write_json(
        files.sidecar(files.lesion_change_dseg(followup)),
        {
            **common,
            "Description": "lesions new or enlarging since the baseline",
            "Labels": {str(k): v for k, v in CHANGE_CODES.items()},
            "Definitions": {
                "lesion": "26-connected component of the lesion label",
                "new_lesion": COLUMNS["n_new_lesions"][0],
                "enlarging_lesion": COLUMNS["n_enlarging_lesions"][0] + "; label 2 marks the grown voxels only",
            },
        },
    )
    write_json(
        files.baseline_xfm(followup),
        {
            "Convention": "pull: maps baseline session-grid world RAS mm to this session's session-grid world RAS mm "
            "(resample this session onto the baseline grid with it)",
            "MatrixRAS": tx,
            "InverseMatrixRAS": np.linalg.inv(tx),
            "Baseline": reference,
            **aln.as_dict(),
        },
    )
    return row


def subject_transitions(sessions: list[PredictedSession], predict_dir: str | Path) -> pd.DataFrame:
    """One row per follow-up of one subject's sessions (sorted; the first is the baseline), written
    as ``sub-X/sub-X_desc-longitudinal_transitions.tsv``; empty for fewer than two sessions."""
    predict_dir = Path(predict_dir)
    if len(sessions) < 2:
        return pd.DataFrame(columns=list(COLUMNS))
    baseline, rows = sessions[0], []
    for followup in sessions[1:]:
        try:
            rows.append(compare_sessions(baseline, followup, predict_dir))
            log.info("%s -> %s: aligned (brain Dice %.3f)", baseline.key, followup.key, rows[-1]["alignment_brain_dice"])
        except (AlignmentError, InputError, ValueError, RuntimeError, OSError) as exc:
            log.error("%s -> %s: longitudinal comparison failed: %s", baseline.key, followup.key, exc)
            for old in _stale_outputs(followup, predict_dir):
                old.unlink()
            rows.append({**_ids(baseline, followup), "status": f"failed: {exc}"})
    table = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    files = PredictFiles(predict_dir)
    write_tsv(files.transitions(baseline.subject), table)
    write_json(files.sidecar(files.transitions(baseline.subject)), _sidecar())
    return table


def longitudinal_outputs(predict_dir: str | Path) -> pd.DataFrame:
    """Longitudinal transitions of every subject of a ``dawm predict`` folder with two or more
    sessions (see the module docstring). Returns every subject's rows (columns :data:`COLUMNS`, one
    row per follow-up; empty when no subject has two sessions), also written as ``transitions.tsv``."""
    predict_dir = Path(predict_dir)
    subjects = predicted_sessions(predict_dir)
    tables = []
    for subject, sessions in subjects.items():
        if len(sessions) < 2 or any(s.session is None for s in sessions):
            log.info("%s: %d session(s), no longitudinal comparison", participant_id(subject), len(sessions))
            continue
        tables.append(subject_transitions(sessions, predict_dir))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(COLUMNS))
    files = PredictFiles(predict_dir)
    write_tsv(files.transitions_table, table)
    write_json(files.sidecar(files.transitions_table), _sidecar())
    return table
