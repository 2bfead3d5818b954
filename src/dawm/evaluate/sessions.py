"""Per-session image work of ``dawm evaluate``: overlap scores of a prediction against its
reference (overall and per location class), DAWM transitions between two sessions of a subject,
and the background image of an overlay. Every function reads its session's files itself, so
sessions can be scored one at a time (and fail one at a time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dawm.bids.derivative_files import PreprocessFiles, SegmentationFiles, TruthFiles
from dawm.evaluate.evolution import followup_on_baseline, register_followup_to_baseline, transition_volumes, transitions_from_truth_map
from dawm.evaluate.inputs import SessionPair, load_labels, on_grid
from dawm.evaluate.metrics import lesion_detection, overlap_metrics
from dawm.image.io import load_volume
from dawm.image.resample import voxel_sizes
from dawm.label.locations import location_classes
from dawm.label.pipeline import MNI
from dawm.labels import DAWM, LESION, LOCATION_LABELS
from dawm.model.volumes import mni_coordinates

#: Evaluated classes and their dseg labels.
CLASSES = {"lesion": LESION, "dawm": DAWM}


@dataclass
class SessionScore:
    """One row per class (``metrics``) and per class x location class (``locations``)."""

    metrics: list[dict]
    locations: list[dict] = field(default_factory=list)
    location_source: str = "none"


def load_pair(pair: SessionPair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pred, ref, affine)``: uint8 labels on the prediction grid (the reference resampled,
    nearest neighbour, when its grid differs; both live in the session's scanner world)."""
    pred, ref = load_labels(pair.pred), load_labels(pair.ref)
    return pred.data, on_grid(ref, pred.shape, pred.affine), pred.affine


def location_map(
    pair: SessionPair, pred: np.ndarray, ref: np.ndarray, affine: np.ndarray, pre_dir: Path | None
) -> tuple[np.ndarray | None, str]:
    """Location classes on the prediction grid: the reference folder's ``desc-location_dseg``
    when present, else computed as ``dawm predict`` does (preprocess dseg and brain mask, MNI
    coordinates through the session's MNI transform) over WM plus every predicted or reference
    label; ``(None, "none")`` without either."""
    own = SegmentationFiles.location_of(pair.ref)
    if own.exists():
        return on_grid(load_labels(own), pred.shape, affine), "reference folder"
    if pre_dir is None:
        return None, "none"
    pre = PreprocessFiles(pre_dir)
    dseg = on_grid(load_labels(pre.tissue_dseg(pair)), pred.shape, affine)
    brain = on_grid(load_labels(pre.brain_mask(pair)), pred.shape, affine) > 0
    xfm = pre.from_template_xfm(pair, MNI)
    mni = mni_coordinates(xfm, pred.shape, affine)
    wm = (dseg == 3) | (pred > 0) | (ref > 0)
    return location_classes(dseg, brain, voxel_sizes(affine), wm=wm, mni_xyz=mni, affine=affine), "computed (preprocess)"


def score_session(pair: SessionPair, *, locations: bool = True, pre_dir: Path | None = None) -> SessionScore:
    """Overlap metrics (and lesion-wise detection for lesions) of each class; with ``locations``,
    Dice, sensitivity and volume error per location class as well (see :func:`location_map`)."""
    pred, ref, affine = load_pair(pair)
    spacing = voxel_sizes(affine)
    rows = []
    for name, lab in CLASSES.items():
        p, r = pred == lab, ref == lab
        row = {**pair.ids, "class": name, **overlap_metrics(p, r, spacing).as_dict()}
        if name == "lesion":
            row.update(lesion_detection(p, r, spacing))
        rows.append(row)
    score = SessionScore(rows)
    loc, score.location_source = location_map(pair, pred, ref, affine, pre_dir) if locations else (None, "none")
    if loc is None:
        return score
    for k, where in LOCATION_LABELS.items():
        if k == 0:
            continue
        inside = loc == k
        for name, lab in CLASSES.items():
            m = overlap_metrics((pred == lab) & inside, (ref == lab) & inside, spacing)
            score.locations.append(
                {
                    **pair.ids,
                    "class": name,
                    "location": where,
                    "dice": m.dice,
                    "sensitivity": m.recall,
                    "precision": m.precision,
                    "volume_pred_ml": m.volume_pred_ml,
                    "volume_ref_ml": m.volume_ref_ml,
                    "volume_error_ml": m.volume_error_ml,
                }
            )
    return score


def _t1_and_mask(pre_dir: Path, pair: SessionPair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pre = PreprocessFiles(pre_dir)
    t1 = load_volume(pre.image(pair, "T1w"))
    mask = load_volume(pre.brain_mask(pair))
    return t1.data, t1.affine, on_grid(mask, t1.shape, t1.affine) > 0.5


def session_transitions(baseline: SessionPair, followup: SessionPair, pre_dir: Path, truth_dir: Path | None) -> list[dict]:
    """Transition volumes (ml) and fractions of baseline DAWM from ``baseline`` to ``followup``,
    one row per source: ``predicted`` and ``reference`` (the follow-up registered rigidly to the
    baseline on the preprocessed T1w within brain masks, labels pulled onto the baseline grid,
    voxels outside the follow-up's field of view left out) and, when ``truth_dir`` holds the
    follow-up's ``desc-transition_dseg``, ``truth`` (the simulator's own transition map, which is
    relative to the session before)."""
    b_pred, b_ref, b_aff = load_pair(baseline)
    f_pred, f_ref, f_aff = load_pair(followup)
    b_t1, b_t1_aff, b_mask = _t1_and_mask(pre_dir, baseline)
    f_t1, f_t1_aff, f_mask = _t1_and_mask(pre_dir, followup)
    tx = register_followup_to_baseline(b_t1, b_t1_aff, f_t1, f_t1_aff, baseline_mask=b_mask, followup_mask=f_mask)
    voxel_ml = float(np.prod(voxel_sizes(b_aff))) / 1000.0
    ids = {"participant_id": baseline.ids["participant_id"], "baseline": baseline.ids["session_id"], "followup": followup.ids["session_id"]}
    rows = []
    for source, base, fol in (("predicted", b_pred, f_pred), ("reference", b_ref, f_ref)):
        moved = followup_on_baseline(fol, f_aff, b_pred.shape, b_aff, tx, fill_value=255)
        rows.append({**ids, "source": source, **transition_volumes(base, moved, voxel_ml)})
    truth = TruthFiles(truth_dir).transition_dseg(followup) if truth_dir else None
    if truth is not None and truth.exists():
        vol = load_labels(truth)
        rows.append({**ids, "source": "truth", **transitions_from_truth_map(vol.data, float(np.prod(voxel_sizes(vol.affine))) / 1000.0)})
    return rows


def background_image(
    pair: SessionPair, pre_dir: Path | None, shape: tuple[int, int, int], affine: np.ndarray
) -> tuple[np.ndarray | None, str]:
    """The preprocessed FLAIR (else T1w) of the session on the prediction grid, and its name."""
    for suffix in ("FLAIR", "T1w"):
        path = PreprocessFiles(pre_dir).image(pair, suffix) if pre_dir else None
        if path is not None and path.exists():
            return on_grid(load_volume(path), shape, affine, "linear"), suffix
    return None, ""
