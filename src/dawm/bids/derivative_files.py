"""The derivative datasets of dawm, one class each: the single definition of their file names.

The stage that writes a derivative and every stage that reads it use the same object, so an output
is named in one place:

=================== ===================== ===================================================
class               folder                written by
=================== ===================== ===================================================
``PreprocessFiles`` ``dawm-preprocess``   ``dawm preprocess`` (and ``dawm predict``, nested)
``LabelFiles``      ``dawm-label``        ``dawm label`` (and the simulator truth as labels)
``PredictFiles``    the output folder     ``dawm predict``, ``dawm run``, ``dawm.longitudinal``
``TruthFiles``      ``dawm-truth``        ``dawm simulate``
``MaskFiles``       ``lesion-masks``, ... a rater (``dawm simulate``), a user's brain masks
=================== ===================== ===================================================

Each is a frozen dataclass over its ``root`` folder (``Cls.in_dataset(bids_dir)`` for the default
``bids_dir/derivatives/<NAME>``, ``Cls.of_file(path)`` for the dataset holding a file). A session's
path takes anything with ``subject`` and ``session`` (a :class:`~dawm.bids.layout.SessionKey`) and
lies in ``root/sub-X[/ses-Y]/anat/``; ``sessions()`` discovers the sessions present. Nothing here
reads images; JSON sidecars and logs are read with :meth:`DerivativeFiles.read_json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, TypeVar

from dawm.bids.entities import BidsName
from dawm.bids.layout import RawFiles, SessionRef, dataset_root, participant_id, sidecar_path
from dawm.errors import InputError

#: The template space of the MNI transforms (``from-<template>_to-session``), a BIDS ``space-`` label.
TEMPLATE_SPACE = "MNI152NLin2009cSym"
#: Roles written as ``_space-session_desc-preproc_<role>`` (bias-corrected weighted images).
PREPROC_ROLES = ("T1w", "FLAIR", "UNIT1")
#: Roles written as ``_space-session_<role>`` (quantitative maps, not bias-corrected).
MAP_ROLES = ("T1map", "MTRmap")

_F = TypeVar("_F", bound="DerivativeFiles")


class SessionLike(Protocol):
    """Anything that names one session: a subject label and a session label (None without sessions)."""

    @property
    def subject(self) -> str: ...

    @property
    def session(self) -> str | None: ...


def _base(key: SessionLike) -> BidsName:
    return BidsName({"sub": key.subject, **({"ses": key.session} if key.session else {})}, "", ".nii.gz")


def _key(key: SessionLike) -> str:
    """``sub-X[_ses-Y]``: the start of every file name of the session."""
    return SessionRef(key.subject, key.session).key


def _name(key: SessionLike, suffix: str, extension: str = ".nii.gz", **entities: str) -> str:
    """A file name of the session: its sub/ses entities, ``entities`` (``from_`` for ``from``), suffix, extension."""
    return _base(key).with_(suffix=suffix, extension=extension, **entities).filename


def _tail(suffix: str, extension: str = ".nii.gz", **entities: str) -> str:
    """The part of a session's file name after ``sub-X[_ses-Y]_`` (for globbing every session)."""
    return BidsName({k.rstrip("_"): v for k, v in entities.items()}, suffix, extension).filename


