"""The demo: the whole pipeline on the embedded synthetic cohort, scored against the known truth.

``run_demo`` chains every stage on a simulated cohort and leaves a browsable folder::

    <output>/bids                               the simulated BIDS dataset (+ derivatives/dawm-truth)
    <output>/bids/derivatives/dawm-preprocess   preprocessing (QC, IQMs, MNI transforms)
    <output>/bids/derivatives/dawm-label        qMRI DAWM labels (T1 high and MTR low), + dawm-label-t1 / -mtr
    <output>/bids/derivatives/dawm-truth-label  the simulator's truth on the session grids
    <output>/model                              the trained CPU model (one fold, held-out test subjects)
    <output>/predict[-t1w|-flair]               predictions on the test subjects (both inputs; one missing)
    <output>/report                             dawm evaluate: predictions vs qMRI labels (report.html)
    <output>/report-labels                      dawm evaluate: qMRI labels (both / T1 / MTR) vs the truth
    <output>/preprocess_accuracy.tsv            preprocessing vs the truth

Three sizes (:func:`demo_plan`): ``quick`` (the tests' tiny 3 mm cohort and network, a few
minutes), ``default`` (``make demo``: 2 mm, 6 patients + 3 controls, 2 sessions, about 15 minutes on 2 cores)
and ``full`` (the benchmark cohort: 2 mm, 12 patients + 6 controls, longer training; about an hour).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from dawm.bids.derivative_files import LabelFiles, PreprocessFiles, TruthFiles
from dawm.bids.derivatives import write_tsv
from dawm.bids.layout import discover_sessions
from dawm.label.config import LabelConfig
from dawm.model.config import TrainConfig
from dawm.parallel import Outcome
from dawm.preprocess.config import PreprocessConfig
from dawm.simulate.config import SimulationConfig

log = logging.getLogger(__name__)
Mode = Literal["quick", "default", "full"]


@dataclass(frozen=True)
class DemoPlan:
    """Every stage's settings for one demo size."""

    simulation: SimulationConfig
    preprocess: PreprocessConfig
    label: LabelConfig
    train: TrainConfig


def demo_plan(mode: Mode = "default") -> DemoPlan:
    """The settings of the ``quick`` / ``default`` / ``full`` demo (see the module docstring)."""
    if mode == "quick":
        sim = SimulationConfig.small(resolution_mm=3.0, patients=2, controls=1, sessions=2, scanners=2)
        pre = PreprocessConfig(spacing_mm=3.0, registration_spacing_mm=4.0, qc_figure=False, mni_refine=False)
        train = TrainConfig(
            preset="tiny",
            patch_size=(32, 32, 32),
            iterations_per_epoch=4,
            max_epochs=2,
            val_every=2,
            folds=2,
            test_fraction=0.3,
            inference_patch_size=(64, 64, 64),
        )
    elif mode == "default":
        sim = SimulationConfig(patients=6, controls=3, sessions=2, scanners=3, resolution_mm=2.0)
        pre = PreprocessConfig(spacing_mm=2.0, registration_spacing_mm=3.0, qc_figure=False)
        train = TrainConfig(
            preset="cpu-small",
            patch_size=(48, 48, 48),
            iterations_per_epoch=25,
            max_epochs=35,
            val_every=7,
            patience=3,
            folds=3,
            test_fraction=0.34,
            inference_patch_size=(96, 96, 96),
        )
    else:
        sim = SimulationConfig(patients=12, controls=6, sessions=2, scanners=3, resolution_mm=2.0)
        pre = PreprocessConfig(spacing_mm=2.0, qc_figure=False)
        train = TrainConfig(
            preset="cpu-small",
            patch_size=(64, 64, 64),
            iterations_per_epoch=40,
            max_epochs=60,
            val_every=10,
            patience=3,
            folds=3,
            test_fraction=0.25,
            inference_patch_size=(96, 96, 96),
        )
    return DemoPlan(sim, pre, LabelConfig(), train)


@dataclass
class DemoResult:
    """Where everything is, and the key numbers (``summary``)."""

    output: Path
    folders: dict[str, Path] = field(default_factory=dict)
    preprocess_accuracy: pd.DataFrame | None = None
    summary: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _failed(outcomes: list[Outcome]) -> list[str]:
    return [f"{o.name}: {o.error}" for o in outcomes if not o.ok]


