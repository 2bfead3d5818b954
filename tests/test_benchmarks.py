"""The benchmark scripts and their shared harness (``benchmarks/harness.py``).

The long benchmarks need cohorts and hours; what is checked here is what can break silently: the
harness's writer and table, every script importing and answering ``--help`` (a library rename
that a script still imports fails here), no script importing another, and each Markdown builder
reproducing, from a recorded JSON in ``benchmarks/results``, the Markdown recorded beside it (the
records were written by the code before the harness; the figures' format must not change).
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RESULTS = BENCHMARKS / "results"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if p.name != "harness.py")


def _bench(name: str):
    """A benchmark module (or the harness), imported with ``benchmarks/`` on the path as
    ``python benchmarks/x.py`` has it."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def harness():
    return _bench("harness")


# --------------------------------------------------------------------------------------------
# the harness
# --------------------------------------------------------------------------------------------


def test_markdown_table_formats_each_column(harness) -> None:
    rows = [
        {"name": "a", "n": 3, "dice": 0.51234, "ml": 12.0, "rho": None, "note": "x"},
        {"name": "b", "n": 10, "dice": float("nan"), "ml": np.float32(0.25), "rho": np.float64(-0.5), "note": ""},
    ]
    table = harness.markdown_table(
        rows, {"method": "name", "n": "n", "Dice": "dice", "ml": "ml", "rho": "rho"}, formats={"ml": ".1f", "rho": ".2f"}
    )
    assert table == (
        "| method | n | Dice | ml | rho |\n|---|---|---|---|---|\n| a | 3 | 0.512 | 12.0 | n/a |\n| b | 10 | n/a | 0.2 | -0.50 |"
    )
    # default columns: the first row's keys; floats with float_format, the rest str(); na as asked
    assert harness.markdown_table(rows[1:], float_format=".2f", na="nan") == (
        "| name | n | dice | ml | rho | note |\n|---|---|---|---|---|---|\n| b | 10 | nan | 0.25 | -0.50 |  |"
    )
    # one format for every cell: str() keeps Python's own text
    assert harness.markdown_table([{"a": None, "b": 0.1}], formats=str) == "| a | b |\n|---|---|\n| None | 0.1 |"
    # a DataFrame as rows
    df = pd.DataFrame({"factor": ["bias", "noise"], "dose": [1.0, 2.0], "n": [6, 6]})
    assert harness.markdown_table(df) == "| factor | dose | n |\n|---|---|---|\n| bias | 1.000 | 6 |\n| noise | 2.000 | 6 |"
    assert harness.markdown_table([], ["a", "b"]) == "| a | b |\n|---|---|"


def test_fmt_and_fmt_ci(harness) -> None:
    fmt = harness.fmt
    assert [fmt(0.5), fmt(2, ".2f"), fmt(None), fmt(float("inf")), fmt(np.nan, ".1f", na="-"), fmt("7 / 9"), fmt(3.0, None)] == [
        "0.500",
        "2.00",
        "n/a",
        "n/a",
        "-",
        "7 / 9",
        "3.0",
    ]
    assert fmt(float("nan"), str) == "nan" and fmt(1.5, lambda v: f"{v:g} ml") == "1.5 ml"
    assert harness.fmt_ci(0.2234, -0.21, None) == "0.22 [-0.21, n/a]"


