"""Inference of a trained dawm model on session-grid images.

:func:`load_model` reads a model folder (refusing an incompatible dawm version), one network per
fold (``best.pt``: a training checkpoint, or the float16 copy of :func:`dawm.model.bundled.export_model`),
with ``torch.load(weights_only=True)`` (:func:`read_weights`): a file that needs pickle to load is
refused, so a model folder from elsewhere cannot run code. :func:`predict_probabilities` normalises the channels as in training
(:func:`dawm.model.cache.normalise`), reorders the voxels to the canonical (closest RAS) order the
network was trained in - so the result does not depend on the storage orientation of the input -
runs a Gaussian-weighted sliding window (overlap 0.5), optionally averages the 7 mirrored copies
(test-time augmentation), averages the softmax over folds, and returns probabilities in the input's
voxel order. A missing modality is fed as a zeroed channel when the model was trained with modality
dropout; otherwise, or when every modality is missing, an ``InputError`` says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dawm.errors import InputError
from dawm.image.orientation import from_canonical, to_canonical
from dawm.model import LABELS
from dawm.model.cache import normalise
from dawm.model.checkpoint import load_weights_only
from dawm.model.config import TrainConfig
from dawm.model.modeldir import check_version, fold_dir, read_model_json, trained_folds
from dawm.model.networks import build_network
from dawm.model.window import segment_volume

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A model folder ready for inference: ``info`` (model.json), one network per fold in ``nets``,
    input ``suffixes`` in channel order (``T1w``, ``FLAIR``), ``patch_size``, the sliding-window
    ``roi_size``, ``dropout`` (the modality-dropout probability it was trained with) and
    ``dawm_threshold`` (the DAWM probability threshold calibrated on validation data, None for a
    model folder that has none: argmax, see :mod:`dawm.model.decision`)."""

    info: dict
    nets: list[torch.nn.Module]
    folds: list[int]
    suffixes: list[str]
    patch_size: tuple[int, int, int]
    roi_size: tuple[int, int, int]
    dropout: float
    device: torch.device
    dawm_threshold: float | None = None

    def missing_inputs(self, available: set[str] | list[str]) -> list[str]:
        """The model's inputs absent from ``available``; ``InputError`` when the model cannot run
        without them (no modality dropout in training, or nothing left)."""
        missing = [s for s in self.suffixes if s not in set(available)]
        if not missing:
            return []
        if len(missing) == len(self.suffixes):
            raise InputError(f"the model needs {' + '.join(self.suffixes)}; the data has none of them")
        if self.dropout <= 0:
            raise InputError(
                f"the model needs {' + '.join(self.suffixes)} and was trained without modality dropout; "
                f"the data lacks {', '.join(missing)} (use a model trained on the available inputs)"
            )
        accuracy = self.input_accuracy([s for s in self.suffixes if s not in missing])
        measured = (
            f"; its lesion Dice from {accuracy['inputs']} was {accuracy['lesion_dice']:g} "
            f"({accuracy['lesion_dice_all_inputs']:g} from {' + '.join(self.suffixes)}) on simulated sessions it never saw"
            if accuracy
            else ""
        )
        log.warning("no %s: using the model's missing-modality path (zeroed channel, seen in training)%s", ", ".join(missing), measured)
        return missing

    def input_accuracy(self, used: list[str]) -> dict | None:
        """What ``model.json``'s ``input_accuracy`` (written by ``benchmarks/simulated_test.py
        --record``) measured for the input set ``used`` (suffixes): ``{"inputs": "T1w", "lesion_dice":
        ..., "lesion_dice_all_inputs": ..., "source": ...}``; None when the model has no such record.
        Lesion Dice is pooled over the sessions, against the simulator's truth."""
        record = self.info.get("input_accuracy") or {}
        dice = record.get("lesion_dice") or {}
        name, full = "+".join(s for s in self.suffixes if s in used), "+".join(self.suffixes)
        if name not in dice or full not in dice:
            return None
        return {"inputs": name, "lesion_dice": dice[name], "lesion_dice_all_inputs": dice[full], "source": record.get("source")}


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The network state dict of a ``fold-K/best.pt`` (its ``"model"`` entry), floating tensors as
    float32 (exported copies store float16), deep-supervision heads (training only) left out.

    Read with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only.
    ``InputError`` naming ``path`` when the file needs pickle (any other Python object) or is
    not a PyTorch file holding a state dict."""
    payload = load_weights_only(path)
    state = payload.get("model") if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: no network state dict in it (a dawm fold-K/best.pt holds one under 'model')")
    return {
        k: v.float() if v.is_floating_point() else v
        for k, v in state.items()
        if not k.startswith("deep_supervision") and "deep_supervision_heads" not in k
    }


def load_model(model_dir: str | Path, *, folds: list[int] | None = None, device: str | torch.device | None = None) -> LoadedModel:
    """Load the folds' ``best.pt`` (default every fold that has one) from a folder made by
    ``dawm train`` or ``dawm export-model``; see :func:`read_weights`."""
    model_dir = Path(model_dir)
    info = read_model_json(model_dir)
    check_version(info, model_dir)
    config = TrainConfig.model_validate(info["config"])
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    folds = trained_folds(model_dir, folds)
    nets = []
    for k in folds:
        net = build_network(config.preset, len(info["inputs"]), len(LABELS), deep_supervision=False)
        state = read_weights(fold_dir(model_dir, k) / "best.pt")
        net.load_state_dict(state, strict=False) if config.deep_supervision else net.load_state_dict(state)
        nets.append(net.to(dev).eval())
    return LoadedModel(
        info=info,
        nets=nets,
        folds=folds,
        suffixes=list(info["input_suffixes"]),
        patch_size=tuple(info["patch_size"]),
        roi_size=tuple(info.get("inference_roi", info["patch_size"])),
        dropout=float(info.get("modality_dropout", 0.0)),
        device=dev,
        dawm_threshold=info.get("dawm_threshold"),
    )


@torch.no_grad()
def predict_probabilities(
    model: LoadedModel, images: dict[str, np.ndarray], brain: np.ndarray, affine: np.ndarray, *, tta: bool = False, sw_batch_size: int = 2
) -> np.ndarray:
    """Class probabilities (K, X, Y, Z) float32 of one session.

    ``images``: suffix -> (X, Y, Z) array on the session grid (``affine``); ``brain`` (X, Y, Z)
    bool. Outside the brain the result is [1, 0, 0] (normal).
    """
    model.missing_inputs(set(images))
    brain = np.asarray(brain, bool)
    x = normalise([images.get(s) for s in model.suffixes], brain)
    xc, _ = to_canonical(x, affine)
    brain_c, _ = to_canonical(brain, affine)
    probs = segment_volume(model.nets, xc, brain_c, model.roi_size, device=model.device, tta=tta, sw_batch_size=sw_batch_size)
    probs = from_canonical(probs, affine)
    probs[:, ~brain] = 0.0
    probs[0, ~brain] = 1.0
    return probs
