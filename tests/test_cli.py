"""The command line's shared behaviour (issue 19): exit codes (0 all sessions done, 1 any failed,
2 usage errors), expected absences kept off the console, and the log file in the output folder."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dawm.cli import app
from dawm.errors import InputError
from dawm.image.io import save_volume
from dawm.parallel import run_all
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import preprocess_dataset
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import SimulationConfig

#: Fast preprocessing of the 3 mm session (no MNI refinement, IQMs or QC figure).
PP_CONFIG = PreprocessConfig(spacing_mm=3.0, iqm=False, qc_figure=False, mni_refine=False)
#: The quantitative images a clinical session never has.
QUANTITATIVE = ("UNIT1", "T1map", "inv1", "inv2", "mton", "mtoff", "MTRmap")


@pytest.fixture(scope="module")
def clinical(tmp_path_factory) -> Path:
    """One patient, one session at 3 mm, only T1w and FLAIR kept (what a hospital acquires)."""
    root = tmp_path_factory.mktemp("clinical") / "bids"
    result = simulate_cohort(SimulationConfig(patients=1, controls=0, sessions=1, scanners=1, resolution_mm=3.0), root)
    assert not result.failures
    for path in root.glob("sub-*/ses-*/anat/*"):
        if not any(path.name.endswith(f"_{s}{ext}") for s in ("T1w", "FLAIR") for ext in (".nii.gz", ".json")):
            path.unlink()
    return root


def test_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["simulate", str(tmp_path / "sim"), "--small"], ["preprocess", str(tmp_path)]):
        res = runner.invoke(app, [*args, "--backend", "slurm"])
        text = " ".join(res.output.split())
        assert res.exit_code == 2, res.output
        assert "--backend" in text and "must be local or dask, got 'slurm'" in text and "Traceback" not in text
    assert not (tmp_path / "sim").exists()  # refused before any work
    with pytest.raises(InputError, match="--backend must be local or dask"):
        run_all(abs, [1], backend="slurm")  # type: ignore[arg-type]  # the library refuses it too


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    cases = [
        (["simulate", str(tmp_path / "none"), "--patients", "0", "--controls", "0"], "at least one patient or control"),
        (["simulate", str(tmp_path / "none"), "--resolution", "7"], "resolution"),
        (["preprocess", str(tmp_path / "missing")], "not a BIDS dataset"),
        (["label", str(tmp_path / "missing")], "run dawm preprocess first"),
        (["predict", str(tmp_path / "missing"), str(tmp_path / "out"), "--folds", "a"], "--folds must be fold indices"),
        (["evaluate", str(tmp_path / "missing"), str(tmp_path / "ref"), "--output", str(tmp_path / "report")], "folder not found"),
        (["export-model", str(tmp_path / "missing"), str(tmp_path / "slim")], "not a dawm model folder"),
        (["demo", "--quick", "--full", "--output", str(tmp_path / "demo")], "exclude each other"),
    ]
    for args, message in cases:
        res = runner.invoke(app, args)
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and message in text and "Traceback" not in text, (args, res.output)
    assert not (tmp_path / "none").exists() and not (tmp_path / "report").exists()


def _dseg(path: Path, lesion: bool) -> None:
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[2:5, 2:5, 2:5] = 1 if lesion else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    save_volume(labels, np.eye(4), path, dtype=np.uint8)


def test_evaluate_names_failed_sessions_and_exits_1(tmp_path: Path) -> None:
    """One of three sessions is a corrupt file: the others are scored, the summary names it, exit 1."""
    name = "sub-{s}/ses-01/anat/sub-{s}_ses-01_space-session_desc-dawm_dseg.nii.gz"
    for s in ("a", "b", "c"):
        _dseg(tmp_path / "ref" / name.format(s=s), lesion=True)
        _dseg(tmp_path / "pred" / name.format(s=s), lesion=s != "b")
    corrupt = tmp_path / "pred" / name.format(s="c")
    corrupt.write_bytes(corrupt.read_bytes()[:40])
    res = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "--output", str(tmp_path / "report"), "--bootstrap", "10"]
    )
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "failed sub-c_ses-01" in text and "Traceback" not in text
    assert (tmp_path / "report" / "report.html").exists()


def test_clinical_session_logs_no_expected_absences(clinical: Path, tmp_path: Path, caplog, monkeypatch) -> None:
    """A T1w + FLAIR session has no MP2RAGE or MT images: said at DEBUG only, never as INFO or WARNING."""
    monkeypatch.setattr(logging.getLogger("dawm"), "propagate", True)  # a CLI test may have set up the dawm logger
    with caplog.at_level(logging.DEBUG, logger="dawm"):
        outcomes = preprocess_dataset(clinical, output=tmp_path / "pre", config=PP_CONFIG)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert set(QUANTITATIVE) <= set(outcomes[0].result.missing)
    said = [r for r in caplog.records if r.levelno >= logging.INFO]
    absent = re.compile(r"\b(no|missing)\b.*\b(" + "|".join(QUANTITATIVE) + r")\b", re.IGNORECASE)
    assert not [r.getMessage() for r in said if absent.search(r.getMessage())]
    assert not [r.getMessage() for r in said if r.levelno >= logging.WARNING]
    assert any("no UNIT1 image" in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)


def test_log_file_in_the_output_folder_and_a_quiet_console(clinical: Path, tmp_path: Path) -> None:
    """``dawm preprocess``: the details go to OUT/logs/dawm-preprocess-<time>.log, the console shows
    only the progress bar and the summary; ``-v`` puts the details on the console too."""
    out = tmp_path / "pre"
    PP_CONFIG.save(tmp_path / "config.json")
    runner = CliRunner()
    res = runner.invoke(app, ["preprocess", str(clinical), "--output", str(out), "--config", str(tmp_path / "config.json")])
    assert res.exit_code == 0, res.output
    logs = sorted((out / "logs").glob("dawm-preprocess-*.log"))
    assert len(logs) == 1, logs
    text = logs[0].read_text()
    assert text.startswith("# dawm ") and re.search(r" INFO dawm\.parallel: sub-\w+_ses-01: preprocessing done in ", text), text
    assert " DEBUG " not in text  # DEBUG only with -v
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) <= 15, res.output
    assert " INFO " not in res.output and str(logs[0].name) in res.output.replace("\n", "")

    res = runner.invoke(app, ["-v", "preprocess", str(clinical), "--output", str(out), "--config", str(tmp_path / "config.json")])
    assert res.exit_code == 0, res.output
    assert "already pre-processed, skipped" in " ".join(res.output.split())  # the INFO details, on the console with -v


@pytest.mark.parametrize(
    ("command", "target"),
    [
        ("preprocess", "dawm.preprocess.pipeline.preprocess_dataset"),
        ("label", "dawm.label.pipeline.label_dataset"),
        ("predict", "dawm.model.predict.predict_dataset"),
    ],
)
def test_participant_labels_after_one_flag_as_bids_apps_spell_them(command, target, tmp_path, monkeypatch) -> None:
    """``--participant-label l04 l20`` (BIDS-App style) and the repeated flag give the same subjects;
    a stray argument without the flag is a usage error, not a silently ignored word."""
    import importlib

    seen: list = []
    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(importlib.import_module(module), name, lambda *a, **k: seen.append(k["participant_label"]) or [])
    head = [command, str(tmp_path / "bids")] + ([str(tmp_path / "out")] if command == "predict" else [])
    runner = CliRunner()
    for args in (["--participant-label", "l04", "l20"], ["--participant-label", "l04", "--participant-label", "l20"]):
        runner.invoke(app, head + args)
    assert seen == [["l04", "l20"], ["l04", "l20"]]
    res = runner.invoke(app, [*head, "l20"])
    assert res.exit_code != 0 and "unexpected argument" in res.output and len(seen) == 2
