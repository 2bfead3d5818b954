"""``dawm evaluate`` end to end: a perturbed copy of the truth labels scored against the truth on a
tiny preprocessed cohort (metrics checked against Dice computed here), the report in Chromium,
the evolution truth row, and clear CLI errors for bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from typer.testing import CliRunner

from dawm.cli import app
from dawm.evaluate.browser_check import check_html_in_chromium
from dawm.evaluate.pipeline import EvaluationSummary, evaluate_dataset
from dawm.image.io import save_volume

pytestmark = pytest.mark.slow

DSEG = "sub-{s}/ses-{v}/anat/sub-{s}_ses-{v}_space-session_desc-dawm_dseg.nii.gz"
ERODED, DROPPED, CORRUPT = DSEG.format(s="ms001", v="01"), DSEG.format(s="ms002", v="02"), DSEG.format(s="ms009", v="01")


def _labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.rint(np.asarray(img.dataobj)).astype(np.uint8), img.affine


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


@pytest.fixture(scope="module")
def evaluated(evaluate_cohort: Path, tmp_path_factory) -> tuple[Path, Path, EvaluationSummary]:
    """REF = the truth labels plus one extra session; PRED = REF with DAWM eroded in one session,
    the largest lesion dropped in another, the extra session unreadable, and one session that has
    no reference. REF is also compared with an identical copy of itself."""
    ref = evaluate_cohort / "derivatives" / "dawm-ref"
    pred = evaluate_cohort / "derivatives" / "dawm-pred"
    shutil.copytree(evaluate_cohort / "derivatives" / "dawm-truth-label", ref)  # SourceDatasets ../.. -> the BIDS root
    (ref / CORRUPT).parent.mkdir(parents=True)
    shutil.copy(ref / DSEG.format(s="hc001", v="01"), ref / CORRUPT)
    shutil.copytree(ref, pred)
    (pred / CORRUPT).write_bytes(b"not a NIfTI image")
    data, affine = _labels(pred / ERODED)
    assert (data == 2).sum() > 20, "the fixture's sub-ms001 has DAWM"
    data[(data == 2) & ~ndimage.binary_erosion(data == 2)] = 0
    save_volume(data, affine, pred / ERODED, dtype=np.uint8)
    data, affine = _labels(pred / DROPPED)
    comps, n = ndimage.label(data == 1, structure=np.ones((3, 3, 3)))
    assert n >= 2, "the fixture's sub-ms002 ses-02 has several lesions"
    data[comps == np.argmax(np.bincount(comps.ravel())[1:]) + 1] = 0
    save_volume(data, affine, pred / DROPPED, dtype=np.uint8)
    extra = pred / DSEG.format(s="hc009", v="01")
    extra.parent.mkdir(parents=True)
    shutil.copy(pred / DSEG.format(s="hc001", v="01"), extra)
    out = tmp_path_factory.mktemp("evaluation")
    summary = evaluate_dataset(pred, ref, out, compare={"identical": ref}, n_boot=50)
    return pred, ref, summary


def test_metrics_equal_dice_computed_here(evaluated) -> None:
    pred, ref, summary = evaluated
    metrics = pd.read_csv(summary.files["metrics.tsv"], sep="\t", na_values="n/a")
    assert len(metrics) == 2 * 6 and {"scanner", "flair_type", "group", "edss"} <= set(metrics.columns)
    for _, row in metrics.iterrows():
        rel = DSEG.format(s=row.participant_id[4:], v=row.session_id[4:])
        p, r = (_labels(root / rel)[0] == {"lesion": 1, "dawm": 2}[row["class"]] for root in (pred, ref))
        assert row.dice == pytest.approx(_dice(p, r), abs=1e-6), (rel, row["class"])
    by = metrics.set_index(["participant_id", "session_id", "class"])
    assert by.loc[("sub-ms001", "ses-01", "dawm"), "dice"] < 1.0
    lesion = by.loc[("sub-ms002", "ses-02", "lesion")]
    assert lesion.n_pred == lesion.n_ref - 1 and lesion.lesion_recall < 1.0 and lesion.lesion_precision == 1.0
    volumes = pd.read_csv(summary.files["volumes.tsv"], sep="\t").set_index(["participant_id", "session_id"])
    data, affine = _labels(pred / ERODED)
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    assert volumes.loc[("sub-ms001", "ses-01"), "pred_dawm_ml"] == pytest.approx((data == 2).sum() * voxel_ml, rel=1e-5)
    assert summary.numbers["n_sessions"] == 6 and summary.numbers["n_only_prediction"] == 1 and summary.numbers["n_failed"] == 1


def test_identical_prediction_scores_perfectly(evaluated) -> None:
    _, _, summary = evaluated
    configs = pd.read_csv(summary.files["configurations.tsv"], sep="\t")
    same = configs[configs.config == "identical"]
    assert len(same) == 2 * 7  # the extra session is readable in REF
    assert (same.dice == 1.0).all() and (same.volume_error_ml == 0.0).all()
    main = configs[configs.config == "main"].set_index(["participant_id", "session_id", "class"])
    assert main.loc[("sub-hc001", "ses-02", "dawm"), "dice"] == 1.0


def test_outputs_and_report(evaluated) -> None:
    pred, _, summary = evaluated
    for name in (
        "metrics.tsv",
        "volumes.tsv",
        "agreement.tsv",
        "bias_groups.tsv",
        "bias_location.tsv",
        "configurations.tsv",
        "evolution.tsv",
        "association.tsv",
        "summary.json",
        "provenance.json",
        "report.html",
    ):
        assert summary.files[name].exists(), name
    assert "bias_quality.tsv" in summary.files  # IQMs from the preprocess derivative
    key = json.loads(summary.files["summary.json"].read_text())
    assert 0 < key["dawm_dice_mean"] < 1 and key["edss_simulated_dawm_coef"] == 0.05
    prov = json.loads(summary.files["provenance.json"].read_text())
    assert prov["stage"] == "evaluate" and Path(prov["config"]["bids_dir"]).resolve() == pred.parent.parent.resolve()
    html = summary.report.read_text(encoding="utf-8")
    for heading in ("Summary", "Accuracy", "Bias", "Configurations", "Evolution", "Clinical association", "Inputs &amp; provenance"):
        assert f">{heading}</h" in html, heading
    assert "sub-hc009" in html and "sub-ms009_ses-01: " in html  # listed: no reference; unreadable
    assert prov["sessions"]["sub-ms009_ses-01"].startswith("failed: ") and prov["sessions"]["sub-ms001_ses-01"] == "ok"
    result = check_html_in_chromium(summary.report)
    assert result["broken_images"] == 0 and result["script_errors"] == [] and result["images"] > 3


def test_evolution_has_truth_rows(evaluated) -> None:
    _, _, summary = evaluated
    evo = pd.read_csv(summary.files["evolution.tsv"], sep="\t", na_values="n/a")
    assert set(evo.source) == {"predicted", "reference", "truth"}
    truth = evo[(evo.source == "truth") & (evo.participant_id == "sub-ms001")].iloc[0]
    assert truth.baseline == "ses-01" and truth.followup == "ses-02" and truth.baseline_dawm_ml > 0
    fates = truth[["dawm_to_lesion_frac", "dawm_to_normal_frac", "dawm_persistent_frac"]].sum()
    assert fates == pytest.approx(1.0)


def _dseg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_volume(np.zeros((4, 4, 4), np.uint8), np.eye(4), path, dtype=np.uint8)


def test_cli_bad_inputs_fail_clearly(tmp_path) -> None:
    runner = CliRunner()
    ref, empty, other = tmp_path / "ref", tmp_path / "empty", tmp_path / "other"
    _dseg(ref / DSEG.format(s="a", v="01"))
    _dseg(other / DSEG.format(s="b", v="01"))
    empty.mkdir()
    cases = [(tmp_path / "missing", ref, tmp_path / "missing"), (empty, ref, empty), (other, ref, other)]
    for pred, reference, named in cases:
        res = runner.invoke(app, ["evaluate", str(pred), str(reference), "--output", str(tmp_path / "out")])
        text = res.output.replace("\n", "")
        assert res.exit_code == 2 and str(named) in text and "Traceback" not in text, res.output  # usage errors
