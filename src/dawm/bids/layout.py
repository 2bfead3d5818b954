"""Find the sessions of a BIDS dataset and the anatomical images each one holds.

A *role* names what an image is for dawm, independent of how it is spelled on disk:
``T1w``, ``FLAIR``, ``UNIT1``, ``T1map``, ``inv1``/``inv2`` (MP2RAGE magnitudes), ``mton``/``mtoff``
(MT-weighted pair) and ``MTRmap``. Each role is optional; a session has whatever its files give.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from dawm.bids.entities import BidsName, parse_name
from dawm.errors import InputError

log = logging.getLogger(__name__)

ROLES = ("T1w", "FLAIR", "UNIT1", "T1map", "inv1", "inv2", "mton", "mtoff", "MTRmap")


def role_of(name: BidsName) -> str | None:
    """The dawm role of a raw BIDS image name, or None when dawm does not use it."""
    suffix, ent = name.suffix, name.entities
    if suffix in ("T1w", "FLAIR", "UNIT1", "T1map", "MTRmap"):
        return suffix
    if suffix == "MP2RAGE" and ent.get("part", "mag") == "mag" and ent.get("inv") in ("1", "2"):
        return f"inv{ent['inv']}"
    if suffix == "MTS" and ent.get("mt") in ("on", "off"):
        return f"mt{ent['mt']}"
    return None


def participant_id(subject: str) -> str:
    """The ``participant_id`` of a subject label: ``"01"`` -> ``"sub-01"``."""
    return f"sub-{subject}"


def session_id(session: str | None) -> str:
    """The ``session_id`` of a session label: ``"01"`` -> ``"ses-01"``; ``n/a`` without sessions."""
    return f"ses-{session}" if session else "n/a"


def subject_label(participant: str) -> str:
    """A subject label with or without its ``sub-`` prefix -> the bare label (``"sub-01"`` -> ``"01"``)."""
    return participant.removeprefix("sub-")


def participant_labels(labels: list[str] | None) -> set[str] | None:
    """``--participant-label`` values (with or without ``sub-``) as bare labels; None when not given."""
    return {subject_label(p) for p in labels} if labels else None


def parse_key(key: str) -> tuple[str, str | None]:
    """``sub-X_ses-Y`` (or ``sub-X``) -> ``("X", "Y" | None)``."""
    name = parse_name(f"{key}_dseg.nii.gz")
    return name.entities["sub"], name.entities.get("ses")


class SessionKey:
    """Naming shared by everything that stands for one subject/session (needs ``subject``, ``session``)."""

    subject: str
    session: str | None

    @property
    def key(self) -> str:
        """``sub-X_ses-Y`` (or ``sub-X`` without sessions)."""
        return participant_id(self.subject) + (f"_{session_id(self.session)}" if self.session else "")

    @property
    def participant_id(self) -> str:
        """``sub-X``: the ``participant_id`` column of BIDS tables."""
        return participant_id(self.subject)

    @property
    def session_id(self) -> str:
        """``ses-Y`` (``n/a`` without sessions): the ``session_id`` column of BIDS tables."""
        return session_id(self.session)

    def base(self) -> BidsName:
        """A BidsName with this session's sub/ses entities, to derive output names from."""
        ent = {"sub": self.subject}
        if self.session:
            ent["ses"] = self.session
        return BidsName(entities=ent, suffix="", extension=".nii.gz")


@dataclass(frozen=True)
class SessionRef(SessionKey):
    """Just a subject/session: what the discovery of a derivative's sessions returns."""

    subject: str
    session: str | None = None

    @classmethod
    def from_key(cls, key: str) -> SessionRef:
        """``sub-X_ses-Y`` (or ``sub-X``) -> the session."""
        return cls(*parse_key(key))

    @classmethod
    def from_path(cls, path: str | Path) -> SessionRef:
        """The session a BIDS file belongs to, from its name's sub/ses entities."""
        ent = parse_name(Path(path).name).entities
        return cls(ent["sub"], ent.get("ses"))


@dataclass(frozen=True)
class SessionInputs(SessionKey):
    """The raw images of one subject/session: ``images[role] -> path`` and their JSON sidecars."""

    subject: str
    session: str | None
    images: dict[str, Path] = field(default_factory=dict)
    sidecars: dict[str, dict] = field(default_factory=dict)


#: Entities and suffix of each role's raw image, the inverse of :func:`role_of`.
_RAW_NAMES: dict[str, dict[str, str]] = {
    **{role: {"suffix": role} for role in ("T1w", "FLAIR", "UNIT1", "T1map", "MTRmap")},
    "inv1": {"inv": "1", "part": "mag", "suffix": "MP2RAGE"},
    "inv2": {"inv": "2", "part": "mag", "suffix": "MP2RAGE"},
    "mton": {"flip": "1", "mt": "on", "suffix": "MTS"},
    "mtoff": {"flip": "1", "mt": "off", "suffix": "MTS"},
}
DERIVATIVES = "derivatives"


