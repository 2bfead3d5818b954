"""Where the label stage's eligible WM loses the true DAWM: coverage, step by step.

Usage::

    python benchmarks/label_coverage.py --bids COHORT --name label_coverage_2mm_seed11

For every patient session with at least 20 voxels of true DAWM on the session grid, the share of
the true DAWM (``coverage``) kept by the eligibility constraints of :func:`dawm.label.rules.eligible_wm`
applied one after the other (dseg WM, WM probability >= ``wm_purity``, partial-volume margin, MNI WM
prior, lesion margin: the default), and by variants (margin measured from non-WM voxels only, no
prior, a 1 mm lesion margin). ``outside true core``: the share of the eligible voxels outside the
simulator's own pure-WM core (true WM one voxel layer off true GM/CSF), the partial volume a
threshold rule then meets. Writes ``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from harness import Run, benchmark_parser, markdown_table, write_results

from dawm.evaluate.oracle import true_wm_core
from dawm.label.config import LabelConfig
from dawm.label.pipeline import prepare_session, preprocessed, session_infos
from dawm.label.rules import pv_core, within_mm
from dawm.simulate.truth import truth_on_session_grid


def session_rows(bids: Path, info, cfg: LabelConfig) -> list[dict]:
    pre = bids / "derivatives" / "dawm-preprocess"
    p = prepare_session(info, pre, cfg)
    truth = np.rint(truth_on_session_grid(bids, pre, info.inputs, desc="pathology", suffix="dseg")) == 2
    if truth.sum() < 20:
        return []
    sp = p.maps.spacing_mm
    true_core = true_wm_core(truth_on_session_grid(bids, pre, info.inputs, suffix="dseg"), cfg.pv_margin_mm, sp)
    wm = p.dseg == 3
    pure = wm & (p.wm_prob >= cfg.wm_purity)
    prior = p.wm_prior >= cfg.wm_prior_min
    lesion_ok = ~within_mm(p.lesion, cfg.lesion_margin_mm, sp)
    core = pv_core(pure, cfg.pv_margin_mm, sp)
    masks = {
        "true pure-WM core": true_core,
        "dseg WM": wm,
        "+ WM probability": pure,
        "+ partial-volume margin": core,
        "+ WM prior": core & prior,
        "+ lesion margin (default)": core & prior & lesion_ok,
        "variant: margin from non-WM only": pv_core(wm, cfg.pv_margin_mm, sp) & pure & prior & lesion_ok,
        "variant: no WM prior": core & lesion_ok,
        "variant: lesion margin 1 mm": core & prior & ~within_mm(p.lesion, 1.0, sp),
    }
    return [
        {
            "session": info.key,
            "mask": k,
            "coverage": float((m & truth).sum() / truth.sum()),
            "outside_true_core": float((m & ~true_core).sum() / max(m.sum(), 1)),
            "ml": float(m.sum() * np.prod(sp) / 1000),
        }
        for k, m in masks.items()
    ]


def markdown(bids: str | Path, rows: list[dict]) -> str:
    """The mean coverage, share outside the true core and ml of each mask over the sessions."""
    table = pd.DataFrame(rows).groupby("mask", sort=False)[["coverage", "outside_true_core", "ml"]].mean().reset_index()
    lines = [
        "# Coverage of the true DAWM by the eligible WM\n",
        f"cohort `{bids}`; {len({r['session'] for r in rows})} patient sessions with true DAWM\n",
        markdown_table(
            table,
            {"mask": "mask", "coverage": "coverage", "outside true core": "outside_true_core", "ml": "ml"},
            formats={"ml": ".0f"},
            na="nan",
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="label_coverage")
    parser.add_argument("--bids", type=Path, required=True, help="a simulated BIDS dataset with derivatives/dawm-preprocess")
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)
    cfg = LabelConfig()
    pre = args.bids / "derivatives" / "dawm-preprocess"
    rows = []
    for info in session_infos(args.bids):
        if info.group != cfg.control_group and preprocessed(pre, info.inputs):
            rows += session_rows(args.bids, info, cfg)
    write_results(args.name, {"bids": str(args.bids), "rows": rows}, markdown(args.bids, rows), run=run, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