@dataclass(frozen=True)
class DerivativeFiles:
    """A derivative dataset at ``root``; subclasses name its outputs.

    ``NAME``: the default folder under ``derivatives/``; ``MARKER``: ``(suffix, extension,
    entities)`` of the one file every session of the derivative has (its discovery)."""

    root: Path
    NAME: ClassVar[str] = ""
    MARKER: ClassVar[tuple[str, str, dict[str, str]]] = ("", "", {})

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def in_dataset(cls: type[_F], bids_dir: str | Path, name: str | None = None) -> _F:
        """The derivative ``bids_dir/derivatives/<name>`` (default :attr:`NAME`)."""
        return cls(RawFiles(Path(bids_dir)).derivative(name or cls.NAME))

    @classmethod
    def of_file(cls: type[_F], path: str | Path) -> _F:
        """The derivative that holds ``path`` (a file in ``ROOT/sub-X[/ses-Y]/anat/``)."""
        return cls(dataset_root(path))

    def exists(self) -> bool:
        return self.root.is_dir()

    # ---- dataset-level files ---------------------------------------------------------------

    @property
    def description(self) -> Path:
        """``dataset_description.json`` (DatasetType derivative, GeneratedBy, SourceDatasets)."""
        return self.root / "dataset_description.json"

    @property
    def provenance(self) -> Path:
        """``provenance.json``: the run's config, versions and each session's outcome."""
        return self.root / "provenance.json"

    def source_urls(self) -> list[str]:
        """The ``URL`` of each ``SourceDatasets`` entry of the dataset description ([] when none,
        or when the description is missing or not JSON)."""
        try:
            sources = json.loads(self.description.read_text()).get("SourceDatasets", [])
        except (OSError, json.JSONDecodeError, AttributeError):
            return []
        return [str(s.get("URL", "")) for s in sources if isinstance(s, dict)]

    # ---- per-session files -----------------------------------------------------------------

    def anat_dir(self, key: SessionLike) -> Path:
        """``root/sub-X[/ses-Y]/anat``: the folder of a session's files."""
        return self.root / _base(key).subject_dir()

    def session_dir(self, key: SessionLike) -> Path:
        """``root/sub-X[/ses-Y]``: the folder above the session's ``anat/``."""
        return self.anat_dir(key).parent

    def subject_dir(self, subject: str) -> Path:
        """``root/sub-X``."""
        return self.root / participant_id(subject)

    def _file(self, key: SessionLike, suffix: str, extension: str = ".nii.gz", **entities: str) -> Path:
        return self.anat_dir(key) / _name(key, suffix, extension, **entities)

    def _glob(self, suffix: str, extension: str = ".nii.gz", **entities: str) -> list[Path]:
        return sorted(self.root.glob(f"sub-*/**/anat/*_{_tail(suffix, extension, **entities)}"))

    @classmethod
    def marker_pattern(cls) -> str:
        """A glob of the :meth:`marker` file of any session, e.g. ``*_desc-preproc_log.json``."""
        suffix, extension, entities = cls.MARKER
        return f"*_{_tail(suffix, extension, **entities)}"

    def marker(self, key: SessionLike) -> Path:
        """The file whose presence marks the session as present (complete) in this derivative."""
        suffix, extension, entities = self.MARKER
        return self._file(key, suffix, extension, **entities)

    def sessions(self) -> list[SessionRef]:
        """The sessions present (those with a :meth:`marker` file), sorted by path."""
        return [SessionRef.from_path(p) for p in self._marker_files()]

    def _marker_files(self) -> list[Path]:
        return sorted(self.root.glob(f"sub-*/**/anat/{self.marker_pattern()}"))

    @staticmethod
    def sidecar(image: str | Path) -> Path:
        """The JSON sidecar beside an image (``x.nii.gz`` -> ``x.json``)."""
        return sidecar_path(image)

    @staticmethod
    def read_json(path: str | Path) -> dict:
        """A JSON file ({} when absent); ``InputError`` naming it when it is not JSON."""
        path = Path(path)
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: invalid JSON ({exc})") from None

    def read_sidecar(self, image: str | Path) -> dict:
        """The JSON sidecar of an image ({} when absent)."""
        return self.read_json(self.sidecar(image))