def sidecar_path(image_path: str | Path) -> Path:
    """The JSON sidecar's path of a BIDS file (``x.nii.gz`` -> ``x.json``)."""
    image_path = Path(image_path)
    name = image_path.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else image_path.stem
    return image_path.with_name(stem + ".json")


def dataset_root(path: str | Path) -> Path:
    """The root of the BIDS dataset (raw or derivative) that holds ``path``, a file named
    ``sub-X[_ses-Y]_...`` inside ``ROOT/sub-X/``: the folder above the ``sub-X`` folder."""
    path = Path(path)
    sub = participant_id(parse_name(path.name).entities["sub"])
    for folder in path.parents:
        if folder.name == sub:
            return folder.parent
    raise InputError(f"{path}: not inside a {sub} folder of a BIDS dataset")


@dataclass(frozen=True)
class RawFiles:
    """The file names of a raw BIDS dataset at ``root``: what ``dawm simulate`` writes and every
    stage reads besides the images (found by :func:`discover_sessions`)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def description(self) -> Path:
        """``dataset_description.json``; its presence makes a folder a BIDS dataset."""
        return self.root / "dataset_description.json"

    def is_dataset(self) -> bool:
        return self.description.exists()

    @property
    def participants(self) -> Path:
        """``participants.tsv``: one row per subject (``participant_id``, group, age, ...)."""
        return self.root / "participants.tsv"

    @property
    def participants_json(self) -> Path:
        """``participants.json``: the columns of ``participants.tsv`` described."""
        return self.root / "participants.json"

    @property
    def derivatives(self) -> Path:
        """``derivatives/``: one folder per derivative dataset."""
        return self.root / DERIVATIVES

    def derivative(self, name: str) -> Path:
        """``derivatives/<name>``."""
        return self.derivatives / name

    def subject_dir(self, subject: str) -> Path:
        """``sub-X/``."""
        return self.root / participant_id(subject)

    def subject_dirs(self) -> list[Path]:
        """Every ``sub-*/`` folder, sorted."""
        return sorted(p for p in self.root.glob("sub-*") if p.is_dir())

    def sessions_table(self, subject: str) -> Path:
        """``sub-X/sub-X_sessions.tsv``: one row per session (``session_id``, age, edss, scanner, ...)."""
        return self.subject_dir(subject) / BidsName({"sub": subject}, "sessions", ".tsv").filename

    def sessions_json(self, subject: str) -> Path:
        """``sub-X/sub-X_sessions.json``: the columns of the sessions table described."""
        return self.subject_dir(subject) / BidsName({"sub": subject}, "sessions", ".json").filename

    def image(self, key: SessionKey, role: str) -> Path:
        """The raw image of a role (:data:`ROLES`) in ``sub-X/ses-Y/anat/``: ``_T1w``, ``_FLAIR``,
        ``_UNIT1``, ``_T1map``, ``_MTRmap``, ``_inv-<1|2>_part-mag_MP2RAGE``, ``_flip-1_mt-<on|off>_MTS``."""
        entities = dict(_RAW_NAMES[role])
        suffix = entities.pop("suffix")
        return self.root / key.base().with_(suffix=suffix, **entities).relpath


def read_sidecar(image_path: Path) -> dict:
    """The JSON sidecar next to an image ({} when absent); ``InputError`` when it is not JSON."""
    sidecar = sidecar_path(image_path)
    if not sidecar.exists():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{sidecar}: invalid JSON ({exc})") from None


def discover_sessions(bids_dir: str | Path, participant_label: list[str] | None = None) -> list[SessionInputs]:
    """List every subject/session of ``bids_dir`` with its anatomical images by role.

    ``participant_label`` keeps only those subjects (with or without the ``sub-`` prefix). When a
    role has several runs, the last run is used and the choice is logged.
    """
    root = Path(bids_dir)
    if not RawFiles(root).is_dataset():
        raise InputError(f"{root}: not a BIDS dataset (no dataset_description.json)")
    wanted = participant_labels(participant_label)
    sessions: list[SessionInputs] = []
    for sub_dir in RawFiles(root).subject_dirs():
        subject = sub_dir.name[4:]
        if wanted is not None and subject not in wanted:
            continue
        ses_dirs = sorted(d for d in sub_dir.glob("ses-*") if d.is_dir()) or [sub_dir]
        for ses_dir in ses_dirs:
            session = ses_dir.name[4:] if ses_dir.name.startswith("ses-") else None
            images: dict[str, Path] = {}
            sidecars: dict[str, dict] = {}
            for path in sorted((ses_dir / "anat").glob("*.nii*")):
                try:
                    role = role_of(parse_name(path.name))
                except InputError:
                    log.warning("%s: not a BIDS name, ignored", path)
                    continue
                if role is None:
                    continue
                if role in images:
                    log.info("%s: several %s images, using %s", ses_dir.name, role, path.name)
                images[role] = path
                sidecars[role] = read_sidecar(path)
            if images:
                sessions.append(SessionInputs(subject, session, images, sidecars))
    if wanted is not None:
        missing = wanted - {s.subject for s in sessions}
        if missing:
            raise InputError(f"{root}: no images for participant(s) {', '.join(sorted(missing))}")
    return sessions
