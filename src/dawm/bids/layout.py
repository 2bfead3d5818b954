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


class SessionKey:
    """Naming shared by everything that stands for one subject/session (needs ``subject``, ``session``)."""

    subject: str
    session: str | None

    @property
    def key(self) -> str:
        """``sub-X_ses-Y`` (or ``sub-X`` without sessions)."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    def base(self) -> BidsName:
        """A BidsName with this session's sub/ses entities, to derive output names from."""
        ent = {"sub": self.subject}
        if self.session:
            ent["ses"] = self.session
        return BidsName(entities=ent, suffix="", extension=".nii.gz")


@dataclass(frozen=True)
class SessionInputs(SessionKey):
    """The raw images of one subject/session: ``images[role] -> path`` and their JSON sidecars."""

    subject: str
    session: str | None
    images: dict[str, Path] = field(default_factory=dict)
    sidecars: dict[str, dict] = field(default_factory=dict)


def read_sidecar(image_path: Path) -> dict:
    """The JSON sidecar next to an image ({} when absent); ``InputError`` when it is not JSON."""
    name = image_path.name
    stem = name[: -len(".nii.gz")] if name.endswith(".nii.gz") else image_path.stem
    sidecar = image_path.with_name(stem + ".json")
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
    if not (root / "dataset_description.json").exists():
        raise InputError(f"{root}: not a BIDS dataset (no dataset_description.json)")
    wanted = {p.removeprefix("sub-") for p in participant_label} if participant_label else None
    sessions: list[SessionInputs] = []
    for sub_dir in sorted(root.glob("sub-*")):
        if not sub_dir.is_dir():
            continue
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
