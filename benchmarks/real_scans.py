"""dawm on real clinical MS scans (``../shared/real-ms``): does every session go through, and how
good are the lesion maps where an expert mask exists?

Usage::

    python benchmarks/real_scans.py                          # the bundled model, ../shared/real-ms
    python benchmarks/real_scans.py --model DIR --name NAME  # another model

Each session runs alone through ``dawm predict`` (a fresh process on a one-session view of the
dataset, so the time and peak memory are that session's, preprocessing included). Per session it
records status (and the reason of a failure), wall time, peak resident memory, brain volume, the
share of the expected brain inside each image's field of view, lesion and DAWM volumes (and those
inside the deep grey nuclei of the MNI template, where simulator-trained models put false
positives), the
warnings of preprocessing, and a QC overlay PNG (brain mask outline, lesions red, DAWM yellow on
the session-grid FLAIR or T1w). On subjects with an expert lesion mask in
``derivatives/expert-lesions`` (sub-x07) it scores, on the mask's grid: lesion Dice, lesion-wise F1
(``dawm.evaluate.metrics.lesion_detection``, lesions of 3 voxels or more) and volumes, next to the
best plain FLAIR threshold (FLAIR z-scored in dawm's brain mask, the threshold chosen knowing the
mask: an oracle baseline), and the ceiling of any model that works on dawm's session grid (the
expert mask itself taken onto that grid as area fractions and back, linear, > 0.5: what the grid
alone loses).

Nothing here is fitted or tuned on these scans: they only check a model made elsewhere.
Writes ``benchmarks/results/<name>.{json,md}`` and ``benchmarks/results/<name>/*.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import REAL_MS, Run, benchmark_parser, markdown_table, recall_cell, write_results

THRESHOLDS_Z = np.round(np.arange(1.0, 6.01, 0.1), 2)


def one_session_view(bids: Path, subject: str, session: str | None, into: Path) -> Path:
    """A BIDS folder holding only one session (symlinks to the raw files)."""
    into.mkdir(parents=True)
    (into / "dataset_description.json").symlink_to(bids / "dataset_description.json")
    src = bids / f"sub-{subject}" / (f"ses-{session}" if session else "")
    dst = into / f"sub-{subject}" / (f"ses-{session}" if session else "")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src, target_is_directory=True)
    return into


def run_session(bids: Path, subject: str, session: str | None, out: Path, model: Path | None) -> dict:
    """``dawm predict`` on one session in a fresh process: returns rc, seconds, peak RSS."""
    view = one_session_view(bids, subject, session, out / "view")
    cmd = [sys.executable, "-m", "dawm.cli", "predict", str(view), str(out / "predict")]
    if model is not None:
        cmd += ["--model", str(model)]
    start = time.perf_counter()
    with open(out / "predict.log", "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    return {
        "rc": os.waitstatus_to_exitcode(status),
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 0),
    }


def qc_overlay(background: np.ndarray, brain: np.ndarray, dseg: np.ndarray, path: Path, title: str) -> Path:
    """Three planes through the brain's centre (or through the most lesion voxels when there are
    any): outline of the brain, lesions red, DAWM yellow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centre = np.array(np.nonzero(brain)).mean(axis=1).astype(int) if brain.any() else np.array(brain.shape) // 2
    if (dseg == 1).any():
        centre = np.array([int(np.argmax((dseg == 1).sum(axis=tuple(a for a in range(3) if a != axis)))) for axis in range(3)])
    hi = float(np.percentile(background[brain], 99.5)) if brain.any() else float(background.max())
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), facecolor="black")
    for axis, ax in enumerate(axes):
        sl = [slice(None)] * 3
        sl[axis] = int(centre[axis])
        ax.imshow(np.rot90(background[tuple(sl)]), cmap="gray", vmin=0, vmax=hi)
        ax.contour(np.rot90(brain[tuple(sl)]), [0.5], colors="c", linewidths=0.6)
        for label, colour in ((1, (1, 0, 0, 0.8)), (2, (1, 1, 0, 0.5))):
            layer = np.rot90(dseg[tuple(sl)] == label).astype(float)
            ax.imshow(np.ma.masked_equal(layer, 0), cmap=matplotlib.colors.ListedColormap([colour]), vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle(title + "  (cyan: brain, red: lesion, yellow: DAWM)", color="white", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=70, facecolor="black")
    plt.close(fig)
    return path


def mask_scores(mask: np.ndarray, expert: np.ndarray, spacing_mm) -> dict:
    """Dice, lesion-wise F1 (lesions of 3 voxels or more), volume, and the expert lesions found per
    lesion volume (every lesion, any overlap) of a lesion mask against the expert's."""
    from dawm.evaluate.metrics import lesion_detection, lesion_recall_by_size, overlap_metrics

    ov = overlap_metrics(mask, expert, spacing_mm)
    det = lesion_detection(mask, expert, spacing_mm, min_volume_mm3=3 * float(np.prod(spacing_mm)))
    return {
        "dice": round(ov.dice, 3),
        "lesion_f1": round(det["lesion_f1"], 3),
        "volume_ml": round(ov.volume_pred_ml, 2),
        "recall_by_size": lesion_recall_by_size(mask, expert, spacing_mm),
    }


def expert_scores(pred_lesion: np.ndarray, flair: np.ndarray, brain: np.ndarray, expert: np.ndarray, spacing_mm) -> dict:
    """Model vs expert and the oracle FLAIR threshold vs expert, on the expert mask's grid."""
    values = flair[brain].astype(np.float64)
    z = np.where(brain, (flair - values.mean()) / max(values.std(), 1e-6), -np.inf)
    inter = [float(((z > t) & expert).sum()) * 2 / max(float((z > t).sum() + expert.sum()), 1.0) for t in THRESHOLDS_Z]
    best = float(THRESHOLDS_Z[int(np.argmax(inter))])
    return {
        "expert_ml": round(float(expert.sum() * np.prod(spacing_mm) / 1000.0), 2),
        "model": mask_scores(pred_lesion, expert, spacing_mm),
        "flair_threshold": {"z": best, **mask_scores(z > best, expert, spacing_mm)},
    }


def deep_gm_volumes(dseg: np.ndarray, affine: np.ndarray, from_template_xfm: Path | None) -> dict:
    """Lesion and DAWM ml of the session-grid ``dseg`` inside the deep grey nuclei (the MNI
    deep-GM prior >= ``DEEP_GM_PRIOR_MIN`` pulled through the session's template transform; it also
    holds the deepest cortex): where simulator-trained models put false positives on real FLAIR.
    Empty without a template transform (``from_template_xfm`` None)."""
    from dawm.image.registration import load_transform
    from dawm.image.resample import voxel_sizes
    from dawm.image.template import mni_deep_gm_prior
    from dawm.model.cache import DEEP_GM_PRIOR_MIN

    if from_template_xfm is None:
        return {}
    deep = mni_deep_gm_prior(load_transform(from_template_xfm), dseg.shape, affine) >= DEEP_GM_PRIOR_MIN
    voxel_ml = float(np.prod(voxel_sizes(affine))) / 1000.0
    return {
        "lesion_ml_deep_gm": round(float(((dseg == 1) & deep).sum()) * voxel_ml, 2),
        "dawm_ml_deep_gm": round(float(((dseg == 2) & deep).sum()) * voxel_ml, 2),
    }


def session_row(bids: Path, subject: str, session: str | None, work: Path, model: Path | None, figures: Path) -> dict:
    from dawm.bids.derivative_files import PredictFiles
    from dawm.bids.layout import SessionRef
    from dawm.image.io import load_volume
    from dawm.image.resample import resample_to_grid, voxel_sizes

    ref = SessionRef(subject, session)
    key = ref.key
    out = work / key
    run = run_session(bids, subject, session, out, model)
    row: dict = {"session": key, **run}
    pred = PredictFiles(out / "predict")
    pre = pred.preprocess
    if run["rc"] != 0 or not pre.log(ref).exists() or not pred.volumes(ref).exists():
        tail = (out / "predict.log").read_text().strip().splitlines()[-6:]
        row.update(status="failed", reason=" ".join(t.strip() for t in tail))
        return row
    import pandas as pd

    info = pre.read_log(ref)
    vol = pd.read_csv(pred.volumes(ref), sep="\t")
    allrow = vol[vol.location == "all"].iloc[0]
    row.update(
        status="ok",
        reference=info["Reference"],
        inputs=sorted(info["Inputs"]),
        brain_ml=round(info["BrainVolume_ml"], 0),
        brain_coverage=info.get("BrainCoverage"),
        skull_stripped_input=info.get("SkullStrippedInput"),
        mni_registration=info["MNIRegistration"],
        tissue_fit=round(info["TissueFit"], 3),
        lesion_ml=round(float(allrow.lesion_ml), 2),
        dawm_ml=round(float(allrow.dawm_ml), 2),
        warnings=info.get("Warnings", []),
    )
    brain_img = load_volume(pre.brain_mask(ref))
    dseg = np.rint(load_volume(pred.dseg(ref), allow_empty=True).data).astype(np.uint8)
    row.update(deep_gm_volumes(dseg, brain_img.affine, pre.find_from_template_xfm(ref)))
    shown = pre.image(ref, "FLAIR") if pre.image(ref, "FLAIR").exists() else pre.image(ref, "T1w")
    row["qc_png"] = str(
        qc_overlay(
            load_volume(shown).data,
            brain_img.data > 0.5,
            dseg,
            figures / f"{key}.png",
            f"{key}: lesion {row['lesion_ml']} ml, DAWM {row['dawm_ml']} ml",
        ).relative_to(figures.parent)
    )
    expert_path = bids / "derivatives" / "expert-lesions" / ref.base().subject_dir() / f"{key}_label-lesion_mask.nii.gz"
    if expert_path.exists():
        expert = load_volume(expert_path, allow_empty=True)
        # The expert mask lies on a raw image grid: the reference's (session grid in its world) or the FLAIR's.
        grids = {role: load_volume(Path(p)) for role, p in info["Inputs"].items() if role in ("T1w", "FLAIR")}
        role = next(
            (
                r
                for r in (info["Reference"], "FLAIR")
                if r in grids and grids[r].shape == expert.shape and np.allclose(grids[r].affine, expert.affine, atol=1e-3)
            ),
            None,
        )
        if role is None or "FLAIR" not in grids:
            row["expert"] = f"{expert_path.name}: on no raw image grid of this session (or no FLAIR), not scored"
            return row
        pull = np.eye(4) if role == info["Reference"] else np.asarray(pre.read_json(pre.acquisition_xfm(ref, "FLAIR"))["InverseMatrixRAS"])
        session_affine = brain_img.affine
        on_raw = dict(interpolation="nearest", transform_ras=pull)
        native = pred.native_dseg(ref, role)
        pred_raw = (
            np.rint(load_volume(native, allow_empty=True).data).astype(np.uint8)
            if native.exists()
            else resample_to_grid(dseg, session_affine, expert.shape, expert.affine, **on_raw)
        )
        brain_raw = resample_to_grid(brain_img.data.astype(np.uint8), session_affine, expert.shape, expert.affine, **on_raw) > 0
        if grids["FLAIR"].shape == expert.shape and np.allclose(grids["FLAIR"].affine, expert.affine, atol=1e-3):
            flair = grids["FLAIR"].data  # the raw FLAIR at its own resolution: the fairest baseline
        else:
            flair_session = load_volume(pre.image(ref, "FLAIR")).data
            flair = resample_to_grid(flair_session, session_affine, expert.shape, expert.affine, transform_ras=pull)
        row["expert"] = expert_scores(pred_raw == 1, flair, brain_raw, expert.data > 0.5, voxel_sizes(expert.affine))
        # What a perfect model on the session grid could reach: the expert mask taken to that grid
        # (area fractions) and back (linear, > 0.5), as dawm predict writes native-space labels.
        on_session = resample_to_grid(
            (expert.data > 0.5).astype(np.float32), expert.affine, dseg.shape, session_affine, transform_ras=np.linalg.inv(pull)
        )
        back = resample_to_grid(on_session, session_affine, expert.shape, expert.affine, transform_ras=pull) > 0.5
        row["expert"]["session_grid_ceiling"] = mask_scores(back, expert.data > 0.5, voxel_sizes(expert.affine))
        row["expert"]["session_grid_mm"] = round(float(np.mean(voxel_sizes(session_affine))), 2)
    return row


def markdown(result: dict) -> str:
    """The session table, then per expert-labelled session the lesion scores."""
    rows = []
    for r in result["sessions"]:
        if r["status"] != "ok":
            rows.append(
                {
                    "session": r["session"],
                    "status": "**failed**",
                    "inputs": "",
                    "s": str(r["seconds"]),
                    "peak MB": str(r["peak_rss_mb"]),
                    "brain ml": "",
                    "coverage": "",
                    "lesion ml": "",
                    "DAWM ml": "",
                    "in deep GM: lesion / DAWM ml": "",
                    "notes": r.get("reason", ""),
                }
            )
            continue
        rows.append(
            {
                "session": r["session"],
                "status": "ok",
                "inputs": "+".join(r["inputs"]),
                "s": r["seconds"],
                "peak MB": r["peak_rss_mb"],
                "brain ml": r["brain_ml"],
                "coverage": min(r["brain_coverage"].values()) if r.get("brain_coverage") else float("nan"),
                "lesion ml": r["lesion_ml"],
                "DAWM ml": r["dawm_ml"],
                "in deep GM: lesion / DAWM ml": f"{r['lesion_ml_deep_gm']} / {r['dawm_ml_deep_gm']}" if "dawm_ml_deep_gm" in r else "-",
                "notes": "; ".join(r["warnings"]) if r["warnings"] else "",
            }
        )
    if not any("dawm_ml_deep_gm" in r for r in result["sessions"]):  # recorded before the column existed
        rows = [{k: v for k, v in row.items() if k != "in deep GM: lesion / DAWM ml"} for row in rows]
    lines = [
        f"# dawm on real clinical scans ({result['model']})",
        "",
        f"{result['machine']}; data {result['data']}; {result['n_ok']}/{result['n_sessions']} sessions ok",
        "",
        markdown_table(
            rows, formats={**dict.fromkeys(rows[0] if rows else (), str), "peak MB": ".0f", "brain ml": ".0f", "coverage": ".2f"}, na="nan"
        ),
    ]
    for r in result["sessions"]:
        e = r.get("expert")
        if isinstance(e, dict):
            methods = [
                ("dawm model", e["model"]),
                (f"ceiling: the expert mask itself through the {e['session_grid_mm']} mm session grid and back", e["session_grid_ceiling"]),
                (f"best FLAIR threshold (z > {e['flair_threshold']['z']}, chosen knowing the mask)", e["flair_threshold"]),
            ]
            table = [
                {
                    "method": name,
                    "Dice": m["dice"],
                    "lesion F1": m["lesion_f1"],
                    "volume ml": m["volume_ml"],
                    **{f"found {b} mm3": recall_cell(n) for b, n in m.get("recall_by_size", {}).items()},
                }
                for name, m in methods
            ]
            lines += [
                "",
                f"## {r['session']}: lesions against the expert mask ({e['expert_ml']} ml)",
                "",
                markdown_table(table, formats=str),
            ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="real_scans")
    parser.add_argument("--data", type=Path, default=REAL_MS, help="the real-scan BIDS folder (default ../shared/real-ms)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)
    if not (args.data / "dataset_description.json").exists():
        print(f"{args.data}: not a BIDS dataset (no dataset_description.json)", file=sys.stderr)
        return 2
    from dawm.bids.layout import discover_sessions

    figures = Path(args.results_dir) / args.name
    figures.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="dawm-real-"))
    rows = []
    for s in discover_sessions(args.data):
        if not ({"T1w", "FLAIR"} & set(s.images)):
            continue
        rows.append(session_row(args.data, s.subject, s.session, work, args.model, figures))
        r = rows[-1]
        print(
            f"{r['session']}: {r['status']} {r['seconds']} s {r.get('lesion_ml', '')} {r.get('dawm_ml', '')} {r.get('expert', '')}",
            flush=True,
        )
    result = {
        "model": str(args.model or "bundled"),
        "data": str(args.data),
        "machine": run.machine.short(),
        "n_sessions": len(rows),
        "n_ok": sum(r["status"] == "ok" for r in rows),
        "sessions": rows,
    }
    write_results(args.name, result, markdown(result), run=run, results_dir=args.results_dir)
    return 0 if result["n_ok"] == result["n_sessions"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
