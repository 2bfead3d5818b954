"""Lesion evolution on real scans: the new and enlarging lesions that dawm's longitudinal output
finds from the two predicted sessions of ``sub-l12`` (``../shared/real-ms``), scored against the
expert lesion-change mask.

Usage::

    python benchmarks/real_longitudinal.py                       # predicts into a temporary folder
    python benchmarks/real_longitudinal.py --work /work/b10/l12  # keep (and reuse) the predictions there

Steps: ``dawm predict DATA WORK/predict --participant-label l12`` (the bundled model, about 1 min;
reused when ``WORK/predict`` already holds both sessions), then
:func:`dawm.longitudinal.longitudinal_outputs` on it (ses-02 aligned rigidly to ses-01). The
follow-up's ``space-baseline_desc-lesionchange_dseg`` (new lesions and the grown part of enlarging
lesions, on the ses-01 session grid) is taken into the database's common space, where the expert
mask lies, with the ITK transforms distributed beside the mask: ``study1_FLAIR_to_common_space.txt``
pulls common-space points to the ses-01 FLAIR's world, and ``study1_T1W_intrastudy_to_FLAIR.txt``
pulls FLAIR-world points to the T1w's (the session grid lies in its reference's world, the T1w of
sub-l12). The directions were checked: with them the two FLAIRs moved to common space correlate at
0.98 (0.56 with the inverses), the mask lies on FLAIR lesions (the overlay PNG), and the T1w->FLAIR
transform agrees with dawm's own co-registration to about 1 mm (5 mm for its inverse). Labels are
pulled by nearest neighbour.

Scores on the common grid (``dawm.evaluate.metrics``): lesion-wise detection (a lesion is a
26-connected component of 3 voxels or more of the common grid; a component is detected when it
overlaps the other mask by one voxel): sensitivity, precision, F1; voxel Dice; volumes. Also: the
ceiling of anything computed on dawm's 2 mm session grid (the expert mask taken there and back); a
secondary score of *all* lesion change (new, enlarging, and the baseline lesion voxels that are no
longer lesion: the expert mask of this database also marks lesions that shrink, see the md); the
check of dawm's rigid alignment against the database's own (mean distance over the brain between
the two ses-01 -> ses-02 mappings).

Nothing is tuned on these scans (every definition and threshold is the library's default).
Writes ``benchmarks/results/<name>.{json,md}`` and ``benchmarks/results/<name>.png``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import REAL_MS, Run, benchmark_parser, markdown_table, result_path, write_results

SUBJECT, BASELINE, FOLLOWUP = "l12", "01", "02"
STUDY = {BASELINE: 1, FOLLOWUP: 2}  # the database's study numbers of the two sessions


def predict(data: Path, out: Path) -> dict:
    """``dawm predict`` on sub-l12 in a fresh process (skipped when both sessions are there)."""
    done = [
        out / f"sub-{SUBJECT}" / f"ses-{s}" / "anat" / f"sub-{SUBJECT}_ses-{s}_space-session_desc-dawm_dseg.nii.gz"
        for s in (BASELINE, FOLLOWUP)
    ]
    if all(p.exists() for p in done):
        return {"rc": 0, "seconds": None, "reused": True}
    cmd = [sys.executable, "-m", "dawm.cli", "predict", str(data), str(out), "--participant-label", SUBJECT]
    start = time.perf_counter()
    with open(out.parent / "predict.log", "w") as logf:
        rc = subprocess.call(cmd, stdout=logf, stderr=subprocess.STDOUT)
    return {"rc": rc, "seconds": round(time.perf_counter() - start, 1), "reused": False}


def itk_pull_ras(path: Path) -> np.ndarray:
    """The 4x4 RAS pull matrix of an ITK affine transform file (fixed-world -> moving-world points)."""
    import SimpleITK as sitk

    from dawm.image.sitk_bridge import sitk_transform_to_ras

    return sitk_transform_to_ras(sitk.ReadTransform(str(path)))


def common_to_session(expert_dir: Path, session: str, reference: str) -> np.ndarray:
    """Pull matrix: common-space RAS mm -> the session grid's world (its reference's raw world)."""
    study = STUDY[session]
    to_flair = itk_pull_ras(expert_dir / f"study{study}_FLAIR_to_common_space.txt")  # common -> FLAIR world
    if reference == "FLAIR":
        return to_flair
    if reference != "T1w":
        raise ValueError(f"session reference {reference}: no database transform for it")
    return itk_pull_ras(expert_dir / f"study{study}_T1W_intrastudy_to_FLAIR.txt") @ to_flair  # then FLAIR -> T1w world


def scores(mask: np.ndarray, expert: np.ndarray, spacing_mm) -> dict:
    """Lesion-wise detection (components of >= 3 voxels, overlap of >= 1 voxel), voxel Dice, volumes."""
    from dawm.evaluate.metrics import lesion_detection, overlap_metrics

    ov = overlap_metrics(mask, expert, spacing_mm)
    det = lesion_detection(mask, expert, spacing_mm, min_volume_mm3=3 * float(np.prod(spacing_mm)))
    return {
        "lesion_sensitivity": round(det["lesion_recall"], 3),
        "lesion_precision": round(det["lesion_precision"], 3),
        "lesion_f1": round(det["lesion_f1"], 3),
        "dice": round(ov.dice, 3),
        "n_expert": det["n_ref"],
        "n_found": det["n_pred"],
        "tp_expert": det["tp_ref"],
        "tp_found": det["tp_pred"],
        "volume_ml": round(ov.volume_pred_ml, 3),
        "expert_ml": round(ov.volume_ref_ml, 3),
    }


def expert_direction(expert: np.ndarray, flair_b: np.ndarray, flair_f: np.ndarray, brain: np.ndarray) -> dict:
    """How many expert components brighten / darken on FLAIR from baseline to follow-up (each FLAIR
    divided by its median in the brain): tells whether the mask marks lesion growth only."""
    from dawm.longitudinal.lesions import components

    b = flair_b / max(float(np.median(flair_b[brain])), 1e-6)
    f = flair_f / max(float(np.median(flair_f[brain])), 1e-6)
    lab, n = components(expert)
    up = down = 0
    up_mask = np.zeros(expert.shape, bool)
    for i in range(1, n + 1):
        c = lab == i
        if float(f[c].mean()) > float(b[c].mean()):
            up += 1
            up_mask |= c
        else:
            down += 1
    return {"n_components": int(n), "brighter_at_followup": up, "darker_at_followup": down, "brighter_mask": up_mask}


def overlay(flair_b, flair_f, expert, found, lost, lesions_b, lesions_f, path: Path, title: str) -> Path:
    """Axial slices of the common space through the most expert voxels: baseline and follow-up
    FLAIR (cropped to the head), expert change outlined green, dawm's lesions of that session outlined
    yellow, its new/enlarging lesions red, its lesion voxels lost blue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zs = sorted(np.argsort(expert.sum(axis=(0, 1)))[::-1][:3])
    head = np.argwhere(flair_b > np.percentile(flair_b[flair_b > 0], 20))
    (x0, y0, _), (x1, y1, _) = head.min(axis=0), head.max(axis=0) + 1
    fig, axes = plt.subplots(len(zs), 2, figsize=(9, 4.6 * len(zs)), facecolor="black")
    for r, z in enumerate(zs):
        for c, (img, lesions, name) in enumerate(((flair_b, lesions_b, f"ses-{BASELINE}"), (flair_f, lesions_f, f"ses-{FOLLOWUP}"))):
            ax = axes[r, c]
            crop = (slice(x0, x1), slice(y0, y1), z)
            ax.imshow(np.rot90(img[crop]), cmap="gray", vmin=0, vmax=float(np.percentile(img[:, :, z], 99.5)) or 1.0)
            for layer, colour in ((found, (1, 0, 0, 0.7)), (lost, (0.2, 0.5, 1, 0.6))):
                m = np.rot90(layer[crop]).astype(float)
                ax.imshow(np.ma.masked_equal(m, 0), cmap=matplotlib.colors.ListedColormap([colour]), vmin=0, vmax=1)
            for layer, colour in ((lesions, "yellow"), (expert, "lime")):
                if layer[crop].any():
                    ax.contour(np.rot90(layer[crop]).astype(float), [0.5], colors=colour, linewidths=0.8)
            ax.set_title(f"{name} FLAIR, common space z={z}", color="white", fontsize=7)
            ax.axis("off")
    fig.suptitle(
        title + "\n(green: expert change; yellow: dawm lesions of the session; red: dawm new/enlarging; blue: dawm lesion voxels lost)",
        color="white",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80, facecolor="black")
    plt.close(fig)
    return path


