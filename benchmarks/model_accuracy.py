"""Accuracy of the dawm network against the simulator's truth and the qMRI labels, with a FLAIR
threshold baseline, on a held-out test split.

Usage::

    python benchmarks/model_accuracy.py                  # 2 mm cohort, 24 patients + 8 controls (long)
    python benchmarks/model_accuracy.py --tiny           # 3 mm, 3 patients + 1 control, a few iterations
    python benchmarks/model_accuracy.py --bids demo_output_full/bids --labels dawm-label-bench \
        --test-subjects hc001,ms001,ms005,ms009,ms010      # an existing simulated + preprocessed cohort

With ``--bids`` the cohort is not simulated nor preprocessed again; the qMRI labels are made with
the current ``dawm label`` defaults into ``derivatives/<--labels>`` (reused when present).
``--test-subjects`` fixes the test split (the same for every input configuration; the folds are
dealt from the other subjects): on a small cohort a random test split may hold no patient with
DAWM, which leaves the DAWM columns empty. ``--train-on truth`` trains on the simulator's truth
instead of the qMRI labels (the FLAIR baseline is then tuned on the truth too): the gap between
the two runs is what the label noise costs.

Steps: simulate a cohort (reused when ``--work`` already holds it), preprocess it (T1w, FLAIR and the
quantitative maps), label it with ``dawm label`` (the qMRI labels; when the label stage fails the
simulator's truth is used as the training target and the qMRI columns are n/a), write the truth on
the session grids as ``derivatives/dawm-truthlabel``. Subjects are split once (``test_fraction``,
stratified by scanner and group); for each input configuration (t1w, flair, t1w+flair) the
``cpu-small`` preset (``--preset``) is trained on fold 0 of the remaining subjects and evaluated on the
test sessions: pooled lesion and DAWM Dice against the truth and against the qMRI labels, and the
Spearman correlation of per-session DAWM volumes with both. The baseline labels WM voxels of the
FLAIR by their robust z-score against the session's WM (median / 1.4826 MAD): DAWM between
``z_dawm`` and ``z_lesion``, lesion above ``z_lesion``, both thresholds tuned on the training subjects.
Writes ``benchmarks/results/model_accuracy.{json,md}`` (``--name``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, label_path, markdown_table, read_dseg, write_results

from dawm.evaluate.baselines import FlairThreshold, fit_predict
from dawm.image.io import load_volume
from dawm.model.config import TrainConfig
from dawm.model.data import cases_of, discover_cases
from dawm.model.decision import labels_from_probabilities
from dawm.model.inference import load_model, predict_probabilities
from dawm.model.metrics import agreement
from dawm.model.train import train
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import preprocess_dataset
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import SimulationConfig
from dawm.simulate.truth import write_truth_labels

TRUTH_LABELS = "dawm-truthlabel"


def _labels(bids: Path, name: str = "dawm-label") -> str | None:
    """Run ``dawm label`` into ``derivatives/<name>``; the name, or None when the stage is unavailable or fails."""
    try:
        from dawm.label.pipeline import label_dataset
    except ImportError as exc:
        print(f"dawm label unavailable ({exc}): training on the simulator's truth")
        return None
    try:
        outcomes = label_dataset(bids, output=bids / "derivatives" / name)
    except Exception as exc:  # noqa: BLE001 - the benchmark goes on with the truth
        print(f"dawm label failed ({exc}): training on the simulator's truth")
        return None
    bad = [o for o in outcomes if not o.ok]
    if bad:
        print(f"dawm label failed for {len(bad)} session(s), e.g. {bad[0].name}: {bad[0].error}")
    return name if len(bad) < len(outcomes) else None


def _fixed_split(model_dir: Path, cases, test: list[str], folds: int, seed: int) -> None:
    """Write ``model_dir/split.json`` with ``test`` as the test subjects and ``folds`` k-folds of the rest."""
    from dawm.model.data import make_split, subjects_with_dawm

    known = {c.subject for c in cases}
    unknown = sorted(set(test) - known)
    if unknown:
        raise SystemExit(f"--test-subjects not in the cohort: {', '.join(unknown)}")
    pool = [c for c in cases if c.subject not in test]
    split = make_split(pool, mode="kfold", folds=folds, seed=seed, dawm_subjects=subjects_with_dawm(pool))
    split["test"] = sorted(test)
    split["subjects"] = {c.subject: {"scanner": c.scanner, "group": c.group} for c in sorted(cases, key=lambda c: c.key)}
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "split.json").write_text(json.dumps(split, indent=2) + "\n")


def _evaluate(preds: dict[str, np.ndarray], targets: dict[str, dict[str, np.ndarray | None]], voxel_ml: dict[str, float]) -> dict:
    out: dict = {}
    for ref in ("truth", "qmri"):
        a = agreement(preds, {k: t[ref] for k, t in targets.items() if t[ref] is not None}, voxel_ml)
        out.update({f"lesion_dice_{ref}": a["lesion_dice"], f"dawm_dice_{ref}": a["dawm_dice"], f"dawm_spearman_{ref}": a["dawm_spearman"]})
        if a["dawm_ml_pred"]:
            out[f"dawm_ml_pred_{ref}"], out[f"dawm_ml_target_{ref}"] = a["dawm_ml_pred"], a["dawm_ml_ref"]
    return out


def title(args: argparse.Namespace, cohort: dict) -> str:
    """The cohort as the table's title names it."""
    if args.bids:
        return f"`{args.bids}` ({cohort['subjects']} subjects)"
    return (
        f"{'tiny smoke run, ' if args.tiny else ''}{args.patients} patients + {args.controls} controls, {args.sessions} session(s), "
        f"{args.resolution:g} mm"
    )


