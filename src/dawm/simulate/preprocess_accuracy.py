"""Accuracy of ``dawm preprocess`` outputs against the simulator's truth (``derivatives/dawm-truth``).

Used by the tests, the demo and ``benchmarks/preprocess_benchmark.py``. The truth is pulled onto the
session grid by :mod:`dawm.simulate.truth`; the true session -> acquisition transform (pull
convention, as the ``from-<group>_to-session`` matrices) is ``S[group] @ inv(S[ref])``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from dawm.bids.derivative_files import PreprocessFiles, TruthFiles
from dawm.bids.layout import SessionInputs
from dawm.image.io import load_volume
from dawm.image.resample import resample
from dawm.metrics import dice
from dawm.simulate.truth import reference_group, truth_on_session_grid


def rigid_error_mm(estimated: np.ndarray, true: np.ndarray, points_ras: np.ndarray) -> float:
    """Mean distance (mm) between where two 4x4 transforms send ``points_ras`` (N, 3)."""
    homog = np.c_[points_ras, np.ones(len(points_ras))]
    diff = homog @ (np.asarray(estimated) - np.asarray(true)).T
    return float(np.linalg.norm(diff[:, :3], axis=1).mean())


def coefficient_of_variation(image: np.ndarray, mask: np.ndarray) -> float:
    """std / mean of ``image`` inside ``mask``."""
    values = np.asarray(image, dtype=np.float64)[mask]
    return float(values.std() / values.mean())


def evaluate_session(bids_dir: str | Path, out_root: str | Path, inputs: SessionInputs) -> dict[str, float]:
    """Compare one session's outputs with the truth.

    Returns ``coreg_error_mm_<group>`` (mean displacement over true brain voxels between the estimated
    and true session -> acquisition transforms), ``brain_dice``, ``wm_dice``, ``csf_dice``, ``gm_dice``
    and, for the reference image when it was bias-corrected, ``wm_cov_raw`` / ``wm_cov_n4`` (WM intensity
    coefficient of variation in the eroded true WM, before / after N4).
    """
    bids_dir, out_root = Path(bids_dir), Path(out_root)
    truth, pre = TruthFiles.in_dataset(bids_dir), PreprocessFiles(out_root)
    s2s = {k: np.asarray(v) for k, v in json.loads(truth.subject_to_scanner(inputs).read_text())["SubjectToScanner"].items()}
    info = json.loads(pre.log(inputs).read_text())
    ref_group = reference_group(info)
    to_subject = np.linalg.inv(s2s[ref_group])

    brain_out = load_volume(pre.brain_mask(inputs), allow_empty=True)
    shape, affine = brain_out.shape, brain_out.affine

    def truth_on_grid(desc_suffix: dict) -> np.ndarray:
        return truth_on_session_grid(bids_dir, out_root, inputs, **desc_suffix)

    brain_true = truth_on_grid({"label": "brain", "suffix": "mask"}) > 0.5
    dseg_true = np.rint(truth_on_grid({"suffix": "dseg"})).astype(int)
    dseg_out = load_volume(pre.tissue_dseg(inputs), allow_empty=True).data.astype(int)
    result: dict[str, float] = {
        "brain_dice": dice(brain_out.data > 0, brain_true),
        "csf_dice": dice(dseg_out == 1, dseg_true == 1),
        "gm_dice": dice(dseg_out == 2, dseg_true == 2),
        "wm_dice": dice(dseg_out == 3, dseg_true == 3),
    }
    points = np.argwhere(brain_true) @ affine[:3, :3].T + affine[:3, 3]
    for group in info["Registration"]:
        if group == ref_group or group not in s2s:
            continue
        est = np.asarray(json.loads(pre.acquisition_xfm(inputs, group).read_text())["MatrixRAS"])
        result[f"coreg_error_mm_{group}"] = rigid_error_mm(est, s2s[group] @ to_subject, points)

    ref = info["Reference"]
    corrected_path = pre.image(inputs, ref)
    if corrected_path.exists() and ref in inputs.images:
        raw = load_volume(inputs.images[ref])
        raw_on_grid = resample(raw.data, raw.affine, shape, affine)
        wm = ndimage.binary_erosion(dseg_true == 3, iterations=1)
        result["wm_cov_raw"] = coefficient_of_variation(raw_on_grid, wm)
        corrected = load_volume(corrected_path).data
        result["wm_cov_n4"] = coefficient_of_variation(corrected, wm)
        true_field_path = truth.bias_field(inputs, ref)
        if true_field_path.exists():
            field = load_volume(true_field_path)
            true_on_grid = resample(field.data, field.affine, shape, affine, fill_value=1.0)
            inside = brain_true & (corrected > 0) & (raw_on_grid > 0)
            estimated = raw_on_grid[inside] / corrected[inside]
            result.update(bias_field_removal(true_on_grid[inside], estimated))
    return result


def bias_field_removal(true_field: np.ndarray, estimated_field: np.ndarray) -> dict[str, float]:
    """How much of a multiplicative bias field an estimate removes, on voxels inside the brain.

    Both fields are compared in log space up to a global scale (N4's field has an arbitrary mean):
    ``bias_logsd_raw`` is the SD of log(true field), ``bias_logsd_residual`` the SD of
    log(true / estimated), and ``bias_removed`` = 1 - residual / raw (1: all removed, 0: none).
    """
    log_true = np.log(np.clip(true_field, 1e-6, None))
    residual = log_true - np.log(np.clip(estimated_field, 1e-6, None))
    raw_sd, res_sd = float(log_true.std()), float(residual.std())
    return {"bias_logsd_raw": raw_sd, "bias_logsd_residual": res_sd, "bias_removed": 1.0 - res_sd / raw_sd if raw_sd > 0 else float("nan")}
