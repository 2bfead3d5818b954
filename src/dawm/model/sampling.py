"""Class-aware, deterministic patch sampling from cached cases.

Each patch first draws a class with probabilities ``fractions`` (lesion, DAWM, anywhere in the
brain), then a case that has voxels of that class, then one of its voxels as the patch centre
(classes absent from every case fall back to "brain"). With ``lesion_sampling="lesion"`` a lesion
patch instead draws one lesion (26-connected component of the label) uniformly over every lesion of
every case, then a voxel in it: a 3-voxel lesion is then as often in a patch as a 300-voxel one,
where drawing voxels centres a patch on it a hundred times less often. Patch ``index`` of ``epoch``
depends only on ``(seed, epoch, index)``: the same on every run, worker and rank, which makes resume
exact and lets DDP ranks shard the indices like a ``DistributedSampler``.

The sampler returns a *region* larger than the training patch (``region_size``) so that rotations
and scaling in :mod:`dawm.model.augment` do not pull zeros into the patch; the augmentation ends
with a centre crop to the patch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dawm.image.components import components
from dawm.model.cache import CachedCase

CLASSES = ("lesion", "DAWM", "brain")
LESION_SAMPLING = ("voxel", "lesion")


def crop(array: np.ndarray, centre: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The box of ``size`` voxels centred on ``centre`` from ``array`` (..., X, Y, Z), zero-padded
    where it leaves the volume. Reads only the box (cheap on a memory map)."""
    spatial = array.shape[-3:]
    out = np.zeros(array.shape[:-3] + tuple(size), dtype=array.dtype)
    src, dst = [], []
    for c, s, n in zip(centre, size, spatial):
        lo = int(c) - s // 2
        a, b = max(lo, 0), min(lo + s, n)
        if b <= a:
            return out
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    out[(..., *dst)] = array[(..., *src)]
    return out


@dataclass(frozen=True)
class Patch:
    """``image`` (C, *region) float32, ``label`` (*region) uint8, ``dawm`` (*region) the DAWM
    target 0-1 (float16), ``tissue`` (*region) uint8 (1 CSF, 2 GM, 3 WM), the drawn ``kind`` (lesion, DAWM, brain), the ``case`` key and the
    ``centre`` voxel (canonical grid)."""

    image: np.ndarray
    label: np.ndarray
    dawm: np.ndarray
    tissue: np.ndarray
    kind: str
    case: str
    centre: tuple[int, int, int]


class PatchSampler:
    """Draws :class:`Patch` es of ``region_size`` voxels from ``cases`` (see the module docstring)."""

    def __init__(
        self,
        cases: Sequence[CachedCase],
        region_size: Sequence[int],
        *,
        fractions: Sequence[float] = (1 / 3, 1 / 3, 1 / 3),
        seed: int = 0,
        lesion_sampling: str = "voxel",
    ) -> None:
        if not cases:
            raise ValueError("PatchSampler needs at least one case")
        if lesion_sampling not in LESION_SAMPLING:
            raise ValueError(f"lesion_sampling must be one of {LESION_SAMPLING}, got {lesion_sampling!r}")
        self.cases = list(cases)
        self.region_size = tuple(int(s) for s in region_size)
        self.fractions = np.asarray(fractions, float) / float(np.sum(fractions))
        self.seed = seed
        self.lesion_sampling = lesion_sampling
        self._having = {k: [i for i, c in enumerate(self.cases) if len(c.locations.get(k, ())) > 0] for k in CLASSES}
        if not self._having["brain"]:
            raise ValueError("no case has brain voxels")
        self._lesion_weights = self._per_lesion_weights() if lesion_sampling == "lesion" else None

    def _per_lesion_weights(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """For lesion-wise sampling: the probability of each lesion case (its share of all lesions)
        and, per case, the probability of each lesion location (1 / its lesion's voxel count,
        normalised: every lesion of the case equally likely)."""
        counts, weights = [], []
        for ci in self._having["lesion"]:
            case = self.cases[ci]
            lab, n = components(np.asarray(case.label) == 1)
            locs = case.locations["lesion"]
            ids = lab[tuple(np.asarray(locs).T)]
            sizes = np.bincount(ids, minlength=n + 1).astype(float)  # sampled locations per lesion
            w = np.where(ids > 0, 1.0 / np.maximum(sizes[ids], 1.0), 0.0)
            if w.sum() == 0:  # locations off the label (cannot happen with a consistent cache): voxel-wise
                w = np.ones(len(locs))
            counts.append(max(int((sizes[1:] > 0).sum()), 1))
            weights.append(w / w.sum())
        counts = np.asarray(counts, float)
        return counts / counts.sum(), weights

    def available(self) -> dict[str, int]:
        """Number of cases holding each class."""
        return {k: len(v) for k, v in self._having.items()}

    def sample(self, index: int, epoch: int = 0) -> Patch:
        """Patch number ``index`` of ``epoch`` (deterministic)."""
        rng = np.random.default_rng([self.seed, epoch, index])
        kind = CLASSES[int(rng.choice(3, p=self.fractions))]
        if not self._having[kind]:
            kind = "brain"
        if kind == "lesion" and self._lesion_weights is not None:
            case_p, loc_p = self._lesion_weights
            j = int(rng.choice(len(case_p), p=case_p))
            case = self.cases[self._having["lesion"][j]]
            locs = case.locations[kind]
            centre = tuple(int(v) for v in locs[int(rng.choice(len(locs), p=loc_p[j]))])
        else:
            ci = self._having[kind][int(rng.integers(len(self._having[kind])))]
            case = self.cases[ci]
            locs = case.locations[kind]
            centre = tuple(int(v) for v in locs[int(rng.integers(len(locs)))])
        return Patch(
            crop(case.image, centre, self.region_size),
            crop(case.label, centre, self.region_size),
            crop(case.dawm, centre, self.region_size),
            crop(case.tissue, centre, self.region_size),
            kind,
            case.key,
            centre,
        )
