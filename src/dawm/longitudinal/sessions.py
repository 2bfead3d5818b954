"""The sessions of a ``dawm predict`` output folder and the preprocessed images behind them.

A predicted session is ``PRED/sub-X/ses-Y/anat/sub-X_ses-Y_space-session_desc-dawm_dseg.nii.gz``
(0 normal, 1 lesion, 2 DAWM on the session grid) with ``_space-session_label-{lesion,DAWM}_probseg``
beside it. Its preprocessed images (``_space-session_desc-preproc_{T1w,FLAIR}``, the brain and
field-of-view masks, on the same grid) are looked up, first match wins, in: the folder of the
``Sources`` listed by the dseg's JSON sidecar (what predict read), ``PRED/derivatives/dawm-preprocess``
(where predict preprocesses clinical sessions), and every ``derivatives/*`` folder of the source
dataset that ``PRED/dataset_description.json`` names.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from dawm.bids.derivative_files import PredictFiles, PreprocessFiles
from dawm.bids.layout import RawFiles, SessionKey, SessionRef, dataset_root
from dawm.errors import InputError

log = logging.getLogger(__name__)
#: Preprocessed images usable for the alignment, in order of preference.
ALIGNMENT_ROLES = ("T1w", "FLAIR")


@dataclass(frozen=True)
class PredictedSession(SessionKey):
    """One predicted session: its prediction files and its preprocessed images (paths).

    ``dseg``: the session-grid label map; ``probseg``: ``{"lesion": path, "DAWM": path}`` (those
    present); ``images``: preprocessed images by role (T1w, FLAIR); ``brain`` / ``fov``: brain and
    field-of-view masks (None when not found); ``reference``: the role that defines the session grid
    (from the preprocess log, None when unknown).
    """

    subject: str
    session: str | None
    dseg: Path
    probseg: dict[str, Path] = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)
    brain: Path | None = None
    fov: Path | None = None
    reference: str | None = None

    @property
    def anat_dir(self) -> Path:
        return self.dseg.parent


def _source_dataset(predict_dir: Path) -> Path | None:
    for url in PredictFiles(predict_dir).source_urls():
        if url and "://" not in str(url):
            path = Path(url) if Path(url).is_absolute() else (predict_dir / url)
            if path.is_dir():
                return path.resolve()
    return None


def preprocess_roots(predict_dir: str | Path) -> list[Path]:
    """Folders that may hold the preprocess derivative of ``predict_dir``'s sessions (see the
    module docstring), in the order they are searched (the sidecar ``Sources`` come first, per session)."""
    predict_dir = Path(predict_dir)
    roots = [PredictFiles(predict_dir).preprocess.root]
    source = _source_dataset(predict_dir)
    if source is not None:
        roots += sorted(p for p in RawFiles(source).derivatives.glob("*") if p.is_dir())
    return [r for r in roots if r.is_dir()]


def _sidecar_roots(dseg: Path) -> list[Path]:
    """The preprocess derivatives holding the ``Sources`` that the dseg's sidecar lists."""
    sidecar = PredictFiles.sidecar(dseg)
    try:
        sources = json.loads(sidecar.read_text()).get("Sources", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return []
    roots = []
    for source in sources:
        try:
            roots.append(dataset_root(source))
        except (InputError, TypeError):
            continue
    return list(dict.fromkeys(roots))


def _preprocessed(key: SessionRef, roots: list[Path]) -> dict:
    """Preprocessed images, masks and reference of a session from the first preprocess derivative
    (of ``roots``) holding any of its images."""
    for root in roots:
        pre = PreprocessFiles(root)
        images = {r: pre.image(key, r) for r in ALIGNMENT_ROLES}
        images = {r: p for r, p in images.items() if p.exists()}
        if not images:
            continue
        brain = pre.brain_mask(key)
        fov = pre.fov_mask(key)
        reference = None
        logfile = pre.log(key)
        if logfile.exists():
            try:
                reference = json.loads(logfile.read_text()).get("Reference")
            except json.JSONDecodeError:
                log.debug("%s: unreadable preprocess log", logfile)
        return {"images": images, "brain": brain if brain.exists() else None, "fov": fov if fov.exists() else None, "reference": reference}
    return {}


def predicted_sessions(predict_dir: str | Path) -> dict[str, list[PredictedSession]]:
    """Every predicted session of ``predict_dir`` by subject label, each subject's sessions sorted by
    session label (the first is the baseline). ``InputError`` when ``predict_dir`` is not a folder."""
    predict_dir = Path(predict_dir)
    if not predict_dir.is_dir():
        raise InputError(f"{predict_dir}: not a folder (a dawm predict output is expected)")
    roots = preprocess_roots(predict_dir)
    found: dict[str, list[PredictedSession]] = {}
    predicted = PredictFiles(predict_dir)
    for dseg in predicted.dseg_files().values():
        try:
            key = SessionRef.from_path(dseg)
        except InputError:
            continue
        probseg = {label: predicted.probseg(key, label) for label in ("lesion", "DAWM")}
        found.setdefault(key.subject, []).append(
            PredictedSession(
                subject=key.subject,
                session=key.session,
                dseg=dseg,
                probseg={k: p for k, p in probseg.items() if p.exists()},
                **_preprocessed(key, list(dict.fromkeys(_sidecar_roots(dseg) + roots))),
            )
        )
    return {sub: sorted(sessions, key=lambda s: s.session or "") for sub, sessions in sorted(found.items())}
