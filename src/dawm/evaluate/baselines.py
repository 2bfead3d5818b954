"""Baselines on the model's own inputs (T1w and/or FLAIR on the session grid), fit/predict objects.

Every DAWM table puts the model next to what a lab could do without it:

* :class:`FlairThreshold`: WM voxels whose FLAIR robust z (against the session's WM median and
  MAD) exceeds ``z_dawm`` are DAWM, above ``z_lesion`` lesion; the two thresholds are chosen on the
  training sessions (grid search, best mean of the pooled lesion and DAWM Dice).
* :class:`VoxelLogistic`: a multinomial logistic regression (L2, scikit-learn) of the label (normal,
  lesion, DAWM) on voxel features - each input's robust z against WM, raw and Gaussian-smoothed at
  ``sigmas_mm`` - fitted on a random sample of eligible voxels of the training sessions (natural
  class frequencies, so its probabilities sum to a volume), with the DAWM threshold calibrated on
  them as the model's is (:mod:`dawm.model.decision`).

Both label only eligible voxels: the dseg's WM plus the preprocess lesion candidates (``region``).
Sessions are :class:`BaselineSession` (arrays; :meth:`BaselineSession.from_case` is the one loader).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from dawm.bids.derivative_files import PreprocessFiles
from dawm.metrics import class_counts, pooled_dice
from dawm.model.decision import calibrate_dawm_threshold, labels_from_probabilities, threshold_counts


@dataclass(frozen=True)
class BaselineSession:
    """One session on its grid: ``images`` suffix (``T1w``/``FLAIR``) -> (X, Y, Z) float,
    ``dseg`` (X, Y, Z) 1 CSF 2 GM 3 WM, ``brain`` bool, ``candidates`` (bool, the preprocess lesion
    candidates, or None), ``spacing_mm`` (3,), ``target`` (X, Y, Z) 0/1/2 for fitting or None."""

    images: dict[str, np.ndarray]
    dseg: np.ndarray
    brain: np.ndarray
    spacing_mm: tuple[float, float, float]
    candidates: np.ndarray | None = None
    target: np.ndarray | None = None

    @classmethod
    def from_case(cls, case, target: str | Path | None = None) -> BaselineSession:
        """Load a preprocessed :class:`dawm.model.data.Case` (its T1w/FLAIR, dseg, brain mask and
        lesion candidates) and, when given, the target dseg at ``target`` (same grid)."""
        from dawm.image.io import load_volume

        def labels(path) -> np.ndarray:
            return np.rint(load_volume(path, allow_empty=True).data).astype(np.uint8)

        brain = load_volume(case.brain)
        cand = PreprocessFiles.of_file(case.preproc_log).lesion_mask(case)
        return cls(
            images={s: load_volume(p).data for s, p in case.images.items()},
            dseg=labels(case.dseg),
            brain=brain.data > 0.5,
            spacing_mm=tuple(brain.spacing_mm),
            candidates=labels(cand) > 0 if cand.exists() else None,
            target=labels(target) if target is not None else None,
        )

    @property
    def region(self) -> np.ndarray:
        """Eligible voxels (X, Y, Z) bool: WM of the dseg plus lesion candidates, inside the brain."""
        wm = np.asarray(self.dseg) == 3
        if self.candidates is not None:
            wm = wm | np.asarray(self.candidates, bool)
        return wm & np.asarray(self.brain, bool)


def robust_z(image: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """(X, Y, Z) float32: ``(image - median) / (1.4826 MAD)`` over the WM voxels ``wm``."""
    v = np.asarray(image, np.float64)[np.asarray(wm, bool)]
    if v.size == 0:
        return np.zeros(np.shape(image), np.float32)
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med))) + 1e-6
    return ((np.asarray(image, np.float64) - med) / mad).astype(np.float32)


class FlairThreshold:
    """FLAIR robust-z thresholds for DAWM and lesions, tuned on training sessions."""

    def __init__(
        self, z_dawm_grid: Sequence[float] = (1.0, 1.5, 2.0, 2.5, 3.0), z_lesion_grid: Sequence[float] = (3.0, 4.0, 5.0, 6.0, 8.0)
    ) -> None:
        self.z_dawm_grid, self.z_lesion_grid = tuple(z_dawm_grid), tuple(z_lesion_grid)
        self.z_dawm_: float | None = None
        self.z_lesion_: float | None = None
        self.score_: float | None = None  # the training sessions' mean of pooled lesion and DAWM Dice

    @staticmethod
    def _z(s: BaselineSession) -> np.ndarray:
        return robust_z(s.images["FLAIR"], np.asarray(s.dseg) == 3)

    @staticmethod
    def _labels(z: np.ndarray, region: np.ndarray, z_dawm: float, z_lesion: float) -> np.ndarray:
        out = np.zeros(z.shape, np.uint8)
        out[region & (z > z_dawm)] = 2
        out[region & (z > z_lesion)] = 1
        return out

    def fit(self, sessions: Sequence[BaselineSession]) -> FlairThreshold:
        zs = [(self._z(s), s.region, s.target) for s in sessions]
        best = (-1.0, self.z_dawm_grid[0], self.z_lesion_grid[0])
        for z_d in self.z_dawm_grid:
            for z_l in self.z_lesion_grid:
                if z_l <= z_d:
                    continue
                d = pooled_dice([class_counts(self._labels(z, r, z_d, z_l), t) for z, r, t in zs])
                score = float(np.nanmean([d[1], d[2]]))
                if score > best[0]:
                    best = (score, z_d, z_l)
        self.score_, self.z_dawm_, self.z_lesion_ = best
        return self

    def predict(self, session: BaselineSession) -> np.ndarray:
        """Label map (X, Y, Z) uint8 (0 normal, 1 lesion, 2 DAWM)."""
        if self.z_dawm_ is None:
            raise RuntimeError("fit the FlairThreshold first")
        return self._labels(self._z(session), session.region, self.z_dawm_, self.z_lesion_)


@dataclass
class VoxelLogistic:
    """Multinomial logistic regression on smoothed T1w/FLAIR voxel features (module docstring)."""

    inputs: tuple[str, ...] = ("T1w", "FLAIR")
    sigmas_mm: tuple[float, ...] = (0.0, 2.0, 4.0)
    voxels_per_session: int = 30000
    C: float = 1.0
    seed: int = 0
    model_: object = field(default=None, repr=False)
    mean_: np.ndarray | None = field(default=None, repr=False)
    sd_: np.ndarray | None = field(default=None, repr=False)
    dawm_threshold_: float | None = None

    def features(self, s: BaselineSession) -> np.ndarray:
        """(F, X, Y, Z) float32: per input (zeros when absent) its WM robust z, smoothed at each
        ``sigmas_mm`` (mm, per-axis in voxels from ``spacing_mm``; smoothing inside the brain only)."""
        brain = np.asarray(s.brain, bool)
        wm = np.asarray(s.dseg) == 3
        out = []
        for name in self.inputs:
            z = robust_z(s.images[name], wm) if name in s.images else np.zeros(brain.shape, np.float32)
            z = np.where(brain, z, 0.0)
            for sigma in self.sigmas_mm:
                if sigma <= 0:
                    out.append(z.astype(np.float32))
                    continue
                vox = [sigma / float(sp) for sp in s.spacing_mm]
                num = ndimage.gaussian_filter(z, vox)
                den = ndimage.gaussian_filter(brain.astype(np.float32), vox)
                out.append(np.where(brain, num / np.maximum(den, 1e-3), 0.0).astype(np.float32))
        return np.stack(out)

    def fit(self, sessions: Sequence[BaselineSession]) -> VoxelLogistic:
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(self.seed)
        xs, ys = [], []
        for s in sessions:
            idx = np.flatnonzero(s.region.ravel())
            if idx.size > self.voxels_per_session:
                idx = np.sort(rng.choice(idx, self.voxels_per_session, replace=False))
            f = self.features(s).reshape(len(self.inputs) * len(self.sigmas_mm), -1)
            xs.append(f[:, idx].T)
            ys.append(np.asarray(s.target).ravel()[idx])
        x, y = np.concatenate(xs), np.concatenate(ys).astype(int)
        self.mean_, self.sd_ = x.mean(0), x.std(0) + 1e-6
        self.model_ = LogisticRegression(C=self.C, max_iter=500).fit((x - self.mean_) / self.sd_, y)
        counts = sum(threshold_counts(self.predict_proba(s), s.target) for s in sessions)
        self.dawm_threshold_, _ = calibrate_dawm_threshold(counts)
        return self

    def predict_proba(self, s: BaselineSession) -> np.ndarray:
        """(3, X, Y, Z) float32 class probabilities; outside the eligible region [1, 0, 0]."""
        if self.model_ is None:
            raise RuntimeError("fit the VoxelLogistic first")
        region = s.region
        f = self.features(s)[:, region].T
        p = self.model_.predict_proba((f - self.mean_) / self.sd_)  # type: ignore[attr-defined]
        out = np.zeros((3, *region.shape), np.float32)
        out[0] = 1.0
        for j, k in enumerate(self.model_.classes_):  # type: ignore[attr-defined]
            out[int(k)][region] = p[:, j]
        if 0 not in set(self.model_.classes_):  # type: ignore[attr-defined]
            out[0][region] = 0.0
        return out

    def predict(self, s: BaselineSession) -> np.ndarray:
        """Label map (X, Y, Z) uint8 from :meth:`predict_proba` and the calibrated DAWM threshold."""
        return labels_from_probabilities(self.predict_proba(s), self.dawm_threshold_)


def fit_predict(model, train_cases: Sequence, test_cases: Sequence) -> dict[str, np.ndarray]:
    """Fit a baseline (:class:`FlairThreshold` or :class:`VoxelLogistic`) on preprocessed
    :class:`dawm.model.data.Case` ``train_cases`` against each case's own target (``case.label``,
    as :func:`dawm.model.data.discover_cases` found it) and label ``test_cases``: key -> (X, Y, Z)
    uint8 label map on the session grid. The fitted ``model`` keeps its parameters."""
    missing = [c.key for c in train_cases if c.label is None]
    if missing:
        raise ValueError(f"training cases without a target: {', '.join(missing)}")
    model.fit([BaselineSession.from_case(c, c.label) for c in train_cases])
    return {c.key: model.predict(BaselineSession.from_case(c)) for c in test_cases}
