"""DAWM accuracy against the share of DAWM's change the clinical images show (#18's visibility sweep).

Usage::

    python benchmarks/dawm_visibility.py --run 1.0=dawm_accuracy --run 0.5=dawm_accuracy_vis0.5 ...
        [--model "model: new"=model] [--name dawm_visibility]

Each ``--run VIS=NAME`` is a ``RUNS_DIR/NAME.json`` (default ``benchmarks/results``) written by ``dawm_accuracy.py`` on a
test cohort simulated with ``dawm simulate --dawm-visibility VIS`` (same seed, so the same anatomy,
lesions and DAWM; only the T1w/FLAIR rendering of DAWM changes; the model and the baselines are the
same fitted objects at every level: they were trained at visibility 1, the physical rendering).
``--model "ROW"=LABEL`` renames a method row (e.g. the candidate, called ``model: new`` in one run
and ``model: candidate`` in another) so that rows line up across runs. Writes a table of DAWM ml
Spearman [95 % CI], DAWM Dice, lesion Dice per method and level, and one plot
(``benchmarks/results/NAME.png``: DAWM volume Spearman and DAWM Dice against visibility).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness import RESULTS, Run, benchmark_parser, fmt, fmt_ci, markdown_table, result_path, write_results

#: the rows plotted, in legend order (after ``--model`` renaming)
BASELINES = ("voxel logistic (T1w+FLAIR)", "FLAIR threshold")


def collect(runs: dict[float, dict], rename: dict[str, str], reference: str = "truth") -> list[dict]:
    """One row per (visibility, method) from ``dawm_accuracy`` results against ``reference``."""
    rows = []
    for vis in sorted(runs):
        for r in runs[vis]["rows"]:
            if r["reference"] != reference:
                continue
            method = rename.get(r["method"], r["method"])
            if method.startswith("model: ") and method not in rename.values():
                continue  # a model row of one run only (e.g. the shipped model at visibility 1)
            t = r["thresholded"]
            e = r.get("expected") or {}
            rows.append(
                {
                    "visibility": vis,
                    "method": method,
                    "sessions": r["sessions"],
                    "with_dawm": r["sessions_with_dawm"],
                    "lesion_dice": r["lesion_dice"],
                    "lesion_f1": r["lesion_f1"],
                    "dawm_dice": r["dawm_dice"],
                    "rho": t["spearman"],
                    "rho_lo": t["spearman_ci"][0],
                    "rho_hi": t["spearman_ci"][1],
                    "icc": t["icc_a1"],
                    "exp_rho": e.get("spearman"),
                    "dawm_ml_pred": t["dawm_ml_pred"],
                    "dawm_ml_true": r["dawm_ml_ref"],
                }
            )
    return rows


def markdown(rows: list[dict], sources: dict[float, str]) -> str:
    shown = [
        {
            "visibility": fmt(r["visibility"], ".2f"),
            "method": r["method"],
            "sessions (with DAWM)": f"{r['sessions']} ({r['with_dawm']})",
            "lesion Dice": fmt(r["lesion_dice"], ".2f"),
            "lesion F1": fmt(r["lesion_f1"], ".2f"),
            "DAWM Dice": fmt(r["dawm_dice"], ".2f"),
            "DAWM ml rho [95 % CI]": fmt_ci(r["rho"], r["rho_lo"], r["rho_hi"]),
            "DAWM ml ICC": fmt(r["icc"], ".2f"),
            "expected ml rho": fmt(r["exp_rho"], ".2f", na="-"),
            "DAWM ml predicted / true": f"{r['dawm_ml_pred']:.0f} / {r['dawm_ml_true']:.0f}",
        }
        for r in rows
    ]
    src = "; ".join(f"{v:g}: `{n}`" for v, n in sorted(sources.items()))
    return (
        "# DAWM accuracy against DAWM visibility on T1w/FLAIR\n\n"
        "The same test cohort (same seed: same anatomy, lesions and DAWM) simulated with `--dawm-visibility` "
        "0.25-1 (the share of DAWM's T1/T2/PD change rendered on T1w/FLAIR; 1 = physics), scored against the truth "
        "with the same fitted model and baselines (trained at visibility 1). Sources: " + src + ".\n\n" + markdown_table(shown) + "\n"
    )


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for m in methods:
        rs = [r for r in rows if r["method"] == m]
        v = [r["visibility"] for r in rs]
        style = dict(marker="o", lw=2.2 if m.startswith("model") else 1.4)
        (line,) = axes[0].plot(v, [r["rho"] for r in rs], label=m, **style)
        axes[0].fill_between(v, [r["rho_lo"] for r in rs], [r["rho_hi"] for r in rs], color=line.get_color(), alpha=0.12)
        axes[1].plot(v, [r["dawm_dice"] for r in rs], label=m, **style)
    axes[0].set(xlabel="DAWM visibility on T1w/FLAIR", ylabel="DAWM volume Spearman vs truth", ylim=(-1, 1))
    axes[0].axhline(0, color="0.6", lw=0.8)
    axes[1].set(xlabel="DAWM visibility on T1w/FLAIR", ylabel="DAWM Dice vs truth (pooled)", ylim=(0, None))
    axes[1].legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="dawm_visibility")
    parser.add_argument("--run", action="append", required=True, help="VIS=NAME: benchmarks/results/NAME.json at that visibility")
    parser.add_argument("--model", action="append", default=[], help='"ROW"=LABEL: rename a method row (repeatable)')
    parser.add_argument("--runs-dir", type=Path, default=RESULTS, help="where the dawm_accuracy results are (default benchmarks/results)")
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)
    sources = {float(v): n for v, n in (s.split("=", 1) for s in args.run)}
    missing = [str(args.runs_dir / f"{n}.json") for n in sources.values() if not (args.runs_dir / f"{n}.json").exists()]
    if missing:
        print(f"error: no dawm_accuracy results {', '.join(missing)} (run benchmarks/dawm_accuracy.py --name NAME first)", file=sys.stderr)
        return 2
    runs = {v: json.loads((args.runs_dir / f"{n}.json").read_text()) for v, n in sources.items()}
    rename = dict(s.split("=", 1) for s in args.model)
    rename = {k: (v if v.startswith("model: ") else f"model: {v}") for k, v in rename.items()}
    rows = collect(runs, rename)
    plot(rows, result_path(args.name, ".png", args.results_dir))
    write_results(args.name, {"sources": sources, "rows": rows}, markdown(rows, sources), run=run, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