@dataclass(frozen=True)
class PreprocessFiles(DerivativeFiles):
    """``dawm preprocess`` outputs: every image of a session on one grid (``space-session``), masks,
    tissues, transforms, image-quality metrics and the session log (its completion marker)."""

    NAME: ClassVar[str] = "dawm-preprocess"
    MARKER: ClassVar[tuple[str, str, dict[str, str]]] = ("log", ".json", {"desc": "preproc"})
    #: Glob patterns of :meth:`find_in_folder` (a folder holding one session's outputs).
    _PATTERNS: ClassVar[dict[str, str]] = {
        "fov_mask": "*_" + _tail("mask", desc="fov"),
        "brain_mask": "*_" + _tail("mask", desc="brain"),
        "to_template_xfm": "*_from-session_to-MNI*_xfm.h5",
        "from_template_xfm": "*_from-MNI*_to-session_mode-image_xfm.h5",
    }

    # dataset level
    @property
    def config(self) -> Path:
        """``preprocess_config.json``: the :class:`~dawm.preprocess.config.PreprocessConfig` of the run."""
        return self.root / "preprocess_config.json"

    @property
    def tissue_lut(self) -> Path:
        """``dseg.tsv``: index -> name of the tissue dseg (1 CSF, 2 GM, 3 WM)."""
        return self.root / "dseg.tsv"

    @property
    def group_iqm(self) -> Path:
        """``group_iqm.tsv``: every session's image-quality metrics stacked."""
        return self.root / "group_iqm.tsv"

    def iqm_tables(self) -> list[Path]:
        """Every session's :meth:`iqm` table, sorted by path."""
        return sorted(self.root.glob(f"sub-*/**/*_{_tail('metrics', '.tsv', desc='iqm')}"))

    # session level
    def log(self, key: SessionLike) -> Path:
        """``_desc-preproc_log.json``: reference, grid, registrations, warnings, outputs. Written
        last: its presence marks a complete session."""
        return self.marker(key)

    def is_complete(self, key: SessionLike) -> bool:
        return self.log(key).exists()

    def read_log(self, key: SessionLike) -> dict:
        """The session log ({} when absent)."""
        return self.read_json(self.log(key))

    def image(self, key: SessionLike, role: str) -> Path:
        """The session-grid image of a role: ``_space-session_desc-preproc_<role>`` (float32,
        bias-corrected) for T1w/FLAIR/UNIT1, ``_space-session_<role>`` for T1map (ms) / MTRmap (%)."""
        if role in MAP_ROLES:
            return self._file(key, role, space="session")
        return self._file(key, role, space="session", desc="preproc")

    def brain_mask(self, key: SessionLike) -> Path:
        """``_space-session_desc-brain_mask`` (uint8 0/1)."""
        return self._file(key, "mask", space="session", desc="brain")

    def fov_mask(self, key: SessionLike) -> Path:
        """``_space-session_desc-fov_mask``: voxels inside the field of view of every image (uint8 0/1)."""
        return self._file(key, "mask", space="session", desc="fov")

    def tissue_probseg(self, key: SessionLike, label: str) -> Path:
        """``_space-session_label-<CSF|GM|WM>_probseg`` (float32 0-1)."""
        return self._file(key, "probseg", space="session", label=label)

    def tissue_dseg(self, key: SessionLike) -> Path:
        """``_space-session_dseg``: 0 background, 1 CSF, 2 GM, 3 WM (uint8; :attr:`tissue_lut`)."""
        return self._file(key, "dseg", space="session")

    def nawm_mask(self, key: SessionLike) -> Path:
        """``_space-session_label-NAWM_mask``: normal-appearing white matter (uint8 0/1)."""
        return self._file(key, "mask", space="session", label="NAWM")

    def lesion_mask(self, key: SessionLike) -> Path:
        """``_space-session_label-lesion_mask``: a given lesion mask resampled, or the lesion
        candidates (uint8 0/1; its sidecar's ``Description`` says which)."""
        return self._file(key, "mask", space="session", label="lesion")

    def acquisition_xfm(self, key: SessionLike, group: str) -> Path:
        """``_from-<group>_to-session_mode-image_xfm.json``: the rigid pull matrix of an acquisition
        group (T1w, FLAIR, MP2RAGE, MT), session world -> the group's world, RAS mm."""
        return self._file(key, "xfm", ".json", from_=group, to="session", mode="image")

    def to_template_xfm(self, key: SessionLike, template: str = TEMPLATE_SPACE) -> Path:
        """``_from-session_to-<template>_mode-image_xfm.h5`` (ITK): maps MNI points to session
        points (resamples session images into MNI)."""
        return self._file(key, "xfm", ".h5", from_="session", to=template, mode="image")

    def from_template_xfm(self, key: SessionLike, template: str = TEMPLATE_SPACE) -> Path:
        """``_from-<template>_to-session_mode-image_xfm.h5`` (ITK): maps session points to MNI
        points (pulls MNI images onto the session grid)."""
        return self._file(key, "xfm", ".h5", from_=template, to="session", mode="image")

    def find_from_template_xfm(self, key: SessionLike) -> Path | None:
        """The session's ``from-MNI*_to-session`` transform, whatever the MNI template (None when absent)."""
        return next(iter(sorted(self.anat_dir(key).glob(f"{_key(key)}_from-MNI*_to-session_mode-image_xfm.h5"))), None)

    def iqm(self, key: SessionLike) -> Path:
        """``_desc-iqm_metrics.tsv``: MRIQC-style metrics, one row per weighted image."""
        return self._file(key, "metrics", ".tsv", desc="iqm")

    def qc_figure(self, key: SessionLike, reference: str) -> Path:
        """``_desc-qc_<reference>.png``: the preprocessing QC figure."""
        return self._file(key, reference, ".png", desc="qc")

    @classmethod
    def find_in_folder(cls, folder: str | Path, output: str) -> Path | None:
        """The first file of ``folder`` (one session's preprocess outputs) that is ``output``:
        ``fov_mask``, ``brain_mask``, ``to_template_xfm`` or ``from_template_xfm``; None when absent."""
        return next(iter(sorted(Path(folder).glob(cls._PATTERNS[output]))), None)


