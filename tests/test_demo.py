"""``dawm demo --quick`` runs every stage end to end and leaves readable reports (3 mm tiny cohort)."""

import json

from dawm.evaluate.browser_check import check_html_in_chromium


def test_quick_demo_end_to_end(quick_demo):
    out, printed = quick_demo
    assert "Preprocessing against the truth" in printed and "Key numbers" in printed
    acc = (out / "preprocess_accuracy.tsv").read_text().splitlines()
    assert acc[0].startswith("session") and len(acc) == 1 + 6  # 3 subjects x 2 sessions
    for stage in ("dawm-preprocess", "dawm-label", "dawm-label-t1", "dawm-label-mtr", "dawm-truth-label"):
        assert (out / "bids" / "derivatives" / stage / "dataset_description.json").exists(), stage
    test_subjects = json.loads((out / "model" / "model.json").read_text())["split"]["test"]
    predicted = sorted(p.name.split("_")[0] for p in (out / "predict").glob("sub-*/ses-*/anat/*_space-session_desc-dawm_dseg.nii.gz"))
    assert predicted and set(predicted) == {f"sub-{s}" for s in test_subjects}  # only held-out subjects are predicted
    for folder in ("predict-t1w", "predict-flair"):
        dropped = json.loads((out / folder / "provenance.json").read_text())["config"]["dropped_inputs"]
        assert dropped == (["FLAIR"] if folder == "predict-t1w" else ["T1w"])
    for report in ("report", "report-truth", "report-labels"):
        summary = json.loads((out / report / "summary.json").read_text())
        assert summary["lesion_n_scored"] >= 1
        check = check_html_in_chromium(out / report / "report.html")
        assert check["images"] > 3 and check["broken_images"] == 0 and check["script_errors"] == []
