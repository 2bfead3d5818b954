"""Augmentations (MONAI dictionary transforms on ``{"image": (C, X, Y, Z), "label": (1, X, Y, Z)}``)
chosen for the biases dawm must survive: orientation and positioning (flips, small affine), scanner
intensity differences (scale, shift, gamma), coil inhomogeneity (bias field), noise and blur, and 2D
clinical FLAIR (simulated thick slices: one channel averaged over 2-5 voxels along one random axis,
then linearly upsampled). Spatial transforms resample the label with nearest neighbour, so it stays
integer. Every pipeline ends with a centre crop from the sampled region to the patch size.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import (
    CenterSpatialCropd,
    Compose,
    MapTransform,
    RandAdjustContrastd,
    RandAffined,
    RandBiasFieldd,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Randomizable,
)


class RandThickSliced(Randomizable, MapTransform):
    """With probability ``prob``, one random channel of ``keys`` gets thick slices: averaged over
    blocks of ``factor`` (2..``max_factor``) voxels along a random axis and linearly upsampled back
    (like a 2D acquisition with thick slices resampled to the 3D grid). Shapes are unchanged."""

    def __init__(self, keys: Sequence[str], prob: float = 0.2, max_factor: int = 5) -> None:
        MapTransform.__init__(self, keys)
        self.prob, self.max_factor = prob, max_factor
        self._do, self._axis, self._factor, self._channel = False, 0, 2, 0

    def randomize(self, n_channels: int) -> None:
        self._do = self.R.rand() < self.prob
        self._axis = int(self.R.randint(3))
        self._factor = int(self.R.randint(2, self.max_factor + 1))
        self._channel = int(self.R.randint(n_channels))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        first = d[self.keys[0]]
        self.randomize(first.shape[0])
        if not self._do:
            return d
        for key in self.keys:
            img = torch.as_tensor(d[key])
            ch = img[self._channel].float()[None, None]  # (1, 1, X, Y, Z)
            size = list(ch.shape[2:])
            kernel = [1, 1, 1]
            kernel[self._axis] = self._factor
            low = F.avg_pool3d(ch, kernel_size=kernel, stride=kernel, ceil_mode=True)
            up = F.interpolate(low, size=size, mode="trilinear", align_corners=False)[0, 0]
            out = img.clone()
            out[self._channel] = up.to(out.dtype)
            d[key] = out
        return d


def training_transforms(patch_size: Sequence[int], *, enabled: bool = True) -> Compose:
    """The training pipeline: augmentations (when ``enabled``) then a centre crop to ``patch_size``.

    Expects the region from :class:`dawm.model.sampling.PatchSampler` (larger than the patch).
    """
    crop = CenterSpatialCropd(keys=("image", "label"), roi_size=tuple(patch_size))
    if not enabled:
        return Compose([crop])
    both = ("image", "label")
    return Compose([
        RandFlipd(both, prob=0.5, spatial_axis=0),
        RandFlipd(both, prob=0.2, spatial_axis=1),
        RandFlipd(both, prob=0.2, spatial_axis=2),
        RandAffined(both, prob=0.3, rotate_range=(0.26, 0.26, 0.26), scale_range=(0.1, 0.1, 0.1),
                    mode=("bilinear", "nearest"), padding_mode="zeros"),
        crop,
        RandScaleIntensityd("image", factors=0.15, prob=0.3),
        RandShiftIntensityd("image", offsets=0.2, prob=0.3),
        RandAdjustContrastd("image", gamma=(0.7, 1.5), prob=0.3),
        RandBiasFieldd("image", coeff_range=(0.0, 0.15), prob=0.3),
        RandThickSliced(("image",), prob=0.2),
        RandGaussianSmoothd("image", sigma_x=(0.25, 1.0), sigma_y=(0.25, 1.0), sigma_z=(0.25, 1.0), prob=0.15),
        RandGaussianNoised("image", std=0.1, prob=0.2),
    ])  # fmt: skip


def modality_dropout(image: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """With probability ``p``, zero one random channel of ``image`` (C, ...) (never all of them:
    a one-channel image is returned unchanged). A zeroed channel is what inference feeds for a
    missing modality."""
    if image.shape[0] < 2 or p <= 0 or rng.random() >= p:
        return image
    out = np.array(image, copy=True)
    out[int(rng.integers(image.shape[0]))] = 0.0
    return out


def augment_patch(transform: Compose, image: np.ndarray, label: np.ndarray, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``transform`` with its random state set from ``seed`` (deterministic). ``image`` (C, *R)
    float32, ``label`` (*R) uint8 -> tensors (C, *P) float32 and (1, *P) int64."""
    transform.set_random_state(seed=int(seed) % (2**32))
    out = transform({"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
                     "label": torch.from_numpy(np.ascontiguousarray(label[None], dtype=np.float32))})
    img = torch.as_tensor(out["image"]).float()
    lab = torch.round(torch.as_tensor(out["label"]).float()).long()
    return img.as_subclass(torch.Tensor), lab.as_subclass(torch.Tensor)
