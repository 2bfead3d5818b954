"""Where DAWM label accuracy is lost: best-threshold Dice from noise-free maps down to what the label stage sees.

Usage::

    python benchmarks/label_ceiling.py --bids <dawm demo --full output>/bids --name label_ceiling_2mm_demo_full

For each patient session with true DAWM (at least ``--min-voxels`` on the session grid), one score map
per input is thresholded at the *best* level for that session (an oracle: the threshold is chosen
knowing the truth, no cleaning, no growth) and the Dice against the simulator's DAWM is recorded.
The steps, from the most to the least informed:

1. ``noise-free maps, true core``: the simulator's own T1/MTR property maps (before any acquisition)
   pulled onto the session grid, inside the *true* pure-WM core (simulator WM farther than one voxel
   layer from true GM/CSF, without lesions): what tissue contrast alone allows;
2. ``noise-free maps, estimated core``: the same maps inside the label stage's eligible WM (its
   segmentation, partial-volume margin, WM prior and lesion margin): the cost of the segmentation;
3. ``measured, estimated core, 3 mm``: the preprocessed T1/MTR maps smoothed as the label stage
   does (inside its pure-WM core), in its eligible WM: the cost of acquisition noise, B1 and resampling. This is the ceiling
   of the label stage's threshold rules;
4. ``measured, estimated core, 5 mm, oracle detrend``: smoothed 5 mm inside the eligible WM, minus a 25 mm trend of the
   eligible WM without the true DAWM (the best a smooth-trend removal could do);
5. ``clinical images, estimated core, 3 mm``: the preprocessed T1w and FLAIR (bias-corrected), for
   comparison with the model stage, which sees only these.

Scores: ``T1`` (rise), ``MTR`` (drop), ``FLAIR`` (rise), ``T1w`` (drop), each as a robust z against the
step's reference (median/MAD of the same mask without the true DAWM, i.e. an oracle reference), and
``T1+MTR`` ((z_T1 + z_MTR) / sqrt 2). ``coverage``: the share of the true DAWM inside the step's mask
(an upper bound of recall).

A second table, **signal and noise** (:func:`noise_rows`), says where step 3 loses what steps 1-2 hold:
per map, in the estimated core, the DAWM effect (median of the true DAWM minus the median of the rest,
in ms or pu), the spread of the rest (1.4826 MAD: anatomy plus noise), their ratio ``d'``, and the
residual of the measured map against the noise-free one (SD over the rest), for the noise-free map,
the noise-free map smoothed as the label stage smooths, the measured map and the measured map smoothed.
Writes ``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, markdown_table, write_results

from dawm.errors import InputError
from dawm.evaluate.oracle import best_threshold_dice, true_wm_core
from dawm.image.io import load_volume
from dawm.label.config import LabelConfig
from dawm.label.normative import robust_stats
from dawm.label.pipeline import eligible_of, prepare_session, preprocessed, session_infos
from dawm.label.zscores import masked_smooth
from dawm.simulate.truth import truth_on_session_grid

THRESHOLDS = np.arange(0.25, 6.01, 0.25)
STEPS = (
    "noise-free maps, true core",
    "noise-free maps, estimated core",
    "measured, estimated core, 3 mm",
    "measured, estimated core, 5 mm, oracle detrend",
    "clinical images, estimated core, 3 mm",
)
#: abnormal direction of each input: +1 where DAWM raises it
SIGN = {"T1": 1.0, "MTR": -1.0, "FLAIR": 1.0, "T1w": -1.0}


def robust_z(data: np.ndarray, reference: np.ndarray, sign: float) -> np.ndarray:
    """``sign * (data - median) / (1.4826 MAD)`` over the ``reference`` voxels."""
    median, sd = robust_stats(data[reference])
    return sign * (data - median) / max(sd, 1e-6)


def session_rows(bids: Path, pre: Path, info, config: LabelConfig, min_voxels: int) -> tuple[list[dict], list[dict]]:
    """The ceiling rows and the signal-and-noise rows of one session (both [] without enough true DAWM)."""
    pathology = np.rint(truth_on_session_grid(bids, pre, info.inputs, desc="pathology", suffix="dseg")).astype(int)
    dawm = pathology == 2
    if dawm.sum() < min_voxels:
        return [], []
    prepared = prepare_session(info, pre, config)
    spacing = prepared.maps.spacing_mm
    tcore = true_wm_core(truth_on_session_grid(bids, pre, info.inputs, suffix="dseg"), config.pv_margin_mm, spacing) & (pathology != 1)
    ecore = eligible_of(prepared, config)
    noise_free = {m: truth_on_session_grid(bids, pre, info.inputs, suffix=f"{m}map") for m in ("T1", "MTR")}
    five = {m: masked_smooth(v, ecore, 5.0, spacing) for m, v in prepared.maps.raw.items()}
    clinical = {}
    for m in ("T1w", "FLAIR"):
        path = pre / info.inputs.base().subject_dir() / info.inputs.base().with_(space="session", desc="preproc", suffix=m).filename
        if path.exists():
            clinical[m] = masked_smooth(load_volume(path).data, ecore, config.smoothing_fwhm_mm, spacing)
    steps = {
        STEPS[0]: (noise_free, tcore),
        STEPS[1]: (noise_free, ecore),
        STEPS[2]: (dict(prepared.maps.maps), ecore),
        STEPS[3]: ({m: v - masked_smooth(v, ecore & ~dawm, 25.0, spacing, out_mask=ecore) for m, v in five.items()}, ecore),
        STEPS[4]: (clinical, ecore),
    }
    rows = []
    noise = noise_rows(info.key, prepared.maps.norm_key, noise_free, prepared.maps.raw, prepared.maps.maps, ecore, dawm, config, spacing)
    for step, (maps, mask) in steps.items():
        reference = mask & ~dawm
        z = {m: robust_z(v, reference, SIGN[m]) for m, v in maps.items()}
        if "T1" in z and "MTR" in z:
            z["T1+MTR"] = (z["T1"] + z["MTR"]) / np.sqrt(2)
        coverage = int((dawm & mask).sum()) / int(dawm.sum())
        for name, score in z.items():
            dice, thr = best_threshold_dice(score, dawm, THRESHOLDS, mask=mask)
            rows.append(
                {
                    "session": info.key,
                    "scanner": prepared.maps.norm_key,
                    "step": step,
                    "score": name,
                    "dice": dice,
                    "threshold": thr,
                    "coverage": coverage,
                }
            )
    return rows, noise


def noise_rows(key, scanner, noise_free, raw, smoothed, mask, dawm, config: LabelConfig, spacing) -> list[dict]:
    """Per map: DAWM effect, spread of the rest, ``d'`` and residual SD against the noise-free map
    (module docstring), for the noise-free, noise-free smoothed, measured and measured smoothed map."""
    rest, inside = mask & ~dawm, mask & dawm
    rows = []
    for m in ("T1", "MTR"):
        if m not in raw or m not in noise_free:
            continue
        nf = noise_free[m]
        nf_smooth = masked_smooth(nf, mask, config.smoothing_fwhm_mm, spacing)
        for version, v, clean in (
            ("noise-free", nf, nf),
            ("noise-free, smoothed", nf_smooth, nf_smooth),
            ("measured", raw[m], nf),
            ("measured, smoothed", smoothed[m], nf_smooth),
        ):
            median, spread = robust_stats(v[rest])
            effect = float(np.median(v[inside]) - median)
            rows.append(
                {
                    "session": key,
                    "scanner": scanner,
                    "map": m,
                    "version": version,
                    "effect": effect,
                    "spread": float(spread),
                    "d_prime": effect / max(float(spread), 1e-9),
                    "residual_sd": float(np.std((v - clean)[rest])),
                }
            )
    return rows


def noise_summary(rows: list[dict]) -> list[dict]:
    import pandas as pd

    if not rows:
        return []
    g = pd.DataFrame(rows).groupby(["map", "version"], sort=False)
    return [
        {"map": m, "version": v, **{c: float(d[c].mean()) for c in ("effect", "spread", "d_prime", "residual_sd")}, "sessions": int(len(d))}
        for (m, v), d in g
    ]


def summary_table(rows: list[dict]) -> list[dict]:
    import pandas as pd

    df = pd.DataFrame(rows)
    out = []
    for (step, score), d in df.groupby(["step", "score"], sort=False):
        out.append(
            {
                "step": step,
                "score": score,
                "dice_mean": float(d.dice.mean()),
                "dice_sd": float(d.dice.std()),
                "threshold_median": float(d.threshold.median()),
                "coverage": float(d.coverage.mean()),
                "sessions": int(len(d)),
            }
        )
    return out


def markdown(summary: list[dict], meta: dict, noise: list[dict] | None = None) -> str:
    """The summary table, one row per step and score."""
    rows = [{**r, "dice": f"{r['dice_mean']:.2f} ({r['dice_sd']:.2f})"} for r in summary]
    lines = [
        "# Ceiling of DAWM labelling: best-threshold Dice, step by step",
        "",
        f"cohort: `{meta['bids']}`; {meta['n_sessions']} patient sessions with true DAWM; {meta['seconds']:.0f} s. "
        "Threshold chosen per session knowing the truth (an upper bound for any threshold rule on that map); "
        "reference = median/MAD of the mask without the true DAWM. See the script's docstring for the steps.",
        "",
        markdown_table(
            rows,
            {
                "step": "step",
                "score": "score",
                "best Dice, mean (SD)": "dice",
                "best z, median": "threshold_median",
                "truth coverage": "coverage",
            },
            formats=dict.fromkeys(("threshold_median", "coverage"), ".2f"),
            na="nan",
        ),
    ]
    if noise:
        lines += [
            "",
            "## Signal and noise in the estimated core (means over sessions; T1 in ms, MTR in pu)",
            "",
            "effect: DAWM median minus the median of the rest; spread: 1.4826 MAD of the rest; residual: SD of the map "
            "minus the noise-free map (smoothed alike) over the rest.",
            "",
            markdown_table(
                noise,
                {
                    "map": "map",
                    "version": "version",
                    "DAWM effect": "effect",
                    "spread": "spread",
                    "d'": "d_prime",
                    "residual SD": "residual_sd",
                },
                formats=dict.fromkeys(("effect", "spread", "d_prime", "residual_sd"), ".2f"),
                na="-",
            ),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="label_ceiling")
    parser.add_argument("--bids", type=Path, required=True, help="simulated BIDS with derivatives/dawm-preprocess")
    parser.add_argument("--min-voxels", type=int, default=30, help="least true DAWM voxels for a session to count")
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)
    pre = args.bids / "derivatives" / "dawm-preprocess"
    if not pre.is_dir():
        raise SystemExit(f"{args.bids}: no derivatives/dawm-preprocess (run dawm preprocess first)")
    if not (args.bids / "derivatives" / "dawm-truth").is_dir():
        raise SystemExit(f"{args.bids}: no derivatives/dawm-truth (the ceiling needs a cohort made by dawm simulate)")
    config = LabelConfig()
    start = time.perf_counter()
    rows, noise = [], []
    infos = [i for i in session_infos(args.bids) if preprocessed(pre, i.inputs) and i.group != config.control_group]
    for info in infos:
        try:
            found, found_noise = session_rows(args.bids, pre, info, config, args.min_voxels)
        except InputError as exc:  # e.g. a session without quantitative maps
            print(f"{info.key}: skipped: {exc}", flush=True)
            continue
        rows += found
        noise += found_noise
        print(f"{info.key}: {'scored' if found else f'fewer than {args.min_voxels} true DAWM voxels'}", flush=True)
    if not rows:
        raise SystemExit(
            f"{args.bids}: no patient session could be scored (each needs T1 or MTR maps and {args.min_voxels}+ true DAWM voxels)"
        )
    summary = summary_table(rows)
    noise_table = noise_summary(noise)
    meta = {
        "bids": str(args.bids),
        "n_sessions": len({r["session"] for r in rows}),
        "seconds": time.perf_counter() - start,
        "config": config.model_dump(mode="json"),
        "noise": noise_table,
        "python": run.machine.python,
        "platform": run.machine.platform,
    }
    write_results(
        args.name,
        {"meta": meta, "summary": summary, "rows": rows, "noise_rows": noise},
        markdown(summary, meta, noise_table),
        run=run,
        results_dir=args.results_dir,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
