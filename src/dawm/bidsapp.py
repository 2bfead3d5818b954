"""``dawm run BIDS_DIR OUTPUT_DIR participant|group``: the BIDS-App call (Gorgolewski et al. 2017).

``participant`` (one job per participant label on a cluster, or all at once): preprocessing of the
sessions that lack it and prediction (:func:`dawm.model.predict.predict_dataset`, the bundled model
unless ``model_dir``), then the QC page of every session (:func:`dawm.qc.page.write_qc_pages`) and
the participant's status table ``OUTPUT_DIR/sub-X/sub-X_status.tsv`` (one row per session: ``ok``
or ``failed`` with the reason, and its QC page), which is what lets ``group`` combine any number of
participant runs.

``group``: from everything in ``OUTPUT_DIR`` (whichever participant runs wrote it) and the sessions
of ``BIDS_DIR``, writes at the top of ``OUTPUT_DIR``:

* ``group_volumes.tsv``: lesion and DAWM volumes per session and location class (every session's
  ``_desc-dawm_volumes.tsv`` stacked);
* ``group_sessions.tsv``: one row per session of ``BIDS_DIR``: status (``ok``, ``failed``,
  ``not run``), reason, inputs, brain/lesion/DAWM ml, number of warnings and the QC page;
* ``group_volumes_common_fov.tsv``: for subjects with several predicted sessions, volumes inside the
  field of view all their sessions share (:func:`dawm.model.common_fov.common_fov_volumes`);
* ``transitions.tsv``: the longitudinal lesion/DAWM transitions per subject
  (:func:`dawm.longitudinal.longitudinal_outputs`);
* ``group_report.html``: the cohort page (:mod:`dawm.qc.cohort`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from dawm.bids.derivative_files import PredictFiles
from dawm.bids.derivatives import write_tsv
from dawm.bids.layout import SessionRef, discover_sessions, parse_key, participant_id, participant_labels, session_id
from dawm.errors import DawmError, InputError
from dawm.parallel import Outcome
from dawm.qc.flags import session_flags
from dawm.qc.session import QcSession

log = logging.getLogger(__name__)

ANALYSIS_LEVELS = ("participant", "group")
STATUS_COLUMNS = ("participant_id", "session_id", "status", "error", "qc_report", "finished")


def check_analysis_level(level: str) -> str:
    """``participant`` or ``group``; ``InputError`` (a usage error) otherwise."""
    if level not in ANALYSIS_LEVELS:
        raise InputError(f"analysis level must be participant or group, got {level!r}")
    return level


def status_path(output_dir: str | Path, subject: str) -> Path:
    """``OUTPUT_DIR/sub-X/sub-X_status.tsv``."""
    return PredictFiles(output_dir).status(subject)


def write_status(output_dir: str | Path, outcomes: list[Outcome]) -> list[Path]:
    """One status table per participant of ``outcomes`` (every session of a participant is in one
    participant run, so the table is rewritten whole)."""
    output_dir = Path(output_dir)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows: dict[str, list[dict]] = {}
    for o in outcomes:
        subject, session = parse_key(o.name)
        page = QcSession(subject, session, output_dir).qc_page
        rows.setdefault(subject, []).append(
            {
                "participant_id": participant_id(subject),
                "session_id": session_id(session),
                "status": "ok" if o.ok else "failed",
                "error": o.error or "n/a",
                "qc_report": str(page.relative_to(output_dir)) if o.ok and page.exists() else "n/a",
                "finished": now,
            }
        )
    paths = []
    for subject, table in rows.items():
        path = status_path(output_dir, subject)
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.append(write_tsv(path, pd.DataFrame(table, columns=list(STATUS_COLUMNS))))
    return paths


def run_participant(
    bids_dir: str | Path,
    output_dir: str | Path,
    *,
    participant_label: list[str] | None = None,
    model_dir: str | Path | None = None,
    jobs: int = 1,
    tta: bool = False,
) -> list[Outcome]:
    """The participant level (module docstring); returns one outcome per session (failed when it
    could not be preprocessed, predicted, or given its QC page)."""
    from dawm.model.predict import predict_dataset
    from dawm.qc.page import write_qc_pages

    outcomes = predict_dataset(bids_dir, output_dir, model_dir, participant_label=participant_label, jobs=jobs, tta=tta)
    outcomes = write_qc_pages(output_dir, outcomes, jobs=jobs)
    write_status(output_dir, outcomes)
    return outcomes


# --------------------------------------------------------------------------------------------
# group
# --------------------------------------------------------------------------------------------


@dataclass
class GroupResult:
    """``sessions``: the rows of ``group_sessions.tsv``; ``files``: what was written; ``notes``:
    what could not be made and why (e.g. no longitudinal module)."""

    sessions: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    longitudinal: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> pd.DataFrame:
        return self.sessions[self.sessions.status == "failed"]


def _key(participant: str, session) -> str:
    """The session key of a table row's ``participant_id`` and ``session_id`` (``n/a``: none)."""
    return participant + (f"_{session}" if isinstance(session, str) and session not in ("", "n/a") else "")


