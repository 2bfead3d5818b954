"""Reproducibility of ``dawm preprocess`` + ``dawm label`` under header changes: the same simulated
cohort written twice, once with each scanner profile's own file habits and once the way other
scanners and converters write it (:meth:`dawm.simulate.config.HeaderVariant.other_converter`: LPS,
a 12-degree oblique grid, int16 with ``scl_slope``, T1 maps in s, MTR as a fraction, NaN in the
background), each preprocessed and labelled by dawm's own library functions.

Usage::

    python benchmarks/label_reproducibility.py --workdir /tmp/repro --patients 3 --controls 2 --sessions 2 --scanners 3
    python benchmarks/label_reproducibility.py --bids COHORT --twin-bids TWIN     # already simulated (+ preprocessed)
    python benchmarks/label_reproducibility.py --bids COHORT --twin-bids NEW --twin-kind rewritten --name label_reproducibility_rewritten

Two kinds of twin. ``simulated`` (default): the cohort simulated again with the header variant; a
tilted grid is a different sampling of the head, so each voxel gets other noise (a rescan without
motion). ``rewritten``: the original's files re-stored (:func:`rewrite_headers`: same voxels, LPS,
int16 + ``scl_slope``, T1 in s, MTR as a fraction, NaN background; no re-gridding), the pure
header change, where any disagreement is the pipeline's.

The twin has the same seed, so the same anatomy, pathology, head pose and noise draws
(``tests/simulate/test_header_variant.py``); its grids are tilted and flipped, so it is the same
head on another grid. Both session grids lie in the scanner world of the session's reference
acquisition (the T1w), whose simulated ``SubjectToScanner`` pose is the same in both; the twin's
session-space labels are brought onto the original's session grid through
``pose_twin @ inv(pose_orig)`` (the identity, checked and reported) with nearest-neighbour
resampling. Per session: brain mask, lesion label and DAWM label Dice, DAWM ml in both. As the
ceiling of such a comparison, the simulator's own truth DAWM is taken onto both session grids and
compared the same way (``truth DAWM Dice``: what two perfect labellers reach on the two grids).
The z maps are compared too: Pearson r of the twin's z maps (linear) against the original's in the
voxels eligible in both, and the share of disagreeing DAWM voxels whose DAWM score
(min(z_T1, -z_MTR), the ``both`` rule's) lies within 0.5 of the grow threshold in the original.

Writes ``benchmarks/results/label_reproducibility.{json,md}`` (or ``--name``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, fmt, markdown_table, write_results

from dawm.image.io import load_volume
from dawm.image.resample import resample_to_grid
from dawm.label.config import LabelConfig
from dawm.label.pipeline import eligible_of, label_dataset, prepare_session, preprocessed, session_infos
from dawm.simulate.truth import reference_group, truth_on_session_grid

TRUTH = "derivatives/dawm-truth"
LESION_MASKS = "derivatives/lesion-masks"


def build(work: Path, args) -> tuple[Path, Path]:
    """Simulate (unless present) the cohort and its header twin in ``work/{orig,twin}``."""
    from dawm.simulate.cohort import simulate_cohort
    from dawm.simulate.config import HeaderVariant, SimulationConfig

    base = dict(
        patients=args.patients,
        controls=args.controls,
        sessions=args.sessions,
        scanners=args.scanners,
        resolution_mm=args.resolution,
        seed=args.seed,
    )
    out = []
    for name, headers in (("orig", HeaderVariant()), ("twin", HeaderVariant.other_converter())):
        root = work / name
        if not (root / "dataset_description.json").exists():
            simulate_cohort(SimulationConfig(**base, headers=headers), root, jobs=args.jobs)
        out.append(root)
    return out[0], out[1]


def _to_lps(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels with every array axis that points (mostly) right or anterior reversed."""
    affine = affine.copy()
    for a in range(3):
        d = affine[:3, a]
        k = int(np.argmax(np.abs(d)))
        if k in (0, 1) and d[k] > 0:
            data = np.flip(data, a)
            affine[:3, 3] += affine[:3, a] * (data.shape[a] - 1)
            affine[:3, a] *= -1
    return np.ascontiguousarray(data), affine