def evaluate(data: Path, pred_dir: Path, figure: Path) -> dict:
    from dawm.image.io import load_volume
    from dawm.image.resample import resample_to_grid, voxel_sizes
    from dawm.longitudinal import longitudinal_outputs
    from dawm.longitudinal.transitions import TRANSITION_CODES

    table = longitudinal_outputs(pred_dir)
    row = table[(table.participant_id == f"sub-{SUBJECT}") & (table.followup == f"ses-{FOLLOWUP}")].iloc[0].to_dict()
    out: dict = {"longitudinal": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}}
    if row["status"] != "ok":
        return out
    expert_dir = data / "derivatives" / "expert-lesion-change" / f"sub-{SUBJECT}"
    expert_img = load_volume(expert_dir / f"sub-{SUBJECT}_space-common_desc-change_mask.nii.gz", allow_empty=True)
    expert, c_shape, c_aff = expert_img.data > 0.5, expert_img.shape, expert_img.affine
    spacing = voxel_sizes(c_aff)
    pre = pred_dir / "derivatives" / "dawm-preprocess" / f"sub-{SUBJECT}"
    anat_b, anat_f = (pred_dir / f"sub-{SUBJECT}" / f"ses-{s}" / "anat" for s in (BASELINE, FOLLOWUP))
    key_b, key_f = (f"sub-{SUBJECT}_ses-{s}" for s in (BASELINE, FOLLOWUP))
    info_b = json.loads((pre / f"ses-{BASELINE}" / "anat" / f"{key_b}_desc-preproc_log.json").read_text())
    info_f = json.loads((pre / f"ses-{FOLLOWUP}" / "anat" / f"{key_f}_desc-preproc_log.json").read_text())
    pull_b = common_to_session(expert_dir, BASELINE, info_b["Reference"])
    pull_f = common_to_session(expert_dir, FOLLOWUP, info_f["Reference"])

    change = load_volume(anat_f / f"{key_f}_space-baseline_desc-lesionchange_dseg.nii.gz", allow_empty=True)
    transition = load_volume(anat_f / f"{key_f}_space-baseline_desc-transition_dseg.nii.gz", allow_empty=True)
    codes = {v: k for k, v in TRANSITION_CODES.items()}
    s_aff, s_shape = change.affine, change.shape

    def to_common(a: np.ndarray, interpolation: str = "nearest") -> np.ndarray:
        return resample_to_grid(a, s_aff, c_shape, c_aff, interpolation=interpolation, transform_ras=pull_b)

    found = to_common((np.rint(change.data) > 0).astype(np.uint8)) > 0
    t = np.rint(transition.data).astype(np.uint8)
    lost = to_common(np.isin(t, [codes["lesion_to_normal"], codes["lesion_to_DAWM"]]).astype(np.uint8)) > 0
    brain_b = load_volume(pre / f"ses-{BASELINE}" / "anat" / f"{key_b}_space-session_desc-brain_mask.nii.gz")
    brain = to_common((brain_b.data > 0.5).astype(np.uint8)) > 0
    out["primary"] = scores(found, expert, spacing)
    out["all_change"] = scores(found | lost, expert, spacing)
    # what the 2 mm session grid alone allows: the expert mask taken onto it (area fractions) and back
    on_session = resample_to_grid(expert.astype(np.float32), c_aff, s_shape, s_aff, transform_ras=np.linalg.inv(pull_b))
    out["session_grid_ceiling"] = scores(to_common(on_session, "linear") > 0.5, expert, spacing)
    out["session_grid_mm"] = round(float(np.mean(voxel_sizes(s_aff))), 2)

    # the expert mask's components: brighter or darker on FLAIR at follow-up (moved with the database's transforms)
    flair = {}
    for s, info in ((BASELINE, info_b), (FOLLOWUP, info_f)):
        raw = load_volume(Path(info["Inputs"]["FLAIR"]))
        flair[s] = resample_to_grid(
            raw.data, raw.affine, c_shape, c_aff, transform_ras=itk_pull_ras(expert_dir / f"study{STUDY[s]}_FLAIR_to_common_space.txt")
        )
    both = (flair[BASELINE] > 0) & (flair[FOLLOWUP] > 0)
    out["flair_correlation_in_common_space"] = round(float(np.corrcoef(flair[BASELINE][both], flair[FOLLOWUP][both])[0, 1]), 3)
    direction = expert_direction(expert, flair[BASELINE], flair[FOLLOWUP], brain & both)
    brighter = direction.pop("brighter_mask")
    out["expert_components"] = direction
    out["primary_vs_expert_brighter_at_followup"] = scores(found, brighter, spacing)

    # dawm's rigid alignment (baseline world -> follow-up world) against the database's (via common space)
    ours = np.asarray(json.loads((anat_f / f"{key_f}_from-session_to-baseline_mode-image_xfm.json").read_text())["MatrixRAS"])
    theirs = pull_f @ np.linalg.inv(pull_b)
    ijk = np.argwhere(brain_b.data > 0.5)[::7]
    xyz = np.c_[ijk, np.ones(len(ijk))] @ s_aff.T
    gap = np.linalg.norm((xyz @ ours.T)[:, :3] - (xyz @ theirs.T)[:, :3], axis=1)
    out["alignment_vs_database_mm"] = {"mean": round(float(gap.mean()), 2), "max": round(float(gap.max()), 2)}
    p = out["primary"]
    dseg_b = np.rint(load_volume(anat_b / f"{key_b}_space-session_desc-dawm_dseg.nii.gz", allow_empty=True).data)
    dseg_f = np.rint(load_volume(anat_f / f"{key_f}_space-baseline_desc-dawm_dseg.nii.gz", allow_empty=True).data)
    lesions_b, lesions_f = (to_common((d == 1).astype(np.uint8)) > 0 for d in (dseg_b, dseg_f))
    out["figure"] = str(
        overlay(
            flair[BASELINE],
            flair[FOLLOWUP],
            expert,
            found,
            lost,
            lesions_b,
            lesions_f,
            figure,
            f"sub-{SUBJECT}: lesion F1 {p['lesion_f1']}, sensitivity {p['lesion_sensitivity']}, "
            f"precision {p['lesion_precision']}, Dice {p['dice']}",
        ).relative_to(figure.parent)
    )
    return out


