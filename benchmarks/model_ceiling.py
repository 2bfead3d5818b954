"""What T1w + FLAIR can tell about lesions and DAWM at all: a voxel classifier with spatial context.

Usage (the pack of ``benchmarks/model_gpu.py pack``: the network's own inputs, labels and truth)::

    python benchmarks/model_ceiling.py --pack .gpu/pack.npz --name model_ceiling_bigpack

Issue 6 asks a U-Net for DAWM Dice >= 0.5 and lesion Dice >= 0.8 from T1w + FLAIR. This script
measures how far the same inputs go with hand-made context features and a gradient-boosted
classifier, so a U-Net's numbers can be read against them:

* **features** per brain voxel, from the pack's z-scored T1w and FLAIR (exactly what the network
  sees): each image smoothed in the brain at FWHM 0, 3, 6 and 12 mm; its contrast to a 24 mm
  surround; the FLAIR maximum and the T1w minimum within 3 and 6 mm (a lesion or a ventricle
  nearby); the distance to the brain's edge (mm). 15 features, all computable from the images;
* **classifier**: scikit-learn ``HistGradientBoostingClassifier`` (0 normal, 1 lesion, 2 DAWM), one per
  target (simulator truth, qMRI labels), fitted on fold 0's training sessions (every lesion and
  DAWM voxel and ``--background-share`` of the others);
* **scores**, each class's probability cut at the best threshold for the pooled Dice (an oracle
  threshold): on the **test** sessions (out of sample: a hand-feature model to set beside the
  U-Net) and on up to ``--in-sample`` training sessions (in sample: what these features can
  represent of the target at all). DAWM volume Spearman at that threshold, over sessions;
* **reference** on the same sessions: the qMRI labels scored against the truth;
* with ``--bids`` (the pack's first cohort): the **gridding loss** of lesion Dice. The true lesions
  of every patient session are put on its session grid twice, by nearest neighbour (how the truth
  is scored everywhere) and by linear interpolation cut at 0.5; the Dice of the two renderings
  is what any prediction on that grid loses to partial volume alone.

Writes ``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, markdown_table, write_results
from scipy import ndimage, stats

from dawm.label.zscores import masked_smooth
from dawm.model.metrics import class_counts, pooled_dice

FWHM_MM = (0.0, 3.0, 6.0, 12.0)
SURROUND_MM = 24.0
NEAR_MM = (3.0, 6.0)
FEATURES = (
    [f"{m} fwhm {w:g} mm" for m in ("T1w", "FLAIR") for w in FWHM_MM]
    + [f"{m} minus {SURROUND_MM:g} mm surround" for m in ("T1w", "FLAIR")]
    + [f"FLAIR max within {r:g} mm" for r in NEAR_MM]
    + [f"T1w min within {r:g} mm" for r in NEAR_MM]
    + ["distance to brain edge (mm)"]
)
CLASSES = {1: "lesion", 2: "DAWM"}
N_BINS = 200  # probability thresholds 0.005 .. 0.995


def _ball(radius_mm: float, spacing_mm: np.ndarray) -> np.ndarray:
    r = np.ceil(radius_mm / spacing_mm).astype(int)
    grid = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((g * s) ** 2 for g, s in zip(grid, spacing_mm)) <= radius_mm**2 * (1 + 1e-6)


def features(image: np.ndarray, brain: np.ndarray, spacing_mm: np.ndarray) -> np.ndarray:
    """``(n_brain_voxels, 15)`` float32 context features (order :data:`FEATURES`) of a
    ``(2, X, Y, Z)`` T1w/FLAIR volume z-scored in ``brain`` (bool, X, Y, Z)."""
    cols = []
    for c in (0, 1):
        cols += [masked_smooth(image[c], brain, w, spacing_mm)[brain] for w in FWHM_MM]
    for c in (0, 1):
        cols.append(
            masked_smooth(image[c], brain, FWHM_MM[1], spacing_mm)[brain] - masked_smooth(image[c], brain, SURROUND_MM, spacing_mm)[brain]
        )
    for c, filt, fill in ((1, ndimage.maximum_filter, -1e3), (0, ndimage.minimum_filter, 1e3)):
        for r in NEAR_MM:
            cols.append(filt(np.where(brain, image[c], fill), footprint=_ball(r, spacing_mm))[brain])
    cols.append(ndimage.distance_transform_edt(brain, sampling=spacing_mm)[brain])
    return np.stack(cols, axis=1).astype(np.float32)


def load(pack: Path) -> tuple[dict, dict]:
    """``(meta, key -> {"x": features, "qmri", "truth": labels in the brain, "spacing_mm"})``."""
    out = {}
    with np.load(pack) as z:
        meta = json.loads(str(z["meta"]))
        for key, info in meta["sessions"].items():
            brain = z[f"{key}__brain"] > 0
            spacing = np.linalg.norm(np.asarray(info["canonical_affine"])[:3, :3], axis=0)
            image = z[f"{key}__image"].astype(np.float32) * meta["q_step"]
            out[key] = {
                "x": features(image, brain, spacing),
                "qmri": z[f"{key}__qmri"][brain],
                "truth": z[f"{key}__truth"][brain],
                "voxel_ml": float(np.prod(spacing)) / 1000,
            }
    return meta, out


def fit(data: dict, keys: list[str], target: str, background_share: float, seed: int):
    """A gradient-boosted 3-class classifier of ``target`` on ``keys`` (all lesion/DAWM voxels,
    ``background_share`` of the rest, class-balanced sample weights)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in keys:
        y = data[k][target]
        keep = (y > 0) | (rng.random(y.shape) < background_share)
        xs.append(data[k]["x"][keep])
        ys.append(y[keep])
    x, y = np.concatenate(xs), np.concatenate(ys)
    counts = np.bincount(y, minlength=3).astype(float)
    weight = (counts.sum() / np.maximum(counts, 1) / 3)[y]
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=63, random_state=seed)
    clf.fit(x, y, sample_weight=weight)
    return clf, {int(c): int(n) for c, n in enumerate(counts)}


