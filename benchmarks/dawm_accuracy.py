"""DAWM and lesion accuracy from T1w/FLAIR on a separately seeded test cohort, with baselines.

Usage::

    python benchmarks/dawm_accuracy.py --train TRAIN_BIDS --test TEST_BIDS [--model NAME=DIR ...]
        [--name dawm_accuracy] [--work DIR] [--jobs 2]

``TRAIN_BIDS``: the simulated cohort the model was trained on, preprocessed and labelled (``dawm
preprocess``, ``dawm label``): the baselines are fitted on it, against its qMRI labels (the
model's own targets). ``TEST_BIDS``: a cohort simulated with another seed; it needs only
``dawm simulate`` - every model predicts it from T1w + FLAIR as a lab would (``dawm predict``
preprocesses the clinical images), from a view of the raw cohort without its derivatives
(``WORK/test_view``: links, the test cohort is never written to), so that a qMRI preprocessing of
the cohort is not used; the first model's preprocessing is reused by the others. When the test
cohort also has qMRI labels (``dawm preprocess`` + ``dawm label``: ``derivatives/dawm-label``),
they are scored against the truth on their own grid, and every method is scored against them too
(taken onto each session grid, nearest neighbour).

Rows: each model (``--model``, default the bundled one), the voxel-logistic and FLAIR-threshold
baselines (:mod:`dawm.evaluate.baselines`), and the qMRI labels when present. Columns, against the
simulator's truth on each session grid: pooled lesion and DAWM Dice, lesion-wise F1 (components of
>= 3 voxels, :func:`dawm.evaluate.metrics.lesion_detection`, counts pooled over sessions), DAWM
volume Spearman and ICC(A,1) with 95 % percentile-bootstrap CIs over subjects (a subject's
sessions resampled together, :func:`dawm.evaluate.metrics.agreement_table`), for the thresholded
volume and, where a method has probabilities, the expected volume (sum of P(DAWM)). Evolution: the
DAWM transitions between the two predicted sessions (:func:`dawm.longitudinal.longitudinal_outputs`)
against the simulator's recorded transitions, as Spearman rho over subjects per transition. Lesion
recall by lesion volume (:func:`dawm.evaluate.metrics.lesion_recall_by_size`; every reference
lesion, one overlapping voxel detects) says which lesion sizes a method finds.
Writes ``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, fmt_ci, markdown_table, read_dseg, recall_cell, write_results

TRANSITIONS = ("dawm_to_lesion", "dawm_to_normal", "dawm_persistent", "new_dawm", "new_lesion")


def score(
    preds: dict[str, np.ndarray],
    refs: dict[str, np.ndarray],
    voxel_ml: dict[str, float],
    subject: dict[str, str],
    expected_ml: dict[str, float] | None = None,
) -> dict:
    """One table row: pooled Dice, lesion F1, DAWM volume agreement (with CIs) of ``preds`` vs ``refs``."""
    from dawm.evaluate.metrics import agreement_table, lesion_detection, lesion_recall_by_size
    from dawm.model.metrics import class_counts, pooled_dice

    keys = sorted(k for k in preds if k in refs)
    d = pooled_dice([class_counts(preds[k], refs[k]) for k in keys])
    det = {"tp_ref": 0, "n_ref": 0, "tp_pred": 0, "n_pred": 0}
    for k in keys:
        r = lesion_detection(preds[k] == 1, refs[k] == 1, 1.0, min_volume_mm3=3.0)  # spacing 1: 3 voxels
        for n in det:
            det[n] += r[n]
    by_size: dict[str, dict[str, int]] = {}
    for k in keys:  # the reference's lesions per volume bin (mm3), all of them (no 3-voxel minimum)
        for b, n in lesion_recall_by_size(preds[k] == 1, refs[k] == 1, np.cbrt(voxel_ml[k] * 1000.0)).items():
            acc = by_size.setdefault(b, {"n_ref": 0, "detected": 0})
            acc["n_ref"] += n["n_ref"]
            acc["detected"] += n["detected"]
    rec = det["tp_ref"] / det["n_ref"] if det["n_ref"] else float("nan")
    prec = det["tp_pred"] / det["n_pred"] if det["n_pred"] else float("nan")
    ref_ml = np.array([float((refs[k] == 2).sum()) * voxel_ml[k] for k in keys])
    groups = np.array([subject[k] for k in keys])
    row = {
        "sessions": len(keys),
        "sessions_with_dawm": int((ref_ml > 0.5).sum()),
        "lesion_dice": d[1],
        "dawm_dice": d[2],
        "lesion_recall": rec,
        "lesion_precision": prec,
        "lesion_f1": 2 * rec * prec / (rec + prec) if rec + prec > 0 else 0.0,
        "dawm_ml_ref": float(ref_ml.sum()),
        "lesion_recall_by_size": {b: {**n, "recall": n["detected"] / n["n_ref"] if n["n_ref"] else None} for b, n in by_size.items()},
    }
    volumes = {"thresholded": np.array([float((preds[k] == 2).sum()) * voxel_ml[k] for k in keys])}
    if expected_ml is not None:
        volumes["expected"] = np.array([expected_ml[k] for k in keys])
    for name, pred_ml in volumes.items():
        a = agreement_table(pred_ml, ref_ml, groups, n_boot=2000, seed=0)
        row[name] = {
            "dawm_ml_pred": float(pred_ml.sum()),
            "spearman": a["spearman_rho"],
            "spearman_ci": [a["spearman_rho_ci_low"], a["spearman_rho_ci_high"]],
            "icc_a1": a["icc_a1"],
            "icc_a1_ci": [a["icc_a1_ci_low"], a["icc_a1_ci_high"]],
        }
    return row


def clinical_view(test: Path, view: Path) -> Path:
    """``view``: the raw test cohort without its derivatives (links to its files), so that every
    model preprocesses T1w/FLAIR as a lab would, even when the cohort was also preprocessed with its
    qMRI for the labels. The test cohort itself is never written to."""
    view.mkdir(parents=True, exist_ok=True)
    (view / "derivatives").mkdir(exist_ok=True)
    for entry in test.iterdir():
        link = view / entry.name
        if entry.name != "derivatives" and not link.exists():
            link.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return view


def onto_grid(dseg: np.ndarray, from_brain: Path, to_brain: Path) -> np.ndarray:
    """A label map on the grid of the brain mask ``from_brain`` taken onto that of ``to_brain``
    (nearest neighbour, same world space): identity when the two grids are the same."""
    from dawm.image.io import load_volume
    from dawm.image.resample import resample_to_grid

    src, dst = load_volume(from_brain), load_volume(to_brain)
    if src.data.shape == dst.data.shape and np.allclose(src.affine, dst.affine, atol=1e-4):
        return dseg
    return resample_to_grid(dseg, src.affine, dst.data.shape, dst.affine, interpolation="nearest")


def evolution(pred_dir: Path, test: Path) -> dict:
    """Spearman rho over subjects of each transition volume, predicted vs the simulator's truth."""
    from scipy import stats

    from dawm.bids.derivative_files import TruthFiles
    from dawm.bids.layout import SessionRef
    from dawm.evaluate.evolution import transitions_from_truth_map
    from dawm.image.io import load_volume
    from dawm.longitudinal import longitudinal_outputs

    table = longitudinal_outputs(pred_dir)
    table = table[table.status == "ok"] if "status" in table else table
    pred, true = {t: [] for t in TRANSITIONS}, {t: [] for t in TRANSITIONS}
    for _, row in table.iterrows():
        sub, fu = row.participant_id.removeprefix("sub-"), row.followup.removeprefix("ses-")
        path = TruthFiles.in_dataset(test).transition_dseg(SessionRef(sub, fu))
        if not path.exists():
            continue
        vol = load_volume(path, allow_empty=True)
        truth = transitions_from_truth_map(np.rint(vol.data), float(np.prod(vol.spacing_mm)) / 1000)
        for t in TRANSITIONS:
            pred[t].append(float(row[f"{t}_ml"]))
            true[t].append(float(truth[f"{t}_ml"]))
    out = {"subjects": len(pred[TRANSITIONS[0]])}
    for t in TRANSITIONS:
        p, r = np.array(pred[t]), np.array(true[t])
        ok = len(p) > 2 and np.std(p) > 0 and np.std(r) > 0
        out[t] = {"spearman": float(stats.spearmanr(p, r).statistic) if ok else None, "pred_ml": float(p.sum()), "true_ml": float(r.sum())}
    return out