def rewrite_headers(src: Path, dst: Path, nan_fraction: float = 0.03) -> Path:
    """A header-only twin of ``src`` in ``dst``: the same voxels (same grid, same noise) stored the
    way other converters store them -- LPS array order, weighted images as int16 with
    ``scl_slope``, T1 maps in s, MTR maps as a fraction, NaN in the T1 map where the second
    MP2RAGE inversion is below ``nan_fraction`` of its 99th percentile. No re-gridding (an oblique
    re-gridding would be a resampling, not a header). Truth derivatives are copied, the rater's lesion masks re-stored LPS as well."""
    import shutil

    import nibabel as nib

    from dawm.image.io import save_volume

    if (dst / "dataset_description.json").exists():
        return dst
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("dataset_description.json", "participants.tsv", "participants.json", "README"):
        if (src / f).exists():
            shutil.copy(src / f, dst / f)
    if (src / TRUTH).is_dir():
        shutil.copytree(src / TRUTH, dst / TRUTH, dirs_exist_ok=True)
    for mask in sorted((src / LESION_MASKS).rglob("*_mask.nii.gz")):  # the rater's masks, re-stored too
        img = nib.load(mask)
        data, affine = _to_lps(np.asarray(img.dataobj, np.uint8), img.affine)
        save_volume(data, affine, dst / mask.relative_to(src), dtype=np.uint8)
    for f in sorted((src / LESION_MASKS).glob("*.json")):
        shutil.copy(f, dst / f.relative_to(src))
    for sub in sorted(src.glob("sub-*")):
        for p in sorted(sub.rglob("*")):
            out = dst / p.relative_to(src)
            if p.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            if not p.name.endswith(".nii.gz"):
                shutil.copy(p, out)
                continue
            img = nib.load(p)
            data, affine = _to_lps(np.asarray(img.dataobj, np.float32), img.affine)
            side = p.with_name(p.name.replace(".nii.gz", ".json"))
            meta = json.loads(side.read_text()) if side.exists() else None
            if p.name.endswith("_T1map.nii.gz"):
                data = data / 1000.0 if (meta or {}).get("Units") == "ms" else data
                inv2 = p.with_name(p.name.replace("_T1map", "_inv-2_part-mag_MP2RAGE"))
                if inv2.exists():
                    i2 = nib.load(inv2)
                    i2d, _ = _to_lps(np.asarray(i2.dataobj, np.float32), i2.affine)
                    data = np.where(i2d < nan_fraction * np.percentile(i2d, 99), np.nan, data)
                meta = {**(meta or {}), "Units": "s"}
                save_volume(data, affine, out)
            elif p.name.endswith("_MTRmap.nii.gz"):
                data = data / 100.0 if (meta or {}).get("Units", "percent") == "percent" else data
                meta = {**(meta or {}), "Units": "fraction"}
                save_volume(data, affine, out)
            else:
                save_volume(data, affine, out, dtype=np.int16, scaled=True)
            if meta is not None:
                out.with_name(out.name.replace(".nii.gz", ".json")).write_text(json.dumps(meta, indent=2) + "\n")
    return dst


def run_stages(bids: Path, args, label_config: LabelConfig) -> None:
    """Preprocess (sessions already done are kept unless ``--force-preprocess``) and label (always redone)."""
    from dawm.preprocess.config import PreprocessConfig
    from dawm.preprocess.pipeline import preprocess_dataset

    preprocess_dataset(bids, config=PreprocessConfig(spacing_mm=args.resolution), jobs=args.jobs, force=args.force_preprocess)
    label_dataset(bids, config=label_config, jobs=args.jobs, force=True)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    n = int(a.sum() + b.sum())
    return 2.0 * int((a & b).sum()) / n if n else float("nan")


def _session_file(root: Path, stage: str, inputs, **entities) -> Path:
    return root / "derivatives" / stage / inputs.base().with_(**entities).relpath


def _pose(bids: Path, inputs) -> np.ndarray | None:
    """The simulated SubjectToScanner pose of the session's reference acquisition (None: not simulated)."""
    xfm = bids / TRUTH / inputs.base().with_(from_="subject", to="scanner", mode="image", suffix="xfm", extension=".json").relpath
    log = _session_file(bids, "dawm-preprocess", inputs, desc="preproc", suffix="log", extension=".json")
    if not xfm.exists():
        return None
    return np.asarray(json.loads(xfm.read_text())["SubjectToScanner"][reference_group(json.loads(log.read_text()))])