def best_pooled(scores: dict[str, np.ndarray], refs: dict[str, np.ndarray], voxel_ml: dict[str, float], edges: np.ndarray) -> dict:
    """Pooled Dice of ``score > t`` against ``refs`` (bool) over all keys at the best ``t`` of
    ``edges``, with the per-session volumes (ml) and their Spearman rho at that ``t``."""
    n = len(edges)
    tp, pos = np.zeros(n), np.zeros(n)
    n_ref = 0
    for k, s in scores.items():
        idx = np.searchsorted(edges, s, side="left")  # s > edges[j] for j < idx
        pos += np.cumsum(np.bincount(idx, minlength=n + 1)[::-1])[::-1][1:]
        tp += np.cumsum(np.bincount(idx[refs[k]], minlength=n + 1)[::-1])[::-1][1:]
        n_ref += int(refs[k].sum())
    dice = 2 * tp / np.maximum(pos + n_ref, 1)
    j = int(np.argmax(dice))
    pred_ml = [float((scores[k] > edges[j]).sum()) * voxel_ml[k] for k in scores]
    ref_ml = [float(refs[k].sum()) * voxel_ml[k] for k in scores]
    rho = float(stats.spearmanr(pred_ml, ref_ml).statistic) if np.std(pred_ml) > 0 and np.std(ref_ml) > 0 else float("nan")
    return {"dice": float(dice[j]), "threshold": float(edges[j]), "spearman": rho, "pred_ml": pred_ml, "ref_ml": ref_ml}


def label_dice(pred: dict[str, np.ndarray], ref: dict[str, np.ndarray], cls: int) -> float:
    """Pooled Dice of class ``cls`` between two label sets."""
    return pooled_dice([class_counts(pred[k], ref[k], labels=(cls,)) for k in pred])[cls]


