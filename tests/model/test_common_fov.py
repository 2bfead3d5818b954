"""Volumes inside the field of view that all sessions of a subject share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dawm.image.io import save_volume
from dawm.image.registration import save_transform
from dawm.image.template import load_template
from dawm.model.common_fov import common_fov_volumes


def _session(root: Path, name: str, fov: np.ndarray, brain: np.ndarray, dseg: np.ndarray, affine: np.ndarray) -> dict:
    folder = root / name
    folder.mkdir()
    save_volume(fov.astype(np.uint8), affine, folder / f"{name}_space-session_desc-fov_mask.nii.gz", dtype=np.uint8)
    save_volume(brain.astype(np.uint8), affine, folder / f"{name}_space-session_desc-brain_mask.nii.gz", dtype=np.uint8)
    save_transform(np.eye(4), folder / f"{name}_from-session_to-MNI152NLin2009cSym_mode-image_xfm.h5")
    save_transform(np.eye(4), folder / f"{name}_from-MNI152NLin2009cSym_to-session_mode-image_xfm.h5")
    save_volume(dseg, affine, folder / f"{name}_space-session_desc-dawm_dseg.nii.gz", dtype=np.uint8)
    return {
        "participant_id": "sub-01",
        "session_id": name,
        "preproc_dir": folder,
        "dseg": folder / f"{name}_space-session_desc-dawm_dseg.nii.gz",
    }


def test_a_session_with_fewer_slices_does_not_lose_volume_in_the_common_field_of_view(tmp_path: Path) -> None:
    tpl = load_template(2)
    shape, affine = tpl.brain_mask.shape, tpl.affine
    brain = tpl.brain_mask > 0.5
    dseg = np.zeros(shape, np.uint8)
    dseg[40:50, 50:60, 30:35] = 1  # a lesion low in the brain, seen by both sessions
    dseg[40:50, 50:60, 70:75] = 1  # one near the vertex, outside the second session's slices
    full = np.ones(shape, bool)
    cut = full.copy()
    cut[:, :, 60:] = False  # the second session's slices stop 120 mm above the grid's bottom
    rows = common_fov_volumes(
        [_session(tmp_path, "ses-01", full, brain, dseg, affine), _session(tmp_path, "ses-02", cut, brain & cut, dseg * cut, affine)]
    )
    assert list(rows.session_id) == ["ses-01", "ses-02"]
    # 2 mm voxels: 500 lesion voxels inside the common field of view are 4 ml, in both sessions
    assert rows.lesion_ml.tolist() == pytest.approx([4.0, 4.0])
    assert rows.brain_ml.iloc[0] == pytest.approx(rows.brain_ml.iloc[1])
    assert rows.common_fov_share.iloc[0] < 1.0 and rows.common_fov_share.iloc[1] == pytest.approx(1.0)
    assert common_fov_volumes([_session(tmp_path, "ses-03", full, brain, dseg, affine)]).empty
