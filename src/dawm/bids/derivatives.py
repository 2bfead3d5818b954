"""Write BIDS derivative folders: ``dataset_description.json`` with GeneratedBy, atomic text files,
segmentation look-up tables (``_dseg.tsv``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

import dawm
from dawm.atomic import atomic_target

BIDS_VERSION = "1.9.0"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    with atomic_target(path) as tmp:
        tmp.write_text(text)
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomic, stable JSON (sorted keys, indented, trailing newline)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_tsv(path: str | Path, table: pd.DataFrame) -> Path:
    """Atomic TSV with BIDS conventions: tab separated, ``n/a`` for missing values."""
    return atomic_write_text(path, table.to_csv(sep="\t", index=False, na_rep="n/a", float_format="%.6g"))


def write_dseg_tsv(path: str | Path, labels: Mapping[int, str]) -> Path:
    """The look-up table of a ``_dseg`` image: columns ``index`` and ``name``."""
    table = pd.DataFrame({"index": list(labels.keys()), "name": list(labels.values())})
    return write_tsv(path, table)


def init_derivative(
    root: str | Path,
    *,
    name: str,
    description: str,
    source: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Create ``root`` with its ``dataset_description.json`` (DatasetType derivative, GeneratedBy
    dawm and its version). ``source`` (a URL or a path relative to ``root``, e.g. ``"../.."``) is
    recorded as SourceDatasets. Idempotent: rewrites the same content on a re-run."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    desc: dict[str, Any] = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "dawm", "Version": dawm.__version__, "Description": description}],
    }
    if source is not None:
        desc["SourceDatasets"] = [{"URL": str(source)}]
    if extra:
        desc.update(extra)
    write_json(root / "dataset_description.json", desc)
    return root


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