@dataclass(frozen=True)
class SegmentationFiles(DerivativeFiles):
    """A folder of dawm label maps on the session grids (0 normal, 1 lesion, 2 DAWM), as ``dawm
    label`` and ``dawm predict`` write them and ``dawm evaluate`` compares them."""

    MARKER: ClassVar[tuple[str, str, dict[str, str]]] = ("dseg", ".nii.gz", {"space": "session", "desc": "dawm"})

    @property
    def dawm_lut(self) -> Path:
        """``desc-dawm_dseg.tsv``: 0 normal, 1 lesion, 2 DAWM."""
        return self.root / "desc-dawm_dseg.tsv"

    @property
    def location_lut(self) -> Path:
        """``desc-location_dseg.tsv``: the location classes of :meth:`location_dseg`."""
        return self.root / "desc-location_dseg.tsv"

    def dseg(self, key: SessionLike) -> Path:
        """``_space-session_desc-dawm_dseg``: 0 normal, 1 lesion, 2 DAWM (uint8)."""
        return self.marker(key)

    def probseg(self, key: SessionLike, label: str) -> Path:
        """``_space-session_label-<lesion|DAWM>_probseg`` (float32 0-1)."""
        return self._file(key, "probseg", space="session", label=label)

    def location_dseg(self, key: SessionLike) -> Path:
        """``_space-session_desc-location_dseg``: periventricular, juxtacortical, deep, infratentorial."""
        return self.location_of(self.dseg(key))

    def dseg_files(self) -> dict[str, Path]:
        """``relative path -> file`` of every session's :meth:`dseg` (sorted)."""
        return {p.relative_to(self.root).as_posix(): p for p in self._marker_files()}

    @classmethod
    def location_of(cls, dseg: str | Path) -> Path:
        """The :meth:`location_dseg` beside a :meth:`dseg` file."""
        dseg = Path(dseg)
        return dseg.parent / _name(SessionRef.from_path(dseg), "dseg", space="session", desc="location")


