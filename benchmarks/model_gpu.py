"""Train and score the ``gpu`` preset on a GPU machine that cannot read the cohort's BIDS folder.

Two steps::

    # 1. beside the preprocessed + labelled cohort (CPU): a compact pack of the training arrays
    python benchmarks/model_gpu.py pack --bids demo_output_full/bids --labels dawm-label \\
        --truth dawm-truth-label --test-subjects hc001,ms001,ms005,ms009,ms010 --out .gpu/pack.npz
    # 2. on the GPU machine (needs torch, monai, nibabel, pydantic; no SimpleITK, no nilearn)
    python benchmarks/model_gpu.py run --pack .gpu/pack.npz --out OUT --minutes 5

**pack** stores, per session, the network input exactly as the training cache makes it
(:func:`dawm.model.cache.normalise`, canonical voxel order) cropped to the brain's bounding box,
as int8 in steps of 1/20 SD (clipped at +-6.35 SD; the clipped fraction is recorded), with the
qMRI labels, the simulator's truth (both on the session grid) and the brain mask; the split
(the named test subjects, fold 0 of a 5-fold stratified split of the others); and the test
predictions of the FLAIR-threshold baseline, tuned on the training subjects against the qMRI labels
(:func:`dawm.evaluate.baselines.fit_predict`). The 36 sessions of the 2 mm full demo pack into 13 MB.
``--extra-train BIDS`` adds every subject of a second cohort to fold 0's training subjects (renamed
``x-<label>``), so that a larger training set is scored on the same test sessions.

**run** trains fold 0 with the library's own :func:`dawm.model.train.train_fold` (the ``gpu``
preset: nnU-Net-sized DynUNet, AdamW 3e-4 (``--optimizer``/``--lr`` override it), bf16 autocast; ``--patch``/``--batch`` override the preset).
``max_epochs`` is either given (``--epochs``) or chosen so that training fits ``--minutes``: two
short calibration runs measure the time of an iteration and the fixed time of an epoch first. The best checkpoint (validation Dice) then segments
the test sessions with both inputs and with each input alone (the other channel zeroed: the
modality-dropout path that ``dawm predict`` takes for a missing modality), and each is scored
against the qMRI labels and the truth (pooled Dice, Spearman rho of DAWM volumes) next to the
baseline. Writes ``model_gpu.json``, ``model_gpu.md``, ``log.csv`` and ``predictions.npz`` (test
label maps, canonical brain-box grids) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, fmt, label_path, markdown_table, read_dseg, write_results

Q_STEP = 1 / 20  # SD per int8 step in the pack
CONFIGS = {"t1w+flair": (), "t1w (FLAIR missing)": (1,), "flair (T1w missing)": (0,)}


# --------------------------------------------------------------------------------------------
# pack (CPU, beside the cohort)
# --------------------------------------------------------------------------------------------


def pack(args: argparse.Namespace) -> None:
    from dawm.evaluate.baselines import FlairThreshold, fit_predict
    from dawm.image.io import load_volume
    from dawm.image.orientation import to_canonical
    from dawm.model import MODALITIES
    from dawm.model.cache import normalise
    from dawm.model.data import cases_of, discover_cases, make_split, subjects_with_dawm
    from dawm.model.window import brain_box

    bids = args.bids
    cases = [c for c in discover_cases(bids, labels=args.labels) if all(MODALITIES[m] in c.images for m in ("t1w", "flair"))]
    test = sorted(t.strip().removeprefix("sub-") for t in args.test_subjects.split(","))
    unknown = sorted(set(test) - {c.subject for c in cases})
    if unknown:
        raise SystemExit(f"--test-subjects not in the cohort: {', '.join(unknown)}")
    pool = [c for c in cases if c.subject not in test]
    split = make_split(pool, mode="kfold", folds=5, seed=0, dawm_subjects=subjects_with_dawm(pool))
    split["test"] = test
    fold = split["folds"][0]
    used = [(bids, "", c) for c in cases_of(cases, fold["train"] + fold["val"] + test)]
    baseline = fit_predict(FlairThreshold(), cases_of(cases, fold["train"] + fold["val"]), cases_of(cases, test))  # vs derivatives/<labels>
    if args.extra_train:  # every subject of another cohort joins fold 0's training subjects, renamed "x-<label>"
        extra = [
            c for c in discover_cases(args.extra_train, labels=args.labels) if all(MODALITIES[m] in c.images for m in ("t1w", "flair"))
        ]
        if not extra:
            raise SystemExit(f"--extra-train {args.extra_train}: no preprocessed session with T1w, FLAIR and derivatives/{args.labels}")
        used += [(args.extra_train, "x-", c) for c in extra]
        fold["train"] = fold["train"] + sorted({f"x-{c.subject}" for c in extra})
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {
        "split": split,
        "labels": args.labels,
        "truth": args.truth,
        "channels": ["t1w", "flair"],
        "q_step": Q_STEP,
        "sessions": {},
        "extra_train": str(args.extra_train) if args.extra_train else None,
    }
    clipped = total = 0
    for root, prefix, c in used:
        key = prefix + c.key
        brain_vol = load_volume(c.brain)
        brain = brain_vol.data > 0.5
        image = normalise([load_volume(c.images[MODALITIES[m]]).data for m in ("t1w", "flair")], brain)
        maps = {"qmri": read_dseg(c.label), "truth": read_dseg(label_path(root, c, args.truth))}
        if maps["truth"] is None:
            raise SystemExit(f"{key}: no simulator truth in derivatives/{args.truth}")
        if not prefix and c.key in baseline:
            maps["baseline"] = baseline[c.key]
        image, affine = to_canonical(image, brain_vol.affine)
        brain_c, _ = to_canonical(brain.astype(np.uint8), brain_vol.affine)
        box = brain_box(brain_c)
        q = np.rint(image[(slice(None), *box)] / Q_STEP)
        clipped += int((np.abs(q) > 127).sum())
        total += q.size
        arrays[f"{key}__image"] = np.clip(q, -127, 127).astype(np.int8)
        arrays[f"{key}__brain"] = brain_c[box]
        for name, m in maps.items():
            arrays[f"{key}__{name}"] = to_canonical(np.where(brain, m, 0).astype(np.uint8), brain_vol.affine)[0][box]
        meta["sessions"][key] = {
            "subject": prefix + c.subject,
            "scanner": c.scanner,
            "group": c.group,
            "spacing_mm": [float(v) for v in brain_vol.spacing_mm],
            "box": [[s.start, s.stop] for s in box],
            "canonical_affine": affine.tolist(),
        }
        print(f"packed {key}", flush=True)
    meta["clipped_fraction"] = clipped / max(total, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, meta=np.array(json.dumps(meta)), **arrays)
    print(f"{args.out}: {len(used)} sessions, {args.out.stat().st_size / 2**20:.1f} MB, clipped {meta['clipped_fraction']:.2e} of voxels")


# --------------------------------------------------------------------------------------------
# run (GPU machine)
# --------------------------------------------------------------------------------------------


def load_pack(path: Path, target: str) -> tuple[dict, dict]:
    """``(meta, key -> {"case": CachedCase, "qmri", "truth", "baseline"?})`` from a pack."""
    from dawm.model.cache import CachedCase, class_locations, dawm_target

    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        out = {}
        for key in meta["sessions"]:
            brain = z[f"{key}__brain"]
            maps = {n: z[f"{key}__{n}"] for n in ("qmri", "truth", "baseline") if f"{key}__{n}" in z.files}
            label = maps[target]
            case = CachedCase(
                key=key,
                image=z[f"{key}__image"].astype(np.float32) * meta["q_step"],
                label=label,
                dawm=dawm_target(label, None),
                tissue=np.zeros_like(label),
                brain=brain,
                locations=class_locations(label, brain, np.random.default_rng([0, 7])),
                affine=np.eye(4),
            )
            out[key] = {"case": case, **maps}
    return meta, out


def _subjects_cases(data: dict, meta: dict, subjects: list[str]) -> list:
    keep = set(subjects)
    return [d["case"] for k, d in sorted(data.items()) if meta["sessions"][k]["subject"] in keep]


def _calibrate(config, train_cases, val_cases, device) -> dict:
    """Seconds per epoch as ``fixed_s + iteration_s * iterations`` (``fixed_s``: validation, worker
    start-up, checkpoints), from two throwaway runs of 10 and 40 iterations after a warm-up epoch.
    (One short epoch alone over-estimated the iteration time twofold on an H200: worker start-up.)"""
    from dawm.model.train import Dist, train_fold

    seconds = {}
    for iters, epochs in ((10, 2), (40, 1)):  # the first epoch of the first run warms cuDNN up
        cal = config.model_copy(update={"max_epochs": epochs, "iterations_per_epoch": iters})
        with tempfile.TemporaryDirectory() as tmp:
            train_fold(0, cal, Path(tmp), train_cases, val_cases, dist=Dist(device=device))
            with (Path(tmp) / "log.csv").open() as fh:
                seconds[iters] = float(list(csv.DictReader(fh))[-1]["seconds"])
    iteration_s = max(seconds[40] - seconds[10], 0.0) / 30
    return {"iteration_s": iteration_s, "fixed_s": max(seconds[10] - 10 * iteration_s, 0.0), "epoch_s_10_40": seconds}


def run(args: argparse.Namespace, meta_run: Run) -> None:
    import torch

    from dawm.model.checkpoint import load_checkpoint
    from dawm.model.config import TrainConfig
    from dawm.model.metrics import agreement
    from dawm.model.networks import build_network
    from dawm.model.train import Dist, train_fold
    from dawm.model.window import segment_volume

    t_start = time.perf_counter()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    meta, data = load_pack(args.pack, args.target)
    split, fold = meta["split"], meta["split"]["folds"][0]
    train_cases, val_cases = _subjects_cases(data, meta, fold["train"]), _subjects_cases(data, meta, fold["val"])
    test_keys = [k for k in sorted(data) if meta["sessions"][k]["subject"] in set(split["test"])]
    workers = args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) - 2)
    config = TrainConfig(
        inputs="t1w+flair",
        preset=args.preset,
        patch_size=(args.patch,) * 3 if args.patch else None,
        batch_size=args.batch,
        iterations_per_epoch=args.iterations,
        num_workers=workers,
        optimizer=args.optimizer,
        lr=args.lr,
        patience=args.patience,
        labels=meta["labels"] if args.target == "qmri" else meta["truth"],
    ).resolved()
    print(
        f"{len(train_cases)} training, {len(val_cases)} validation, {len(test_keys)} test sessions; {device}; "
        f"{workers} workers; pack read in {time.perf_counter() - t_start:.0f} s",
        flush=True,
    )
    if args.epochs:
        cal, epochs, epoch_s = None, args.epochs, float("nan")
    else:
        cal = _calibrate(config, train_cases, val_cases, device)
        left_s = args.minutes * 60 - (time.perf_counter() - t_start)
        epoch_s = cal["iteration_s"] * config.iterations_per_epoch + cal["fixed_s"]
        epochs = max(2, int(left_s / epoch_s))
    config = config.model_copy(update={"max_epochs": epochs})
    print(f"calibration {cal}; {epochs} epochs of {config.iterations_per_epoch} iterations (~{epoch_s:.1f} s each)", flush=True)

    model_dir = args.model_dir or out / "model"
    t = time.perf_counter()
    fold_result = train_fold(0, config, model_dir, train_cases, val_cases, dist=Dist(device=device))
    train_s = time.perf_counter() - t
    (out / "log.csv").write_text((model_dir / "log.csv").read_text())
    print(f"trained in {train_s:.0f} s: {fold_result}", flush=True)

    net = build_network(config.preset, 2).to(device)
    load_checkpoint(model_dir / "fold-0" / "best.pt", model=net, map_location=device, restore_rng=False)
    voxel_ml = {k: float(np.prod(meta["sessions"][k]["spacing_mm"])) / 1000 for k in test_keys}
    refs = {r: {k: data[k][r] for k in test_keys} for r in ("qmri", "truth")}
    preds: dict[str, dict[str, np.ndarray]] = {}
    probs_dawm: dict[str, np.ndarray] = {}
    t = time.perf_counter()
    for name, zeroed in CONFIGS.items():
        preds[name] = {}
        for k in test_keys:
            case = data[k]["case"]
            image = np.array(case.image, copy=True)
            image[list(zeroed)] = 0.0
            brain = case.brain > 0
            p = segment_volume([net], image, brain, config.inference_roi, device=device, sw_batch_size=config.sw_batch_size)
            pred = p.argmax(0).astype(np.uint8)
            pred[~brain] = 0
            preds[name][k] = pred
            if not zeroed:
                probs_dawm[k] = np.rint(p[2] * 255).astype(np.uint8)
    predict_s = time.perf_counter() - t
    if all("baseline" in data[k] for k in test_keys):
        preds["FLAIR threshold baseline"] = {k: data[k]["baseline"] for k in test_keys}
    scores = {name: {ref: agreement(pr, refs[ref], voxel_ml) for ref in refs} for name, pr in preds.items()}
    results = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "torch": torch.__version__,
        "target": args.target, "config": config.model_dump(mode="json"), "calibration": cal, "train_seconds": train_s,
        "patches_seen": fold_result["epochs"] * config.iterations_per_epoch * config.batch_size, "fold0": fold_result,
        "predict_seconds_all_configs": predict_s, "test_keys": test_keys, "split": split, "scores": scores,
        "pack_clipped_fraction": meta.get("clipped_fraction"), "wall_seconds": time.perf_counter() - t_start,
    }  # fmt: skip
    np.savez_compressed(
        out / "predictions.npz",
        **{f"{n}__{k}": v for n, pr in preds.items() for k, v in pr.items()},
        **{f"dawm_prob_u8__{k}": v for k, v in probs_dawm.items()},
    )
    write_results("model_gpu", results, markdown(results), run=meta_run, results_dir=out)


def markdown(results: dict) -> str:
    """The results table (one row per input configuration, plus the baseline)."""
    c = results["config"]
    lines = [
        f"# dawm model accuracy, `{c['preset']}` preset on {results['device']} (target: {results['target']})",
        "",
        f"Patch {c['patch_size'][0]}^3 x {c['batch_size']}, {results['fold0']['epochs']} epochs x {c['iterations_per_epoch']} iterations "
        f"({results['patches_seen']} patches, {results['train_seconds']:.0f} s, best epoch {results['fold0']['best_epoch']}, "
        f"validation Dice {results['fold0']['best_val_dice']:.3f}); test subjects {', '.join(results['split']['test'])} "
        f"({len(results['test_keys'])} sessions). One t1w+flair model with modality dropout, run with both inputs and with each alone.",
        "",
    ]
    rows = []
    for name, s in results["scores"].items():
        t, q = s["truth"], s["qmri"]
        rows.append(
            {
                "inputs": name,
                **{
                    f"{what} ({ref_name})": fmt(r[key], ".3f")
                    for ref_name, r in (("truth", t), ("qMRI", q))
                    for what, key in (("lesion Dice", "lesion_dice"), ("DAWM Dice", "dawm_dice"), ("DAWM ml Spearman", "dawm_spearman"))
                },
                "DAWM ml predicted / qMRI / truth": f"{sum(q['dawm_ml_pred']):.1f} / {sum(q['dawm_ml_ref']):.1f} / {sum(t['dawm_ml_ref']):.1f}",
            }
        )
    lines.append(markdown_table(rows))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__)
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pack", help="write the compact training pack (CPU, beside the cohort)")
    p.add_argument("--bids", type=Path, required=True)
    p.add_argument("--labels", default="dawm-label", help="derivative with the qMRI labels")
    p.add_argument("--truth", default="dawm-truth-label", help="derivative with the simulator truth on the session grids")
    p.add_argument("--test-subjects", required=True)
    p.add_argument("--out", type=Path, default=Path(".gpu/pack.npz"))
    p.add_argument(
        "--extra-train",
        type=Path,
        default=None,
        help="another preprocessed + labelled cohort whose subjects all join fold 0's training set (renamed x-<label>)",
    )
    r = sub.add_parser("run", help="train, predict and score from a pack (GPU machine)")
    r.add_argument("--pack", type=Path, default=Path(".gpu/pack.npz"))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--minutes", type=float, default=5.0, help="time for calibration + training (prediction comes after)")
    r.add_argument("--target", choices=("qmri", "truth"), default="qmri")
    r.add_argument("--preset", default="gpu")
    r.add_argument("--patch", type=int, default=96)
    r.add_argument("--batch", type=int, default=4)
    r.add_argument("--iterations", type=int, default=None, help="iterations per epoch (default: the preset's)")
    r.add_argument("--patience", type=int, default=20)
    r.add_argument("--epochs", type=int, default=None, help="fixed number of epochs (no calibration, --minutes ignored)")
    r.add_argument("--optimizer", choices=("adamw", "sgd"), default=None, help="default: the preset's")
    r.add_argument("--lr", type=float, default=None, help="default: the preset's")
    r.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPUs - 2)")
    r.add_argument("--model-dir", type=Path, default=None, help="where the checkpoints go (default: OUT/model)")
    args = ap.parse_args(argv)
    meta_run = Run.start(argv, script=__file__)
    if args.step == "pack":
        for flag, root in (("--bids", args.bids), ("--extra-train", args.extra_train)):
            for folder, hint in (
                ("dawm-preprocess", "preprocess and label the cohort first"),
                (args.labels, "run dawm label, or name the labels with --labels"),
            ):
                if root is not None and not (root / "derivatives" / folder).is_dir():
                    ap.error(f"{flag} {root}: no derivatives/{folder} ({hint})")
    if args.step == "run" and not args.pack.is_file():
        ap.error(f"--pack {args.pack}: no such file (make it with: model_gpu.py pack)")
    from dawm.errors import InputError

    try:
        pack(args) if args.step == "pack" else run(args, meta_run)
    except InputError as exc:  # unusable data: one line, not a traceback
        ap.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
