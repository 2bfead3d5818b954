"""The self-describing model folder.

``model.json`` says everything inference needs without the training data: inputs (channel order),
channel normalisation, patch size, label map, preset, dawm version, the full config, the split, the
data fingerprint, the preprocess config of the training data (so prediction preprocesses new data
the same way), the git commit when known, and per fold its best epoch and validation Dice. Beside
it: ``split.json``, ``log.csv`` and ``fold-K/{best,last}.pt``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dawm
from dawm.bids.derivatives import write_json
from dawm.errors import InputError

MODEL_JSON = "model.json"


def fold_dir(model_dir: str | Path, fold: int) -> Path:
    return Path(model_dir) / f"fold-{fold}"


def trained_folds(model_dir: str | Path, folds: list[int] | None = None) -> list[int]:
    """``folds`` (default: every fold of ``model_dir`` that has a ``fold-K/best.pt``, in order);
    ``InputError`` when none has weights or one of ``folds`` has none."""
    available = sorted(
        int(p.parent.name.split("-")[1]) for p in Path(model_dir).glob("fold-*/best.pt") if p.parent.name.split("-")[1].isdigit()
    )
    folds = available if folds is None else list(folds)
    absent = [k for k in folds if k not in available]
    if not folds or absent:
        raise InputError(f"{model_dir}: no trained weights for fold(s) {absent or 'any'} (fold-K/best.pt)")
    return folds


def git_commit() -> str | None:
    """The commit of the dawm source tree when it is a git checkout (read-only query), else None."""
    src = Path(dawm.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_model_json(model_dir: str | Path, info: dict) -> Path:
    return write_json(Path(model_dir) / MODEL_JSON, info)


def read_model_json(model_dir: str | Path) -> dict:
    """``model.json`` of ``model_dir``; ``InputError`` when it is not a dawm model folder."""
    path = Path(model_dir) / MODEL_JSON
    if not path.exists():
        raise InputError(f"{model_dir}: not a dawm model folder (no {MODEL_JSON}; train one with `dawm train`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: invalid JSON ({exc})") from None


def major(version: str) -> str:
    """Compatibility key of a version: the major number, or ``0.minor`` before 1.0 (semver)."""
    parts = str(version).split(".")
    return parts[0] if parts[0] != "0" else ".".join(parts[:2])


def check_version(info: dict, model_dir: str | Path) -> None:
    """Refuse a model written by an incompatible dawm version."""
    theirs = info.get("dawm_version", "?")
    if major(theirs) != major(dawm.__version__):
        raise InputError(
            f"{model_dir}: model trained with dawm {theirs}, incompatible with this dawm {dawm.__version__} "
            "(retrain it, or install the dawm version it names)"
        )
