"""``dawm run BIDS OUT participant`` then ``group`` end to end with a tiny model: preprocessing of the
sessions that lack it, prediction, a QC page per session (rendered in Chromium), one failing
session (exit 1, named with its file), two participant runs combined by the group level (cohort
tables, common field of view, longitudinal transitions, cohort page)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from tiny_model import add_empty_t1_session
from typer.testing import CliRunner

from dawm.cli import app
from dawm.evaluate.browser_check import check_html_in_chromium

pytestmark = pytest.mark.slow


def _dataset(model_cohort: Path, root: Path) -> Path:
    """sub-ms001 ses-01 (preprocessed already) and ses-02 (a raw copy, preprocessed by the run);
    sub-bad ses-01, whose T1w is empty (fails preprocessing)."""
    bids = root / "bids"
    bids.mkdir(parents=True)
    shutil.copy(model_cohort / "dataset_description.json", bids)
    src = model_cohort / "sub-ms001" / "ses-01" / "anat"
    for ses in ("01", "02"):
        dst = bids / "sub-ms001" / f"ses-{ses}" / "anat"
        dst.mkdir(parents=True)
        for f in src.iterdir():
            shutil.copy(f, dst / f.name.replace("ses-01", f"ses-{ses}"))
    pp = bids / "derivatives" / "dawm-preprocess"
    shutil.copytree(model_cohort / "derivatives" / "dawm-preprocess" / "sub-ms001", pp / "sub-ms001")
    shutil.copy(model_cohort / "derivatives" / "dawm-preprocess" / "preprocess_config.json", pp)
    add_empty_t1_session(src, bids)
    return bids


def test_run_participant_then_group(model_cohort: Path, trained: Path, tmp_path: Path) -> None:
    bids, out = _dataset(model_cohort, tmp_path), tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(bids), str(out), "participant", "--participant-label", "ms001", "--model", str(trained)])
    assert res.exit_code == 0, res.output
    pages = [out / "sub-ms001" / f"ses-{s}" / f"sub-ms001_ses-{s}_desc-qc_report.html" for s in ("01", "02")]
    assert all(p.exists() for p in pages)
    assert (out / "derivatives" / "dawm-preprocess" / "sub-ms001" / "ses-02").is_dir()  # ses-02 preprocessed by the run
    assert check_html_in_chromium(pages[1]) == {"images": 5, "broken_images": 0, "script_errors": []}

    res = runner.invoke(app, ["run", str(bids), str(out), "participant", "--participant-label", "bad", "--model", str(trained)])
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "failed sub-bad_ses-01: preprocessing failed:" in text and "image is empty" in text

    res = runner.invoke(app, ["run", str(bids), str(out), "group"])
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "failed sub-bad_ses-01: preprocessing failed:" in text
    sessions = pd.read_csv(out / "group_sessions.tsv", sep="\t", keep_default_na=False)
    assert list(zip(sessions.participant_id, sessions.session_id, sessions.status)) == [
        ("sub-bad", "ses-01", "failed"),
        ("sub-ms001", "ses-01", "ok"),
        ("sub-ms001", "ses-02", "ok"),
    ]
    volumes = pd.read_csv(out / "group_volumes.tsv", sep="\t")
    assert len(volumes) == 10 and set(volumes.location) == {"all", "periventricular", "juxtacortical", "deep", "infratentorial"}
    assert len(pd.read_csv(out / "group_volumes_common_fov.tsv", sep="\t")) == 2
    transitions = pd.read_csv(out / "transitions.tsv", sep="\t")
    assert list(transitions.participant_id.unique()) == ["sub-ms001"]
    html = (out / "group_report.html").read_text()
    assert html.count('href="sub-ms001/ses-0') == 2 and "image is empty" in html
