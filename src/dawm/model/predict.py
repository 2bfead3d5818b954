"""``dawm predict``: a trained model over a BIDS dataset, written as BIDS derivatives.

Sessions need the preprocess derivative; when a session has none (in ``bids_dir/derivatives/
<preprocess>``), its T1w and FLAIR only are preprocessed - the clinical case - with the preprocess
settings the model was trained with, into ``out_dir/derivatives/dawm-preprocess`` (the raw dataset
is left untouched). Per session, in ``out_dir/sub-X/ses-Y/anat/``:

* ``_space-session_desc-dawm_dseg.nii.gz`` (0 normal, 1 lesion, 2 DAWM: lesion where it wins the
  argmax, DAWM where P(DAWM) reaches the model's calibrated ``dawm_threshold``,
  :mod:`dawm.model.decision`) and ``_space-session_label-{lesion,DAWM}_probseg.nii.gz`` (mean
  softmax over folds);
* ``_space-<T1w|FLAIR>_desc-dawm_dseg.nii.gz``: the dseg on the raw reference image's own grid
  (the same decision on the linearly resampled probabilities);
* ``_desc-dawm_volumes.tsv``: lesion and DAWM ml (thresholded and expected: the sum of the
  probabilities) and % of WM per location class (:mod:`dawm.model.volumes`);
* ``volumes_common_fov.tsv`` (top level): for subjects with several sessions, brain, lesion and
  DAWM ml inside the field of view that all their sessions share (:mod:`dawm.model.common_fov`),
  so that a session whose slices cover less of the head does not look like atrophy or remission;

and at the top ``volumes.tsv`` (all sessions), ``dataset_description.json``, ``desc-dawm_dseg.tsv``
and ``provenance.json`` (the model, and each session's outcome). Without a model folder, the model
bundled with dawm is used (:mod:`dawm.model.bundled`). A session that cannot be preprocessed is
returned as a failed :class:`dawm.parallel.Outcome`; the others are still predicted.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from dawm.bids.derivative_files import PredictFiles, PreprocessFiles
from dawm.bids.derivatives import init_derivative, write_dseg_tsv, write_json, write_tsv
from dawm.bids.layout import RawFiles, SessionInputs, discover_sessions
from dawm.errors import InputError
from dawm.image.io import load_volume, save_volume
from dawm.image.resample import resample
from dawm.model import LABELS
from dawm.model.bundled import bundled_model_dir
from dawm.model.common_fov import common_fov_volumes
from dawm.model.data import Case, discover_cases
from dawm.model.decision import labels_from_probabilities
from dawm.model.inference import LoadedModel, load_model, predict_probabilities
from dawm.model.volumes import mni_coordinates, volume_table
from dawm.parallel import Outcome, run_all
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import preprocess_session
from dawm.provenance import provenance

log = logging.getLogger(__name__)
STAGE = PredictFiles.NAME
CLINICAL_ROLES = ("T1w", "FLAIR")


def clinical_preprocess_config(stored: dict | None) -> PreprocessConfig:
    """The model's preprocess settings restricted to T1w/FLAIR (defaults when none were stored)."""
    cfg = PreprocessConfig.model_validate(stored) if stored else PreprocessConfig()
    refs = tuple(r for r in cfg.reference_roles if r in CLINICAL_ROLES) or CLINICAL_ROLES
    seg = tuple(r for r in cfg.segmentation_channels if r in CLINICAL_ROLES) or CLINICAL_ROLES
    n4 = cfg.n4.model_copy(update={"roles": tuple(r for r in cfg.n4.roles if r in CLINICAL_ROLES) or CLINICAL_ROLES})
    return cfg.model_copy(
        update={
            "reference_roles": refs,
            "segmentation_channels": seg,
            "n4": n4,
            "brain_mask_derivative": None,
            "lesion_mask_derivative": None,
        }
    )


def _clinical_only(inputs: SessionInputs) -> SessionInputs:
    keep = {r: p for r, p in inputs.images.items() if r in CLINICAL_ROLES}
    return replace(inputs, images=keep, sidecars={r: s for r, s in inputs.sidecars.items() if r in keep})


