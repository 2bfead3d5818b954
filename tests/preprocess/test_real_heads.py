"""What real clinical heads need: skull-stripped and MNI-space inputs detected, a contrast-free
check of the template registration, the share of the brain inside a field of view; and, where
``../shared/real-ms`` is present, the real scans themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from dawm.image.io import Volume
from dawm.image.template import load_template
from dawm.preprocess.brain import extract_brain, looks_like_mni, looks_skull_stripped, tissue_fit
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import brain_coverage, registration_accepted

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-ms"
FSL_MNI_1MM = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])


def _ellipsoid(shape, radii_vox) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii_vox)) <= 1.0


def test_a_stripped_brain_is_told_from_a_head() -> None:
    rng = np.random.default_rng(0)
    shape, affine = (90, 110, 90), np.diag([2.0, 2.0, 2.0, 1.0])
    brain = _ellipsoid(shape, (33, 42, 30))  # 66 x 84 x 60 mm semi-axes: about 1.4 L
    stripped = np.where(brain, 100.0 + rng.normal(0, 5, shape), 0.0).astype(np.float32)
    is_stripped, ml = looks_skull_stripped(stripped, affine)
    assert is_stripped and 1200 < ml < 1600
    # the same brain inside a skull and scalp (a 4 L head) over Rician-like background noise
    head = _ellipsoid(shape, (42, 52, 40))
    with_head = np.where(head, 60.0, 0.0) + np.abs(rng.normal(0, 3, shape))
    with_head[brain] = stripped[brain]
    assert looks_skull_stripped(with_head.astype(np.float32), affine)[0] is False
    # a head whose background the scanner zeroed (as the real 2D protocols store it) is still a head
    zeroed = np.where(head, with_head, 0.0).astype(np.float32)
    assert looks_skull_stripped(zeroed, affine)[0] is False
    # a small head (1.9 L, under the brain-size bound) at high SNR: its air is faint noise, not zeros
    small = _ellipsoid(shape, (36, 46, 34))
    quiet = np.where(small, 60.0, 0.0) + np.abs(rng.normal(0, 0.2, shape))
    quiet[brain] = stripped[brain]
    stripped_too, small_ml = looks_skull_stripped(quiet.astype(np.float32), affine)
    assert small_ml < 2200 and stripped_too is False


def test_mni_grids_are_recognised() -> None:
    assert looks_like_mni((182, 218, 182), FSL_MNI_1MM) == "MNI152 (FSL)"
    two_mm = FSL_MNI_1MM.copy()
    two_mm[:3, :3] *= 2
    assert looks_like_mni((91, 109, 91), two_mm) == "MNI152 (FSL)"
    shifted = FSL_MNI_1MM.copy()
    shifted[:3, 3] += [0, 15, 0]
    assert looks_like_mni((182, 218, 182), shifted) is None
    assert looks_like_mni((256, 256, 48), np.diag([0.9, 0.9, 3.0, 1.0])) is None


def test_tissue_fit_separates_a_registration_that_missed_whatever_the_contrast() -> None:
    tpl = load_template(2)
    brain = tpl.brain_mask > 0.5
    shifted = sitk.TranslationTransform(3, (0.0, 0.0, 20.0))
    # a FLAIR-like contrast (CSF dark, GM brighter than WM) made from the priors: the T1 template
    # correlation cannot judge it, the tissue fit can
    flair_like = (0.1 * tpl.csf + 1.0 * tpl.gm + 0.7 * tpl.wm).astype(np.float32)
    good = tissue_fit(flair_like, tpl.affine, brain, sitk.Euler3DTransform(), tpl)
    bad = tissue_fit(flair_like, tpl.affine, brain, shifted, tpl)
    cfg = PreprocessConfig()
    assert good > 0.95 and bad < cfg.min_tissue_fit
    assert registration_accepted({"TemplateCorrelation": None, "TissueFit": good}, cfg)  # FLAIR only: the fit judges
    assert not registration_accepted({"TemplateCorrelation": None, "TissueFit": bad}, cfg)
    assert not registration_accepted({"TemplateCorrelation": 0.37, "TissueFit": 0.5}, cfg)  # a T1-like image: its correlation judges
    assert registration_accepted({"TemplateCorrelation": 0.7, "TissueFit": 0.5}, cfg)


def test_brain_coverage_of_a_field_of_view_that_cuts_the_vertex() -> None:
    tpl = load_template(2)
    full = Volume(data=np.ones(tpl.t1.shape, np.float32), affine=tpl.affine, path=None, n_nonfinite=0)
    top = int(np.nonzero((tpl.brain_mask > 0.5).any(axis=(0, 1)))[0].max())
    cut_shape = (tpl.t1.shape[0], tpl.t1.shape[1], top - 20)  # the top 40 mm of the brain outside
    cut = Volume(data=np.ones(cut_shape, np.float32), affine=tpl.affine, path=None, n_nonfinite=0)
    transforms = {"T1w": {"matrix": np.eye(4)}, "FLAIR": {"matrix": np.eye(4)}}
    cov = brain_coverage(sitk.Euler3DTransform(), tpl, {"T1w": full, "FLAIR": cut}, transforms)
    assert cov["T1w"] == pytest.approx(1.0, abs=1e-3)
    assert 0.5 < cov["FLAIR"] < 0.9


def test_extract_brain_keeps_a_skull_stripped_brain_as_it_is() -> None:
    tpl = load_template(2)
    brain = tpl.brain_mask > 0.5
    image = np.where(brain, 50 * tpl.gm + 80 * tpl.wm + 10 * tpl.csf + 5, 0).astype(np.float32)
    result = extract_brain(image, tpl.affine, template=tpl, nonlinear=False)
    assert result.method == "skull-stripped input"
    assert result.info["skull_stripped"] and result.info["mni_grid"] is not None
    dice = 2 * (result.mask & brain).sum() / (result.mask.sum() + brain.sum())
    assert dice > 0.98
    assert result.info["affine_candidates"][result.info["affine_chosen"]] > 0.9


# ----------------------------------------------------------------------------- the real scans


needs_real = pytest.mark.skipif(not (REAL / "dataset_description.json").exists(), reason="../shared/real-ms is not here")


@needs_real
def test_real_skull_stripped_mni_case_is_detected_and_a_raw_head_is_not() -> None:
    from dawm.image.io import load_volume

    x07 = load_volume(REAL / "sub-x07" / "anat" / "sub-x07_T1w.nii.gz")
    assert looks_skull_stripped(x07.data, x07.affine)[0]
    assert looks_like_mni(x07.shape, x07.affine) is not None
    l12 = load_volume(REAL / "sub-l12" / "ses-01" / "anat" / "sub-l12_ses-01_T1w.nii.gz")
    assert not looks_skull_stripped(l12.data, l12.affine)[0]
    assert looks_like_mni(l12.shape, l12.affine) is None


@pytest.mark.slow
@needs_real
def test_real_sessions_that_failed_preprocessing_now_complete(tmp_path: Path) -> None:
    """sub-l12 failed ("correlates 0.42 with the registered template") and sub-x07 is skull-stripped
    in MNI space: both complete, with plausible brain volumes, and the log says what was detected."""
    from dawm.cli import app

    view = tmp_path / "bids"  # one session of sub-l12 and sub-x07, as links (the real data stay read-only)
    (view / "sub-l12").mkdir(parents=True)
    (view / "dataset_description.json").symlink_to(REAL / "dataset_description.json")
    (view / "sub-l12" / "ses-01").symlink_to(REAL / "sub-l12" / "ses-01", target_is_directory=True)
    (view / "sub-x07").symlink_to(REAL / "sub-x07", target_is_directory=True)
    cfg = tmp_path / "pre.json"
    cfg.write_text(json.dumps({"spacing_mm": 2.0, "iqm": False, "qc_figure": False}))
    out = tmp_path / "pre"
    res = CliRunner().invoke(app, ["preprocess", str(view), "--output", str(out), "--config", str(cfg), "--jobs", "2"])
    assert res.exit_code == 0, res.output
    logs = {p.name.split("_desc")[0]: json.loads(p.read_text()) for p in out.rglob("*_desc-preproc_log.json")}
    assert set(logs) == {"sub-l12_ses-01", "sub-x07"}
    for key, info in logs.items():
        assert 1000 < info["BrainVolume_ml"] < 1700, (key, info["BrainVolume_ml"])
        assert info["TemplateCorrelation"] > PreprocessConfig().min_template_correlation
    assert logs["sub-x07"]["SkullStrippedInput"] and logs["sub-x07"]["InputOnMNIGrid"]
    assert not logs["sub-l12_ses-01"]["SkullStrippedInput"]
    assert any("skull-stripped" in w for w in logs["sub-x07"]["Warnings"])
