"""Whole-volume inference by Gaussian-weighted sliding windows, on the brain's bounding box only."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
from monai.inferers import sliding_window_inference


def brain_box(brain: np.ndarray, margin: int = 4) -> tuple[slice, slice, slice]:
    """Slices of the bounding box of ``brain`` (X, Y, Z) grown by ``margin`` voxels (whole volume if empty)."""
    idx = np.argwhere(np.asarray(brain))
    if idx.size == 0:
        return tuple(slice(0, n) for n in brain.shape)  # type: ignore[return-value]
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, brain.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def sliding_window_logits(
    net: torch.nn.Module, image: torch.Tensor, roi_size: Sequence[int], *, sw_batch_size: int = 2, overlap: float = 0.5, amp: bool = False
) -> torch.Tensor:
    """Logits (1, K, X, Y, Z) float32 of ``image`` (1, C, X, Y, Z)."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and image.is_cuda):
        out = sliding_window_inference(
            image,
            roi_size=tuple(roi_size),
            sw_batch_size=sw_batch_size,
            predictor=net,
            overlap=overlap,
            mode="gaussian",
            padding_mode="constant",
        )
    return torch.as_tensor(out).float()


@torch.no_grad()
def segment_volume(
    nets: Sequence[torch.nn.Module],
    image: np.ndarray,
    brain: np.ndarray,
    roi_size: Sequence[int],
    *,
    device: torch.device = torch.device("cpu"),
    tta: bool = False,
    sw_batch_size: int = 2,
    overlap: float = 0.5,
) -> np.ndarray:
    """Mean softmax (K, X, Y, Z) float32 over ``nets`` (and the 7 mirrored copies with ``tta``) of
    ``image`` (C, X, Y, Z), computed on the brain's bounding box; outside it the result is class 0."""
    box = brain_box(brain)
    x = torch.from_numpy(np.ascontiguousarray(image[(slice(None), *box)]))[None].to(device)
    flips = [()] + ([f for r in (1, 2, 3) for f in itertools.combinations((2, 3, 4), r)] if tta else [])
    amp = device.type == "cuda"
    total = None
    for net in nets:
        net.eval()
        for axes in flips:
            inp = torch.flip(x, axes) if axes else x
            p = torch.softmax(sliding_window_logits(net, inp, roi_size, sw_batch_size=sw_batch_size, overlap=overlap, amp=amp), dim=1)
            p = torch.flip(p, axes) if axes else p
            total = p if total is None else total + p
    probs_box = (total / (len(nets) * len(flips)))[0].cpu().numpy()
    out = np.zeros((probs_box.shape[0], *brain.shape), np.float32)
    out[0] = 1.0
    out[(slice(None), *box)] = probs_box
    return out