@dataclass(frozen=True)
class LabelFiles(SegmentationFiles):
    """``dawm label`` outputs: DAWM/lesion labels from the T1 and MTR maps, z maps, volumes."""

    NAME: ClassVar[str] = "dawm-label"

    @property
    def config(self) -> Path:
        """``label_config.json``: the :class:`~dawm.label.config.LabelConfig` of the run."""
        return self.root / "label_config.json"

    @property
    def normative_model(self) -> Path:
        """``normative_model.json``: the controls' normative model."""
        return self.root / "normative_model.json"

    @property
    def volumes_table(self) -> Path:
        """``volumes.tsv``: one row per session (totals and per location class)."""
        return self.root / "volumes.tsv"

    def dawm_probseg(self, key: SessionLike) -> Path:
        """``_space-session_label-DAWM_probseg``: 1 - local FDR of the rule's score (float32 0-1)."""
        return self.probseg(key, "DAWM")

    def zmap(self, key: SessionLike, modality: str) -> Path:
        """``_space-session_desc-<T1|MTR>z_statmap``: the z map against the normative reference."""
        return self._file(key, "statmap", space="session", desc=f"{modality}z")

    def volumes(self, key: SessionLike) -> Path:
        """``_desc-volumes_metrics.tsv``: DAWM / lesion ml per location class."""
        return self._file(key, "metrics", ".tsv", desc="volumes")

    def volume_tables(self) -> list[Path]:
        """Every session's :meth:`volumes` table, sorted by path."""
        return sorted(self.root.glob(f"sub-*/**/*_{_tail('metrics', '.tsv', desc='volumes')}"))

    def log(self, key: SessionLike) -> Path:
        """``_desc-label_log.json``: reference, rule, volumes, outputs; marks a complete session."""
        return self._file(key, "log", ".json", desc="label")


@dataclass(frozen=True)
class PredictFiles(SegmentationFiles):
    """``dawm predict`` outputs (the folder given, ``dawm run``'s output folder): the label maps and
    probabilities, native-space labels, volumes, QC pages, participant status and the longitudinal
    maps on each subject's baseline grid."""

    NAME: ClassVar[str] = "dawm-predict"

    # dataset level
    @property
    def preprocess(self) -> PreprocessFiles:
        """``derivatives/dawm-preprocess`` inside the folder: the sessions ``dawm predict`` preprocessed."""
        return PreprocessFiles.in_dataset(self.root)

    @property
    def volumes_table(self) -> Path:
        """``volumes.tsv``: every session's :meth:`volumes` stacked."""
        return self.root / "volumes.tsv"

    @property
    def common_fov_table(self) -> Path:
        """``volumes_common_fov.tsv``: volumes in the field of view a subject's sessions share."""
        return self.root / "volumes_common_fov.tsv"

    @property
    def transitions_table(self) -> Path:
        """``transitions.tsv``: every subject's :meth:`transitions` stacked."""
        return self.root / "transitions.tsv"

    # dawm run group: the cohort tables and page
    @property
    def group_sessions(self) -> Path:
        """``group_sessions.tsv``: every session of the dataset, its status, volumes and QC page."""
        return self.root / "group_sessions.tsv"

    @property
    def group_volumes(self) -> Path:
        """``group_volumes.tsv``: every predicted session's :meth:`volumes` stacked."""
        return self.root / "group_volumes.tsv"

    @property
    def group_common_fov(self) -> Path:
        """``group_volumes_common_fov.tsv``: volumes in the field of view a subject's sessions share."""
        return self.root / "group_volumes_common_fov.tsv"

    @property
    def group_report(self) -> Path:
        """``group_report.html``: the cohort page."""
        return self.root / "group_report.html"

    # session level
    def native_dseg(self, key: SessionLike, space: str) -> Path:
        """``_space-<T1w|FLAIR>_desc-dawm_dseg``: the labels on the raw reference image's grid."""
        return self._file(key, "dseg", space=space, desc="dawm")

    def volumes(self, key: SessionLike) -> Path:
        """``_desc-dawm_volumes.tsv``: lesion and DAWM ml per location class."""
        return self._file(key, "volumes", ".tsv", desc="dawm")

    def volume_tables(self) -> list[Path]:
        """Every session's :meth:`volumes` table, sorted by path."""
        return self._glob("volumes", ".tsv", desc="dawm")

    def qc_page(self, key: SessionLike) -> Path:
        """``sub-X/ses-Y/sub-X_ses-Y_desc-qc_report.html``: the QC page, beside the session's ``anat/``."""
        return self.session_dir(key) / _name(key, "report", ".html", desc="qc")

    def status(self, subject: str) -> Path:
        """``sub-X/sub-X_status.tsv``: ok / failed (+ reason) per session of a participant run."""
        return self.subject_dir(subject) / BidsName({"sub": subject}, "status", ".tsv").filename

    #: Glob of every participant's :meth:`status` table.
    STATUS_GLOB: ClassVar[str] = "sub-*/sub-*_status.tsv"

    def status_tables(self) -> list[Path]:
        """Every participant's :meth:`status` table, sorted."""
        return sorted(self.root.glob(self.STATUS_GLOB))

    def transitions(self, subject: str) -> Path:
        """``sub-X/sub-X_desc-longitudinal_transitions.tsv``: one row per follow-up."""
        return self.subject_dir(subject) / BidsName({"sub": subject}, "transitions", ".tsv").with_(desc="longitudinal").filename

    # longitudinal: a follow-up's maps on the baseline's session grid, in the follow-up's folder
    def baseline_dseg(self, key: SessionLike) -> Path:
        """``_space-baseline_desc-dawm_dseg``: the follow-up's labels on the baseline grid (uint8)."""
        return self._file(key, "dseg", space="baseline", desc="dawm")

    def baseline_probseg(self, key: SessionLike, label: str) -> Path:
        """``_space-baseline_label-<lesion|DAWM>_probseg``: the follow-up's probabilities on the baseline grid."""
        return self._file(key, "probseg", space="baseline", label=label)

    def transition_dseg(self, key: SessionLike) -> Path:
        """``_space-baseline_desc-transition_dseg``: voxel transitions from the baseline to this follow-up."""
        return self._file(key, "dseg", space="baseline", desc="transition")

    def lesion_change_dseg(self, key: SessionLike) -> Path:
        """``_space-baseline_desc-lesionchange_dseg``: 1 new lesion, 2 grown part of an enlarging lesion."""
        return self._file(key, "dseg", space="baseline", desc="lesionchange")

    def baseline_xfm(self, key: SessionLike) -> Path:
        """``_from-session_to-baseline_mode-image_xfm.json``: the follow-up -> baseline pull matrix."""
        return self._file(key, "xfm", ".json", from_="session", to="baseline", mode="image")

    def longitudinal_files(self, key: SessionLike) -> list[Path]:
        """Every baseline-grid map (``_space-baseline_*``) and :meth:`baseline_xfm` of a session present (with sidecars)."""
        folder, k = self.anat_dir(key), _key(key)
        return sorted(folder.glob(f"{k}_space-baseline_*")) + sorted(folder.glob(f"{k}_from-session_to-baseline_*"))


