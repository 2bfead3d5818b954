"""Augmentations (MONAI dictionary transforms on ``{"image": (C, X, Y, Z), "label": (3, X, Y, Z)}``,
the label's channels: the target dseg, the soft DAWM target and the preprocess tissue dseg)
chosen for the biases dawm must survive: orientation and positioning (flips, small affine), scanner
intensity differences (scale, shift, gamma), coil inhomogeneity (bias field), noise and blur, and 2D
clinical FLAIR (simulated thick slices: one channel averaged over 2-5 voxels along one random axis,
then linearly upsampled). Spatial transforms resample the label with nearest neighbour, so it stays
integer. Every pipeline ends with a centre crop from the sampled region to the patch size.

Domain randomisation for real clinical scans, in the spirit of SynthSeg (the simulator's contrasts
are not those of every hospital): each channel's intensities go through a random smooth monotone
transfer curve (:class:`RandMonotoneCurved`: tissue contrasts change, their order - and so a
lesion's hyperintensity on FLAIR - stays), the contrast of lesions and DAWM to the surrounding
tissue is scaled by a random factor per class and channel (:class:`RandLabelContrastd`: on real
FLAIR a lesion stood about 1.4 brain SDs above white matter, on the simulator's 2.0-2.6), so is the
contrast of grey matter and CSF to white matter (:class:`RandTissueContrastd`, with the preprocess
tissue classes: deep and cortical grey matter of a real FLAIR need not stand where the simulator's
do, and must not be taken for lesions when they do not; the deep grey nuclei, from the template,
get a random offset to WM of up to 1.5 brain SDs either way), every channel can get its own thick slices (2D
acquisitions of both T1w and FLAIR), and the scale range reaches real brain sizes (simulated heads
are MNI-sized, 1.8-2.3 L; real adult brains 1.1-1.6 L, a linear factor down to about 0.8).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

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
    Randomizable,
    RandScaleIntensityd,
    RandShiftIntensityd,
)
from scipy import ndimage


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


class RandMonotoneCurved(Randomizable, MapTransform):
    """With probability ``prob`` per channel, map the (brain z-scored) intensities through a random
    monotone piecewise-linear curve: knots at z = -3..3, each moved by N(0, ``sd``) and sorted, the
    ends extrapolated linearly. Zero voxels (outside the brain, a dropped channel) stay zero."""

    KNOTS = np.linspace(-3.0, 3.0, 7)

    def __init__(self, keys: Sequence[str], prob: float = 0.5, sd: float = 0.35) -> None:
        MapTransform.__init__(self, keys)
        self.prob, self.sd = prob, sd

    def curve(self) -> np.ndarray | None:
        """Random knot values (7,) or None (no change) for one channel."""
        if self.R.rand() >= self.prob:
            return None
        return np.sort(self.KNOTS + self.R.normal(0.0, self.sd, self.KNOTS.size))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.keys:
            img = torch.as_tensor(d[key]).clone()
            for c in range(img.shape[0]):
                values = self.curve()
                if values is None:
                    continue
                x = img[c].float()
                inside = x != 0
                xp, fp = torch.as_tensor(self.KNOTS, dtype=x.dtype), torch.as_tensor(values, dtype=x.dtype)
                idx = torch.clamp(torch.bucketize(x, xp) - 1, 0, len(xp) - 2)
                slope = (fp[idx + 1] - fp[idx]) / (xp[idx + 1] - xp[idx])
                y = fp[idx] + slope * (x - xp[idx])
                img[c] = torch.where(inside, y, x).to(img.dtype)
            d[key] = img
        return d


class RandLabelContrastd(Randomizable, MapTransform):
    """With probability ``prob`` per channel, scale the contrast of each pathology class of the
    label (1 lesion, 2 DAWM) to the patch's normal tissue by a random factor in ``factors``:
    ``x + (a - 1) * w * (x - m)``, with ``m`` the channel's median over normal brain voxels of the
    patch and ``w`` the class mask smoothed by a Gaussian of ``sigma`` voxels (no artificial edge).
    As SynthSeg draws intensities per label, so the network does not learn one lesion contrast."""

    def __init__(
        self, image_key: str, label_key: str, prob: float = 0.5, factors: tuple[float, float] = (0.4, 1.3), sigma: float = 1.0
    ) -> None:
        MapTransform.__init__(self, (image_key,))
        self.image_key, self.label_key, self.prob, self.factors, self.sigma = image_key, label_key, prob, factors, sigma

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        img = torch.as_tensor(d[self.image_key]).clone()
        label = torch.as_tensor(d[self.label_key])[0]
        normal = (label == 0) & (img != 0).all(dim=0)
        for cls in (1, 2):
            present = label == cls
            if not present.any() or not normal.any():
                continue
            w = torch.from_numpy(ndimage.gaussian_filter(present.numpy().astype(np.float32), self.sigma)).to(img.dtype)
            for c in range(img.shape[0]):
                if self.R.rand() >= self.prob or not (img[c] != 0).any():
                    continue
                a = float(self.R.uniform(*self.factors))
                m = img[c][normal].median()
                img[c] = torch.where(img[c] != 0, img[c] + (a - 1.0) * w * (img[c] - m), img[c])
        d[self.image_key] = img
        return d


class RandTissueContrastd(Randomizable, MapTransform):
    """With probability ``prob`` per channel, scale the contrast of CSF and grey matter to white
    matter by a random factor in ``factors`` each: ``x + (a - 1) * w * (x - m)``, with ``m`` the
    channel's median over the patch's normal WM and ``w`` the tissue's normal voxels (label 0)
    smoothed by a Gaussian of ``sigma`` voxels; and move the deep grey nuclei by a random offset
    in ``deep_offsets`` (units of the channel's brain SD, the images being z-scored):
    ``x + b * w``. Tissues come from channel ``tissue_channel`` of ``label_key`` (1 CSF, 2 GM,
    3 WM, 4 deep GM: :func:`dawm.model.cache.tissue_classes`); lesions and DAWM are left to
    :class:`RandLabelContrastd`. SynthSeg's random intensity per label, kept within a factor so
    that tissue order survives - except for the deep nuclei: the simulator renders them within
    a few % of WM on FLAIR, while on clinical FLAIR (TI, TE, iron) they can stand well above WM,
    where a model that never saw them so calls them lesions or DAWM; a scale of their small
    difference to WM could not move them there."""

    def __init__(
        self,
        image_key: str,
        label_key: str,
        prob: float = 0.5,
        factors: tuple[float, float] = (0.6, 1.6),
        sigma: float = 1.0,
        tissue_channel: int = 2,
        deep_offsets: tuple[float, float] = (-1.5, 1.5),
    ) -> None:
        MapTransform.__init__(self, (image_key,))
        self.image_key, self.label_key, self.prob, self.factors = image_key, label_key, prob, factors
        self.sigma, self.tissue_channel, self.deep_offsets = sigma, tissue_channel, deep_offsets

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        label = torch.as_tensor(d[self.label_key])
        if label.shape[0] <= self.tissue_channel:
            return d
        img = torch.as_tensor(d[self.image_key]).clone()
        chosen = [c for c in range(img.shape[0]) if self.R.rand() < self.prob and bool((img[c] != 0).any())]
        tissue, normal = torch.round(label[self.tissue_channel]), label[0] == 0
        wm = (tissue == 3) & normal & (img != 0).all(dim=0)
        if not chosen or not wm.any():
            return d
        weights = {
            t: torch.from_numpy(ndimage.gaussian_filter(((tissue == t) & normal).numpy().astype(np.float32), self.sigma)).to(img.dtype)
            for t in (1, 2, 4)
            if ((tissue == t) & normal).any()
        }
        for c in chosen:
            m = img[c][wm].median()
            x = img[c]
            for t, w in weights.items():
                if t == 4:
                    b = float(self.R.uniform(*self.deep_offsets))
                    x = torch.where(img[c] != 0, x + b * w, x)
                else:
                    a = float(self.R.uniform(*self.factors))
                    x = torch.where(img[c] != 0, x + (a - 1.0) * w * (img[c] - m), x)
            img[c] = x
        d[self.image_key] = img
        return d


def training_transforms(patch_size: Sequence[int], *, enabled: bool = True, domain_randomization: bool = True) -> Compose:
    """The training pipeline: augmentations (when ``enabled``) then a centre crop to ``patch_size``.

    ``domain_randomization`` adds the randomisation for real clinical contrasts (the module
    docstring); without it the milder simulator-only pipeline runs (rotations, scale 0.9-1.1, one
    thick-slice channel). Expects the region from :class:`dawm.model.sampling.PatchSampler`.
    """
    crop = CenterSpatialCropd(keys=("image", "label"), roi_size=tuple(patch_size))
    if not enabled:
        return Compose([crop])
    both = ("image", "label")
    geometry = dict(prob=0.5, scale_range=(0.3, 0.3, 0.3)) if domain_randomization else dict(prob=0.3, scale_range=(0.1, 0.1, 0.1))
    randomised = (
        [
            RandLabelContrastd("image", "label", prob=0.5),
            RandTissueContrastd("image", "label", prob=0.5),
            RandMonotoneCurved(("image",), prob=0.5),
            RandThickSliced(("image",), prob=0.3),
            RandThickSliced(("image",), prob=0.3),
        ]
        if domain_randomization
        else [RandThickSliced(("image",), prob=0.2)]
    )
    return Compose([
        RandFlipd(both, prob=0.5, spatial_axis=0),
        RandFlipd(both, prob=0.2, spatial_axis=1),
        RandFlipd(both, prob=0.2, spatial_axis=2),
        RandAffined(both, rotate_range=(0.26, 0.26, 0.26), mode=("bilinear", "nearest"), padding_mode="zeros", **geometry),
        crop,
        RandScaleIntensityd("image", factors=0.15, prob=0.3),
        RandShiftIntensityd("image", offsets=0.2, prob=0.3),
        RandAdjustContrastd("image", gamma=(0.7, 1.5), prob=0.3),
        RandBiasFieldd("image", coeff_range=(0.0, 0.15), prob=0.3),
        *randomised,
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


def augment_patch(
    transform: Compose, image: np.ndarray, label: np.ndarray, seed: int, dawm: np.ndarray | None = None, tissue: np.ndarray | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply ``transform`` with its random state set from ``seed`` (deterministic). ``image`` (C, *R)
    float32, ``label`` (*R) uint8, ``dawm`` (*R) the DAWM target 0-1 (default ``label == 2``),
    ``tissue`` (*R) the tissue dseg (default none: 0) -> tensors (C, *P) float32, (1, *P) int64 and
    (1, *P) float32 (the DAWM target). The DAWM target and the tissues ride along as label channels,
    so they get the label's flips, rotations and nearest-neighbour resampling."""
    transform.set_random_state(seed=int(seed) % (2**32))
    soft = (np.asarray(label) == 2) if dawm is None else np.asarray(dawm)
    tis = np.zeros(np.shape(label), np.float32) if tissue is None else np.asarray(tissue)
    stacked = np.stack([np.asarray(label, np.float32), soft.astype(np.float32), tis.astype(np.float32)])
    out = transform(
        {"image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), "label": torch.from_numpy(np.ascontiguousarray(stacked))}
    )
    img = torch.as_tensor(out["image"]).float()
    lab = torch.as_tensor(out["label"]).float()
    return (
        img.as_subclass(torch.Tensor),
        torch.round(lab[:1]).long().as_subclass(torch.Tensor),
        lab[1:2].clamp(0.0, 1.0).as_subclass(torch.Tensor),
    )