def test_write_results_writes_json_markdown_and_run_metadata(harness, tmp_path: Path) -> None:
    import dawm

    run = harness.Run.start(["--bids", "/data/x y", "--jobs", "2"], script=BENCHMARKS / "label_benchmark.py")
    result = {"rows": [{"a": np.float32(0.5), "b": np.int64(3), "path": Path("/p"), "arr": np.arange(2), "nan": float("nan")}]}
    md = "# title\n\n" + harness.markdown_table(result["rows"], ["a", "b"]) + "\n"
    written = harness.write_results("demo", result, md, run=run, results_dir=tmp_path / "out", extra={".tsv": "a\tb\n0.5\t3\n"}, echo=False)
    assert written == {s: tmp_path / "out" / f"demo{s}" for s in (".json", ".md", ".tsv")}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["demo.json", "demo.md", "demo.tsv"]  # no temporary files left

    data = json.loads(written[".json"].read_text())
    assert data["rows"] == [{"a": 0.5, "b": 3, "path": "/p", "arr": [0, 1], "nan": data["rows"][0]["nan"]}] and math.isnan(
        data["rows"][0]["nan"]
    )
    meta = data["run"]
    assert meta["command"] == "python benchmarks/label_benchmark.py --bids '/data/x y' --jobs 2"
    assert meta["dawm_version"] == dawm.__version__
    assert meta["machine"]["cpu_count"] == os.cpu_count() and meta["machine"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(meta["machine"]) == {"hostname", "platform", "processor", "python", "cpu_count", "gpu"}
    assert meta["seconds"] >= 0 and len(meta["date_utc"]) == 20 and meta["date_utc"].endswith("Z")
    assert meta["git_commit"] is None or len(meta["git_commit"]) == 40
    assert written[".json"].read_text().endswith("}\n")

    text = written[".md"].read_text()
    assert text == md + "\n" + run.footer() + "\n"
    assert (
        run.footer().startswith(f"_Run {meta['date_utc']}, dawm {dawm.__version__} (")
        and "`python benchmarks/label_benchmark.py" in run.footer()
    )
    assert written[".tsv"].read_text() == "a\tb\n0.5\t3\n"


def test_write_results_without_run_and_with_a_list(harness, tmp_path: Path, capsys) -> None:
    written = harness.write_results("rows", [{"x": 1}], "| x |\n|---|\n| 1 |", results_dir=tmp_path)
    assert json.loads(written[".json"].read_text()) == {"rows": [{"x": 1}]}
    assert written[".md"].read_text() == "| x |\n|---|\n| 1 |\n"
    assert capsys.readouterr().out == "| x |\n|---|\n| 1 |\n"  # echoed without the footer
    assert set(harness.write_results("only_json", {"x": 1}, results_dir=tmp_path)) == {".json"}
    with pytest.raises(ValueError, match="run"):
        harness.write_results("clash", {"run": 1}, run=harness.Run.start([]), results_dir=tmp_path)


def test_benchmark_parser_common_options(harness, tmp_path: Path) -> None:
    parser = harness.benchmark_parser("First line\ncontinued.\n\nUsage::\n\n    python x.py\n", name="stem")
    assert parser.description == "First line continued." and parser.epilog.startswith("Usage::")
    args = parser.parse_args([])
    assert args.name == "stem" and args.results_dir == harness.RESULTS == RESULTS
    args = parser.parse_args(["--name", "other", "--results-dir", str(tmp_path)])
    assert args.name == "other" and args.results_dir == tmp_path
    assert not any(a.dest == "name" for a in harness.benchmark_parser("x")._actions)


def test_result_path_and_label_helpers(harness, tmp_path: Path) -> None:
    assert harness.result_path("fig", ".png", tmp_path / "new") == tmp_path / "new" / "fig.png" and (tmp_path / "new").is_dir()
    assert harness.read_dseg(None) is None and harness.read_dseg(tmp_path / "missing.nii.gz") is None
    from dawm.image.io import save_volume

    save_volume(np.array([[[0.0, 1.2], [2.0, 1.9]]], np.float32), np.eye(4), tmp_path / "d.nii.gz")
    labels = harness.read_dseg(tmp_path / "d.nii.gz")
    assert labels.dtype == np.uint8 and labels.tolist() == [[[0, 1], [2, 2]]]
    assert harness.REAL_MS == BENCHMARKS.parents[1] / "shared" / "real-ms"
    from dawm.model.data import Case

    case = Case(subject="ms001", session="01", images={}, brain=tmp_path, dseg=tmp_path, preproc_log=tmp_path)
    assert harness.label_path(tmp_path, case, "dawm-truth-label") == (
        tmp_path / "derivatives/dawm-truth-label/sub-ms001/ses-01/anat/sub-ms001_ses-01_space-session_desc-dawm_dseg.nii.gz"
    )


# --------------------------------------------------------------------------------------------
# every script: importable, --help, no cross imports
# --------------------------------------------------------------------------------------------


def test_the_scripts_are_all_here() -> None:
    assert {p.stem for p in SCRIPTS} >= {"dawm_accuracy", "label_benchmark", "label_ceiling", "model_accuracy", "model_gpu", "real_scans"}


@pytest.fixture(scope="module")
def helps(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """``python benchmarks/<x>.py --help`` of every script, from an unrelated working directory,
    two at a time."""
    cwd = tmp_path_factory.mktemp("cwd")

    def one(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(path), "--help"], cwd=cwd, capture_output=True, text=True, timeout=300, check=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((p.stem for p in SCRIPTS), pool.map(one, SCRIPTS)))


@pytest.mark.parametrize("script", [p.stem for p in SCRIPTS])
def test_script_answers_help(script: str, helps) -> None:
    done = helps[script]
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage: ") and f"{script}.py" in done.stdout


@pytest.mark.parametrize("script", [p.stem for p in SCRIPTS])
def test_script_imports_no_other_benchmark(script: str) -> None:
    source = (BENCHMARKS / f"{script}.py").read_text()
    assert "sys.path" not in source
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {p.stem for p in SCRIPTS}, "shared code goes into benchmarks/harness.py or the library"


@pytest.mark.parametrize("script", [p.stem for p in SCRIPTS])
def test_script_writes_through_the_harness(script: str) -> None:
    source = (BENCHMARKS / f"{script}.py").read_text()
    assert "write_results(" in source and "RESULTS /" not in source and "import platform" not in source


# --------------------------------------------------------------------------------------------
# the Markdown builders reproduce the recorded Markdown from the recorded JSON
# --------------------------------------------------------------------------------------------


def _record(name: str) -> tuple[dict, str]:
    data = json.loads((RESULTS / f"{name}.json").read_text())
    text = (RESULTS / f"{name}.md").read_text()
    lines = text.rstrip("\n").split("\n")
    if lines[-1].startswith("_Run "):  # a record written through the harness: its footer is not the builder's
        text = "\n".join(lines[:-2]) + "\n"
    return data, text


def _preprocess(data: dict, text: str) -> str:
    # the pre-harness records were written with sorted keys: the step order is the table's
    header = next(line for line in text.splitlines() if line.startswith("| session | "))
    steps = [c.strip() for c in header.strip("|").split("|")][1:-2]
    for r in data["per_session"]:
        r["timings_s"] = {k: r["timings_s"][k] for k in steps}
    return _bench("preprocess_benchmark").markdown(data)


BUILDERS = {
    **{
        n: (lambda d, t: _bench("dawm_accuracy").markdown(d))
        for n in (
            "dawm_accuracy",
            "dawm_accuracy_deepgm",
            "dawm_accuracy_physics",
            "dawm_accuracy_vis1.0",
            "dawm_accuracy_vis0.75",
            "dawm_accuracy_vis0.5",
            "dawm_accuracy_vis0.25",
        )
    },
    **{
        n: (lambda d, t: _bench("label_benchmark").markdown(d["summary"], d["meta"]))
        for n in (
            "label_1p5mm",
            "label_2mm_demo_full",
            "label_2mm_demo_full_regional",
            "label_2mm_demo_full_pooled_unweighted",
            "label_1mm_seed5",
            "label_1mm_seed5_regional",
            "label_1mm_seed5_pooled_unweighted",
            "label_2mm_seed11",
            "label_2mm_seed11_regional",
        )
    },
    **{
        n: (lambda d, t: _bench("label_ceiling").markdown(d["summary"], d["meta"], d["meta"].get("noise")))
        for n in ("label_ceiling_1p5mm", "label_ceiling_2mm_demo_full", "label_ceiling_2mm_seed11")
    },
    "label_coverage_2mm_seed11": lambda d, t: _bench("label_coverage").markdown(d["bids"], d["rows"]),
    **{
        n: (lambda d, t: _bench("label_reproducibility").markdown(d["rows"], d["summary"], d["meta"]))
        for n in (
            "label_reproducibility_before",
            "label_reproducibility",
            "label_reproducibility_rewritten",
            "label_reproducibility_rewritten_before",
            "label_reproducibility_rewritten_prisma",
        )
    },
    "model_ceiling_bigpack": lambda d, t: _bench("model_ceiling").markdown(d["tables"], d["meta"]),
    **{
        n: (lambda d, t: _bench("model_gpu").markdown(d))
        for n in (
            "model_gpu_adamw_qmri",
            "model_gpu_adamw_qmri_17ep",
            "model_gpu_adamw_qmri_bigcohort",
            "model_gpu_adamw_truth",
            "model_gpu_cpusmall_on_cpu",
            "model_gpu_sgd_qmri",
        )
    },
    **{n: (lambda d, t: _bench("model_speed").markdown(d)) for n in ("model_speed", "model_speed_gpu")},
    **{
        n: (lambda d, t: _bench("real_scans").markdown(d))
        for n in (
            "real_scans",
            "real_scans_candidate",
            "real_scans_lesionwise",
            "real_scans_truelesion",
            "real_scans_deepgm",
            "real_scans_physics",
        )
    },
    "real_longitudinal": lambda d, t: _bench("real_longitudinal").markdown(d),
    "dose_response": lambda d, t: _bench("dose_response").markdown(d["meta"], *_bench("dose_response").summarise(d["rows"])),
    **{n: _preprocess for n in ("preprocess_2mm_jobs1", "preprocess_2mm_jobs2")},
    "simulate": lambda d, t: _bench("simulate_benchmark").markdown(d["rows"] if isinstance(d, dict) else d),
    **{n: (lambda d, t: _bench("simulated_test").markdown(d)) for n in ("bundled_model_simulated", "simulated_test_demo_seed0")},
    "registration_threads": lambda d, t: _bench("registration_threads").markdown(d),
}
#: records whose Markdown had notes added by hand after the generated part
ANNOTATED = {
    "label_reproducibility",
    "label_reproducibility_rewritten",
    "label_reproducibility_rewritten_before",
    "label_reproducibility_rewritten_prisma",
}


@pytest.mark.parametrize("record", sorted(BUILDERS))
def test_markdown_builder_reproduces_the_record(record: str) -> None:
    data, text = _record(record)
    built = BUILDERS[record](data, text)
    if record in ANNOTATED:
        assert text.startswith(built) and len(text) > len(built)
    else:
        assert built == text


MODEL_ACCURACY_RESULTS = {
    "target": "dawm-label",
    "preset": "cpu-small",
    "max_epochs": 30,
    "iterations_per_epoch": 50,
    "split": {"test": ["hc001", "ms005"]},
    "configs": {
        "t1w+flair": {
            "test_sessions": 4,
            "lesion_dice_truth": 0.61234,
            "dawm_dice_truth": float("nan"),
            "dawm_spearman_truth": 0.25,
            "lesion_dice_qmri": 0.5,
            "dawm_dice_qmri": 0.0,
            "dawm_spearman_qmri": None,
            "train_seconds": 812.44,
        },
        "FLAIR threshold baseline": {
            "test_sessions": 4,
            "z_dawm": 2.0,
            "z_lesion": 5.0,
            "lesion_dice_truth": 0.3,
            "dawm_dice_truth": 0.01,
            "dawm_spearman_truth": -0.2,
            "lesion_dice_qmri": 0.31,
            "dawm_dice_qmri": 0.02,
            "dawm_spearman_qmri": 0.4,
        },
    },
}
MODEL_ACCURACY_TABLE = """\
| inputs | test sessions | lesion Dice (truth) | DAWM Dice (truth) | DAWM ml Spearman (truth) | lesion Dice (qMRI) | DAWM Dice (qMRI) | DAWM ml Spearman (qMRI) | train s |
|---|---|---|---|---|---|---|---|---|
| t1w+flair | 4 | 0.612 | n/a | 0.250 | 0.500 | 0.000 | n/a | 812.440 |
| FLAIR threshold baseline | 4 | 0.300 | 0.010 | -0.200 | 0.310 | 0.020 | 0.400 | n/a |

Baseline thresholds (FLAIR robust z in WM, tuned on the training subjects): DAWM > 2.0, lesion > 5.0.
"""


@pytest.mark.parametrize("tiny", [True, False])
def test_model_accuracy_markdown_as_before(tiny: bool) -> None:
    """Against the output of the code before the harness (its Markdown was built inside ``main``)."""
    import argparse

    ma = _bench("model_accuracy")
    if tiny:
        args = argparse.Namespace(bids=None, tiny=True, patients=3, controls=1, sessions=1, resolution=3.0)
        expected = (
            "# dawm model accuracy (tiny smoke run, 3 patients + 1 controls, 1 session(s), 3 mm)\n\n"
            "Target: `dawm-label`; preset cpu-small, 30 epochs x 50 iterations, fold 0; test subjects: hc001, ms005 "
            "(named with --test-subjects); 100 s in all.\n\n"
        )
        built = ma.markdown(MODEL_ACCURACY_RESULTS, title=ma.title(args, {}), test_subjects_named=True, seconds=99.6)
    else:
        args = argparse.Namespace(bids=Path("/data/bids"), tiny=False)
        expected = (
            "# dawm model accuracy (`/data/bids` (18 subjects))\n\n"
            "Target: `dawm-label`; preset cpu-small, 30 epochs x 50 iterations, fold 0; test subjects: hc001, ms005; 1000 s in all.\n\n"
        )
        built = ma.markdown(MODEL_ACCURACY_RESULTS, title=ma.title(args, {"subjects": 18}), test_subjects_named=False, seconds=1000.4)
    assert built == expected + MODEL_ACCURACY_TABLE


def test_brain_extraction_markdown() -> None:
    be = _bench("brain_extraction")
    rows = [
        {"subject": "hc001", "session": "01", "dice": 0.938, "affine_metric": -0.309, "seconds": 23.6},
        {"subject": "ms002", "session": "01", "dice": 0.9, "affine_metric": -0.3, "seconds": 20.0},
    ]
    assert be.markdown("/c/bids", rows) == (
        "# Brain extraction against the simulator's truth (`/c/bids`)\n\n| subject | session | dice | affine_metric | seconds |\n|---|---|---|---|---|\n"
        "| hc001 | 01 | 0.938 | -0.309 | 23.6 |\n| ms002 | 01 | 0.900 | -0.300 | 20.0 |\n\n2 sessions: Dice min 0.900, median 0.919\n"
    )


def test_dawm_visibility_lines_up_runs_and_names_missing_results(tmp_path: Path, capsys) -> None:
    """The sweep table has one row per (level, method), a renamed model row and the baselines, and
    a missing run is a clear error (exit 2), not a traceback."""
    mod = _bench("dawm_visibility")
    record = json.loads((RESULTS / "dawm_accuracy_vis1.0.json").read_text())
    (tmp_path / "v1.json").write_text(json.dumps(record))
    assert (
        mod.main(["--run", "1.0=v1", "--model", "model: new=candidate", "--runs-dir", str(tmp_path), "--results-dir", str(tmp_path)]) == 0
    )
    out = json.loads((tmp_path / "dawm_visibility.json").read_text())
    assert [r["method"] for r in out["rows"]] == ["model: candidate", "voxel logistic (T1w+FLAIR)", "FLAIR threshold"]
    assert out["rows"][0]["rho"] == pytest.approx(next(r for r in record["rows"] if r["method"] == "model: new")["thresholded"]["spearman"])
    assert (tmp_path / "dawm_visibility.png").stat().st_size > 0
    assert mod.main(["--run", "0.5=absent", "--runs-dir", str(tmp_path), "--results-dir", str(tmp_path)]) == 2
    assert "absent.json" in capsys.readouterr().err


def test_dawm_accuracy_predicts_from_a_view_without_derivatives(tmp_path: Path) -> None:
    """The models see the raw test cohort only (a qMRI preprocessing beside it is not theirs to use),
    and nothing is written into the test cohort; a label map on another grid is taken across."""
    import nibabel as nib

    mod = _bench("dawm_accuracy")
    test = tmp_path / "test"
    (test / "sub-ms001" / "anat").mkdir(parents=True)
    (test / "derivatives" / "dawm-preprocess").mkdir(parents=True)
    (test / "dataset_description.json").write_text("{}")
    before = sorted(p.relative_to(test) for p in test.rglob("*"))
    view = mod.clinical_view(test, tmp_path / "work" / "view")
    assert sorted(p.name for p in view.iterdir()) == ["dataset_description.json", "derivatives", "sub-ms001"]
    assert (view / "sub-ms001").resolve() == (test / "sub-ms001").resolve() and not any((view / "derivatives").iterdir())
    assert mod.clinical_view(test, view) == view  # again: nothing to redo
    assert sorted(p.relative_to(test) for p in test.rglob("*")) == before

    dseg = np.zeros((4, 4, 4), np.uint8)
    dseg[1, 2, 3] = 2
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), a)
    shifted = np.eye(4)
    shifted[0, 3] = 1.0  # b's voxel i is a's voxel i + 1
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), shifted), b)
    assert mod.onto_grid(dseg, a, a) is dseg
    moved = mod.onto_grid(dseg, a, b)
    assert moved[0, 2, 3] == 2 and moved.sum() == 2 and moved.dtype == np.uint8