def evaluate(data: dict, keys: list[str], clfs: dict, target_names=("truth", "qmri")) -> list[dict]:
    """Rows ``{sessions, fitted on, scored against, class, dice, threshold, spearman}``."""
    rows = []
    voxel_ml = {k: data[k]["voxel_ml"] for k in keys}
    for ref in target_names:
        if ref == "truth":
            q, t = {k: data[k]["qmri"] for k in keys}, {k: data[k]["truth"] for k in keys}
            for cls, name in CLASSES.items():
                vq, vt = [float((q[k] == cls).sum()) for k in keys], [float((t[k] == cls).sum()) for k in keys]
                rho = float(stats.spearmanr(vq, vt).statistic) if np.std(vq) > 0 and np.std(vt) > 0 else float("nan")
                rows.append(
                    {
                        "model": "qMRI labels",
                        "scored against": "truth",
                        "class": name,
                        "dice": label_dice(q, t, cls),
                        "threshold": float("nan"),
                        "spearman": rho,
                    }
                )
        for fitted, clf in clfs.items():
            proba = {k: clf.predict_proba(data[k]["x"]) for k in keys}
            for cls, name in CLASSES.items():
                refs = {k: data[k][ref] == cls for k in keys}
                r = best_pooled({k: p[:, cls] for k, p in proba.items()}, refs, voxel_ml, (np.arange(N_BINS) + 0.5) / N_BINS)
                rows.append({"model": f"classifier fitted on {fitted}", "scored against": ref, "class": name, **r})
    return rows


def gridding_agreement(bids: Path) -> dict:
    """Pooled and per-session Dice between two renderings of the true lesions on each session grid
    of ``bids`` (nearest neighbour vs linear >= 0.5); sessions without lesions are skipped."""
    from dawm.image.io import load_volume
    from dawm.image.resample import resample_to_grid
    from dawm.simulate.truth import TRUTH, pull_to_session, reference_group

    per, inter, total = {}, 0, 0
    for log_file in sorted((bids / "derivatives" / "dawm-preprocess").glob("sub-*/**/anat/*_desc-preproc_log.json")):
        info = json.loads(log_file.read_text())
        key = log_file.name.removesuffix("_desc-preproc_log.json")
        tdir = bids / "derivatives" / TRUTH / log_file.relative_to(bids / "derivatives" / "dawm-preprocess").parent
        s2s = np.asarray(
            json.loads((tdir / f"{key}_from-subject_to-scanner_mode-image_xfm.json").read_text())["SubjectToScanner"][reference_group(info)]
        )
        truth = load_volume(tdir / f"{key}_space-subject_desc-pathology_dseg.nii.gz", allow_empty=True)
        lesion = (np.rint(truth.data) == 1).astype(np.float32)
        if not lesion.any():
            continue
        shape, affine = tuple(info["SessionGrid"]["shape"]), np.asarray(info["SessionGrid"]["affine"])
        nearest = pull_to_session(lesion, truth.affine, s2s, shape, affine) > 0.5
        linear = resample_to_grid(lesion, truth.affine, shape, affine, interpolation="linear", transform_ras=np.linalg.inv(s2s)) >= 0.5
        i, t = int((nearest & linear).sum()), int(nearest.sum() + linear.sum())
        per[key], inter, total = 2 * i / t, inter + i, total + t
    if not per:
        raise SystemExit(f"{bids}: no preprocessed patient session with true lesions")
    return {"pooled": 2 * inter / total, "per_session": per}


