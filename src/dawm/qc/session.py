"""The files of one predicted session: ``dawm predict`` outputs and the preprocess derivative they used.

Names come from :class:`dawm.bids.entities.BidsName` exactly as :mod:`dawm.model.predict` and
:mod:`dawm.preprocess.pipeline` build them. The preprocess derivative is found, in this order, in
the folders given, in the folder of the preprocessed images that the prediction's sidecar lists as
its ``Sources``, in ``PREDICT_DIR/derivatives/dawm-preprocess`` (where ``dawm predict``
preprocesses clinical sessions) and in ``<source dataset>/derivatives/*`` (the prediction's
``SourceDatasets``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dawm.bids.entities import parse_name
from dawm.bids.layout import SessionKey
from dawm.errors import InputError
from dawm.preprocess.pipeline import log_path

PREPROCESS = "dawm-preprocess"


def parse_key(key: str) -> tuple[str, str | None]:
    """``sub-X_ses-Y`` (or ``sub-X``) -> ``("X", "Y" | None)``."""
    name = parse_name(f"{key}_dseg.nii.gz")
    return name.entities["sub"], name.entities.get("ses")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable JSON ({exc})") from None


@dataclass(frozen=True)
class QcSession(SessionKey):
    """One predicted session: ``predict_dir`` (the ``dawm predict`` output folder) and
    ``preprocess_root`` (the preprocess derivative it used, None when none was found)."""

    subject: str
    session: str | None
    predict_dir: Path
    preprocess_root: Path | None = None

    @classmethod
    def from_key(cls, key: str, predict_dir: str | Path, preprocess_roots: list[Path] | tuple[Path, ...] = ()) -> "QcSession":
        """The session ``key`` of ``predict_dir``, its preprocess derivative found (module docstring)."""
        subject, session = parse_key(key)
        found = cls(subject, session, Path(predict_dir))
        for root in found._preprocess_candidates(preprocess_roots):
            if log_path(root, found).exists():
                return cls(subject, session, Path(predict_dir), root)
        return found

    def _preprocess_candidates(self, given) -> list[Path]:
        out = [Path(p) for p in given]
        sidecar = self.predicted(space="session", desc="dawm", suffix="dseg", extension=".json")
        if sidecar.exists():
            for src in _read_json(sidecar).get("Sources", []):
                folder = Path(src).parent  # ROOT/sub-X/ses-Y/anat: the root lies the session's folder depth up
                depth = len(Path(self.base().subject_dir()).parts)
                out.append(folder.parents[depth - 1] if len(folder.parents) >= depth else folder)
        out.append(self.predict_dir / "derivatives" / PREPROCESS)
        desc = self.predict_dir / "dataset_description.json"
        if desc.exists():
            for source in _read_json(desc).get("SourceDatasets", []):
                url = str(source.get("URL", ""))
                if not url or "://" in url:
                    continue
                # dawm predict records the BIDS folder as given (absolute, or relative to where it ran)
                for root in dict.fromkeys([Path(url)] if Path(url).is_absolute() else [Path(url), self.predict_dir / url]):
                    out.append(root / "derivatives" / PREPROCESS)
                    out += sorted(p for p in (root / "derivatives").glob("*") if p.is_dir() and p.name != PREPROCESS)
        return out

    # ---- names ------------------------------------------------------------------------------

    @property
    def session_dir(self) -> Path:
        """``PREDICT_DIR/sub-X[/ses-Y]``: the folder above the session's ``anat/``."""
        return self.predict_dir / Path(self.base().subject_dir()).parent

    def predicted(self, **entities) -> Path:
        """A ``dawm predict`` output of this session (``space=``, ``desc=``, ``suffix=``, ``extension=``)."""
        base = self.base()
        return self.predict_dir / base.subject_dir() / base.with_(**entities).filename

    def preprocessed(self, **entities) -> Path:
        """A preprocess output of this session; ``InputError`` when no preprocess derivative was found."""
        if self.preprocess_root is None:
            raise InputError(f"{self.key}: no preprocess derivative found for {self.predict_dir} "
                             f"(looked beside the predictions and in the source dataset's derivatives)")
        base = self.base()
        return self.preprocess_root / base.subject_dir() / base.with_(**entities).filename

    @property
    def qc_page(self) -> Path:
        """``PREDICT_DIR/sub-X/ses-Y/sub-X_ses-Y_desc-qc_report.html`` (beside the session's ``anat/``)."""
        return self.session_dir / self.base().with_(desc="qc", suffix="report", extension=".html").filename

    @property
    def dseg(self) -> Path:
        return self.predicted(space="session", desc="dawm", suffix="dseg")

    def probseg(self, label: str) -> Path:
        """``label``: ``lesion`` or ``DAWM``."""
        return self.predicted(space="session", label=label, suffix="probseg")

    @property
    def volumes(self) -> Path:
        return self.predicted(desc="dawm", suffix="volumes", extension=".tsv")

    @property
    def prediction_sidecar(self) -> dict:
        path = self.predicted(space="session", desc="dawm", suffix="dseg", extension=".json")
        return _read_json(path) if path.exists() else {}

    @property
    def predict_config(self) -> dict:
        """The ``config`` of the prediction run's ``provenance.json`` (model folder, bundled, TTA), {} without one."""
        path = self.predict_dir / "provenance.json"
        return _read_json(path).get("config", {}) if path.exists() else {}

    @property
    def preproc_log(self) -> dict:
        if self.preprocess_root is None:
            return {}
        return _read_json(log_path(self.preprocess_root, self))

    def preproc_image(self, role: str) -> Path:
        return self.preprocessed(space="session", desc="preproc", suffix=role)

    @property
    def brain_mask(self) -> Path:
        return self.preprocessed(space="session", desc="brain", suffix="mask")

    @property
    def fov_mask(self) -> Path:
        return self.preprocessed(space="session", desc="fov", suffix="mask")

    @property
    def tissues(self) -> Path:
        return self.preprocessed(space="session", suffix="dseg")

    @property
    def iqm(self) -> Path:
        return self.preprocessed(desc="iqm", suffix="metrics", extension=".tsv")