def test_real_scans_counts_lesion_and_dawm_inside_the_deep_grey_nuclei(tmp_path) -> None:
    """real_scans' deep-GM columns: a label in the thalamus counts, one in the centrum semiovale
    does not; without a template transform the columns are left out."""
    from dawm.image.registration import save_transform
    from dawm.image.template import load_template

    rs = _bench("real_scans")
    tpl = load_template(2)
    inv = np.linalg.inv(tpl.affine)
    dseg = np.zeros(tpl.t1.shape, np.uint8)
    thalamus = np.rint(inv[:3, :3] @ [-11, -18, 7] + inv[:3, 3]).astype(int)
    semiovale = np.rint(inv[:3, :3] @ [-26, -10, 34] + inv[:3, 3]).astype(int)
    dseg[tuple(thalamus)] = 2
    dseg[tuple(semiovale)] = 1
    assert rs.deep_gm_volumes(dseg, tpl.affine, None) == {}
    xfm = tmp_path / "sub-a_from-MNI152NLin2009cSym_to-session_mode-image_xfm.h5"
    save_transform(np.eye(4), xfm)
    assert rs.deep_gm_volumes(dseg, tpl.affine, xfm) == {"lesion_ml_deep_gm": 0.0, "dawm_ml_deep_gm": 0.01}