def markdown(tables: dict[str, list[dict]], meta: dict) -> str:
    """One table per set of sessions (model x reference: lesion Dice, DAWM Dice, DAWM ml Spearman),
    then the gridding loss."""
    lines = [
        f"# What T1w + FLAIR tell about lesions and DAWM (`{meta['pack']}`)",
        "",
        f"Gradient-boosted voxel classifier on {len(FEATURES)} context features (see `benchmarks/model_ceiling.py`), fitted on "
        f"{meta['train_sessions']} fold-0 training sessions; Dice pooled over sessions at the best probability threshold (oracle "
        f"threshold); DAWM volume Spearman over the same sessions at that threshold. {meta['seconds']:.0f} s.",
        "",
    ]
    for title, rows in tables.items():
        seen: dict[tuple[str, str], dict] = {}
        for r in rows:
            seen.setdefault((r["model"], r["scored against"]), {})[r["class"]] = r
        table = [
            {
                "model": model,
                "scored against": ref,
                "lesion Dice": by["lesion"]["dice"],
                "DAWM Dice": by["DAWM"]["dice"],
                "DAWM ml Spearman": by["DAWM"]["spearman"],
            }
            for (model, ref), by in seen.items()
        ]
        lines += [
            f"## {title}",
            "",
            markdown_table(table, formats=dict.fromkeys(("lesion Dice", "DAWM Dice", "DAWM ml Spearman"), ".3f")),
            "",
        ]
    if meta.get("gridding"):
        g = meta["gridding"]
        v = list(g["per_session"].values())
        lines += [
            "## Gridding loss of lesion Dice",
            "",
            f"True lesions put on each session grid by nearest neighbour vs linear interpolation >= 0.5 ({len(v)} patient sessions "
            f"of `{meta['bids']}`): pooled Dice {g['pooled']:.3f} (per session {min(v):.3f} - {max(v):.3f}).",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, name="model_ceiling")
    ap.add_argument("--pack", type=Path, default=Path(".gpu/pack.npz"))
    ap.add_argument("--background-share", type=float, default=0.05, help="share of normal voxels in the training sample")
    ap.add_argument("--in-sample", type=int, default=20, help="training sessions also scored in sample (0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bids", type=Path, default=None, help="the pack's first cohort: also measure the gridding loss of lesion Dice")
    args = ap.parse_args(argv)
    run = Run.start(argv, script=__file__)
    if not args.pack.is_file():
        raise SystemExit(f"{args.pack}: no such pack (make one with benchmarks/model_gpu.py pack)")
    t0 = time.perf_counter()
    gridding = gridding_agreement(args.bids) if args.bids else None
    meta, data = load(args.pack)
    split, fold = meta["split"], meta["split"]["folds"][0]
    subject = {k: v["subject"] for k, v in meta["sessions"].items()}
    train = sorted(k for k in data if subject[k] in set(fold["train"]))
    test = sorted(k for k in data if subject[k] in set(split["test"]))
    print(f"{len(data)} sessions read in {time.perf_counter() - t0:.0f} s: {len(train)} training, {len(test)} test", flush=True)
    clfs, counts = {}, {}
    for target in ("truth", "qmri"):
        clfs[target], counts[target] = fit(data, train, target, args.background_share, args.seed)
        print(f"fitted on {target}: {counts[target]} samples per class", flush=True)
    rng = np.random.default_rng(args.seed)
    in_sample = sorted(rng.choice(train, size=min(args.in_sample, len(train)), replace=False).tolist()) if args.in_sample else []
    tables = {f"test sessions ({len(test)}, out of sample)": evaluate(data, test, clfs)}
    if in_sample:
        tables[f"training sessions ({len(in_sample)}, in sample)"] = evaluate(data, in_sample, clfs)
    info = {
        "pack": str(args.pack),
        "train_sessions": len(train),
        "test_sessions": test,
        "in_sample_sessions": in_sample,
        "features": FEATURES,
        "training_samples": counts,
        "background_share": args.background_share,
        "bids": str(args.bids) if args.bids else None,
        "gridding": gridding,
        "seconds": time.perf_counter() - t0,
        "python": run.machine.python,
    }
    write_results(args.name, {"meta": info, "tables": tables}, markdown(tables, info), run=run, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