def markdown(r: dict) -> str:
    lines = [
        f"# Lesion evolution on real scans: sub-{SUBJECT} ses-{BASELINE} -> ses-{FOLLOWUP} against the expert change mask",
        "",
        f"{r['machine']}; data {r['data']}; model: bundled; `dawm predict` of both sessions: {r['predict']}; "
        f"reproduce with `python benchmarks/real_longitudinal.py`",
        "",
    ]
    lo = r["longitudinal"]
    if lo["status"] != "ok":
        return "\n".join(lines + [f"longitudinal comparison **failed**: {lo['status']}"]) + "\n"
    lines += [
        f"dawm's longitudinal output (ses-{FOLLOWUP} aligned to ses-{BASELINE} on the T1w, brain Dice "
        f"{lo['alignment_brain_dice']:.3f}; {r['alignment_vs_database_mm']['mean']} mm mean / "
        f"{r['alignment_vs_database_mm']['max']} mm max from the database's own alignment over the brain): "
        f"lesions {lo['baseline_lesion_ml']:.2f} -> {lo['followup_lesion_ml']:.2f} ml; "
        f"{lo['n_new_lesions']} new lesions ({lo['new_lesions_ml']:.3f} ml), {lo['n_enlarging_lesions']} enlarging "
        f"({lo['enlarging_lesions_ml']:.3f} ml grown); lesion voxels lost {lo['lesion_to_normal_ml'] + lo['lesion_to_dawm_ml']:.2f} ml; "
        f"DAWM {lo['baseline_dawm_ml']:.2f} -> {lo['followup_dawm_ml']:.2f} ml.",
        "",
        f"Expert change mask: {r['primary']['n_expert']} lesions, {r['primary']['expert_ml']} ml (common space, "
        f"{r['expert_components']['brighter_at_followup']} of its {r['expert_components']['n_components']} components brighter on "
        f"FLAIR at follow-up, {r['expert_components']['darker_at_followup']} darker (each FLAIR over its brain median): the mask "
        f"seems to mark shrinking lesions as well as growth, which new + enlarging lesions cannot find).",
        "",
    ]
    table = []
    for key, what in (
        ("primary", "**new + enlarging lesions** vs the expert change mask"),
        ("all_change", "new + enlarging + lesion voxels lost (any change) vs the expert change mask"),
        ("primary_vs_expert_brighter_at_followup", "new + enlarging vs the expert components brighter at follow-up"),
        ("session_grid_ceiling", f"ceiling: the expert mask through the {r['session_grid_mm']} mm session grid and back"),
    ):
        s = r[key]
        table.append(
            {
                "dawm output": what,
                "lesion sensitivity": f"{s['lesion_sensitivity']} ({s['tp_expert']}/{s['n_expert']})",
                "lesion precision": f"{s['lesion_precision']} ({s['tp_found']}/{s['n_found']})",
                "lesion F1": s["lesion_f1"],
                "voxel Dice": s["dice"],
                "found": s["n_found"],
                "ml": s["volume_ml"],
            }
        )
    lines.append(markdown_table(table, formats=str))
    lines += [
        "",
        "MSSEG-2's best lesion F1 (new lesions, 3D FLAIR at 1 mm) is 0.54. Lesions: 26-connected components of "
        ">= 3 voxels of the common grid; detected = overlapping by >= 1 voxel. Nothing was tuned on these scans.",
        "",
        f"![overlay]({r.get('figure', '')})",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="real_longitudinal")
    parser.add_argument("--data", type=Path, default=REAL_MS, help="the real-scan BIDS folder (default ../shared/real-ms)")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one); WORK/predict is reused")
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)
    expert = args.data / "derivatives" / "expert-lesion-change" / f"sub-{SUBJECT}"
    if not (args.data / "dataset_description.json").exists() or not expert.is_dir():
        print(f"{args.data}: not the real-ms dataset (no dataset_description.json or {expert})", file=sys.stderr)
        return 2
    work = (args.work or Path(tempfile.mkdtemp(prefix="dawm-real-long-"))).resolve()
    if work.is_relative_to(args.data.resolve()):
        print(f"{work}: inside the read-only dataset", file=sys.stderr)
        return 2
    work.mkdir(parents=True, exist_ok=True)
    predicted = predict(args.data, work / "predict")
    if predicted["rc"] != 0:
        print(f"dawm predict failed (rc {predicted['rc']}); see {work / 'predict.log'}", file=sys.stderr)
        return 1
    result = {
        "data": str(args.data),
        "work": str(work),
        "machine": run.machine.short(),
        "predict": "reused" if predicted["reused"] else f"{predicted['seconds']} s",
        **evaluate(args.data, work / "predict", result_path(args.name, ".png", args.results_dir)),
    }
    write_results(args.name, result, markdown(result), run=run, results_dir=args.results_dir)
    return 0 if result["longitudinal"]["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