def compare_session(info, twin_info, bids: Path, twin: Path, config: LabelConfig) -> dict:
    """The agreement of one session's labels (see the module docstring)."""
    grids = {}
    for root, i in ((bids, info), (twin, twin_info)):
        v = load_volume(_session_file(root, "dawm-preprocess", i.inputs, space="session", desc="brain", suffix="mask"))
        grids[root] = (v.shape, v.affine)
    shape, affine = grids[bids]
    pose_o, pose_t = _pose(bids, info.inputs), _pose(twin, twin_info.inputs)
    # pull convention: original session world -> twin session world
    to_twin = pose_t @ np.linalg.inv(pose_o) if pose_o is not None and pose_t is not None else np.eye(4)
    world_mm = float(np.abs(to_twin - np.eye(4)).max())

    def onto(img: np.ndarray, kind: str = "nearest") -> np.ndarray:
        return resample_to_grid(img, grids[twin][1], shape, affine, interpolation=kind, transform_ras=to_twin)  # type: ignore[arg-type]

    def read(root: Path, i, stage: str, **ent) -> np.ndarray:
        return load_volume(_session_file(root, stage, i.inputs, **ent), allow_empty=True).data

    row: dict = {"session": info.key, "group": info.group, "scanner": info.scanner, "pose_difference": world_mm}
    brain_o = read(bids, info, "dawm-preprocess", space="session", desc="brain", suffix="mask") > 0.5
    brain_t = onto(read(twin, twin_info, "dawm-preprocess", space="session", desc="brain", suffix="mask").astype(np.uint8)) > 0
    lab_o = np.rint(read(bids, info, "dawm-label", space="session", desc="dawm", suffix="dseg")).astype(np.uint8)
    lab_t_native = np.rint(read(twin, twin_info, "dawm-label", space="session", desc="dawm", suffix="dseg")).astype(np.uint8)
    lab_t = onto(lab_t_native)
    vox_o = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    vox_t = abs(np.linalg.det(grids[twin][1][:3, :3])) / 1000.0
    row.update(
        brain_dice=dice(brain_o, brain_t),
        lesion_dice=dice(lab_o == 1, lab_t == 1),
        dawm_dice=dice(lab_o == 2, lab_t == 2),
        dawm_ml=float((lab_o == 2).sum() * vox_o),
        twin_dawm_ml=float((lab_t_native == 2).sum() * vox_t),
        lesion_ml=float((lab_o == 1).sum() * vox_o),
        twin_lesion_ml=float((lab_t_native == 1).sum() * vox_t),
    )
    # Ceiling: the truth DAWM on both session grids, compared the same way.
    if (bids / TRUTH).is_dir() and (twin / TRUTH).is_dir():
        pre_o, pre_t = bids / "derivatives" / "dawm-preprocess", twin / "derivatives" / "dawm-preprocess"
        t_o = np.rint(truth_on_session_grid(bids, pre_o, info.inputs, desc="pathology", suffix="dseg")).astype(np.uint8)
        t_t = onto(np.rint(truth_on_session_grid(twin, pre_t, twin_info.inputs, desc="pathology", suffix="dseg")).astype(np.uint8))
        row["truth_dawm_dice"] = dice(t_o == 2, t_t == 2)
        row["truth_lesion_dice"] = dice(t_o == 1, t_t == 1)
    # z maps: continuous agreement and how close the disagreeing voxels are to the thresholds.
    z = {}
    for mod in ("T1", "MTR"):
        p_o = _session_file(bids, "dawm-label", info.inputs, space="session", desc=f"{mod}z", suffix="statmap")
        p_t = _session_file(twin, "dawm-label", twin_info.inputs, space="session", desc=f"{mod}z", suffix="statmap")
        if p_o.exists() and p_t.exists():
            z[mod] = (load_volume(p_o, allow_empty=True).data, onto(load_volume(p_t, allow_empty=True).data, "linear"))
    if z:
        prep_o = prepare_session(info, bids / "derivatives" / "dawm-preprocess", config)
        prep_t = prepare_session(twin_info, twin / "derivatives" / "dawm-preprocess", config)
        elig_o = eligible_of(prep_o, config)
        elig_t = onto(eligible_of(prep_t, config).astype(np.uint8)) > 0
        both = elig_o & elig_t
        row["eligible_dice"] = dice(elig_o, elig_t)
        for mod, (a, b) in z.items():
            row[f"z_{mod}_r"] = float(np.corrcoef(a[both], b[both])[0, 1]) if both.sum() > 10 else float("nan")
            row[f"z_{mod}_mad"] = float(np.median(np.abs(a[both] - b[both]))) if both.any() else float("nan")
        if len(z) == 2:
            score_o = np.minimum(z["T1"][0], -z["MTR"][0])
            score_t = np.minimum(z["T1"][1], -z["MTR"][1])
            grow = config.grow_threshold if config.grow_threshold is not None else config.z_threshold
            differ = (lab_o == 2) ^ (lab_t == 2)
            row["dawm_disagree_voxels"] = int(differ.sum())
            near = (np.abs(score_o - grow) < 0.5) | (np.abs(score_t - grow) < 0.5)
            row["disagree_near_threshold"] = float((differ & near).sum() / max(differ.sum(), 1))
            row["disagree_not_eligible_in_one"] = float((differ & ~both).sum() / max(differ.sum(), 1))
    return row