def _read_status(output_dir: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for path in PredictFiles(output_dir).status_tables():
        try:
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: unreadable status table ({exc})") from None
        for row in table.to_dict("records"):
            out[_key(row["participant_id"], row["session_id"])] = row
    return out


def _predicted_keys(output_dir: Path) -> dict[str, Path]:
    """Session key -> its ``_desc-dawm_volumes.tsv`` (every predicted session of the folder)."""
    return {SessionRef.from_path(path).key: path for path in PredictFiles(output_dir).volume_tables()}


def _session_row(key: str, output_dir: Path, status: dict | None, volumes: Path | None) -> dict:
    subject, session = parse_key(key)
    row = {
        "participant_id": participant_id(subject),
        "session_id": session_id(session),
        "status": "not run",
        "error": "n/a",
        "inputs": "n/a",
        "brain_ml": None,
        "lesion_ml": None,
        "dawm_ml": None,
        "dawm_pct_wm": None,
        "warnings": None,
        "qc_report": "n/a",
    }
    if status is not None:
        row.update(status=status.get("status", "n/a"), error=status.get("error", "n/a") or "n/a")
    elif volumes is not None:
        row["status"] = "ok"  # predicted by a plain `dawm predict`, without a participant run's status table
    if row["status"] != "ok" or volumes is None:
        if row["status"] == "ok":
            row.update(status="failed", error=f"no volume table for {key} in {output_dir}")
        return row
    table = pd.read_csv(volumes, sep="\t", na_values="n/a")
    whole = table[table.location == "all"]
    if len(whole):
        row.update(
            lesion_ml=float(whole.lesion_ml.iloc[0]), dawm_ml=float(whole.dawm_ml.iloc[0]), dawm_pct_wm=float(whole.dawm_pct_wm.iloc[0])
        )
    qc = QcSession.from_key(key, output_dir)
    prediction = qc.prediction_sidecar
    used = [s for s in prediction.get("Inputs", []) if s not in prediction.get("MissingInputs", [])]
    row["inputs"] = "+".join(used) or "n/a"
    if qc.preprocess_root is not None:
        info = qc.preproc_log
        row["brain_ml"] = info.get("BrainVolume_ml")
        iqm = pd.read_csv(qc.iqm, sep="\t", na_values="n/a") if qc.iqm.exists() else None
        row["warnings"] = sum(f.level == "warning" for f in session_flags(info, iqm, prediction))
    if qc.qc_page.exists():
        row["qc_report"] = str(qc.qc_page.relative_to(output_dir))
    return row


def _common_fov(output_dir: Path, rows: list[dict]) -> pd.DataFrame:
    from dawm.model.common_fov import common_fov_volumes

    by_subject: dict[str, list[dict]] = {}
    for r in rows:
        if r["status"] != "ok" or r["session_id"] == "n/a":
            continue
        qc = QcSession.from_key(_key(r["participant_id"], r["session_id"]), output_dir)
        if qc.preprocess_root is None:
            continue
        by_subject.setdefault(r["participant_id"], []).append(
            {"participant_id": r["participant_id"], "session_id": r["session_id"], "preproc_dir": qc.brain_mask.parent, "dseg": qc.dseg}
        )
    tables = [common_fov_volumes(s) for s in by_subject.values() if len(s) > 1]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _longitudinal(output_dir: Path, notes: list[str]) -> pd.DataFrame | None:
    try:
        from dawm.longitudinal import longitudinal_outputs
    except ImportError as exc:
        notes.append(f"longitudinal transitions not written: dawm.longitudinal is not available ({exc})")
        return None
    try:
        return longitudinal_outputs(output_dir)
    except DawmError as exc:
        notes.append(f"longitudinal transitions not written: {exc}")
        return None


def run_group(bids_dir: str | Path, output_dir: str | Path, *, participant_label: list[str] | None = None) -> GroupResult:
    """The group level (module docstring). ``InputError`` when ``BIDS_DIR`` is not a BIDS dataset
    or ``OUTPUT_DIR`` holds no participant run."""
    from dawm.qc.cohort import write_cohort_page

    bids_dir, output_dir = Path(bids_dir), Path(output_dir)
    if not output_dir.is_dir():
        raise InputError(f"{output_dir}: no such folder (run the participant level first)")
    files = PredictFiles(output_dir)
    raw = [s.key for s in discover_sessions(bids_dir, participant_label)]
    status = _read_status(output_dir)
    predicted = _predicted_keys(output_dir)
    wanted = participant_labels(participant_label)
    keys = sorted(k for k in set(raw) | set(status) | set(predicted) if wanted is None or parse_key(k)[0] in wanted)
    if not status and not predicted:
        raise InputError(f"{output_dir}: no participant run found (no {PredictFiles.STATUS_GLOB}, no predicted session)")
    rows = [_session_row(k, output_dir, status.get(k), predicted.get(k)) for k in keys]
    sessions = pd.DataFrame(rows)
    result = GroupResult(sessions)
    ok = [k for k, r in zip(keys, rows) if r["status"] == "ok"]
    tables = [pd.read_csv(predicted[k], sep="\t", na_values="n/a") for k in ok]
    volumes = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if tables:
        result.files["volumes"] = write_tsv(files.group_volumes, volumes)
    else:
        files.group_volumes.unlink(missing_ok=True)  # no stale table from an earlier group run
    common = _common_fov(output_dir, rows)
    if not common.empty:
        result.files["volumes in the common field of view"] = write_tsv(files.group_common_fov, common)
    else:
        files.group_common_fov.unlink(missing_ok=True)
    result.longitudinal = _longitudinal(output_dir, result.notes)
    transitions = files.transitions_table
    if result.longitudinal is not None and transitions.exists():
        result.files["longitudinal transitions"] = transitions
    result.files["sessions"] = write_tsv(files.group_sessions, sessions)
    result.files["cohort page"] = write_cohort_page(
        files.group_report, sessions, volumes=volumes, longitudinal=result.longitudinal, notes=result.notes, bids_dir=bids_dir
    )
    return result
