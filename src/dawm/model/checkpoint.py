"""Checkpoints with everything an exact resume needs: model, optimizer, scheduler, epoch, early-
stopping state and the RNG states (Python, NumPy, torch CPU and CUDA). Written atomically.

Every file holds tensors, numbers, strings, ``None`` and containers only (NumPy's RNG state is
stored with its key array as a tensor), so both ``last.pt`` (resume, :func:`load_checkpoint`) and
``best.pt`` (inference, written with ``rng=False``) are read with ``torch.load(weights_only=True)``
(:func:`load_weights_only`): a checkpoint that needs pickle - one that could run code - is refused
with an ``InputError`` naming the file."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dawm.atomic import atomic_target
from dawm.errors import InputError


def load_weights_only(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; ``InputError`` naming ``path`` when the file holds
    Python objects other than tensors, numbers, strings and containers (it would need pickle) or is
    not a readable PyTorch file."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        # torch's reason is one line after "WeightsUnpickler error:", among advice on how to unpickle anyway
        text = (str(exc) or type(exc).__name__).split("WeightsUnpickler error:")[-1]
        why = next(ln for ln in text.splitlines() + [type(exc).__name__] if ln.strip()).split(". Please")[0].strip()
        if "Unsupported global" in why:
            raise InputError(
                f"{path}: refused, it holds Python objects other than tensors and numbers ({why}); dawm loads weights only, without pickle"
            ) from None
        raise InputError(f"{path}: not a readable PyTorch weights file ({why})") from None


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and/or ``torch.compile`` wrappers (for portable state dicts)."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states, in types that weights-only loading accepts."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    states = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(np.asarray(key, np.int64)), int(pos), int(has_gauss), float(gauss)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    python = states["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    kind, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.asarray(key, dtype=np.int64).astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    path: str | Path, *, model: torch.nn.Module, optimizer=None, scheduler=None, epoch: int, state: dict | None = None, rng: bool = True
) -> Path:
    """Write ``path`` (``epoch`` = number of completed epochs; ``state``: e.g. best Dice, bad epochs;
    ``rng``: include the RNG states, needed to resume, not to predict)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch, "state": state or {},
    }  # fmt: skip
    if rng:
        payload["rng"] = rng_states()
    with atomic_target(path, ".pt") as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer=None,
    scheduler=None,
    restore_rng: bool = True,
    map_location: str | torch.device = "cpu",
) -> dict:
    """Restore what :func:`save_checkpoint` wrote into the given objects; returns the payload."""
    payload = load_weights_only(path, map_location)
    unwrap(model).load_state_dict(payload["model"])
    if optimizer is not None and payload["optimizer"] is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if restore_rng:
        set_rng_states(payload["rng"])
    return payload
