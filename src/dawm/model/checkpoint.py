"""Checkpoints with everything an exact resume needs: model, optimizer, scheduler, epoch, early-
stopping state and the RNG states (Python, NumPy, torch CPU and CUDA). Written atomically.

``last.pt`` (resume) holds it all and is read back with pickle (:func:`load_checkpoint`: only a
run's own files). ``best.pt`` (inference) is written with ``rng=False``: tensors, numbers and
``None`` only, so that :func:`dawm.model.inference.load_model` reads it with
``torch.load(weights_only=True)`` (NumPy's RNG state is an array that weights-only loading refuses)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dawm.atomic import atomic_target


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and/or ``torch.compile`` wrappers (for portable state dicts)."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def rng_states() -> dict[str, Any]:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer=None, scheduler=None, epoch: int, state: dict | None = None,
                    rng: bool = True) -> Path:
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


def load_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer=None, scheduler=None, restore_rng: bool = True,
                    map_location: str | torch.device = "cpu") -> dict:
    """Restore what :func:`save_checkpoint` wrote into the given objects; returns the payload."""
    payload = torch.load(path, map_location=map_location, weights_only=False)
    unwrap(model).load_state_dict(payload["model"])
    if optimizer is not None and payload["optimizer"] is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    if restore_rng:
        set_rng_states(payload["rng"])
    return payload