@dataclass(frozen=True)
class TruthFiles(DerivativeFiles):
    """``dawm simulate``'s truth: subject-space (MNI template grid) label and property maps, the true
    bias fields on each image's grid, the subject -> scanner matrices, per-subject summaries."""

    NAME: ClassVar[str] = "dawm-truth"
    MARKER: ClassVar[tuple[str, str, dict[str, str]]] = ("xfm", ".json", {"from_": "subject", "to": "scanner", "mode": "image"})

    # dataset level
    @property
    def config(self) -> Path:
        """``dawm_simulate_config.json``: the :class:`~dawm.simulate.config.SimulationConfig` (resume stamp)."""
        return self.root / "dawm_simulate_config.json"

    @property
    def logs(self) -> Path:
        """``logs/``: ``dawm simulate``'s log files (outside the raw dataset)."""
        return self.root / "logs"

    @property
    def volumes_table(self) -> Path:
        """``volumes.tsv``: the true volumes and clinical scores, one row per session."""
        return self.root / "volumes.tsv"

    @property
    def report(self) -> Path:
        """``simulation_report.tsv``: tissue contrasts per scanner and modality."""
        return self.root / "simulation_report.tsv"

    @property
    def edss_model(self) -> Path:
        """``edss_model.json``: the coefficients of the linear model the simulated EDSS was drawn
        from (``Coefficients``: term -> value), the truth ``dawm evaluate`` compares its fit with."""
        return self.root / "edss_model.json"

    def lut(self, desc: str | None = None) -> Path:
        """The look-up table of a subject-space dseg: ``dseg.tsv`` (tissues), ``desc-<pathology|location|transition>_dseg.tsv``."""
        return self.root / BidsName({"desc": desc} if desc else {}, "dseg", ".tsv").filename

    def simulation(self, subject: str) -> Path:
        """``sub-X/sub-X_simulation.json``: the subject's summary; its presence marks a simulated subject."""
        return self.subject_dir(subject) / BidsName({"sub": subject}, "simulation", ".json").filename

    def simulations(self) -> list[Path]:
        """Every subject's :meth:`simulation` summary, sorted."""
        return sorted(self.root.glob("sub-*/sub-*_simulation.json"))

    # session level
    def subject_to_scanner(self, key: SessionLike) -> Path:
        """``_from-subject_to-scanner_mode-image_xfm.json``: ``SubjectToScanner[group]`` 4x4 matrices
        (subject world -> each acquisition's scanner world, RAS mm)."""
        return self.marker(key)

    def subject_space(self, key: SessionLike, suffix: str, **entities: str) -> Path:
        """A subject-space map ``_space-subject[_label-L][_desc-D]_<suffix>``; the named methods below
        are its instances."""
        return self._file(key, suffix, space="subject", **entities)

    def tissue_dseg(self, key: SessionLike) -> Path:
        """``_space-subject_dseg``: 0 background, 1 CSF, 2 GM, 3 WM."""
        return self.subject_space(key, "dseg")

    def pathology_dseg(self, key: SessionLike) -> Path:
        """``_space-subject_desc-pathology_dseg``: 0 normal, 1 lesion, 2 DAWM."""
        return self.subject_space(key, "dseg", desc="pathology")

    def location_dseg(self, key: SessionLike) -> Path:
        """``_space-subject_desc-location_dseg``: location classes."""
        return self.subject_space(key, "dseg", desc="location")

    def transition_dseg(self, key: SessionLike) -> Path:
        """``_space-subject_desc-transition_dseg``: transitions since the session before (follow-ups only)."""
        return self.subject_space(key, "dseg", desc="transition")

    def mask(self, key: SessionLike, label: str) -> Path:
        """``_space-subject_label-<lesion|DAWM|brain>_mask``."""
        return self.subject_space(key, "mask", label=label)

    def dawm_probseg(self, key: SessionLike) -> Path:
        """``_space-subject_label-DAWM_probseg``: DAWM severity (0-1)."""
        return self.subject_space(key, "probseg", label="DAWM")

    def property_map(self, key: SessionLike, suffix: str) -> Path:
        """``_space-subject_<T1map|T2map|PDmap|MTRmap>``: noise-free tissue properties (sidecar: Units)."""
        return self.subject_space(key, suffix)

    def bias_field(self, key: SessionLike, role: str) -> Path:
        """``_desc-biasfield_<T1w|FLAIR>``: the true bias field on the raw image's grid."""
        return self._file(key, role, desc="biasfield")