def markdown(results: dict, *, title: str, test_subjects_named: bool, seconds: float) -> str:
    """The results table (one row per input configuration, then the FLAIR threshold baseline)."""
    split, baseline = results["split"], results["configs"]["FLAIR threshold baseline"]
    columns = {"inputs": "name", "test sessions": "test_sessions"}
    columns.update(
        {
            f"{what} ({ref_name})": f"{key}_{ref}"
            for ref, ref_name in (("truth", "truth"), ("qmri", "qMRI"))
            for what, key in (("lesion Dice", "lesion_dice"), ("DAWM Dice", "dawm_dice"), ("DAWM ml Spearman", "dawm_spearman"))
        }
    )
    columns["train s"] = "train_seconds"
    rows = [{"name": name, **r} for name, r in results["configs"].items()]
    lines = [
        f"# dawm model accuracy ({title})",
        "",
        f"Target: `{results['target']}`; preset {results['preset']}, {results['max_epochs']} epochs x {results['iterations_per_epoch']} "
        f"iterations, fold 0; test subjects: {', '.join(split['test'])}{' (named with --test-subjects)' if test_subjects_named else ''}; "
        f"{seconds:.0f} s in all.",
        "",
        markdown_table(rows, columns, formats=dict.fromkeys(list(columns.values())[2:], ".3f")),
        "",
        f"Baseline thresholds (FLAIR robust z in WM, tuned on the training subjects): DAWM > {baseline['z_dawm']}, "
        f"lesion > {baseline['z_lesion']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, name="model_accuracy")
    ap.add_argument("--tiny", action="store_true", help="3 mm, 3 patients + 1 control, 1 session, a few iterations (smoke run)")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "dawm-model-accuracy",
        help="where the cohort and models go (reused by a later run)",
    )
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--controls", type=int, default=8)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--resolution", type=float, default=2.0)
    ap.add_argument("--preset", default="cpu-small")
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--patch", type=int, default=None)
    ap.add_argument("--inputs", default="t1w,flair,t1w+flair")
    ap.add_argument("--test-fraction", type=float, default=0.25)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument(
        "--bids",
        type=Path,
        default=None,
        help="an existing simulated BIDS cohort with derivatives/dawm-preprocess (no simulate/preprocess)",
    )
    ap.add_argument(
        "--labels", default="dawm-label", help="derivative name of the qMRI labels (made with the current defaults when missing)"
    )
    ap.add_argument(
        "--train-on",
        choices=("qmri", "truth"),
        default="qmri",
        help="training targets: the qMRI labels, or the simulator's truth (a learnability check: the label noise removed)",
    )
    ap.add_argument("--test-subjects", default=None, help="comma-separated subjects (no sub-) forming the test split")
    args = ap.parse_args(argv)
    run = Run.start(argv, script=__file__)
    if args.tiny:
        args.patients, args.controls, args.sessions, args.resolution = 3, 1, 1, 3.0
        args.max_epochs, args.iterations, args.patch = 2, 2, args.patch or 16
        args.preset = "tiny" if args.preset == "cpu-small" else args.preset
    if args.bids and not (args.bids / "derivatives" / "dawm-preprocess").is_dir():
        ap.error(f"--bids {args.bids}: no derivatives/dawm-preprocess there (simulate and preprocess it first)")
    if args.bids:
        bids, work = args.bids, args.work / args.bids.resolve().parent.name
        participants = (bids / "participants.tsv").read_text().splitlines()[1:]
        cohort = {"bids": str(bids), "subjects": len(participants)}
        failed = []
    else:
        work = args.work / ("tiny" if args.tiny else f"{args.resolution:g}mm")
        bids = work / "bids"
        sim = SimulationConfig(
            patients=args.patients,
            controls=args.controls,
            sessions=args.sessions,
            scanners=2 if args.tiny else 3,
            resolution_mm=args.resolution,
        )
        simulate_cohort(sim, bids, jobs=args.jobs)
        cohort = sim.model_dump()
        pp = PreprocessConfig(spacing_mm=args.resolution, iqm=False, qc_figure=False, mni_refine=not args.tiny)
        outcomes = preprocess_dataset(bids, config=pp, jobs=args.jobs)
        failed = [o.name for o in outcomes if not o.ok]
    write_truth_labels(bids, name=TRUTH_LABELS)
    qmri = _labels(bids, args.labels)
    target = TRUTH_LABELS if args.train_on == "truth" else qmri or TRUTH_LABELS
    prep_s = run.elapsed()

    all_cases = discover_cases(bids, labels=target)
    results: dict = {
        "cohort": cohort,
        "preprocess_failed": failed,
        "target": target,
        "preset": args.preset,
        "max_epochs": args.max_epochs,
        "iterations_per_epoch": args.iterations,
        "data_seconds": prep_s,
        "configs": {},
    }
    for inputs in args.inputs.split(","):
        model_dir = work / f"model-{inputs.replace('+', '-')}{'-truth' if args.train_on == 'truth' else ''}"
        cfg = TrainConfig(
            inputs=inputs,
            preset=args.preset,
            max_epochs=args.max_epochs,
            iterations_per_epoch=args.iterations,
            patch_size=(args.patch,) * 3 if args.patch else None,
            test_fraction=args.test_fraction,
            folds=3 if args.tiny else 5,
            labels=target,
            inference_patch_size=(48, 48, 48) if args.tiny else None,
        )
        if args.test_subjects and not (model_dir / "split.json").exists():
            _fixed_split(model_dir, all_cases, [t.strip().removeprefix("sub-") for t in args.test_subjects.split(",")], cfg.folds, cfg.seed)
        t = time.perf_counter()
        resume = (model_dir / "fold-0" / "last.pt").exists()
        info = train(bids, model_dir, cfg, folds=[0], resume=resume)
        train_s = time.perf_counter() - t
        test = cases_of(all_cases, info["split"]["test"])
        model = load_model(model_dir)
        preds, targets, vox = {}, {}, {}
        t = time.perf_counter()
        for c in test:
            brain_vol = load_volume(c.brain)
            imgs = {s: load_volume(p).data for s, p in c.images.items()}
            probs = predict_probabilities(model, imgs, brain_vol.data > 0.5, brain_vol.affine)
            preds[c.key] = labels_from_probabilities(probs, model.dawm_threshold)
            targets[c.key] = {
                "truth": read_dseg(label_path(bids, c, TRUTH_LABELS)),
                "qmri": read_dseg(label_path(bids, c, qmri)) if qmri else None,
            }
            vox[c.key] = float(np.prod(brain_vol.spacing_mm)) / 1000
        results["configs"][inputs] = {
            "test_sessions": len(test),
            "train_seconds": train_s,
            "predict_seconds": time.perf_counter() - t,
            "fold0": info["folds"]["0"],
            **_evaluate(preds, targets, vox),
        }
        print(inputs, {k: v for k, v in results["configs"][inputs].items() if not isinstance(v, list)}, flush=True)
        results["split"] = info["split"]

    # FLAIR threshold baseline, thresholds tuned on the training subjects of the same split
    split = results["split"]
    train_cases = cases_of(all_cases, split["folds"][0]["train"] + split["folds"][0]["val"])
    test = cases_of(all_cases, split["test"])
    flair = FlairThreshold()
    preds = fit_predict(flair, train_cases, test)  # against each case's target, derivatives/<target>
    targets = {
        c.key: {"truth": read_dseg(label_path(bids, c, TRUTH_LABELS)), "qmri": read_dseg(label_path(bids, c, qmri)) if qmri else None}
        for c in test
    }
    vox = {c.key: float(np.prod(load_volume(c.brain).spacing_mm)) / 1000 for c in test}
    results["configs"]["FLAIR threshold baseline"] = {
        "test_sessions": len(test),
        "z_dawm": flair.z_dawm_,
        "z_lesion": flair.z_lesion_,
        **_evaluate(preds, targets, vox),
    }

    md = markdown(results, title=title(args, cohort), test_subjects_named=bool(args.test_subjects), seconds=run.elapsed())
    write_results(args.name, results, md, run=run, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