def _rho(v: dict) -> str:
    return fmt_ci(v["spearman"], *v["spearman_ci"])


def _icc(v: dict) -> str:
    return fmt_ci(v["icc_a1"], *v["icc_a1_ci"])


def markdown(result: dict) -> str:
    """The results as Markdown: one table per reference, the evolution table, the notes."""
    lines = [
        f"# DAWM accuracy on a separately seeded test cohort ({result['test']})",
        "",
        f"{result['test_sessions']} test sessions ({result['test_subjects']} subjects); baselines fitted on {result['train_sessions']} "
        f"sessions of {result['train']} against its qMRI labels; {result['seconds']:.0f} s. "
        "Volume columns: Spearman rho and ICC(A,1) of per-session DAWM ml, [95 % bootstrap CI over subjects].",
        "",
    ]
    for ref in result["references"]:
        table = []
        for r in (r for r in result["rows"] if r["reference"] == ref):
            e = r.get("expected")
            table.append(
                {
                    "method": r["method"],
                    "sessions (with DAWM)": f"{r['sessions']} ({r['sessions_with_dawm']})",
                    "lesion Dice": r["lesion_dice"],
                    "lesion F1": r["lesion_f1"],
                    "DAWM Dice": r["dawm_dice"],
                    "DAWM ml rho": _rho(r["thresholded"]),
                    "DAWM ml ICC": _icc(r["thresholded"]),
                    "expected ml rho": _rho(e) if e else "-",
                    "expected ml ICC": _icc(e) if e else "-",
                    "DAWM ml predicted / reference": f"{r['thresholded']['dawm_ml_pred']:.0f} / {r['dawm_ml_ref']:.0f}",
                }
            )
        lines += [
            f"## against {ref}",
            "",
            markdown_table(table, formats=dict.fromkeys(("lesion Dice", "lesion F1", "DAWM Dice"), ".2f")),
            "",
        ]
        sized = [r for r in result["rows"] if r["reference"] == ref and r.get("lesion_recall_by_size")]
        if sized:
            bins = list(sized[0]["lesion_recall_by_size"])
            table = [{"method": r["method"], **{f"{b} mm3": recall_cell(r["lesion_recall_by_size"][b]) for b in bins}} for r in sized]
            lines += [
                f"Lesion-wise recall against {ref} by lesion volume on the session grid (detected / lesions; one overlapping voxel detects):",
                "",
                markdown_table(table),
                "",
            ]
    if result.get("evolution"):
        table = [
            {"model": name, "subjects": ev["subjects"], **{t: ev[t]["spearman"] for t in TRANSITIONS}}
            for name, ev in result["evolution"].items()
        ]
        lines += [
            "## evolution between the two sessions (Spearman rho over subjects, predicted vs true transition ml)",
            "",
            markdown_table(table, ["model", "subjects", *TRANSITIONS], formats=dict.fromkeys(TRANSITIONS, ".2f")),
            "",
        ]
    lines.append(result["notes"])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="dawm_accuracy")
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--model", action="append", default=[], help="NAME=DIR (repeatable; default the bundled model)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    from dawm.bids.derivative_files import LabelFiles, PredictFiles, PreprocessFiles, SegmentationFiles
    from dawm.evaluate.baselines import BaselineSession, FlairThreshold, VoxelLogistic
    from dawm.image.io import load_volume
    from dawm.model.bundled import bundled_model_dir
    from dawm.model.data import discover_cases
    from dawm.model.decision import labels_from_probabilities
    from dawm.model.predict import predict_dataset
    from dawm.simulate.truth import truth_dseg_on_session_grid

    run = Run.start(argv, script=__file__)  # after the imports: "seconds" times the work, as before
    models = [tuple(m.split("=", 1)) for m in args.model] or [("bundled", str(bundled_model_dir()))]
    if not (args.test / "derivatives" / "dawm-truth").is_dir():
        print(f"error: {args.test}: no derivatives/dawm-truth (simulate it with dawm simulate)", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="dawm-accuracy-"))
    view = clinical_view(args.test, work / "test_view")
    pred_dirs = {}
    for name, model_dir in models:
        out = work / f"pred_{name}"
        if not (out / "provenance.json").exists():
            predict_dataset(view, out, Path(model_dir), jobs=args.jobs)
        own, nested = PreprocessFiles.in_dataset(view).root, PredictFiles(out).preprocess.root
        if not own.exists() and nested.is_dir():  # the first model's T1w/FLAIR preprocessing serves the others
            own.symlink_to(nested.resolve(), target_is_directory=True)
        pred_dirs[name] = out
        print(f"predicted with {name}", flush=True)
    cases = discover_cases(view, labels=None)
    subject = {c.key: c.subject for c in cases}
    voxel_ml = {c.key: float(np.prod(load_volume(c.brain).spacing_mm)) / 1000 for c in cases}
    truth = {c.key: truth_dseg_on_session_grid(args.test, c.preproc_log)[0] for c in cases}

    def segmentations(root: Path, cases, voxel_ml) -> tuple[dict, dict]:
        """The label maps of a ``dawm predict``/``dawm label`` folder and their expected DAWM ml."""
        files = SegmentationFiles(root)
        maps, expected = {}, {}
        for c in cases:
            if files.dseg(c).exists():
                maps[c.key] = read_dseg(files.dseg(c))
                expected[c.key] = float(load_volume(files.probseg(c, "DAWM"), allow_empty=True).data.sum()) * voxel_ml[c.key]
        return maps, expected

    methods: dict[str, tuple[dict, dict | None]] = {
        f"model: {name}": segmentations(out, cases, voxel_ml) for name, out in pred_dirs.items()
    }
    # baselines, fitted on the training cohort against its qMRI labels
    train_cases = discover_cases(args.train, labels="dawm-label")
    train_sessions = [BaselineSession.from_case(c, c.label) for c in train_cases]
    logistic = VoxelLogistic().fit(train_sessions)
    flair = FlairThreshold().fit(train_sessions)
    del train_sessions
    log_preds, log_exp, fl_preds = {}, {}, {}
    for c in cases:
        s = BaselineSession.from_case(c)
        p = logistic.predict_proba(s)
        log_preds[c.key] = labels_from_probabilities(p, logistic.dawm_threshold_)
        log_exp[c.key] = float(p[2].sum()) * voxel_ml[c.key]
        fl_preds[c.key] = flair.predict(s)
    methods["voxel logistic (T1w+FLAIR)"] = (log_preds, log_exp)
    methods["FLAIR threshold"] = (fl_preds, None)
    # (reference, method, predictions, reference maps, voxel ml, expected DAWM ml): one table row each
    scored = [("truth", name, preds, truth, voxel_ml, expected) for name, (preds, expected) in methods.items()]
    qmri_root = LabelFiles.in_dataset(args.test).root
    if qmri_root.is_dir():
        # The qMRI labels lie on the grid of the test cohort's own (qMRI) preprocessing: scored there
        # against the truth, and taken onto each model's session grid (nearest) as a reference.
        label_cases = [c for c in discover_cases(args.test, labels=None) if c.key in truth]
        label_ml = {c.key: float(np.prod(load_volume(c.brain).spacing_mm)) / 1000 for c in label_cases}
        q, q_exp = segmentations(qmri_root, label_cases, label_ml)
        truth_q = {c.key: truth_dseg_on_session_grid(args.test, c.preproc_log)[0] for c in label_cases if c.key in q}
        scored.append(("truth", "qMRI labels", q, truth_q, label_ml, q_exp))
        grid = {c.key: c for c in cases}
        q_here = {c.key: onto_grid(q[c.key], c.brain, grid[c.key].brain) for c in label_cases if c.key in q}
        scored += [("qMRI labels", name, preds, q_here, voxel_ml, expected) for name, (preds, expected) in methods.items()]
    rows = []
    for ref_name, name, preds, ref, vml, expected in scored:
        row = {"reference": ref_name, "method": name, **score(preds, ref, vml, subject, expected)}
        rows.append(row)
        print(ref_name, name, {k: v for k, v in row.items() if not isinstance(v, dict)}, flush=True)
    evo = {}
    for name, out in pred_dirs.items():
        evo[name] = evolution(out, args.test)
    n_ses = len(cases)
    result = {
        "train": str(args.train),
        "test": str(args.test),
        "models": dict(models),
        "test_sessions": n_ses,
        "test_subjects": len(set(subject.values())),
        "train_sessions": len(train_cases),
        "baselines": {
            "flair_threshold": {"z_dawm": flair.z_dawm_, "z_lesion": flair.z_lesion_},
            "voxel_logistic": {"dawm_threshold": logistic.dawm_threshold_, "sigmas_mm": list(logistic.sigmas_mm)},
        },
        "references": list(dict.fromkeys(r[0] for r in scored)),
        "rows": rows,
        "evolution": evo,
        "seconds": run.elapsed(),
        "notes": (
            f"Baselines: FLAIR robust z in WM, DAWM > {flair.z_dawm_}, lesion > {flair.z_lesion_}; voxel logistic on "
            f"T1w/FLAIR WM z at {', '.join(str(s) for s in logistic.sigmas_mm)} mm, DAWM threshold {logistic.dawm_threshold_} "
            "(both chosen on the training cohort)."
        ),
    }
    write_results(args.name, result, markdown(result), run=run, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
