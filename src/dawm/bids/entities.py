"""Parse and build BIDS file names (``sub-01_ses-01_inv-1_part-mag_MP2RAGE.nii.gz``).

Entities are written in the order the BIDS specification fixes, whatever order they are given in,
so every stage names files the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from dawm.errors import InputError

#: Entity order of the BIDS specification (appendix "Entity table"), the subset dawm meets.
ENTITY_ORDER = (
    "sub",
    "ses",
    "task",
    "acq",
    "ce",
    "rec",
    "dir",
    "run",
    "echo",
    "flip",
    "inv",
    "mt",
    "part",
    "space",
    "res",
    "den",
    "label",
    "from",
    "to",
    "mode",
    "desc",
)
_LABEL = re.compile(r"^[A-Za-z0-9]+$")
_EXTENSIONS = (".nii.gz", ".nii", ".json", ".tsv", ".h5", ".txt", ".png", ".html", ".mat")


@dataclass(frozen=True)
class BidsName:
    """A BIDS file name: ``entities`` (ordered dict-like), ``suffix`` and ``extension``."""

    entities: dict[str, str] = field(default_factory=dict)
    suffix: str = ""
    extension: str = ".nii.gz"

    def __post_init__(self) -> None:
        for key, value in self.entities.items():
            if key not in ENTITY_ORDER:
                raise InputError(f"unknown BIDS entity '{key}'")
            if not _LABEL.match(str(value)):
                raise InputError(f"BIDS label '{key}-{value}' must be alphanumeric")

    @property
    def filename(self) -> str:
        ordered = [f"{k}-{self.entities[k]}" for k in ENTITY_ORDER if k in self.entities]
        return "_".join(ordered + [self.suffix]) + self.extension

    def with_(self, *, suffix: str | None = None, extension: str | None = None, **entities: str | None) -> BidsName:
        """A copy with entities added, changed or (value ``None``) removed."""
        merged = dict(self.entities)
        for key, value in entities.items():
            key = key.rstrip("_")  # allow from_=... since 'from' is a keyword
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = str(value)
        return replace(
            self,
            entities=merged,
            suffix=self.suffix if suffix is None else suffix,
            extension=self.extension if extension is None else extension,
        )

    def subject_dir(self) -> str:
        """Relative folder ``sub-X[/ses-Y]/anat``."""
        parts = [f"sub-{self.entities['sub']}"]
        if "ses" in self.entities:
            parts.append(f"ses-{self.entities['ses']}")
        return "/".join(parts + ["anat"])

    @property
    def relpath(self) -> str:
        return f"{self.subject_dir()}/{self.filename}"


def parse_name(filename: str) -> BidsName:
    """Split a BIDS file name into entities, suffix and extension; ``InputError`` if it is not one."""
    name = filename.rsplit("/", 1)[-1]
    extension = next((e for e in _EXTENSIONS if name.endswith(e)), None)
    if extension is None:
        raise InputError(f"{filename}: unknown file extension")
    stem = name[: -len(extension)]
    parts = stem.split("_")
    entities: dict[str, str] = {}
    for part in parts[:-1]:
        if "-" not in part:
            raise InputError(f"{filename}: '{part}' is not a key-value entity")
        key, value = part.split("-", 1)
        entities[key] = value
    if "sub" not in entities:
        raise InputError(f"{filename}: no sub- entity")
    return BidsName(entities=entities, suffix=parts[-1], extension=extension)
