"""The QC page of one predicted session (tiny synthetic session, no model): content, offline, every
image rendering in headless Chromium; the warnings and low-quality flags."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from qc_synthetic import WARNINGS, predicted_session

from dawm.evaluate.browser_check import check_html_in_chromium
from dawm.parallel import Outcome
from dawm.qc.flags import session_flags
from dawm.qc.page import write_qc_pages
from dawm.qc.session import QcSession


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("qc")
    pred = predicted_session(root / "bids", root / "pred")
    outcomes = write_qc_pages(
        pred, [Outcome("sub-qc01_ses-01", result="volumes"), Outcome("sub-gone_ses-01", error="preprocessing failed: x")]
    )
    assert outcomes == [Outcome("sub-qc01_ses-01", result="volumes"), Outcome("sub-gone_ses-01", error="preprocessing failed: x")]
    path = pred / "sub-qc01" / "ses-01" / "sub-qc01_ses-01_desc-qc_report.html"
    assert QcSession.from_key("sub-qc01_ses-01", pred).qc_page == path and path.exists()
    return path


def test_page_is_self_contained_and_complete(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", text) and "<link" not in text
    assert not re.search(r"<script[^>]+src=", text)
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', text)
    assert len(images) == 5  # inputs + mask, tissues, labels, probabilities, axial mosaic
    for expected in (
        "Volumes per location class",
        "periventricular",
        "infratentorial",
        "Tissue segmentation",
        "Lesion and DAWM probabilities",
        "Image quality",
        "snr_total",
        "fallback",
        "partial field of view",
        "low quality, tissue SNR 2.1",
        "MNI registration borderline",
        "bundled with dawm",
        "trained on simulated data only",
    ):
        assert expected in text, expected
    for warning in WARNINGS:  # every warning of the preprocess log, verbatim
        assert warning.split(":")[-1].strip() in text


def test_every_image_renders_in_chromium(page: Path) -> None:
    result = check_html_in_chromium(page)
    assert result == {"images": 5, "broken_images": 0, "script_errors": []}


def test_a_session_without_predictions_fails_with_its_file(tmp_path: Path) -> None:
    pred = predicted_session(tmp_path / "bids", tmp_path / "pred")
    (pred / "sub-qc01" / "ses-01" / "anat" / "sub-qc01_ses-01_space-session_label-DAWM_probseg.nii.gz").unlink()
    [outcome] = write_qc_pages(pred, ["sub-qc01_ses-01"])
    assert not outcome.ok and outcome.error.startswith("QC page: ") and "label-DAWM_probseg.nii.gz: missing" in outcome.error


def test_flags_keep_every_warning_and_add_low_quality() -> None:
    iqm = pd.DataFrame([{"role": "T1w", "snr_total": 8.0, "cnr": 0.1}])
    flags = session_flags(
        {
            "Warnings": ["x.nii.gz: already skull-stripped (1200 ml of non-zero voxels)"],
            "TemplateCorrelation": 0.9,
            "BrainVolume_ml": 400.0,
        },
        iqm,
        {"Inputs": ["T1w", "FLAIR"], "MissingInputs": ["FLAIR"]},
    )
    texts = [(f.level, f.text) for f in flags]
    assert texts[0] == ("warning", "x.nii.gz: already skull-stripped (1200 ml of non-zero voxels)")
    assert any("contrast-to-noise 0.10" in t for _, t in texts) and any("brain mask of 400 ml" in t for _, t in texts)
    assert not any("SNR" in t or "borderline" in t for _, t in texts)
    assert (
        "note",
        "predicted without FLAIR (not acquired): the model's missing-modality path, less accurate than with every input",
    ) in texts
    assert session_flags({}, None, {}) == []


def test_a_missing_input_with_a_poor_measured_lesion_dice_is_a_warning() -> None:
    def flag(dice: float):
        accuracy = {"inputs": "T1w", "lesion_dice": dice, "lesion_dice_all_inputs": 0.65}
        return session_flags({}, None, {"Inputs": ["T1w", "FLAIR"], "MissingInputs": ["FLAIR"], "InputAccuracy": accuracy})

    (poor,) = flag(0.11)
    assert (
        poor.level == "warning" and "lesion Dice from T1w was 0.11 on simulated sessions it never saw (0.65 with every input)" in poor.text
    )
    assert [f.level for f in flag(0.6)] == ["note"]


def test_flair_only_session_without_session_level(tmp_path: Path) -> None:
    """A subject without ses- folders (``sub-X/anat``) whose only input is FLAIR, without IQMs: the page
    lands in ``sub-X/`` and still shows every panel, the FLAIR standing in for the T1w."""
    pred = predicted_session(tmp_path / "bids", tmp_path / "pred", "x07", None, iqm=False, warnings=[])
    pp = tmp_path / "bids" / "derivatives" / "dawm-preprocess" / "sub-x07" / "anat"
    (pp / "sub-x07_space-session_desc-preproc_T1w.nii.gz").unlink()
    [outcome] = write_qc_pages(pred, ["sub-x07"])
    assert outcome.ok, outcome.error
    page = pred / "sub-x07" / "sub-x07_desc-qc_report.html"
    text = page.read_text()
    assert text.count('src="data:image/png;base64,') == 5 and "No image-quality metrics" in text and "FLAIR" in text
