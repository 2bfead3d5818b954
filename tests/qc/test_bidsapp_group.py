"""``dawm run BIDS OUT group`` over the outputs of several participant runs (synthetic sessions, no
model): statuses (ok, failed, not run), cohort tables, the cohort page and its links, exit codes."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from qc_synthetic import predicted_session, raw_session
from typer.testing import CliRunner

from dawm.bidsapp import status_path, write_status
from dawm.cli import app
from dawm.evaluate.browser_check import check_html_in_chromium
from dawm.parallel import Outcome
from dawm.qc.page import write_qc_pages


def test_group_combines_participant_runs_and_names_failures(tmp_path: Path) -> None:
    bids, out = tmp_path / "bids", tmp_path / "out"
    predicted_session(bids, out, "qc01", "01", seed=1)
    predicted_session(bids, out, "qc02", "01", seed=2)
    raw_session(bids, "qc03", "01")  # never run
    raw_session(bids, "bad", "01")
    # two participant runs (e.g. two cluster jobs) into one output folder
    write_status(out, write_qc_pages(out, [Outcome("sub-qc01_ses-01", result=1)]))
    error = "preprocessing failed: sub-bad_ses-01_T1w.nii.gz: image is empty"
    write_status(out, write_qc_pages(out, [Outcome("sub-qc02_ses-01", result=1), Outcome("sub-bad_ses-01", error=error)]))
    status = pd.read_csv(status_path(out, "bad"), sep="\t")
    assert list(status.status) == ["failed"] and status.error[0] == error

    res = CliRunner().invoke(app, ["run", str(bids), str(out), "group"])
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert f"failed sub-bad_ses-01: {error}" in text
    sessions = pd.read_csv(out / "group_sessions.tsv", sep="\t", keep_default_na=False)
    assert dict(zip(sessions.participant_id, sessions.status)) == {
        "sub-bad": "failed",
        "sub-qc01": "ok",
        "sub-qc02": "ok",
        "sub-qc03": "not run",
    }
    ok = sessions[sessions.status == "ok"]
    assert list(ok.qc_report) == [
        "sub-qc01/ses-01/sub-qc01_ses-01_desc-qc_report.html",
        "sub-qc02/ses-01/sub-qc02_ses-01_desc-qc_report.html",
    ]
    assert list(ok.warnings.astype(int)) == [5, 5]  # 2 of the log, low SNR, borderline registration, tiny brain
    assert list(ok.inputs) == ["T1w+FLAIR", "T1w+FLAIR"]
    volumes = pd.read_csv(out / "group_volumes.tsv", sep="\t")
    assert len(volumes) == 10 and set(volumes.participant_id) == {"sub-qc01", "sub-qc02"}
    assert (out / "transitions.tsv").exists()  # dawm.longitudinal: no subject with two sessions, an empty table

    page = out / "group_report.html"
    html = page.read_text()
    links = re.findall(r'<a href="([^"#]+)"', html)
    assert sorted(links) == sorted(ok.qc_report) and all((out / link).exists() for link in links)
    assert "image is empty" in html and "not run" in html
    assert check_html_in_chromium(page) == {"images": 1, "broken_images": 0, "script_errors": []}

    res = CliRunner().invoke(app, ["run", str(bids), str(out), "group", "--participant-label", "qc01", "qc02"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out / "group_sessions.tsv", sep="\t")) == 2


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    raw_session(tmp_path / "bids", "qc01")
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(tmp_path / "bids"), str(tmp_path / "out"), "subject"])
    assert res.exit_code == 2 and "analysis level must be participant or group, got 'subject'" in " ".join(res.output.split())
    res = runner.invoke(app, ["run", str(tmp_path / "bids"), str(tmp_path / "out"), "group", "extra"])
    assert res.exit_code == 2 and "unexpected argument(s): extra" in res.output
    res = runner.invoke(app, ["run", str(tmp_path / "bids"), str(tmp_path / "nothing"), "group"])
    assert res.exit_code == 2 and "run the participant level first" in " ".join(res.output.split())
    res = runner.invoke(app, ["run", str(tmp_path), str(tmp_path / "out"), "participant"])
    assert res.exit_code == 2 and "not a BIDS dataset" in " ".join(res.output.split())
