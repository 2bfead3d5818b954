"""Inputs of ``dawm evaluate``: find and match dseg files, locate the related derivatives, and read
session metadata (participants.tsv, sessions.tsv, raw sidecars), image-quality metrics and, from
the simulator's truth derivative when there is one, its EDSS model and true volumes. No statistics here."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dawm.bids.derivative_files import PreprocessFiles, SegmentationFiles, TruthFiles
from dawm.bids.entities import parse_name
from dawm.bids.layout import DERIVATIVES, RawFiles, SessionKey
from dawm.errors import InputError
from dawm.image.io import Volume, load_volume
from dawm.image.resample import resample
from dawm.label.pipeline import participants_by_subject, session_infos, session_row

log = logging.getLogger(__name__)

PREPROCESS, TRUTH = PreprocessFiles.NAME, TruthFiles.NAME
#: Image-quality metrics (``group_iqm.tsv`` columns) tested against accuracy, per weighted image.
QUALITY_METRICS = ("snr_total", "cnr", "cjv", "efc", "fber", "inu_range", "fwhm_mm")


@dataclass(frozen=True)
class SessionPair(SessionKey):
    """A session present in both folders: ``rel`` (path relative to each root), the two dsegs."""

    rel: str
    subject: str
    session: str | None
    pred: Path
    ref: Path

    @property
    def ids(self) -> dict[str, str]:
        """``participant_id`` / ``session_id`` columns (``n/a`` without sessions)."""
        return {"participant_id": self.participant_id, "session_id": self.session_id}


@dataclass
class EvaluationInputs:
    """The folders of one evaluation (``None``: not available) and what was found in them."""

    pred_dir: Path
    ref_dir: Path
    bids_dir: Path | None
    preprocess_dir: Path | None
    truth_dir: Path | None
    pairs: list[SessionPair]
    only_pred: list[str]
    only_ref: list[str]
    notes: list[str] = field(default_factory=list)


def find_dsegs(root: Path, what: str) -> dict[str, Path]:
    """``relative path -> file`` of every ``*_space-session_desc-dawm_dseg.nii.gz`` under ``root``
    (:meth:`~dawm.bids.derivative_files.SegmentationFiles.dseg_files`); ``InputError`` naming
    ``root`` when it is not a folder or holds none."""
    if not root.is_dir():
        raise InputError(f"{root}: {what} folder not found")
    found = SegmentationFiles(root).dseg_files()
    if not found:
        raise InputError(f"{root}: no {SegmentationFiles.marker_pattern()} files in the {what} folder")
    return found


def match_sessions(pred_dir: Path, ref_dir: Path) -> tuple[list[SessionPair], list[str], list[str]]:
    """Sessions matched by relative path, and the relative paths found in only one folder (logged)."""
    pred, ref = find_dsegs(pred_dir, "prediction"), find_dsegs(ref_dir, "reference")
    pairs = []
    for rel in sorted(set(pred) & set(ref)):
        ent = parse_name(rel).entities
        pairs.append(SessionPair(rel, ent["sub"], ent.get("ses"), pred[rel], ref[rel]))
    only_pred, only_ref = sorted(set(pred) - set(ref)), sorted(set(ref) - set(pred))
    for rel in only_pred:
        log.warning("%s: no reference in %s, skipped", rel, ref_dir)
    # A reference usually covers the whole cohort and predictions only some sessions (held-out
    # subjects): an expected absence, one summary line; the sessions at debug level.
    for rel in only_ref:
        log.debug("%s: no prediction in %s, skipped", rel, pred_dir)
    if only_ref:
        log.info("%d reference session(s) without a prediction in %s: not scored", len(only_ref), pred_dir)
    if not pairs:
        raise InputError(f"{pred_dir}: no session matches one of {ref_dir} (same sub-X/ses-Y/anat/ file names)")
    return pairs, only_pred, only_ref


def default_bids_dir(pred_dir: Path) -> Path | None:
    """The raw dataset of a derivative: a folder named in ``SourceDatasets`` (or a ``GeneratedBy``
    entry's ``SourceDataset``) of its dataset_description.json (relative paths resolve against
    ``pred_dir``), else ``pred_dir``'s grandparent when it is ``<bids>/derivatives/<name>``."""
    desc = SegmentationFiles(pred_dir).description
    try:
        info = json.loads(desc.read_text()) if desc.exists() else {}
    except json.JSONDecodeError:
        log.warning("%s: invalid JSON, ignored", desc)
        info = {}
    urls = [s.get("URL") for s in info.get("SourceDatasets", []) if isinstance(s, dict)]
    urls += [g.get("SourceDataset") for g in info.get("GeneratedBy", []) if isinstance(g, dict)]
    for url in urls:
        if isinstance(url, str) and url and "://" not in url.removeprefix("file://"):
            cand = (pred_dir / url.removeprefix("file://")).resolve()
            if cand.is_dir():
                return cand
    return pred_dir.resolve().parent.parent if pred_dir.resolve().parent.name == DERIVATIVES else None


