"""Benchmark of ``dawm label`` against the simulator's truth: DAWM Dice and volume agreement per
rule, threshold and reference mode; false-positive DAWM in controls; a threshold sensitivity plot.

Usage::

    python benchmarks/label_benchmark.py --bids /tmp/sim_small            # a simulated + pre-processed cohort
    python benchmarks/label_benchmark.py --build --patients 4 --controls 2 --workdir /tmp/lbl_bench

Each session is loaded once (:func:`dawm.label.pipeline.prepare_session` with the default config),
its references computed once per mode (controls -- leave-one-subject-out for the controls, and
falling back to self where a scanner has no other control -- and self), then every rule x threshold
is applied (:func:`dawm.label.pipeline.apply_rule`). Truth: ``desc-pathology_dseg`` == 2 pulled onto
the session grid (:func:`dawm.simulate.truth.truth_on_session_grid`). Dice is averaged over
patient sessions with truth DAWM (and pooled over them); volume agreement is over all patient
sessions (Spearman rho, mean absolute error in ml); control FP is the mean DAWM ml per control session.

Ceiling table: what any threshold on the z maps could reach. Per patient session with truth DAWM,
the self-reference z maps (T1, MTR and their combination (z_T1 - z_MTR) / sqrt 2) are thresholded at
the *best* z for that session (an oracle, no cleaning) inside the pipeline's eligible WM;
``coverage`` is the share of the true DAWM inside that mask, an upper bound of recall.
"Dice in true core" scores every rule inside the simulator's own pure-WM core (true WM farther than
``pv_margin_mm``, and at least one voxel, from true GM/CSF), apart from the DAWM drawn in partial-volume WM.
Rows ``probseg``: the ``label-DAWM_probseg`` of the base rule (:func:`dawm.label.pipeline.probability_map`):
its expected volume (sum of P) in the volume columns, a soft Dice (2 sum(P t) / (sum P + sum t)).
Writes ``benchmarks/results/label.{json,md,png}`` (or ``--name``).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, markdown_table, result_path, write_results
from scipy import stats

from dawm.evaluate.oracle import best_threshold_dice, true_wm_core
from dawm.label.config import LabelConfig
from dawm.label.normative import ControlsNormativeModel
from dawm.label.pipeline import (
    apply_rule,
    control_null_shapes,
    eligible_of,
    fit_controls,
    null_shape_for,
    prepare_session,
    preprocessed,
    probability_map,
    reference_for,
    session_infos,
)
from dawm.simulate.truth import truth_on_session_grid

Z_GRID = (1.5, 2.0, 2.5, 3.0, 3.5)
P_GRID = (0.05, 0.01, 1e-3, 1e-4, 1e-5)
SENS_Z = tuple(np.round(np.arange(1.0, 4.01, 0.25), 2))
RULES = ("t1", "mtr", "both", "either", "chi2")


def _build(work: Path, args) -> Path:
    from dawm.preprocess.config import PreprocessConfig
    from dawm.preprocess.pipeline import preprocess_dataset
    from dawm.simulate.cohort import simulate_cohort
    from dawm.simulate.config import SimulationConfig

    bids = work / "bids"
    if not (bids / "dataset_description.json").exists():
        simulate_cohort(
            SimulationConfig(
                patients=args.patients,
                controls=args.controls,
                sessions=args.sessions,
                scanners=args.scanners,
                resolution_mm=args.resolution,
                seed=args.seed,
            ),
            bids,
            jobs=args.jobs,
        )
    preprocess_dataset(bids, config=PreprocessConfig(spacing_mm=args.resolution), jobs=args.jobs)
    return bids


def _grid(rule: str) -> tuple[float, ...]:
    return P_GRID if rule == "chi2" else Z_GRID


def evaluate(bids: Path, base: LabelConfig) -> dict:
    pre = bids / "derivatives" / "dawm-preprocess"
    infos = [i for i in session_infos(bids) if preprocessed(pre, i.inputs)]
    model = fit_controls(infos, pre, base.model_copy(update={"reference": "controls"}))
    nulls = {
        mode: control_null_shapes(infos, pre, base.model_copy(update={"reference": mode}), model if mode == "controls" else None)
        for mode in ("controls", "self")
    }
    rows, ceiling = [], []
    for info in infos:
        start = time.perf_counter()
        prepared = prepare_session(info, pre, base)
        truth = np.rint(truth_on_session_grid(bids, pre, info.inputs, desc="pathology", suffix="dseg")).astype(int)
        true_dawm = truth == 2
        core = true_core(bids, pre, info, prepared.maps.spacing_mm, base.pv_margin_mm)
        voxel_ml = float(np.prod(prepared.maps.spacing_mm)) / 1000.0
        eligible = eligible_of(prepared, base)
        is_control = info.group == base.control_group
        for mode in ("controls", "self"):
            cfg_mode = base.model_copy(update={"reference": mode})
            ref, record = reference_for(prepared, cfg_mode, model if mode == "controls" else None, is_control=is_control)
            used = record.get("kind", "self")
            for rule in RULES:
                for thr in sorted(set(_grid(rule)) | (set(SENS_Z) if rule == base.rule else set())):
                    cfg = cfg_mode.model_copy(update={"rule": rule, "threshold": thr})
                    dawm = apply_rule(prepared, ref, cfg, eligible=eligible) == 2
                    inter = int((dawm & true_dawm).sum())
                    in_core = {
                        "est_core_ml": float((dawm & core).sum() * voxel_ml),
                        "true_core_ml": float((true_dawm & core).sum() * voxel_ml),
                        "inter_core_ml": float((dawm & true_dawm & core).sum() * voxel_ml),
                    }
                    rows.append(
                        {
                            "session": info.key,
                            "group": info.group,
                            "control": is_control,
                            "mode": mode,
                            "used": used,
                            "rule": rule,
                            "threshold": thr,
                            "est_ml": float(dawm.sum() * voxel_ml),
                            "true_ml": float(true_dawm.sum() * voxel_ml),
                            "inter_ml": inter * voxel_ml,
                            "dice": 2.0 * inter / max(int(dawm.sum() + true_dawm.sum()), 1) if true_dawm.any() else np.nan,
                            **in_core,
                        }
                    )
            # The probability map of the base rule: expected volume (sum of P) and soft Dice.
            prob, _ = probability_map(prepared, ref, cfg_mode, eligible=eligible, null_shape=null_shape_for(prepared.maps, nulls[mode]))
            soft = float((prob * true_dawm).sum())
            rows.append(
                {
                    "session": info.key,
                    "group": info.group,
                    "control": is_control,
                    "mode": mode,
                    "used": used,
                    "rule": "probseg",
                    "threshold": np.nan,
                    "est_ml": float(prob.sum() * voxel_ml),
                    "true_ml": float(true_dawm.sum() * voxel_ml),
                    "inter_ml": soft * voxel_ml,
                    "dice": 2.0 * soft / max(float(prob.sum()) + int(true_dawm.sum()), 1) if true_dawm.any() else np.nan,
                    "est_core_ml": float((prob * core).sum() * voxel_ml),
                    "true_core_ml": float((true_dawm & core).sum() * voxel_ml),
                    "inter_core_ml": float((prob * (true_dawm & core)).sum() * voxel_ml),
                }
            )
        if true_dawm.any() and not is_control:
            ref, _ = reference_for(prepared, base.model_copy(update={"reference": "self"}), None)
            ceiling.extend(_ceiling(info.key, ref.z, true_dawm, eligible))
        print(f"{info.key}: {time.perf_counter() - start:.0f} s", flush=True)
    return {"rows": rows, "ceiling": ceiling, "sessions": [i.key for i in infos], "trend_weights": trend_weights(model)}


def trend_weights(model: ControlsNormativeModel) -> dict[str, dict[str, float]]:
    """The cross-validated weight of the pooled spatial trend (``pooled_trend``) per modality: for
    the patients (every control) and for each left-out control (the model without it), where a group
    borrows that trend; empty when none does."""
    fitted = {"patients": model, **{f"without {s}": model.without(s) for s in sorted({c.subject for c in model.summaries_})}}
    return {name: next((dict(g.trend_weight) for g in m.groups_.values() if g.trend_weight), {}) for name, m in fitted.items()}


def true_core(bids: Path, pre: Path, info, spacing_mm, margin_mm: float) -> np.ndarray:
    """The *true* pure-WM core of a session on its grid (:func:`dawm.evaluate.oracle.true_wm_core`
    of the simulator's tissue ``dseg``), where the issue's rule may label DAWM."""
    return true_wm_core(truth_on_session_grid(bids, pre, info.inputs, suffix="dseg"), margin_mm, spacing_mm)


def _ceiling(key: str, z: dict, true_dawm: np.ndarray, eligible: np.ndarray) -> list[dict]:
    """Best-threshold Dice of each z map (abnormal direction) inside the eligible WM."""
    scores = {m: v for m, v in (("T1", z.get("T1")), ("MTR", -z["MTR"] if "MTR" in z else None)) if v is not None}
    if len(scores) == 2:
        scores["combined"] = (scores["T1"] + scores["MTR"]) / np.sqrt(2)
    rows = []
    coverage = int((true_dawm & eligible).sum()) / max(int(true_dawm.sum()), 1)
    for name, score in scores.items():
        dice, thr = best_threshold_dice(score, true_dawm, np.arange(0.5, 6.01, 0.25), mask=eligible)
        rows.append({"session": key, "mask": "eligible WM", "z": name, "dice": dice, "threshold": thr, "coverage": coverage})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    import pandas as pd

    df = pd.DataFrame(rows)
    out = []
    for (mode, rule, thr), g in df.groupby(["mode", "rule", "threshold"], dropna=False):
        pat = g[~g.control]
        withd = pat[pat.true_ml > 0]
        ctl = g[g.control]
        pooled = 2 * withd.inter_ml.sum() / max(withd.est_ml.sum() + withd.true_ml.sum(), 1e-9) if len(withd) else np.nan
        in_core = (
            2 * withd.inter_core_ml.sum() / max(withd.est_core_ml.sum() + withd.true_core_ml.sum(), 1e-9)
            if len(withd) and "inter_core_ml" in withd
            else np.nan
        )
        rho = stats.spearmanr(pat.est_ml, pat.true_ml).statistic if len(pat) > 2 and pat.true_ml.nunique() > 1 else np.nan
        out.append(
            {
                "mode": mode,
                "rule": rule,
                "threshold": float(thr),
                "dice_mean": float(withd.dice.mean()) if len(withd) else np.nan,
                "dice_pooled": float(pooled),
                "dice_pooled_true_core": float(in_core),
                "spearman": float(rho),
                "mae_ml": float((pat.est_ml - pat.true_ml).abs().mean()),
                "patient_est_ml": float(pat.est_ml.mean()),
                "patient_true_ml": float(pat.true_ml.mean()),
                "control_fp_ml": float(ctl.est_ml.mean()) if len(ctl) else np.nan,
                "control_fp_used": ",".join(sorted(set(ctl.used))) if len(ctl) else "",
            }
        )
    return out


def plot(summary: list[dict], rule: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for mode, style in (("controls", "-o"), ("self", "--s")):
        s = sorted(
            (r for r in summary if r["mode"] == mode and r["rule"] == rule and r["threshold"] in SENS_Z), key=lambda r: r["threshold"]
        )
        t = [r["threshold"] for r in s]
        axes[0].plot(t, [r["patient_est_ml"] for r in s], style, label=f"{mode}: patients")
        axes[0].plot(t, [r["control_fp_ml"] for r in s], style, alpha=0.5, label=f"{mode}: controls")
        axes[1].plot(t, [r["dice_pooled"] for r in s], style, label=mode)
    true_ml = next((r["patient_true_ml"] for r in summary), np.nan)
    axes[0].axhline(true_ml, color="k", lw=0.8, label="patients, truth")
    axes[0].set(xlabel=f"z threshold (rule {rule})", ylabel="DAWM ml per session (mean)", yscale="symlog")
    axes[1].set(xlabel=f"z threshold (rule {rule})", ylabel="pooled DAWM Dice")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def markdown(summary: list[dict], meta: dict) -> str:
    """The summary table (the grids' thresholds; the base rule's sensitivity thresholds only in the
    plot) and the ceiling table."""
    lines = [
        "# dawm label benchmark\n",
        f"cohort: `{meta['bids']}` ({len(meta['sessions'])} sessions); "
        f"base config: rule `{meta['config']['rule']}`, smoothing {meta['config']['smoothing_fwhm_mm']} mm, "
        f"grown to z {meta['config'].get('grow_threshold')} from each threshold above it; {meta['seconds']:.0f} s\n",
        "Dice in true core: pooled Dice with both masks restricted to the true pure-WM core (simulator WM farther than "
        f"{meta['config']['pv_margin_mm']} mm, and at least one voxel, from true GM/CSF), where the rule may label DAWM.\n",
    ]
    rows = [
        {
            "mode": r["mode"],
            "rule": r["rule"],
            "thr": "-" if r["rule"] == "probseg" else f"{r['threshold']:g}",
            "Dice mean": r["dice_mean"],
            "Dice pooled": r["dice_pooled"],
            "Dice in true core": r.get("dice_pooled_true_core", np.nan),
            "Spearman": r["spearman"],
            "MAE ml": r["mae_ml"],
            "patient ml (est/true)": f"{r['patient_est_ml']:.1f}/{r['patient_true_ml']:.1f}",
            "control FP ml (ref)": f"{r['control_fp_ml']:.2f} ({r['control_fp_used']})",
        }
        for r in summary
        if not (r["rule"] == meta["config"]["rule"] and r["threshold"] not in _grid(r["rule"]))
    ]
    numbers = ("Dice mean", "Dice pooled", "Dice in true core", "Spearman", "MAE ml")
    lines.append(
        markdown_table(
            rows,
            ["mode", "rule", "thr", *numbers, "patient ml (est/true)", "control FP ml (ref)"],
            formats=dict.fromkeys(numbers, ".2f"),
            na="nan",
        )
    )
    weights = {k: w for k, w in meta.get("trend_weights", {}).items() if w}
    if weights:
        lines += ["", "Pooled spatial trend (`pooled_trend`), cross-validated weight per modality:", ""]
        lines += [f"- {k}: " + ", ".join(f"{m} {v:.2f}" for m, v in w.items()) for k, w in weights.items()]
    if meta.get("ceiling"):
        lines += [
            "",
            "## Ceiling of a threshold rule (oracle threshold per session, self reference)",
            "",
            markdown_table(
                meta["ceiling"],
                {"mask": "mask", "z map": "z", "best Dice, mean": "dice", "best z, median": "threshold", "truth coverage": "coverage"},
                formats=dict.fromkeys(("dice", "threshold", "coverage"), ".2f"),
                na="nan",
            ),
        ]
    return "\n".join(lines) + "\n"


def ceiling_summary(rows: list[dict]) -> list[dict]:
    import pandas as pd

    if not rows:
        return []
    g = pd.DataFrame(rows).groupby(["mask", "z"], sort=False)
    return [
        {"mask": m, "z": z, "dice": float(d.dice.mean()), "threshold": float(d.threshold.median()), "coverage": float(d.coverage.mean())}
        for (m, z), d in g
    ]


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="label")
    parser.add_argument("--bids", type=Path, help="a simulated BIDS dataset with derivatives/dawm-preprocess")
    parser.add_argument("--build", action="store_true", help="simulate and pre-process a cohort in --workdir first")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--patients", type=int, default=4)
    parser.add_argument("--controls", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--scanners", type=int, default=1)
    parser.add_argument("--resolution", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--config", type=Path, default=None, help="LabelConfig JSON (default: the defaults)")
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)
    if args.build:
        bids = _build(args.workdir or Path(tempfile.mkdtemp(prefix="dawm-label-bench-")), args)
    elif args.bids:
        bids = args.bids
    else:
        parser.error("give --bids or --build")
    base = LabelConfig.load(args.config) if args.config else LabelConfig()
    start = time.perf_counter()
    result = evaluate(bids, base)
    summary = summarise(result["rows"])
    meta = {
        "bids": str(bids),
        "sessions": result["sessions"],
        "config": base.model_dump(mode="json"),
        "ceiling": ceiling_summary(result["ceiling"]),
        "trend_weights": result["trend_weights"],
        "seconds": time.perf_counter() - start,
        "python": run.machine.python,
        "platform": run.machine.platform,
    }
    write_results(
        args.name,
        {"meta": meta, "summary": summary, "rows": result["rows"], "ceiling": result["ceiling"]},
        markdown(summary, meta),
        run=run,
        results_dir=args.results_dir,
    )
    plot(summary, base.rule, result_path(args.name, ".png", args.results_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
