"""The files of one predicted session: ``dawm predict`` outputs and the preprocess derivative they used.

Names come from :class:`~dawm.bids.derivative_files.PredictFiles` and
:class:`~dawm.bids.derivative_files.PreprocessFiles`, the objects :mod:`dawm.model.predict` and
:mod:`dawm.preprocess.pipeline` write with. The preprocess derivative is found, in this order, in
the folders given, in the derivative holding the preprocessed images that the prediction's sidecar
lists as its ``Sources``, in ``PREDICT_DIR/derivatives/dawm-preprocess`` (where ``dawm predict``
preprocesses clinical sessions) and in ``<source dataset>/derivatives/*`` (the prediction's
``SourceDatasets``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dawm.bids.derivative_files import PredictFiles, PreprocessFiles
from dawm.bids.layout import RawFiles, SessionKey, dataset_root, parse_key
from dawm.errors import InputError

__all__ = ["QcSession", "parse_key"]
PREPROCESS = PreprocessFiles.NAME


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
    def from_key(cls, key: str, predict_dir: str | Path, preprocess_roots: list[Path] | tuple[Path, ...] = ()) -> QcSession:
        """The session ``key`` of ``predict_dir``, its preprocess derivative found (module docstring)."""
        subject, session = parse_key(key)
        found = cls(subject, session, Path(predict_dir))
        for root in found._preprocess_candidates(preprocess_roots):
            if PreprocessFiles(root).is_complete(found):
                return cls(subject, session, Path(predict_dir), root)
        return found

    def _preprocess_candidates(self, given) -> list[Path]:
        out = [Path(p) for p in given]
        sidecar = self._predict.sidecar(self.dseg)
        if sidecar.exists():
            for src in _read_json(sidecar).get("Sources", []):
                try:  # ROOT/sub-X/ses-Y/anat/file: the dataset holding it
                    out.append(dataset_root(src))
                except InputError:
                    out.append(Path(src).parent)
        out.append(self._predict.preprocess.root)
        desc = self._predict.description
        if desc.exists():
            for source in _read_json(desc).get("SourceDatasets", []):
                url = str(source.get("URL", ""))
                if not url or "://" in url:
                    continue
                # dawm predict records the BIDS folder as given (absolute, or relative to where it ran)
                for root in dict.fromkeys([Path(url)] if Path(url).is_absolute() else [Path(url), self.predict_dir / url]):
                    raw = RawFiles(root)
                    out.append(PreprocessFiles.in_dataset(root).root)
                    out += sorted(p for p in raw.derivatives.glob("*") if p.is_dir() and p.name != PREPROCESS)
        return out

    # ---- names (dawm.bids.derivative_files) ------------------------------------------------

    @property
    def _predict(self) -> PredictFiles:
        return PredictFiles(self.predict_dir)

    @property
    def _preprocess(self) -> PreprocessFiles:
        """The preprocess derivative; ``InputError`` when none was found."""
        if self.preprocess_root is None:
            raise InputError(
                f"{self.key}: no preprocess derivative found for {self.predict_dir} "
                f"(looked beside the predictions and in the source dataset's derivatives)"
            )
        return PreprocessFiles(self.preprocess_root)

    @property
    def session_dir(self) -> Path:
        """``PREDICT_DIR/sub-X[/ses-Y]``: the folder above the session's ``anat/``."""
        return self._predict.session_dir(self)

    @property
    def qc_page(self) -> Path:
        """``PREDICT_DIR/sub-X/ses-Y/sub-X_ses-Y_desc-qc_report.html`` (beside the session's ``anat/``)."""
        return self._predict.qc_page(self)

    @property
    def dseg(self) -> Path:
        return self._predict.dseg(self)

    def probseg(self, label: str) -> Path:
        """``label``: ``lesion`` or ``DAWM``."""
        return self._predict.probseg(self, label)

    @property
    def volumes(self) -> Path:
        return self._predict.volumes(self)

    @property
    def prediction_sidecar(self) -> dict:
        path = self._predict.sidecar(self.dseg)
        return _read_json(path) if path.exists() else {}

    @property
    def predict_config(self) -> dict:
        """The ``config`` of the prediction run's ``provenance.json`` (model folder, bundled, TTA), {} without one."""
        path = self._predict.provenance
        return _read_json(path).get("config", {}) if path.exists() else {}

    @property
    def preproc_log(self) -> dict:
        if self.preprocess_root is None:
            return {}
        return _read_json(self._preprocess.log(self))

    def preproc_image(self, role: str) -> Path:
        return self._preprocess.image(self, role)

    @property
    def brain_mask(self) -> Path:
        return self._preprocess.brain_mask(self)

    @property
    def fov_mask(self) -> Path:
        return self._preprocess.fov_mask(self)

    @property
    def tissues(self) -> Path:
        return self._preprocess.tissue_dseg(self)

    @property
    def iqm(self) -> Path:
        return self._preprocess.iqm(self)