def run_demo(output: str | Path, *, mode: Mode = "default", jobs: int = 2, progress: Callable[[str], None] | None = None) -> DemoResult:
    """Simulate, preprocess, label, train, predict and evaluate under ``output`` (see the module
    docstring). A re-run resumes: finished stages are reused."""
    from dawm.evaluate.pipeline import evaluate_dataset
    from dawm.label.pipeline import label_dataset
    from dawm.model.modeldir import read_model_json
    from dawm.model.predict import predict_dataset
    from dawm.model.train import train
    from dawm.preprocess.pipeline import preprocess_dataset
    from dawm.simulate.cohort import simulate_cohort
    from dawm.simulate.preprocess_accuracy import evaluate_session
    from dawm.simulate.truth import write_truth_labels

    say = progress or log.info
    output = Path(output)
    plan = demo_plan(mode)
    bids = output / "bids"
    result = DemoResult(output)

    say("1/6 simulate")
    cohort = simulate_cohort(plan.simulation, bids, jobs=jobs)
    result.failures += _failed(cohort.failures)
    say("2/6 preprocess")
    pre_dir = PreprocessFiles.in_dataset(bids).root
    outcomes = preprocess_dataset(bids, output=pre_dir, config=plan.preprocess, jobs=jobs)
    result.failures += _failed(outcomes)
    done = {o.name for o in outcomes if o.ok}
    rows = [{"session": s.key, **evaluate_session(bids, pre_dir, s)} for s in discover_sessions(bids) if s.key in done]
    result.preprocess_accuracy = pd.DataFrame(rows)
    write_tsv(output / "preprocess_accuracy.tsv", result.preprocess_accuracy)

    say("3/6 label (qMRI rule: T1 high and MTR low; and T1-only / MTR-only variants)")
    labels = {
        rule: LabelFiles.in_dataset(bids, LabelFiles.NAME + ("" if rule == "both" else f"-{rule}")).root for rule in ("both", "t1", "mtr")
    }
    for rule, folder in labels.items():
        result.failures += _failed(label_dataset(bids, output=folder, config=plan.label.model_copy(update={"rule": rule}), jobs=jobs))
    truth_labels = write_truth_labels(bids, name=f"{TruthFiles.NAME}-label")

    say("4/6 train (one fold; test subjects held out)")
    model_dir = output / "model"
    started = (model_dir / "model.json").exists()
    info = read_model_json(model_dir) if started else {}
    if "0" not in info.get("folds", {}):  # a finished fold is recorded in model.json: a re-run reuses it
        info = train(bids, model_dir, plan.train, folds=[0], resume=started and any(model_dir.glob("fold-*/last.pt")))
    test_subjects = list(info["split"].get("test", [])) or list(info["split"]["folds"][0]["val"])

    say(f"5/6 predict {len(test_subjects)} held-out subject(s), with both inputs and with one missing")
    preds = {"main": output / "predict", "t1w only": output / "predict-t1w", "flair only": output / "predict-flair"}
    for name, folder in preds.items():
        drop = {"main": (), "t1w only": ("FLAIR",), "flair only": ("T1w",)}[name]
        result.failures += _failed(predict_dataset(bids, folder, model_dir, participant_label=test_subjects, drop=drop, jobs=jobs))

    say("6/6 evaluate and write the reports")
    report = evaluate_dataset(
        preds["main"], labels["both"], output / "report", bids_dir=bids, compare={k: v for k, v in preds.items() if k != "main"}
    )
    report_truth = evaluate_dataset(preds["main"], truth_labels, output / "report-truth", bids_dir=bids)
    report_labels = evaluate_dataset(
        labels["both"], truth_labels, output / "report-labels", bids_dir=bids, compare={"T1 only": labels["t1"], "MTR only": labels["mtr"]}
    )
    result.summary = {
        **{f"model vs labels: {k}": v for k, v in report.numbers.items()},
        **{f"model vs truth: {k}": v for k, v in report_truth.numbers.items()},
        **{f"labels vs truth: {k}": v for k, v in report_labels.numbers.items()},
    }
    result.folders = {
        "dataset": bids,
        "preprocessed": pre_dir,
        "labels": labels["both"],
        "model": model_dir,
        "predictions": preds["main"],
        "report (model vs labels)": report.report,
        "report (model vs truth)": report_truth.report,
        "report (labels vs truth)": report_labels.report,
        "preprocessing accuracy": output / "preprocess_accuracy.tsv",
    }
    return result
