"""Training targets from the simulator's truth, for tests and benchmarks: the subject-space
pathology map (0 normal, 1 lesion, 2 DAWM) of ``derivatives/dawm-truth`` pulled onto each
session grid of ``dawm preprocess`` (nearest neighbour, with ``inv(SubjectToScanner[reference])``,
see :mod:`dawm.preprocess.evaluate`), written as a label derivative shaped like ``dawm label``'s
(``*_space-session_desc-dawm_dseg.nii.gz``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dawm.bids.derivatives import init_derivative, write_dseg_tsv
from dawm.image.io import load_volume, save_volume
from dawm.model import LABELS
from dawm.preprocess.evaluate import TRUTH, pull_to_session, reference_group


def truth_on_session_grid(bids_dir: str | Path, preproc_log: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The true pathology dseg (uint8) on the session grid of the session whose preprocess log is
    ``preproc_log``; returns ``(dseg, affine)``."""
    bids_dir, preproc_log = Path(bids_dir), Path(preproc_log)
    info = json.loads(preproc_log.read_text())
    sub, ses = info["Subject"], info.get("Session")
    key = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
    tdir = bids_dir / "derivatives" / TRUTH / f"sub-{sub}" / (f"ses-{ses}" if ses else "") / "anat"
    s2s = json.loads((tdir / f"{key}_from-subject_to-scanner_mode-image_xfm.json").read_text())["SubjectToScanner"]
    grid = info["SessionGrid"]
    shape, affine = tuple(grid["shape"]), np.asarray(grid["affine"])
    truth = load_volume(tdir / f"{key}_space-subject_desc-pathology_dseg.nii.gz", allow_empty=True)
    dseg = pull_to_session(np.rint(truth.data).astype(np.uint8), truth.affine, s2s[reference_group(info)], shape, affine)
    return dseg.astype(np.uint8), affine


def write_truth_labels(bids_dir: str | Path, *, name: str = "dawm-label", preprocess: str = "dawm-preprocess") -> Path:
    """Write ``derivatives/<name>`` with every preprocessed session's true pathology dseg."""
    bids_dir = Path(bids_dir)
    root = init_derivative(bids_dir / "derivatives" / name, name="simulator truth as dawm-label targets",
                           description="true pathology of dawm simulate pulled onto the preprocess session grids", source="../..")
    write_dseg_tsv(root / "desc-dawm_dseg.tsv", LABELS)
    for log_file in sorted((bids_dir / "derivatives" / preprocess).glob("sub-*/**/anat/*_desc-preproc_log.json")):
        dseg, affine = truth_on_session_grid(bids_dir, log_file)
        rel = log_file.relative_to(bids_dir / "derivatives" / preprocess)
        out = root / rel.parent / log_file.name.replace("_desc-preproc_log.json", "_space-session_desc-dawm_dseg.nii.gz")
        save_volume(dseg, affine, out, dtype=np.uint8)
    return root
