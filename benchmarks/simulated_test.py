"""A model on simulated sessions it was not trained on, against the simulator's truth and the qMRI labels.

Usage::

    python benchmarks/simulated_test.py --bids COHORT [--model DIR] [--subjects all|test] [--name NAME]

``COHORT`` is a simulated dataset that ``dawm preprocess`` and ``dawm label`` have processed. The
sessions scored are the test subjects of the model's own split (``--subjects test``, the default:
the model's ``model.json`` split must come from this cohort) or every subject (``--subjects all``:
for a separately seeded cohort the model never saw). The model (default: the bundled one)
predicts them from T1w + FLAIR, from FLAIR alone and from T1w alone (``--drop``); each is scored
with the pooled lesion and DAWM Dice, the DAWM-volume Spearman correlation
(:func:`dawm.model.metrics.agreement`), against the truth (pulled onto the session grids by
:func:`dawm.simulate.truth.write_truth_labels`) and against the qMRI labels (``dawm-label``).
The healthy controls (participants.tsv ``group`` HC), whose truth holds no lesion and no DAWM, get
a table of their own: lesion and DAWM ml (thresholded and expected, the sum of the probabilities,
from ``volumes.tsv``) per session, mean and largest, next to the patients' means (the goals: under
1 ml of lesion and under 5 ml of expected DAWM for a healthy brain).
Writes ``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, markdown_table, write_results

from dawm.labels import DAWM

#: The input sets predicted: name -> the inputs dropped (``dawm predict --drop``).
INPUT_SETS: dict[str, tuple[str, ...]] = {"t1w+flair": (), "flair": ("T1w",), "t1w": ("FLAIR",)}


def label_maps(folder: Path) -> dict[str, tuple[np.ndarray, float]]:
    """``desc-dawm_dseg`` maps of a derivative folder: session key -> (labels, ml per voxel)."""
    from dawm.image.io import load_volume
    from dawm.image.resample import voxel_sizes

    out = {}
    for p in sorted(folder.glob("sub-*/**/anat/*_space-session_desc-dawm_dseg.nii.gz")):
        vol = load_volume(p, allow_empty=True)
        out[p.name.split("_space-")[0]] = (np.rint(vol.data).astype(np.uint8), float(np.prod(voxel_sizes(vol.affine))) / 1000.0)
    return out


#: volumes.tsv columns of the healthy-control table
VOLUME_COLUMNS = ("lesion_ml", "lesion_expected_ml", "dawm_ml", "dawm_expected_ml")


def group_volumes(volumes_tsv: Path, control_subjects: set[str]) -> dict[str, dict]:
    """Whole-brain volumes of a ``volumes.tsv`` (``dawm predict``'s, location ``all``, or ``dawm
    label``'s) summarised per group: ``{"controls" | "patients": {"sessions": n, "<column>_mean": ml,
    "<column>_max": ml, ...}}`` over :data:`VOLUME_COLUMNS` (None where the table lacks one);
    ``control_subjects``: participant ids (``sub-X``) of the controls."""
    import pandas as pd

    table = pd.read_csv(volumes_tsv, sep="\t")
    if "location" in table:
        table = table[table["location"] == "all"]
    out = {}
    for name, rows in (
        ("controls", table[table.participant_id.isin(control_subjects)]),
        ("patients", table[~table.participant_id.isin(control_subjects)]),
    ):
        summary: dict = {"sessions": len(rows)}
        for column in VOLUME_COLUMNS:
            values = pd.to_numeric(rows[column], errors="coerce") if column in rows else None
            summary[f"{column}_mean"] = round(float(values.mean()), 2) if values is not None and len(values) else None
            summary[f"{column}_max"] = round(float(values.max()), 2) if values is not None and len(values) else None
        out[name] = summary
    return out


def controls_markdown(groups: dict[str, dict]) -> str:
    """The healthy-control table: per input set, the controls' mean (largest) ml and the patients' mean."""
    table = []
    for inputs, g in groups.items():
        c, p = g["controls"], g["patients"]
        row = {"inputs": inputs, "sessions": f"{c['sessions']} / {p['sessions']}"}
        for column in VOLUME_COLUMNS:
            row[column] = "-" if c[column + "_mean"] is None else f"{c[column + '_mean']} ({c[column + '_max']}) / {p[column + '_mean']}"
        row["true"] = p.get("true_dawm_ml_mean")
        table.append(row)
    columns = {
        "inputs": "inputs",
        "sessions (controls / patients)": "sessions",
        "lesion ml": "lesion_ml",
        "expected lesion ml": "lesion_expected_ml",
        "DAWM ml": "dawm_ml",
        "expected DAWM ml": "dawm_expected_ml",
        "patients' true DAWM ml": "true",
    }
    return (
        "## healthy controls (truth: no lesion, no DAWM)\n\n"
        "Per session: the controls' mean (largest) / the patients' mean, ml; `qMRI labels`: the label stage's maps "
        "(from T1 and MTR; their probability map is the soft DAWM target of training).\n\n" + markdown_table(table, columns, formats=str)
    )


def markdown(result: dict) -> str:
    """One table line per input set and reference (figures as rounded in the rows)."""
    subjects = result["subjects"]
    table = [{**r, "volumes": f"{r['dawm_ml_pred']} / {r['dawm_ml_ref']}"} for r in result["rows"]]
    columns = {
        "inputs": "inputs",
        "reference": "reference",
        "sessions": "sessions",
        "lesion Dice": "lesion_dice",
        "DAWM Dice": "dawm_dice",
        "DAWM ml rho": "dawm_spearman",
        "DAWM ml predicted / reference": "volumes",
    }
    lines = [
        f"# {result['model_name']} on simulated sessions it was not trained on",
        "",
        f"cohort {Path(result['bids']).name}, subjects: {', '.join(subjects) if isinstance(subjects, list) and subjects else 'all'}",
        "",
        markdown_table(table, columns, formats=str),
    ]  # the figures as rounded in the rows (an undefined rho: None)
    if result.get("groups"):  # recorded since 2026-12-04
        lines += ["", controls_markdown(result["groups"])]
    return "\n".join(lines) + "\n"


def record_input_accuracy(model: Path, info: dict, rows: list[dict], source: str) -> None:
    """Store the lesion Dice vs truth of each input set (``T1w+FLAIR``, ``FLAIR``, ``T1w``: the
    model's input suffixes without the dropped ones) as ``input_accuracy`` in ``model``'s model.json."""
    from dawm.model.modeldir import write_model_json

    suffixes = list(info["input_suffixes"])
    dice = {
        "+".join(s for s in suffixes if s not in INPUT_SETS[r["inputs"]]): r["lesion_dice"]
        for r in rows
        if r["reference"] == "truth" and r["inputs"] in INPUT_SETS
    }
    write_model_json(model, {**info, "input_accuracy": {"lesion_dice": dice, "source": source}})
    print(f"{model / 'model.json'}: input_accuracy {dice}")


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="simulated_test")
    parser.add_argument("--bids", type=Path, required=True, help="a simulated, preprocessed and labelled cohort")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--subjects", choices=("test", "all"), default="test", help="the model split's test subjects, or all")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument(
        "--record",
        action="store_true",
        help="write the lesion Dice vs truth per input set into the model's model.json (input_accuracy), "
        "which dawm predict then quotes when a session lacks an input",
    )
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)
    from dawm.bids.derivative_files import LabelFiles
    from dawm.errors import DawmError
    from dawm.label.config import LabelConfig
    from dawm.label.pipeline import session_infos
    from dawm.model.bundled import bundled_model_dir
    from dawm.model.metrics import agreement
    from dawm.model.modeldir import read_model_json
    from dawm.model.predict import predict_dataset
    from dawm.simulate.truth import write_truth_labels

    try:
        model = args.model or bundled_model_dir()
        info = read_model_json(model)
        if not (args.bids / "derivatives" / "dawm-truth").is_dir() or not (args.bids / "derivatives" / "dawm-label").is_dir():
            raise DawmError(f"{args.bids}: needs derivatives/dawm-truth (dawm simulate) and derivatives/dawm-label (dawm label)")
        subjects = None
        if args.subjects == "test":
            subjects = list((info.get("split") or {}).get("test") or [])
            if not subjects:
                raise DawmError(f"{model}: its model.json names no test subjects; use --subjects all on a cohort it never saw")
    except DawmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    truth = label_maps(write_truth_labels(args.bids, name="dawm-truth-label"))
    labels = label_maps(args.bids / "derivatives" / "dawm-label")
    work = args.work or Path(tempfile.mkdtemp(prefix="dawm-simtest-"))
    controls = {f"sub-{i.inputs.subject}" for i in session_infos(args.bids) if i.group == LabelConfig().control_group}
    rows, groups = [], {}
    label_volumes = LabelFiles.in_dataset(args.bids).volumes_table
    if label_volumes.exists():  # the soft DAWM targets a model learns from: what they give a healthy brain
        groups["qMRI labels"] = group_volumes(label_volumes, controls)
    for inputs, drop in INPUT_SETS.items():
        start = time.perf_counter()
        out = work / inputs
        outcomes = predict_dataset(args.bids, out, model, participant_label=subjects, drop=drop)
        preds = label_maps(out)
        keys = sorted(preds)
        groups[inputs] = group_volumes(out / "volumes.tsv", controls)
        for ref_name, ref in (("truth", truth), ("qMRI labels", labels)):
            a = agreement({k: preds[k][0] for k in keys}, {k: ref[k][0] for k in keys if k in ref}, {k: preds[k][1] for k in keys})
            rows.append(
                {
                    "inputs": inputs,
                    "reference": ref_name,
                    "sessions": len(keys),
                    "failed": sum(not o.ok for o in outcomes),
                    "lesion_dice": round(a["lesion_dice"], 3),
                    "dawm_dice": round(a["dawm_dice"], 3),
                    "dawm_spearman": None if a["dawm_spearman"] != a["dawm_spearman"] else round(a["dawm_spearman"], 2),
                    "dawm_ml_pred": round(float(np.sum(a["dawm_ml_pred"])), 1),
                    "dawm_ml_ref": round(float(np.sum(a["dawm_ml_ref"])), 1),
                    "seconds": round(time.perf_counter() - start, 0),
                }
            )
            print(rows[-1], flush=True)
    true_ml = [float((truth[k][0] == DAWM).sum()) * truth[k][1] for k in keys if k in truth and k.split("_")[0] not in controls]
    for g in groups.values():
        g["patients"]["true_dawm_ml_mean"] = round(float(np.mean(true_ml)), 2) if true_ml else None
    result = {
        "model": str(model),
        "model_name": info.get("exported_from") or info.get("name"),
        "bids": str(args.bids),
        "subjects": subjects or "all",
        "rows": rows,
        "groups": groups,
    }
    write_results(args.name, result, markdown(result), run=run, results_dir=args.results_dir)
    if args.record:
        record_input_accuracy(
            model, info, rows, f"benchmarks/results/{args.name}.md: {rows[0]['sessions']} sessions of {args.bids}, {run.date_utc[:10]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