def resolve_inputs(
    pred_dir: str | Path,
    ref_dir: str | Path,
    *,
    bids_dir: str | Path | None = None,
    preprocess_dir: str | Path | None = None,
    truth_dir: str | Path | None = None,
) -> EvaluationInputs:
    """Match the sessions and work out the optional folders (given ones must exist)."""
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    pairs, only_pred, only_ref = match_sessions(pred_dir, ref_dir)
    for given, what in ((bids_dir, "BIDS"), (preprocess_dir, "preprocess"), (truth_dir, "truth")):
        if given is not None and not Path(given).is_dir():
            raise InputError(f"{given}: {what} folder not found")
    notes = []
    bids = Path(bids_dir) if bids_dir is not None else default_bids_dir(pred_dir)
    if bids is None or not (RawFiles(bids).participants.exists() or RawFiles(bids).subject_dirs()):
        notes.append(f"no BIDS dataset found for {pred_dir} (give --bids): no session metadata")
        bids = None
    pre = Path(preprocess_dir) if preprocess_dir is not None else (PreprocessFiles.in_dataset(bids).root if bids else None)
    if pre is not None and not pre.is_dir():
        notes.append(f"{pre}: no preprocess derivative: no quality metrics, registration or background images")
        pre = None
    truth = Path(truth_dir) if truth_dir is not None else (TruthFiles.in_dataset(bids).root if bids else None)
    if truth is not None and not truth.is_dir():
        truth = None
    return EvaluationInputs(pred_dir, ref_dir, bids, pre, truth, pairs, only_pred, only_ref, notes)


# --------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------


def load_labels(path: Path) -> Volume:
    """A label image as a Volume of uint8 labels (empty images allowed)."""
    vol = load_volume(path, allow_empty=True)
    return Volume(np.rint(vol.data).astype(np.uint8), vol.affine, vol.path, vol.n_nonfinite)


def same_grid(a: Volume, shape: tuple[int, ...], affine: np.ndarray) -> bool:
    return a.shape == tuple(shape) and np.allclose(a.affine, affine, atol=1e-4)


def on_grid(vol: Volume, shape: tuple[int, int, int], affine: np.ndarray, interpolation: str = "nearest") -> np.ndarray:
    """``vol``'s data on the grid ``(shape, affine)`` of the same world (resampled only when it differs)."""
    if same_grid(vol, shape, affine):
        return vol.data
    return resample(vol.data, vol.affine, shape, affine, interpolation=interpolation)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def _number(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return out


def session_metadata(bids_dir: Path) -> pd.DataFrame:
    """One row per session of ``bids_dir``: group, sex, age, edss (sessions.tsv overrides
    participants.tsv), disease_duration (years, at the session when sessions.tsv has
    ``years_since_baseline``), scanner, manufacturer, model, field_t, flair_type (2D/3D) and
    flair_slice_mm, from ``session_infos`` and the raw FLAIR/T1w sidecars."""
    parts = participants_by_subject(bids_dir)
    rows = []
    for info in session_infos(bids_dir):
        inputs = info.inputs
        person, visit = parts.get(inputs.subject, {}), session_row(bids_dir, inputs)
        flair = inputs.sidecars.get("FLAIR", {})
        any_side = next((inputs.sidecars[r] for r in ("T1w", "FLAIR", *inputs.sidecars) if inputs.sidecars.get(r)), {})
        duration = _number(person.get("disease_duration")) + _number(visit.get("years_since_baseline", 0.0))
        edss = _number(visit["edss"]) if "edss" in visit else _number(person.get("edss"))
        rows.append(
            {
                "participant_id": inputs.participant_id,
                "session_id": inputs.session_id,
                "group": info.group,
                "sex": person.get("sex"),
                "age": info.age,
                "edss": edss,
                "disease_duration": duration,
                "scanner": info.scanner,
                "manufacturer": any_side.get("Manufacturer"),
                "model": any_side.get("ManufacturersModelName"),
                "field_t": info.field_t,
                "flair_type": flair.get("MRAcquisitionType"),
                "flair_slice_mm": _number(flair.get("SliceThickness")),
            }
        )
    return pd.DataFrame(rows)


def quality_table(pre_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Per-session IQMs from ``<pre_dir>/group_iqm.tsv`` (one row per image), pivoted to columns
    ``<metric>_<role>`` (e.g. ``snr_total_FLAIR``) for :data:`QUALITY_METRICS`; returns the table
    (with participant_id, session_id) and its usable quality columns (finite, not constant)."""
    pre = PreprocessFiles(pre_dir)
    path = pre.group_iqm
    if path.exists():
        long = pd.read_csv(path, sep="\t", na_values="n/a")
    else:
        files = pre.iqm_tables()
        long = pd.concat([pd.read_csv(p, sep="\t", na_values="n/a") for p in files], ignore_index=True) if files else pd.DataFrame()
    metrics = [m for m in QUALITY_METRICS if m in long.columns]
    if long.empty or not metrics or "role" not in long.columns:
        return pd.DataFrame(columns=["participant_id", "session_id"]), []
    long["session_id"] = long["session_id"].fillna("n/a")
    wide = long.pivot_table(index=["participant_id", "session_id"], columns="role", values=metrics, aggfunc="last")
    wide.columns = [f"{m}_{role}" for m, role in wide.columns]
    wide = wide.reset_index()
    cols = [c for c in wide.columns[2:] if wide[c].notna().sum() >= 3 and wide[c].nunique() > 1]
    return wide, cols


def simulated_edss_coefficient(truth_dir: Path | None, term: str = "dawm_ml") -> float | None:
    """The coefficient of ``term`` in the simulator's EDSS model, read from the truth derivative's
    ``edss_model.json`` (``Coefficients``; written by ``dawm simulate``); None without one."""
    path = TruthFiles(truth_dir).edss_model if truth_dir else None
    if path is None or not path.exists():
        return None
    try:
        value = json.loads(path.read_text()).get("Coefficients", {}).get(term)
    except (json.JSONDecodeError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def truth_volumes(truth_dir: Path | None) -> pd.DataFrame | None:
    """``<truth_dir>/volumes.tsv`` (participant_id, session_id, lesion_ml, dawm_ml, ...) or None."""
    path = TruthFiles(truth_dir).volumes_table if truth_dir else None
    return pd.read_csv(path, sep="\t", na_values="n/a") if path is not None and path.exists() else None