def ensure_preprocessed(
    bids_dir: Path, out_dir: Path, model: LoadedModel, *, participant_label=None, jobs: int = 1, preprocess: str = PreprocessFiles.NAME
) -> tuple[list[Case], list[Outcome]]:
    """Cases of every session: from ``bids_dir/derivatives/<preprocess>`` when complete there, else
    preprocessed (T1w/FLAIR only) into ``out_dir/derivatives/dawm-preprocess``. Returns the cases
    and one failed :class:`Outcome` per session that could not be preprocessed (``error``:
    ``"preprocessing failed: <reason>"``)."""
    sessions = discover_sessions(bids_dir, participant_label)
    existing = PreprocessFiles.in_dataset(bids_dir, preprocess).root
    todo = [s for s in sessions if not PreprocessFiles(existing).is_complete(s)]
    todo = [_clinical_only(s) for s in todo]
    failed = [Outcome(s.key, error="preprocessing failed: no T1w or FLAIR image") for s in todo if not s.images]
    todo = [s for s in todo if s.images]
    nested_files = PredictFiles(out_dir).preprocess
    nested = nested_files.root
    if todo:
        config = clinical_preprocess_config(model.info.get("preprocess_config"))
        init_derivative(
            nested, name="dawm preprocess (for dawm predict)", description="T1w/FLAIR preprocessing for dawm predict", source="../../.."
        )
        config.save(nested_files.config)
        fn = functools.partial(preprocess_session, config=config, out_root=nested, bids_dir=bids_dir)
        done = run_all(fn, todo, names=[s.key for s in todo], jobs=jobs, description="preprocessing (T1w/FLAIR)")  # logs failures
        failed += [Outcome(o.name, error=f"preprocessing failed: {o.error}") for o in done if not o.ok]
    cases: list[Case] = []
    for root in (existing, nested):
        if root.is_dir():
            cases += discover_cases(bids_dir, labels=None, preprocess_dir=root, participant_label=participant_label)
    unique: dict[str, Case] = {}
    for c in cases:  # the first root wins; a session that just failed is not predicted from older outputs
        if c.key not in {o.name for o in failed}:
            unique.setdefault(c.key, c)
    return list(unique.values()), failed


