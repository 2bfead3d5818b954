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

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from dawm.label.config import LabelConfig
from dawm.label.pipeline import prepare_session, preprocessed, session_infos
from dawm.label.rules import pv_core, within_mm
from dawm.preprocess.evaluate import truth_on_session_grid

RESULTS = Path(__file__).parent / "results"


def session_rows(bids: Path, info, cfg: LabelConfig) -> list[dict]:
    pre = bids / "derivatives" / "dawm-preprocess"
    p = prepare_session(info, pre, cfg)
    truth = np.rint(truth_on_session_grid(bids, pre, info.inputs, desc="pathology", suffix="dseg")) == 2
    if truth.sum() < 20:
        return []
    tissue = np.rint(truth_on_session_grid(bids, pre, info.inputs, suffix="dseg")).astype(int)
    sp = p.maps.spacing_mm
    true_core = pv_core(tissue == 3, cfg.pv_margin_mm, sp)
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
    return [{"session": info.key, "mask": k, "coverage": float((m & truth).sum() / truth.sum()),
             "outside_true_core": float((m & ~true_core).sum() / max(m.sum(), 1)), "ml": float(m.sum() * np.prod(sp) / 1000)}
            for k, m in masks.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bids", type=Path, required=True, help="a simulated BIDS dataset with derivatives/dawm-preprocess")
    parser.add_argument("--name", default="label_coverage")
    args = parser.parse_args(argv)
    cfg = LabelConfig()
    pre = args.bids / "derivatives" / "dawm-preprocess"
    rows = []
    for info in session_infos(args.bids):
        if info.group != cfg.control_group and preprocessed(pre, info.inputs):
            rows += session_rows(args.bids, info, cfg)
    table = pd.DataFrame(rows).groupby("mask", sort=False)[["coverage", "outside_true_core", "ml"]].mean()
    lines = ["# Coverage of the true DAWM by the eligible WM\n", f"cohort `{args.bids}`; {len({r['session'] for r in rows})} patient sessions with true DAWM\n",
             "| mask | coverage | outside true core | ml |", "|---|---|---|---|"]
    lines += [f"| {k} | {r.coverage:.3f} | {r.outside_true_core:.3f} | {r.ml:.0f} |" for k, r in table.iterrows()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"bids": str(args.bids), "rows": rows}, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
