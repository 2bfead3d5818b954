"""Controlled dose-response of a trained dawm model to acquisition quality (issue 7's bias analysis).

The same simulated patients (same seed: same anatomy and pathology) are acquired again with one
degradation at a time (:class:`dawm.simulate.config.Degradation`): noise x1/x2/x4, receive bias
x1/x2/x3, ghosting 0/0.3/0.6, FLAIR as 2D with 3/5/7 mm slices. Each version is predicted from
T1w + FLAIR by the model (which preprocesses the clinical images itself) and scored against the
simulator's truth on the session grid: lesion and DAWM Dice, DAWM volume error. Per factor a
Spearman test of Dice against the dose says whether accuracy degrades with it.

Usage::

    python benchmarks/dose_response.py --model demo_output/model --resolution 2 --patients 2
    python benchmarks/dose_response.py --model /tmp/dq/model --resolution 3 --patients 1 --quick   # smoke run

Writes ``benchmarks/results/dose_response.{json,md,png}`` (``--name``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from harness import Run, benchmark_parser, markdown_table, result_path, write_results
from scipy import stats

from dawm.evaluate.figures import line_plot
from dawm.evaluate.metrics import overlap_metrics
from dawm.image.io import load_volume
from dawm.image.resample import voxel_sizes
from dawm.model.predict import predict_dataset
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import Degradation, SimulationConfig
from dawm.simulate.truth import write_truth_labels

DOSES = {"noise": [1.0, 2.0, 4.0], "bias": [1.0, 2.0, 3.0], "motion": [0.0, 0.3, 0.6], "flair_slice_mm": [3.0, 5.0, 7.0]}
PRED = "dawm-predict"


def score(bids: Path) -> list[dict]:
    """Lesion / DAWM overlap of every predicted session with the truth labels."""
    rows = []
    for pred_path in sorted((bids / "derivatives" / PRED).glob("sub-*/**/anat/*_space-session_desc-dawm_dseg.nii.gz")):
        rel = pred_path.relative_to(bids / "derivatives" / PRED)
        pred = load_volume(pred_path, allow_empty=True)
        ref = load_volume(bids / "derivatives" / "dawm-truth-label" / rel, allow_empty=True).data
        spacing = voxel_sizes(pred.affine)
        row = {"session": pred_path.name.split("_space")[0]}
        for k, cls in ((1, "lesion"), (2, "dawm")):
            m = overlap_metrics(pred.data == k, ref == k, spacing)
            row.update({f"{cls}_dice": m.dice, f"{cls}_volume_error_ml": m.volume_error_ml, f"{cls}_ref_ml": m.volume_ref_ml})
        rows.append(row)
    return rows


def run_level(work: Path, model: Path, factor: str, dose: float, base: SimulationConfig) -> list[dict]:
    value = None if factor == "motion" and dose == 0.0 else dose
    degrade = Degradation(**{factor: value})
    native = degrade == Degradation()
    bids = work / ("native" if native else f"{factor}-{dose:g}")  # the native level is shared by every factor
    done = bids / "dose_scores.json"
    if done.exists():
        return [{"factor": factor, "dose": dose, **r} for r in json.loads(done.read_text())]
    config = base.model_copy(update={"degrade": degrade})
    simulate_cohort(config, bids, jobs=1)
    for path in bids.glob("sub-*/ses-*/anat/*"):  # the clinical case: only T1w and FLAIR
        if not any(path.name.endswith(f"_{s}{ext}") for s in ("T1w", "FLAIR") for ext in (".nii.gz", ".json")):
            path.unlink()
    predict_dataset(bids, bids / "derivatives" / PRED, model)
    write_truth_labels(bids, name="dawm-truth-label", preprocess=f"{PRED}/derivatives/dawm-preprocess")
    scores = score(bids)
    done.write_text(json.dumps(scores, default=float))
    return [{"factor": factor, "dose": dose, **r} for r in scores]


def plot(summary: pd.DataFrame, path: Path) -> None:
    """Lesion Dice against the degradation level per factor (1 = native; for the FLAIR factor 3, 5, 7 mm slices)."""
    ranked = summary.assign(level=summary.groupby("factor").dose.rank(method="dense"))
    fig = line_plot(
        ranked, "level", "lesion_dice", hue="factor", title="Lesion Dice vs truth by degradation level (1 = native; FLAIR: 3, 5, 7 mm 2D)"
    )
    fig.savefig(path, dpi=90)


def summarise(rows: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    """``(summary, tests)``: the mean lesion/DAWM Dice and DAWM volume error per factor and dose,
    and per factor the Spearman test of each Dice against the dose."""
    df = pd.DataFrame(rows)
    tests = []
    for factor, g in df.groupby("factor"):
        for metric in ("lesion_dice", "dawm_dice"):
            ok = g[["dose", metric]].dropna()
            rho, p = stats.spearmanr(ok.dose, ok[metric]) if len(ok) > 2 and ok.dose.nunique() > 1 else (np.nan, np.nan)
            tests.append({"factor": factor, "metric": metric, "spearman_rho": float(rho), "p": float(p), "n": len(ok)})
    summary = df.groupby(["factor", "dose"])[["lesion_dice", "dawm_dice", "dawm_volume_error_ml"]].mean().reset_index()
    return summary, tests


def markdown(meta: dict, summary: pd.DataFrame, tests: list[dict]) -> str:
    """The summary table and the Spearman tests (floats with 3 decimals)."""
    lines = [
        f"# dose-response of `{meta['model']}` ({meta['patients']} patient(s), {meta['resolution_mm']:g} mm; {meta['seconds']:.0f} s)\n",
        markdown_table(summary, na="nan"),
        "\nSpearman of Dice against the dose (per factor):\n",
        markdown_table(pd.DataFrame(tests), na="nan"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="dose_response")
    parser.add_argument("--model", type=Path, required=True, help="a model folder made by dawm train (e.g. demo_output/model)")
    parser.add_argument("--work", type=Path, default=Path("dose_response_work"))
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--resolution", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="two doses per factor")
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)
    base = SimulationConfig(
        patients=args.patients,
        controls=0,
        sessions=1,
        scanners=1,
        resolution_mm=args.resolution,
        seed=args.seed,
        dawm_prevalence={"RRMS": 1.0, "SPMS": 1.0, "PPMS": 1.0},
    )
    rows = []
    for factor, doses in DOSES.items():
        for dose in doses[:2] if args.quick else doses:
            t0 = run.elapsed()
            rows += run_level(args.work, args.model, factor, dose, base)
            print(f"{factor} {dose:g}: {run.elapsed() - t0:.0f} s", flush=True)
    summary, tests = summarise(rows)
    meta = {
        "model": str(args.model),
        "patients": args.patients,
        "resolution_mm": args.resolution,
        "seed": args.seed,
        "seconds": round(run.elapsed(), 1),
    }
    write_results(
        args.name, {"meta": meta, "rows": rows, "tests": tests}, markdown(meta, summary, tests), run=run, results_dir=args.results_dir
    )
    plot(summary, result_path(args.name, ".png", args.results_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