def predict_session(case: Case, model: LoadedModel, out_dir: Path, *, tta: bool = False, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """Predict one session and write its outputs; returns its volume table. ``drop``: input
    suffixes (e.g. ``("T1w",)``) to leave out as if not acquired (the missing-modality path)."""
    brain_vol = load_volume(case.brain)
    brain, affine = brain_vol.data > 0.5, brain_vol.affine
    images = {s: load_volume(p).data for s, p in case.images.items() if s in model.suffixes and s not in drop}
    probs = predict_probabilities(model, images, brain, affine, tta=tta)
    pred = labels_from_probabilities(probs, model.dawm_threshold)
    files = PredictFiles(out_dir)

    info = json.loads(case.preproc_log.read_text())
    sidecar = {
        "Description": "dawm model prediction: 0 normal, 1 lesion, 2 DAWM",
        "Model": str(model.info.get("name")),
        "ModelFolds": model.folds,
        "TTA": tta,
        "Inputs": model.suffixes,
        "MissingInputs": [s for s in model.suffixes if s not in images],
        "InputAccuracy": model.input_accuracy(list(images)) if len(images) < len(model.suffixes) else None,
        "Sources": [str(p) for p in case.images.values()],
        "DAWMThreshold": model.dawm_threshold,
        "Decision": "lesion: argmax; DAWM: not lesion and P(DAWM) >= DAWMThreshold" if model.dawm_threshold is not None else "argmax",
    }
    save_volume(pred, affine, files.dseg(case), dtype=np.uint8)
    write_json(files.sidecar(files.dseg(case)), sidecar)
    for k, label in ((1, "lesion"), (2, "DAWM")):
        save_volume(probs[k], affine, files.probseg(case, label), dtype=np.float32)
    ref = info["Reference"]
    raw_ref = Path(info["Inputs"][ref])
    if raw_ref.exists():
        raw = load_volume(raw_ref)  # the session grid lives in the reference's world: identity transform
        # argmax of the linearly resampled probabilities: smoother borders than the nearest-neighbour
        # copy of the session-grid labels when the raw grid is finer (thin in-plane voxels, 1 mm)
        native = labels_from_probabilities(np.stack([resample(p, affine, raw.shape, raw.affine) for p in probs]), model.dawm_threshold)
        save_volume(native, raw.affine, files.native_dseg(case, ref), dtype=np.uint8)
        write_json(files.sidecar(files.native_dseg(case, ref)), {**sidecar, "SpatialReference": raw_ref.name})
    else:
        log.warning("%s: raw reference %s not found, no native-space dseg", case.key, raw_ref)
    dseg = np.rint(load_volume(case.dseg, allow_empty=True).data).astype(np.uint8)
    mni_name = PreprocessFiles.of_file(case.preproc_log).find_from_template_xfm(case)
    mni = mni_coordinates(mni_name, brain.shape, affine) if mni_name is not None else None
    table = volume_table(pred, dseg, brain, affine, mni_xyz=mni, probs=probs)
    table.insert(0, "session_id", case.session_id)
    table.insert(0, "participant_id", case.participant_id)
    write_tsv(files.volumes(case), table)
    return table


def _common_fov_tables(cases: list[Case], out_dir: Path) -> pd.DataFrame:
    """Per subject with two or more predicted sessions, the volumes inside the field of view all its
    sessions share (:func:`dawm.model.common_fov.common_fov_volumes`)."""
    by_subject: dict[str, list[dict]] = {}
    for c in cases:
        by_subject.setdefault(c.subject, []).append(
            {
                "participant_id": c.participant_id,
                "session_id": c.session_id,
                "preproc_dir": c.preproc_log.parent,
                "dseg": PredictFiles(out_dir).dseg(c),
            }
        )
    tables = [common_fov_volumes(rows) for rows in by_subject.values() if len(rows) > 1]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def predict_dataset(
    bids_dir: str | Path,
    out_dir: str | Path,
    model_dir: str | Path | None = None,
    *,
    participant_label: list[str] | None = None,
    jobs: int = 1,
    tta: bool = False,
    folds: list[int] | None = None,
    drop: tuple[str, ...] = (),
    progress: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Predict every session of ``bids_dir`` with the model in ``model_dir`` (default: the bundled
    model) into ``out_dir`` (see the module docstring). ``jobs``: sessions preprocessed in parallel.
    Returns one :class:`dawm.parallel.Outcome` per session, sorted by name (result: its volume
    table; failed when it could not be preprocessed or predicted)."""
    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    bundled = model_dir is None
    model_dir = bundled_model_dir() if model_dir is None else Path(model_dir)
    if not RawFiles(bids_dir).is_dataset():
        raise InputError(f"{bids_dir}: not a BIDS dataset (no dataset_description.json)")
    model = load_model(model_dir, folds=folds)
    unknown = sorted(set(drop) - set(model.suffixes))
    if unknown:
        raise InputError(f"--drop {', '.join(unknown)}: not an input of this model (its inputs: {', '.join(model.suffixes)})")
    log.info("model: %s%s", model_dir, " (bundled with dawm)" if bundled else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    cases, failed = ensure_preprocessed(
        bids_dir,
        out_dir,
        model,
        participant_label=participant_label,
        jobs=jobs,
        preprocess=model.info.get("config", {}).get("preprocess", PreprocessFiles.NAME),
    )
    if not cases and not failed:
        raise InputError(f"{bids_dir}: no session to predict")
    for c in cases:  # refuse a model/data mismatch before writing anything
        model.missing_inputs(set(c.images) - set(drop))
    files = PredictFiles(out_dir)
    init_derivative(out_dir, name="dawm predict", description="lesion and DAWM segmentation by a dawm model", source=str(bids_dir))
    write_dseg_tsv(files.dawm_lut, LABELS)
    outcomes = run_all(
        functools.partial(predict_session, model=model, out_dir=out_dir, tta=tta, drop=tuple(drop)),
        cases,
        names=[c.key for c in cases],
        jobs=1,
        description="predicting",
    )
    outcomes = sorted(outcomes + failed, key=lambda o: o.name)
    tables = [o.result for o in outcomes if o.ok]
    if tables:
        write_tsv(files.volumes_table, pd.concat(tables, ignore_index=True))
    predicted = {o.name for o in outcomes if o.ok}
    common = _common_fov_tables([c for c in cases if c.key in predicted], out_dir)
    if not common.empty:
        write_tsv(files.common_fov_table, common)
    record = provenance(
        "predict",
        {
            "model_dir": str(model_dir.resolve()),
            "bundled_model": bundled,
            "tta": tta,
            "folds": model.folds,
            "dropped_inputs": list(drop),
            "model_fingerprint": model.info.get("data_fingerprint"),
            "model_version": model.info.get("dawm_version"),
        },
    )
    record["sessions"] = {o.name: ("ok" if o.ok else f"failed: {o.error}") for o in outcomes}
    write_json(files.provenance, record)
    return outcomes
