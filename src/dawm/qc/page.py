"""The QC page of one predicted session: one self-contained, offline HTML file.

Written to ``PREDICT_DIR/sub-X/ses-Y/sub-X_ses-Y_desc-qc_report.html`` (``sub-X/sub-X_desc-qc_report.html``
without sessions): beside the session's ``anat/`` outputs, so it travels with the subject's folder,
and not inside ``anat/``, which holds images only. The page (figures as base64 PNG, inline CSS and
:class:`dawm.evaluate.report.HtmlReport`'s check script only) shows, on the session grid:

* a summary (inputs, model, brain/lesion/DAWM volumes) and every warning (:mod:`dawm.qc.flags`);
* the lesion and DAWM volumes per location class (the session's ``_desc-dawm_volumes.tsv``);
* the preprocessed T1w/FLAIR with the brain-mask outline (and the field of view where it cuts the
  brain), the predicted lesions/DAWM as labels and as probabilities, in three planes, an axial
  mosaic of the labels, and the tissue segmentation;
* the image-quality metrics (MRIQC-style, ``_desc-iqm_metrics.tsv``) and the registration checks of
  the preprocess log.

:func:`write_qc_pages` writes the pages of a ``dawm predict`` run (``dawm predict`` and
``dawm run ... participant`` call it after :func:`dawm.model.predict.predict_dataset`).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from dawm.errors import InputError
from dawm.evaluate.report import HtmlReport
from dawm.image.figures import DAWM_COLOUR, LESION_COLOUR, TISSUE_COLOURS, Grid, Layer, Row, axial_mosaic, planes_figure
from dawm.image.io import load_volume
from dawm.parallel import Outcome, run_all
from dawm.qc.flags import session_flags
from dawm.qc.session import QcSession

log = logging.getLogger(__name__)

#: IQMs shown (all are in the preprocess derivative's ``_desc-iqm_metrics.tsv``), with what they say.
IQM_SHOWN = {
    "snr_total": "tissue SNR (higher is better)",
    "snr_dietrich": "SNR against the background air (higher is better)",
    "cnr": "GM/WM contrast-to-noise (higher is better)",
    "cjv": "coefficient of joint variation of GM and WM (lower is better)",
    "efc": "entropy focus criterion: ghosting, blur (lower is better)",
    "fber": "foreground/background energy ratio (higher is better)",
    "wm2max": "WM median over the image maximum",
    "inu_range": "bias-field range in the brain (lower is better)",
    "fwhm_mm": "smoothness, FWHM in mm (thick slices raise it)",
}


def _rel(path: Path, start: Path, root: Path) -> str:
    """``path`` relative to ``start`` when it lies inside ``root`` (the output folder), else absolute."""
    path, start, root = Path(path).resolve(), Path(start).resolve(), Path(root).resolve()
    if not path.is_relative_to(root):
        return str(path)
    return os.path.relpath(path, start)


def _volumes(session: QcSession) -> pd.DataFrame:
    if not session.volumes.exists():
        raise InputError(f"{session.volumes}: no volume table (was the session predicted?)")
    table = pd.read_csv(session.volumes, sep="\t", na_values="n/a")
    return table.drop(columns=[c for c in ("participant_id", "session_id") if c in table])


def _heading(column: str) -> str:
    """``dawm_pct_wm`` -> ``DAWM % WM``, ``lesion_expected_ml`` -> ``lesion expected ml``."""
    words = column.replace("_pct_wm", "_% WM").split("_")
    return " ".join("DAWM" if w == "dawm" else "WM" if w == "wm" else w for w in words)


def _iqm(session: QcSession) -> pd.DataFrame | None:
    path = session.iqm
    if not path.exists():
        return None
    table = pd.read_csv(path, sep="\t", na_values="n/a")
    return table if not table.empty else None


def _iqm_table(iqm: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in IQM_SHOWN if c in iqm]
    out = iqm.set_index("role")[cols].T if "role" in iqm else iqm[cols].T
    out.insert(0, "meaning", [IQM_SHOWN[c] for c in cols])
    out.index.name = "metric"
    out.columns.name = None
    return out


def _preprocessing_facts(info: dict) -> dict:
    facts = {
        "reference image (session grid)": info.get("Reference"),
        "brain extraction": info.get("BrainExtraction"),
        "skull-stripped input detected": bool(info.get("SkullStrippedInput")),
        "input on an MNI grid": info.get("InputOnMNIGrid") or "no",
        "MNI registration used": info.get("MNIRegistration"),
        "attempts (first accepted)": " → ".join(a.get("Method", "?") for a in info.get("RegistrationAttempts", [])) or "—",
        "T1-like template correlation": info.get("TemplateCorrelation"),
        "tissue fit": info.get("TissueFit"),
        "brain mask ml": info.get("BrainVolume_ml"),
        "lesion mask for the segmentation": info.get("LesionMask"),
    }
    for role, share in (info.get("BrainCoverage") or {}).items():
        facts[f"expected brain inside the {role} field of view"] = f"{100 * float(share):.0f} %"
    for group, reg in (info.get("Registration") or {}).items():
        if reg.get("metric") is not None:
            facts[f"co-registration of {group} (Mattes MI, lower is better)"] = reg["metric"]
    for step, why in (info.get("SkippedSteps") or {}).items():
        facts[f"skipped: {step}"] = why
    return facts


def build_qc_page(session: QcSession) -> HtmlReport:
    """The page of ``session`` (see the module docstring); ``InputError`` naming the file when an
    output it needs is missing."""
    for path in (session.dseg, session.probseg("lesion"), session.probseg("DAWM")):
        if not path.exists():
            raise InputError(f"{path}: missing (was the session predicted?)")
    info = session.preproc_log
    prediction = session.prediction_sidecar
    brain_vol = load_volume(session.brain_mask)
    affine = brain_vol.affine
    grid = Grid(affine, brain_vol.data > 0.5)
    roles = [r for r in ("T1w", "FLAIR") if session.preproc_image(r).exists()]
    if not roles:
        raise InputError(f"{session.preproc_image('T1w').parent}: no preprocessed T1w or FLAIR of {session.key}")
    images = {r: grid.view(load_volume(session.preproc_image(r)).data) for r in roles}
    pred = grid.view(np.rint(load_volume(session.dseg, allow_empty=True).data).astype(np.uint8))
    probs = {label: grid.view(load_volume(session.probseg(label), allow_empty=True).data) for label in ("lesion", "DAWM")}
    tissues = grid.view(np.rint(load_volume(session.tissues, allow_empty=True).data).astype(np.uint8)) if session.tissues.exists() else None
    fov = grid.view(load_volume(session.fov_mask, allow_empty=True).data > 0.5) if session.fov_mask.exists() else None
    volumes = _volumes(session)
    iqm = _iqm(session)
    run = session.predict_config
    flags = session_flags(info, iqm, prediction, bundled_model=bool(run.get("bundled_model")))
    brain = grid.brain

    rep = HtmlReport(f"dawm QC: {session.key}")
    page_dir = session.qc_page.parent
    rep.add_text(
        f"One session's result, to be looked at before its volumes are used: the inputs as preprocessed "
        f"on the session grid, the brain mask, the tissues, and the lesion and DAWM maps that the model "
        f"predicted. Panels are in the neurological convention (the subject's left on the left). "
        f"Predictions: `{_rel(session.dseg.parent, page_dir, session.predict_dir)}`; preprocessing: "
        f"`{_rel(session.brain_mask.parent, page_dir, session.predict_dir)}`."
    )

    rep.add_heading("Summary")
    whole = volumes[volumes.location == "all"].iloc[0] if "location" in volumes and (volumes.location == "all").any() else None
    summary = {
        "session": session.key,
        "inputs used by the model": ", ".join(s for s in prediction.get("Inputs", roles) if s not in prediction.get("MissingInputs", [])),
        "missing inputs": ", ".join(prediction.get("MissingInputs", [])) or "none",
        "model": (f"{run['model_dir']}" if run.get("model_dir") else str(prediction.get("Model", "n/a")))
        + (" (bundled with dawm)" if run.get("bundled_model") else "")
        + f", folds {', '.join(str(f) for f in prediction.get('ModelFolds', []))}",
        "test-time augmentation": {True: "yes", False: "no"}.get(prediction.get("TTA"), "n/a"),
        "brain mask ml": info.get("BrainVolume_ml", float(brain.sum() * np.prod(grid.spacing) / 1000)),
    }
    if whole is not None:
        summary.update(
            {
                "lesion ml": whole.get("lesion_ml"),
                "DAWM ml": whole.get("dawm_ml"),
                "WM ml": whole.get("wm_ml"),
                "DAWM % of WM": whole.get("dawm_pct_wm"),
            }
        )
    summary["warnings"] = sum(f.level == "warning" for f in flags)
    rep.add_key_values(summary)

    rep.add_heading("Warnings")
    warnings = [f for f in flags if f.level == "warning"]
    notes = [f for f in flags if f.level == "note"]
    if warnings:
        rep.add_text("\n".join(f"- **{f.source}**: {f.text}" for f in warnings))
    else:
        rep.add_text("No warning was recorded for this session (preprocessing, image quality, registration).")
    if notes:
        rep.add_text("Notes:\n\n" + "\n".join(f"- {f.source}: {f.text}" for f in notes))

    rep.add_heading("Volumes per location class")
    rep.add_table(
        volumes.rename(columns=_heading),
        "lesion and DAWM ml, and % of the white matter of each class "
        "(the white matter of the tissue segmentation plus the predicted lesions and DAWM in it)",
        float_format="{:.3g}",
    )

    centre = grid.centre()
    brain_layer = Layer("outline", brain, colour="#ff3030", label="brain mask")
    fov_layers = (
        [Layer("outline", fov, colour="#00e5ff", label="field of view", linestyle="dashed")]
        if fov is not None and not fov[brain].all()
        else []
    )
    rep.add_heading("Inputs and brain mask")
    rep.add_figure(
        planes_figure(grid, [Row(r, images[r], [brain_layer, *fov_layers]) for r in roles], centre),
        "preprocessed (bias-corrected) images on the session grid; red: brain mask"
        + ("; cyan dashed: edge of the field of view" if fov_layers else ""),
        dpi=100,
    )

    shown = ["FLAIR", "T1w"] if "FLAIR" in images else roles
    shown = [r for r in shown if r in images]
    hot = grid.centre((pred > 0).astype(float))
    where = "through the slices holding most predicted lesion and DAWM" if (pred > 0).any() else "no lesion or DAWM predicted"
    rep.add_heading("Lesions and DAWM")
    labels = [Layer("fill", pred == 1, colour=LESION_COLOUR, label="lesion"), Layer("fill", pred == 2, colour=DAWM_COLOUR, label="DAWM")]
    rep.add_figure(
        planes_figure(grid, [Row(r, images[r], labels) for r in shown], hot),
        f"predicted labels (argmax of the model's probabilities), {where}",
        dpi=100,
    )
    rep.add_heading("Lesion and DAWM probabilities", level=3)
    rep.add_figure(
        planes_figure(
            grid,
            [
                Row(f"{shown[0]}: lesion", images[shown[0]], [Layer("heat", probs["lesion"], cmap="autumn")]),
                Row(f"{shown[0]}: DAWM", images[shown[0]], [Layer("heat", probs["DAWM"], cmap="cool")]),
            ],
            hot,
            colorbars={"lesion": "autumn", "DAWM": "cool"},
        ),
        "model probabilities (transparent below 0.02, more opaque as they rise), same slices",
        dpi=100,
    )
    rep.add_heading("Axial overview", level=3)
    rep.add_figure(axial_mosaic(grid, images[shown[0]], labels), f"predicted lesions (red) and DAWM (yellow) on the {shown[0]}", dpi=100)

    ref = "T1w" if "T1w" in images else roles[0]
    rep.add_heading("Tissue segmentation")
    if tissues is not None:
        layers = [Layer("fill", tissues == k, colour=c, label=name) for k, (name, c) in TISSUE_COLOURS.items()]
        xs = np.flatnonzero(brain.any(axis=(1, 2)))  # sagittal through a hemisphere: the midline shows mostly CSF
        lateral = (int(xs[0] + 0.3 * (xs[-1] - xs[0])), centre[1], centre[2]) if xs.size else centre
        rep.add_figure(
            planes_figure(grid, [Row(ref, images[ref], layers)], lateral),
            f"tissue classes of the preprocessing (EM with MNI priors) on the {ref}; sagittal through the left hemisphere",
            dpi=100,
        )
    else:
        rep.add_text(f"No tissue segmentation found ({session.tissues.name}).")

    rep.add_heading("Image quality")
    if iqm is not None:
        rep.add_table(
            _iqm_table(iqm), "MRIQC-style metrics of each raw image (in its own space, with the session's masks)", float_format="{:.3g}"
        )
    else:
        rep.add_text("No image-quality metrics (IQMs disabled in the preprocessing config).")
    rep.add_heading("Preprocessing and registration", level=3)
    rep.add_key_values(_preprocessing_facts(info))
    attempts = info.get("RegistrationAttempts") or []
    if len(attempts) > 1:
        rep.add_table(pd.DataFrame(attempts), "MNI registration attempts, in order (the last one was kept)")

    rep.add_heading("Files")
    files = {"raw " + r: p for r, p in (info.get("Inputs") or {}).items()}
    files.update(
        {"predicted labels": str(session.dseg), "volumes": str(session.volumes), "preprocessed session": str(session.brain_mask.parent)}
    )
    rep.add_text("\n".join(f"- {k}: `{_rel(Path(v), page_dir, session.predict_dir)}`" for k, v in files.items()))
    return rep


def write_qc_page(session: QcSession) -> Path:
    """Write the page of ``session`` to :attr:`QcSession.qc_page`; returns its path."""
    return build_qc_page(session).write(session.qc_page)


def _page_of(key: str, predict_dir: Path, preprocess_roots: tuple[Path, ...]) -> Path:
    return write_qc_page(QcSession.from_key(key, predict_dir, preprocess_roots))


def write_qc_pages(
    predict_dir: str | Path, sessions: Iterable[Outcome | str], *, preprocess_roots: Iterable[str | Path] = (), jobs: int = 1
) -> list[Outcome]:
    """The QC page of every predicted session of ``predict_dir``. ``sessions``: the outcomes of
    :func:`dawm.model.predict.predict_dataset` (failed ones are passed through untouched) or session
    keys (``sub-X_ses-Y``). Returns the outcomes in the same order: a session whose page cannot be
    written fails (``error``: ``QC page: <reason>``), the others keep their result."""
    predict_dir = Path(predict_dir)
    items = [s if isinstance(s, Outcome) else Outcome(str(s), result=None) for s in sessions]
    todo = [o for o in items if o.ok]
    fn = functools.partial(_page_of, predict_dir=predict_dir, preprocess_roots=tuple(Path(p) for p in preprocess_roots))
    done = (
        {o.name: o for o in run_all(fn, [o.name for o in todo], names=[o.name for o in todo], jobs=jobs, description="QC pages")}
        if todo
        else {}
    )
    out = []
    for o in items:
        if not o.ok:
            out.append(o)
        elif done[o.name].ok:
            out.append(o)
        else:
            out.append(replace(o, result=None, error=f"QC page: {done[o.name].error}"))
    return out
