"""The simulator's truth on the session grids of ``dawm preprocess``, for tests, benchmarks and the demo.

The truth (``derivatives/dawm-truth``) holds subject-space label maps and, per session,
``SubjectToScanner[group]`` matrices (subject world -> each acquisition's scanner world, RAS mm).
The session grid lives in the reference acquisition's scanner world, so the truth is pulled onto it
with ``inv(S[ref])`` (nearest neighbour: labels stay labels), and the true session -> acquisition
transform (pull convention, as the ``from-<group>_to-session`` matrices) is ``S[group] @ inv(S[ref])``.

:func:`write_truth_labels` writes the true pathology (0 normal, 1 lesion, 2 DAWM) of every
preprocessed session as a label derivative shaped like ``dawm label``'s
(``*_space-session_desc-dawm_dseg.nii.gz``): training targets and a reference for ``dawm evaluate``.
Only the simulator's side reads the truth this way; the stages never import this module.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dawm.bids.derivative_files import LabelFiles, PreprocessFiles, SessionLike, TruthFiles
from dawm.bids.derivatives import init_derivative, write_dseg_tsv
from dawm.bids.layout import SessionRef
from dawm.image.io import load_volume, save_volume
from dawm.image.resample import resample
from dawm.labels import DAWM_LABELS

TRUTH = TruthFiles.NAME


def reference_group(preproc_log: dict) -> str:
    """The acquisition group (e.g. ``T1w``) whose grid is the session grid: the one the preprocess
    log (parsed) registered to nothing."""
    return next(g for g, i in preproc_log["Registration"].items() if i["metric"] is None)


def pull_to_session(
    data: np.ndarray, affine: np.ndarray, subject_to_scanner: np.ndarray, shape: tuple[int, int, int], grid_affine: np.ndarray
) -> np.ndarray:
    """A subject-space truth image (``data``, ``affine``) on a grid of that session's scanner world
    (``shape``, ``grid_affine``), nearest neighbour, pulled through ``inv(subject_to_scanner)``: the
    simulator's ``SubjectToScanner`` matrix of the acquisition that defines the grid (for the
    session grid, :func:`reference_group`'s)."""
    return resample(data, affine, shape, grid_affine, interpolation="nearest", transform=np.linalg.inv(np.asarray(subject_to_scanner)))


def truth_on_session_grid(bids_dir: str | Path, out_root: str | Path, inputs: SessionLike, **entities: str) -> np.ndarray:
    """A truth image of ``inputs`` (``space-subject`` plus ``entities``, e.g. ``desc="pathology",
    suffix="dseg"``) pulled onto the session grid of the preprocess outputs in ``out_root`` (the grid
    of their brain mask) with nearest-neighbour interpolation (labels stay labels)."""
    truth, pre = TruthFiles.in_dataset(bids_dir), PreprocessFiles(out_root)
    s2s = json.loads(truth.subject_to_scanner(inputs).read_text())["SubjectToScanner"]
    info = json.loads(pre.log(inputs).read_text())
    grid = load_volume(pre.brain_mask(inputs), allow_empty=True)
    t = load_volume(truth.subject_space(inputs, **entities), allow_empty=True)
    return pull_to_session(t.data, t.affine, s2s[reference_group(info)], grid.shape, grid.affine)


def truth_dseg_on_session_grid(bids_dir: str | Path, preproc_log: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The true pathology dseg (uint8) on the session grid recorded in the preprocess log
    ``preproc_log`` (``SessionGrid``); returns ``(dseg, affine)``: what :func:`write_truth_labels` writes."""
    bids_dir, preproc_log = Path(bids_dir), Path(preproc_log)
    info = json.loads(preproc_log.read_text())
    session = SessionRef(info["Subject"], info.get("Session"))
    truth_files = TruthFiles.in_dataset(bids_dir)
    s2s = json.loads(truth_files.subject_to_scanner(session).read_text())["SubjectToScanner"]
    grid = info["SessionGrid"]
    shape, affine = tuple(grid["shape"]), np.asarray(grid["affine"])
    truth = load_volume(truth_files.pathology_dseg(session), allow_empty=True)
    dseg = pull_to_session(np.rint(truth.data).astype(np.uint8), truth.affine, s2s[reference_group(info)], shape, affine)
    return dseg.astype(np.uint8), affine


def write_truth_labels(
    bids_dir: str | Path, *, name: str = LabelFiles.NAME, preprocess: str = PreprocessFiles.NAME, dawm_from: str | None = None
) -> Path:
    """Write ``derivatives/<name>`` with every preprocessed session's true pathology dseg
    (:func:`truth_dseg_on_session_grid`).

    ``dawm_from``: another label folder (e.g. ``dawm-label``, the qMRI labels) whose DAWM is kept:
    its dseg with its lesions replaced by the true lesions (DAWM under a true lesion becomes lesion),
    and a copy of its ``label-DAWM_probseg``. Training targets whose lesions hold the small lesions
    that a rater's mask leaves out, and whose DAWM is still the labels'. Sessions it lacks are skipped."""
    bids_dir = Path(bids_dir)
    labels = LabelFiles.in_dataset(bids_dir, name)
    source = LabelFiles.in_dataset(bids_dir, dawm_from) if dawm_from else None
    root = init_derivative(
        labels.root,
        name=f"simulator truth as {LabelFiles.NAME} targets",
        description="true pathology of dawm simulate pulled onto the preprocess session grids"
        + (f", with the DAWM of {dawm_from}" if dawm_from else ""),
        source="../..",
    )
    write_dseg_tsv(labels.dawm_lut, DAWM_LABELS)
    pre = PreprocessFiles.in_dataset(bids_dir, preprocess)
    for session in pre.sessions():
        dseg, affine = truth_dseg_on_session_grid(bids_dir, pre.log(session))
        if source is not None:
            if not source.dseg(session).exists():
                continue
            kept = np.rint(load_volume(source.dseg(session), allow_empty=True).data).astype(np.uint8)
            dseg = np.where(dseg == 1, 1, np.where(kept == 2, 2, 0)).astype(np.uint8)
            if source.dawm_probseg(session).exists():
                prob = load_volume(source.dawm_probseg(session), allow_empty=True)
                save_volume(prob.data.astype(np.float32), prob.affine, labels.dawm_probseg(session), dtype=np.float32)
        save_volume(dseg, affine, labels.dseg(session), dtype=np.uint8)
    return root
