"""``longitudinal_outputs`` on a tiny hand-made ``dawm predict`` folder (the file names predict
writes): a subject with a shifted follow-up, one with a single session (skipped) and one whose
follow-up cannot be aligned (reported, the others still written)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from longitudinal_phantoms import session

from dawm.longitudinal import COLUMNS, longitudinal_outputs

SHIFT = (4.0, -3.0, 2.5)


def _save(array, affine, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))


def _write_session(pred: Path, sub: str, ses: str, s: dict, *, brain: np.ndarray | None = None) -> None:
    key = f"sub-{sub}_ses-{ses}"
    anat = pred / f"sub-{sub}" / f"ses-{ses}" / "anat"
    pre = pred / "derivatives" / "dawm-preprocess" / f"sub-{sub}" / f"ses-{ses}" / "anat"
    _save(s["labels"].astype(np.uint8), s["affine"], anat / f"{key}_space-session_desc-dawm_dseg.nii.gz")
    (anat / f"{key}_space-session_desc-dawm_dseg.json").write_text(json.dumps({"Sources": []}))
    _save(s["lesion_prob"], s["affine"], anat / f"{key}_space-session_label-lesion_probseg.nii.gz")
    _save(s["dawm_prob"], s["affine"], anat / f"{key}_space-session_label-DAWM_probseg.nii.gz")
    _save(s["image"], s["affine"], pre / f"{key}_space-session_desc-preproc_T1w.nii.gz")
    _save(s["brain"] if brain is None else brain, s["affine"], pre / f"{key}_space-session_desc-brain_mask.nii.gz")
    _save(np.ones(s["brain"].shape, np.uint8), s["affine"], pre / f"{key}_space-session_desc-fov_mask.nii.gz")
    (pre / f"{key}_desc-preproc_log.json").write_text(json.dumps({"Reference": "T1w"}))


@pytest.fixture()
def predict_dir(tmp_path) -> Path:
    pred = tmp_path / "predict"
    pred.mkdir()
    (pred / "dataset_description.json").write_text(
        json.dumps({"Name": "dawm predict", "DatasetType": "derivative", "SourceDatasets": [{"URL": str(tmp_path / "absent")}]})
    )
    base, fu = session((-31.0, -31.0, -31.0)), session((-30.0, -31.0, -32.0), SHIFT, followup=True)
    _write_session(pred, "a", "02", fu)  # written first: sessions are sorted by label, not by discovery
    _write_session(pred, "a", "01", base)
    _write_session(pred, "b", "01", base)  # one session: skipped
    _write_session(pred, "c", "01", base)
    corner = np.zeros_like(fu["brain"])
    corner[12:16, 12:16, 12:16] = 1  # a brain mask far smaller than the baseline's: no alignment can pass the check
    _write_session(pred, "c", "02", fu, brain=corner)
    return pred


def test_longitudinal_outputs_of_a_predict_folder(predict_dir):
    table = longitudinal_outputs(predict_dir)
    assert list(table.columns) == list(COLUMNS)
    assert table[["participant_id", "baseline", "followup"]].values.tolist() == [
        ["sub-a", "ses-01", "ses-02"],
        ["sub-c", "ses-01", "ses-02"],
    ]
    a, c = table.iloc[0], table.iloc[1]
    assert a.status == "ok" and c.status.startswith("failed: ") and "brain-mask Dice" in c.status
    assert a.alignment_translation_mm == pytest.approx(np.linalg.norm(SHIFT), abs=0.5)
    assert (a.n_new_lesions, a.n_enlarging_lesions) == (2, 0) and a.dawm_to_lesion_frac > 0.6
    assert a.baseline_dawm_ml > 0 and a.followup_dawm_ml == 0
    assert pd.isna(c.new_lesions_ml)

    # files: per-subject table and sidecar, top-level table, the follow-up's maps on the baseline grid
    for sub in ("a", "c"):
        tsv = predict_dir / f"sub-{sub}" / f"sub-{sub}_desc-longitudinal_transitions.tsv"
        assert tsv.exists() and (tsv.with_suffix(".json")).exists()
    assert not (predict_dir / "sub-b" / "sub-b_desc-longitudinal_transitions.tsv").exists()
    top = pd.read_csv(predict_dir / "transitions.tsv", sep="\t", na_values="n/a")
    assert len(top) == 2 and top.loc[0, "n_new_lesions"] == 2
    sidecar = json.loads((predict_dir / "transitions.json").read_text())
    assert sidecar["new_lesions_ml"]["Units"] == "ml" and "touching no baseline lesion" in sidecar["n_new_lesions"]["Description"]

    anat = predict_dir / "sub-a" / "ses-02" / "anat"
    base_img = nib.load(str(predict_dir / "sub-a" / "ses-01" / "anat" / "sub-a_ses-01_space-session_desc-dawm_dseg.nii.gz"))
    for name in ("desc-dawm_dseg", "label-lesion_probseg", "label-DAWM_probseg", "desc-transition_dseg", "desc-lesionchange_dseg"):
        img = nib.load(str(anat / f"sub-a_ses-02_space-baseline_{name}.nii.gz"))
        assert img.shape == base_img.shape and np.allclose(img.affine, base_img.affine)
        meta = json.loads((anat / f"sub-a_ses-02_space-baseline_{name}.json").read_text())
        assert meta["SpatialReference"] == "sub-a/ses-01/anat/sub-a_ses-01_space-session_desc-dawm_dseg.nii.gz"
    change = np.asarray(nib.load(str(anat / "sub-a_ses-02_space-baseline_desc-lesionchange_dseg.nii.gz")).dataobj)
    assert (change == 1).sum() * 0.008 == pytest.approx(a.new_lesions_ml)
    xfm = json.loads((anat / "sub-a_ses-02_from-session_to-baseline_mode-image_xfm.json").read_text())
    assert np.allclose(np.asarray(xfm["MatrixRAS"])[:3, 3], SHIFT, atol=0.3)
    assert not list((predict_dir / "sub-c" / "ses-02" / "anat").glob("*space-baseline*"))

    # a re-run gives the same table; a folder without longitudinal subjects gives an empty one
    again = longitudinal_outputs(predict_dir)
    pd.testing.assert_frame_equal(again, table)


def test_no_subject_with_two_sessions(tmp_path):
    pred = tmp_path / "predict"
    _write_session(pred, "b", "01", session((-31.0, -31.0, -31.0)))
    table = longitudinal_outputs(pred)
    assert table.empty and list(table.columns) == list(COLUMNS)
    assert (pred / "transitions.tsv").read_text().startswith("participant_id\tbaseline")