def test_simulated_test_records_the_lesion_dice_of_each_input_set(tmp_path) -> None:
    """``simulated_test.py --record``: the truth rows' lesion Dice, named by the inputs kept, land in
    model.json, where ``LoadedModel.input_accuracy`` reads them back."""
    from dawm.model.inference import LoadedModel
    from dawm.model.modeldir import read_model_json

    rows = [
        {"inputs": "t1w+flair", "reference": "truth", "lesion_dice": 0.65},
        {"inputs": "t1w+flair", "reference": "qMRI labels", "lesion_dice": 0.6},
        {"inputs": "flair", "reference": "truth", "lesion_dice": 0.64},
        {"inputs": "t1w", "reference": "truth", "lesion_dice": 0.11},
    ]
    _bench("simulated_test").record_input_accuracy(tmp_path, {"input_suffixes": ["T1w", "FLAIR"], "name": "m"}, rows, "a test")
    info = read_model_json(tmp_path)
    assert info["name"] == "m" and info["input_accuracy"] == {
        "lesion_dice": {"T1w+FLAIR": 0.65, "FLAIR": 0.64, "T1w": 0.11},
        "source": "a test",
    }
    model = LoadedModel(info, [], [0], ["T1w", "FLAIR"], (8, 8, 8), (8, 8, 8), 0.3, None)
    assert model.input_accuracy(["T1w"])["lesion_dice"] == 0.11