def evaluate(bids: Path, twin: Path, config: LabelConfig) -> list[dict]:
    twins = {i.key: i for i in session_infos(twin)}
    rows = []
    for info in session_infos(bids):
        t = twins.get(info.key)
        pre_o, pre_t = bids / "derivatives" / "dawm-preprocess", twin / "derivatives" / "dawm-preprocess"
        if t is None or not preprocessed(pre_o, info.inputs) or not preprocessed(pre_t, t.inputs):
            print(f"{info.key}: not in both cohorts, skipped", flush=True)
            continue
        rows.append(compare_session(info, t, bids, twin, config))
        r = rows[-1]
        print(
            f"{info.key}: brain {r['brain_dice']:.3f} lesion {r['lesion_dice']:.3f} DAWM {r['dawm_dice']:.3f} "
            f"({r['dawm_ml']:.2f} / {r['twin_dawm_ml']:.2f} ml)",
            flush=True,
        )
    return rows


def _stats(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if not v.size:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def summarise(rows: list[dict], control_group: str = "HC") -> dict:
    out = {
        k: _stats(r.get(k) for r in rows)
        for k in (
            "brain_dice",
            "lesion_dice",
            "dawm_dice",
            "truth_dawm_dice",
            "truth_lesion_dice",
            "eligible_dice",
            "z_T1_r",
            "z_MTR_r",
            "z_T1_mad",
            "z_MTR_mad",
            "disagree_near_threshold",
            "disagree_not_eligible_in_one",
        )
    }
    # Dice is undefined (nan) where neither labels DAWM; the median is over sessions where one does.
    ctl = [r for r in rows if r["group"] == control_group]
    out["control_dawm_ml"] = {
        "orig": float(np.mean([r["dawm_ml"] for r in ctl])) if ctl else float("nan"),
        "twin": float(np.mean([r["twin_dawm_ml"] for r in ctl])) if ctl else float("nan"),
    }
    return out


#: the per-session table: header -> row key
SESSION_COLUMNS = {
    "session": "session",
    "group": "group",
    "scanner": "scanner",
    "brain Dice": "brain_dice",
    "lesion Dice": "lesion_dice",
    "DAWM Dice": "dawm_dice",
    "truth DAWM Dice": "truth_dawm_dice",
    "DAWM ml (orig / twin)": "dawm_ml_pair",
    "lesion ml (orig / twin)": "lesion_ml_pair",
    "eligible Dice": "eligible_dice",
    "z T1 r": "z_T1_r",
    "z MTR r": "z_MTR_r",
    "disagreeing near thr": "disagree_near_threshold",
}


def markdown(rows: list[dict], summary: dict, meta: dict) -> str:
    """The headline paragraph, the per-session table and the summary table."""
    s = summary
    lines = [
        "# dawm label reproducibility under header changes\n",
        f"Cohort `{meta['bids']}` and its header twin `{meta['twin']}` ({meta['twin_headers']}); {len(rows)} sessions; "
        f"label config: rule `{meta['config']['rule']}`, threshold {meta['config']['threshold'] or 3.5}, grow {meta['config']['grow_threshold']}, "
        f"reference `{meta['config']['reference']}`. Machine: {meta['platform']}, {meta['cpu_count']} CPUs (shared), Python {meta['python']}; "
        f"{meta['seconds']:.0f} s.\n",
        f"**DAWM label Dice median {fmt(s['dawm_dice']['median'])} (range {fmt(s['dawm_dice']['min'])}-{fmt(s['dawm_dice']['max'])}, "
        f"{s['dawm_dice']['n']} sessions with DAWM in either); goal >= 0.9.** Brain mask Dice {fmt(s['brain_dice']['median'])} "
        f"({fmt(s['brain_dice']['min'])}-{fmt(s['brain_dice']['max'])}), lesion label Dice {fmt(s['lesion_dice']['median'])} "
        f"({fmt(s['lesion_dice']['min'])}-{fmt(s['lesion_dice']['max'])}). Ceiling (truth DAWM on both grids): "
        f"{fmt(s['truth_dawm_dice']['median'])} ({fmt(s['truth_dawm_dice']['min'])}-{fmt(s['truth_dawm_dice']['max'])}). "
        f"Control DAWM per session: {fmt(s['control_dawm_ml']['orig'], '.2f')} ml (original) vs {fmt(s['control_dawm_ml']['twin'], '.2f')} ml (twin).\n",
    ]
    table = [
        {
            **r,
            "dawm_ml_pair": f"{r['dawm_ml']:.2f} / {r['twin_dawm_ml']:.2f}",
            "lesion_ml_pair": f"{r['lesion_ml']:.2f} / {r['twin_lesion_ml']:.2f}",
        }
        for r in rows
    ]
    lines.append(markdown_table(table, SESSION_COLUMNS, formats={"disagree_near_threshold": ".2f"}))
    measures = [{"measure": k, **v} for k, v in summary.items() if "median" in v]
    lines += ["", markdown_table(measures, ["measure", "median", "min", "max"], formats=dict.fromkeys(("median", "min", "max"), ".3f"))]
    if meta.get("notes"):
        lines += ["", meta["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="label_reproducibility")
    parser.add_argument("--bids", type=Path, help="a simulated cohort (preprocessed or not)")
    parser.add_argument("--twin-bids", type=Path, help="the same cohort with other headers")
    parser.add_argument("--workdir", type=Path, help="simulate both into WORKDIR/{orig,twin} (skipped where present)")
    parser.add_argument("--patients", type=int, default=3)
    parser.add_argument("--controls", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--scanners", type=int, default=3)
    parser.add_argument("--resolution", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--config", type=Path, default=None, help="LabelConfig JSON (default: the defaults)")
    parser.add_argument("--force-preprocess", action="store_true", help="redo the preprocessing of both cohorts")
    parser.add_argument("--no-stages", action="store_true", help="only compare: both cohorts are already preprocessed and labelled")
    parser.add_argument(
        "--twin-kind",
        choices=("simulated", "rewritten"),
        default="simulated",
        help="simulated: the cohort simulated again with HeaderVariant.other_converter() (tilted grids, so other noise "
        "per voxel); rewritten: the same voxels re-stored (LPS, int16 + scl_slope, s, fraction, NaN), written to "
        "--twin-bids or WORKDIR/rewritten",
    )
    parser.add_argument("--notes", default="", help="text appended to the markdown")
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)
    if args.workdir:
        bids, twin = build(args.workdir, args)
        if args.twin_kind == "rewritten":
            twin = rewrite_headers(bids, args.workdir / "rewritten")
    elif args.bids and args.twin_bids:
        bids, twin = args.bids, args.twin_bids
        if args.twin_kind == "rewritten":
            twin = rewrite_headers(bids, args.twin_bids)
    else:
        parser.error("give --workdir, or --bids and --twin-bids")
    config = LabelConfig.load(args.config) if args.config else LabelConfig()
    start = time.perf_counter()
    if not args.no_stages:
        for root in (bids, twin):
            run_stages(root, args, config)
    rows = evaluate(bids, twin, config)
    summary = summarise(rows, config.control_group)
    stamp = twin / TRUTH / "dawm_simulate_config.json"
    headers = json.loads(stamp.read_text()).get("headers") if stamp.exists() else None
    if args.twin_kind == "rewritten":
        headers = {
            "rewritten": "same voxels",
            "storage": "LPS",
            "integer_storage": True,
            "t1map_units": "s",
            "mtr_units": "fraction",
            "nan_background": True,
        }
    meta = {
        "bids": str(bids),
        "twin": str(twin),
        "twin_kind": args.twin_kind,
        "twin_headers": {k: v for k, v in (headers or {}).items() if v is not None},
        "config": config.model_dump(mode="json"),
        "seconds": time.perf_counter() - start,
        "python": run.machine.python,
        "platform": run.machine.platform,
        "cpu_count": run.machine.cpu_count,
        "notes": args.notes,
    }
    write_results(
        args.name, {"meta": meta, "summary": summary, "rows": rows}, markdown(rows, summary, meta), run=run, results_dir=args.results_dir
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