@dataclass(frozen=True)
class MaskFiles(DerivativeFiles):
    """A derivative of masks drawn on the raw images (a rater's lesion masks, a user's brain masks),
    which ``dawm preprocess`` takes when configured (``lesion_mask_derivative``, ``brain_mask_derivative``).
    A mask lies on the grid of one of the session's raw images or names its acquisition with ``space-``."""

    NAME: ClassVar[str] = "lesion-masks"
    MARKER: ClassVar[tuple[str, str, dict[str, str]]] = ("mask", ".nii.gz", {"label": "lesion"})

    def lesion_mask(self, key: SessionLike, space: str) -> Path:
        """``_space-<group>_label-lesion_mask`` (uint8 0/1), as ``dawm simulate``'s rater writes it."""
        return self._file(key, "mask", space=space, label="lesion")

    def _find(self, key: SessionLike, tails: tuple[str, ...]) -> list[Path]:
        folder, k = self.anat_dir(key), _key(key)
        return sorted(p for tail in tails for p in folder.glob(f"{k}_*{tail}.nii*"))

    def lesion_masks(self, key: SessionLike) -> list[Path]:
        """Every ``*_label-lesion_mask`` of the session, sorted (the last one is used)."""
        return self._find(key, ("label-lesion_mask",))

    def brain_masks(self, key: SessionLike) -> list[Path]:
        """Every ``*_desc-brain_mask`` then every ``*_label-brain_mask`` of the session (the last one is used)."""
        return self._find(key, ("desc-brain_mask", "label-brain_mask"))
