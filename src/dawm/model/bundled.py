"""The model shipped inside the dawm package, and :func:`export_model`, which makes such a copy.

:data:`BUNDLED_MODEL_DIR` (``dawm/model/weights/default/``, package data) holds ``model.json`` and
``fold-K/best.pt``; ``dawm predict`` uses it when no ``--model`` is given. It is made from a
trained model folder with ``dawm export-model MODEL_DIR src/dawm/model/weights/default``: the
folder's ``model.json`` (plus ``exported_from``, the trained folder's name, and ``bundled: true``) and, per fold, only the
network's state dict (float16 by default, read back as float32 by
:func:`dawm.model.inference.read_weights`); no optimizer, scheduler, RNG state, cache or logs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dawm.atomic import atomic_target
from dawm.errors import InputError
from dawm.model.inference import read_weights
from dawm.model.modeldir import MODEL_JSON, check_version, fold_dir, read_model_json, trained_folds, write_model_json

#: The bundled model folder (package data; absent until weights are shipped).
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "default"
#: Largest export: the weights of every exported fold together, in bytes (50 MB).
MAX_EXPORT_BYTES = 50_000_000


def bundled_model_dir() -> Path:
    """:data:`BUNDLED_MODEL_DIR`; ``InputError`` when this installation ships no model there."""
    if not (BUNDLED_MODEL_DIR / MODEL_JSON).exists():
        raise InputError(f"no bundled model in this installation ({BUNDLED_MODEL_DIR} has no {MODEL_JSON}); pass --model")
    return BUNDLED_MODEL_DIR


def export_model(model_dir: str | Path, dest: str | Path, folds: list[int] | None = None, half: bool = True) -> Path:
    """Write a slim, weights-only copy of the trained model folder ``model_dir`` into ``dest``
    (created; an earlier export there is replaced) and return ``dest``.

    ``folds``: the folds to keep (default every trained one); ``half``: store float16 (half the
    size; the network runs in float32 after loading). ``InputError`` when the weights would exceed
    :data:`MAX_EXPORT_BYTES`, do not fit float16, or ``dest`` is a training folder.
    """
    model_dir, dest = Path(model_dir), Path(dest)
    info = read_model_json(model_dir)
    check_version(info, model_dir)
    folds = trained_folds(model_dir, folds)
    if dest.resolve() == model_dir.resolve() or ((dest / MODEL_JSON).exists() and not read_model_json(dest).get("bundled")):
        raise InputError(f"{dest}: holds a trained model folder; export into a new folder (or over an earlier export)")
    dtype = torch.float16 if half else torch.float32
    states = {}
    for k in folds:
        states[k] = {n: v.to(dtype) if v.is_floating_point() else v for n, v in read_weights(fold_dir(model_dir, k) / "best.pt").items()}
        if not all(torch.isfinite(v).all() for v in states[k].values() if v.is_floating_point()):
            raise InputError(f"{fold_dir(model_dir, k) / 'best.pt'}: weights out of float16 range; export with --no-half")
    size = sum(v.numel() * v.element_size() for s in states.values() for v in s.values())
    if size > MAX_EXPORT_BYTES:
        raise InputError(
            f"{model_dir}: {size / 1e6:.0f} MB of weights for fold(s) {folds}, more than the "
            f"{MAX_EXPORT_BYTES / 1e6:.0f} MB a bundled model may hold; export fewer folds (--folds 0)" + ("" if half else " or in float16")
        )
    for old in dest.glob("fold-*/best.pt"):  # an earlier export's folds that this one leaves out
        if old.parent.name not in {fold_dir(dest, k).name for k in folds}:
            old.unlink()
    for k, state in states.items():
        with atomic_target(fold_dir(dest, k) / "best.pt", ".pt") as tmp:
            torch.save({"model": state}, tmp)
    kept = {str(k): info["folds"][str(k)] for k in folds if str(k) in info.get("folds", {})}
    write_model_json(
        dest,
        {
            **info,
            "folds": kept,
            "exported_from": model_dir.resolve().name,
            "bundled": True,
            "weights_dtype": str(dtype).removeprefix("torch."),
        },
    )
    return dest
