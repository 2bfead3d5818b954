"""Normative models of white-matter T1 and MTR: what a voxel's value "should" be, and how much it varies.

Two models with one interface (scikit-learn style ``fit`` / ``transform``), both fitted on the
*smoothed* maps of :class:`SessionMaps` inside *reference NAWM* (pure WM away from lesions):

* :class:`ControlsNormativeModel` -- healthy controls, one model per scanner (or field strength:
  tissue T1 scales with B0, Rooney et al., MRM 2007, so T1 norms are never shared across fields).
  Per region (location class x hemisphere, :mod:`dawm.label.locations`) each control session gives
  a robust mean (median) and spread (1.4826 MAD); the model's regional mean is the average of the
  controls' (at the controls' mean age, plus a linear age slope fitted on the controls' WM medians
  when a scanner has >= ``min_controls_voxelwise`` controls), its SD the root of the pooled
  within-region variance plus the between-control variance of the regional means (one control: the
  within-region variance alone). With >= ``min_controls_voxelwise`` controls a voxel-wise term is
  added: the controls' residuals from their regional means, splatted into MNI space through each
  voxel's MNI coordinate and smoothed (FWHM ``voxelwise_fwhm_mm``), give a spatial trend map and a
  voxel SD map. With ``pooled_trend`` (the default), a group with fewer controls borrows the spatial trend (not
  the SD map) of all groups' controls together when they are that many (the anatomy-bound pattern
  of healthy WM is the same on every scanner), shrunk by a leave-one-subject-out weight: how well
  the other controls' trend predicts each left-out control's residuals.
* :class:`SelfNormativeModel` -- the subject's own reference NAWM, median / 1.4826 MAD per region
  (regions with fewer than ``min_region_voxels`` voxels use the whole reference NAWM), so slow
  spatial trends are followed (optionally also a smooth trend of the reference NAWM itself,
  FWHM ``trend_fwhm_mm``, e.g. the B1-driven drift of MP2RAGE T1 and MTR); NAWM within ``reference_lesion_margin_mm`` of a lesion is left out.

Both tolerate that MS NAWM differs slightly from control WM (MTR 0.5-2.5 pu lower, T1 wider): with
``recenter`` the z maps are shifted so the median z of the subject's own reference NAWM is 0, a
global shift being no *diffuse focal* abnormality (the shift is logged and reported).

Models are saved as JSON (regional statistics, per-control summaries) plus an NPZ for the voxel-wise
MNI maps, so labels can be reproduced; :meth:`ControlsNormativeModel.without` refits leaving one
subject out (used for the controls themselves).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from nibabel.affines import voxel_sizes
from scipy import ndimage

from dawm.bids.derivatives import write_json
from dawm.errors import InputError
from dawm.label.config import LabelConfig
from dawm.label.locations import REGION_NAMES
from dawm.label.zscores import abnormality_correlation, masked_smooth, zscore

log = logging.getLogger(__name__)
MODALITIES = ("T1", "MTR")
MAD_TO_SD = 1.4826
#: Robust-SD distance from the first-pass trend beyond which a voxel is left out of the second pass.
TREND_OUTLIER_Z = 2.0


@dataclass
class SessionMaps:
    """One session's inputs to the models, on its session grid (X, Y, Z).

    ``maps``: modality -> smoothed quantitative map (T1 ms, MTR percent; absent when not acquired);
    ``raw``: the unsmoothed maps; ``reference``: bool, the reference NAWM voxels; ``wm``: bool, WM
    incl. lesions (where z maps are computed); ``region``: int16 region index (-1 outside WM);
    ``mni_xyz``: (3, X, Y, Z) float32 MNI mm of each voxel or None; ``age`` years or None;
    ``norm_key``: the scanner / field-strength key of its normative group.
    """

    key: str
    subject: str
    affine: np.ndarray
    maps: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    reference: np.ndarray
    wm: np.ndarray
    region: np.ndarray
    mni_xyz: np.ndarray | None = None
    age: float | None = None
    norm_key: str = "all"

    @property
    def spacing_mm(self) -> np.ndarray:
        return voxel_sizes(self.affine)


@dataclass
class Reference:
    """What a model says about one session: per modality the expected value and SD maps (X, Y, Z),
    the z maps (recentred when configured), the recentring shift (z units), the correlation of the
    abnormality components in the reference NAWM, and how the reference was made (``how``)."""

    mean: dict[str, np.ndarray]
    sd: dict[str, np.ndarray]
    z: dict[str, np.ndarray]
    shift: dict[str, float]
    rho: float
    how: str


def robust_stats(values: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 x MAD) of a 1D sample."""
    med = float(np.median(values))
    return med, MAD_TO_SD * float(np.median(np.abs(values - med)))


def regional_stats(values: np.ndarray, region: np.ndarray, mask: np.ndarray, min_voxels: int) -> dict[int, tuple[float, float, int]]:
    """Robust (median, SD, n) of ``values`` in ``mask`` per region index (key -1: all of ``mask``);
    regions with fewer than ``min_voxels`` voxels are left out."""
    out: dict[int, tuple[float, float, int]] = {}
    sel = values[mask]
    if sel.size < 10:
        raise InputError(f"only {sel.size} reference NAWM voxels: cannot build a reference")
    out[-1] = (*robust_stats(sel), int(sel.size))
    reg = region[mask]
    for r in np.unique(reg):
        if r < 0:
            continue
        v = sel[reg == r]
        if v.size >= min_voxels:
            out[int(r)] = (*robust_stats(v), int(v.size))
    return out


def _region_map(region: np.ndarray, table: dict[int, float]) -> np.ndarray:
    """A map of ``table[region]`` (key -1 for voxels whose region is not in the table)."""
    lut_keys = np.arange(-1, max(max(table), int(region.max()), 0) + 1)
    lut = np.array([table.get(int(k), table[-1]) for k in lut_keys], np.float32)
    return lut[np.asarray(region, np.int64) + 1]


def _pull(mni_map: np.ndarray, coords: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An MNI-grid map sampled (linear, 0 outside) at voxel coordinates ``coords`` (3, N) into ``shape``."""
    return ndimage.map_coordinates(mni_map, coords, order=1, mode="constant", cval=0.0).reshape(shape)


def _finish(maps: SessionMaps, mean: dict[str, np.ndarray], sd: dict[str, np.ndarray], recenter: bool, how: str) -> Reference:
    z, shift = {}, {}
    for mod in mean:
        zm = zscore(maps.maps[mod], mean[mod], sd[mod])
        s = float(np.median(zm[maps.reference])) if recenter else 0.0
        zm = np.where(maps.wm, zm - s, 0).astype(np.float32)
        mean[mod] = (mean[mod] + s * sd[mod]).astype(np.float32)
        z[mod], shift[mod] = zm, s
    rho = abnormality_correlation(z["T1"], z["MTR"], maps.reference) if len(z) == 2 else 0.0
    return Reference(mean=mean, sd=sd, z=z, shift=shift, rho=rho, how=how)


class SelfNormativeModel:
    """The subject's own reference NAWM as its norm (see the module docstring)."""

    def __init__(self, config: LabelConfig | None = None) -> None:
        self.config = config or LabelConfig()
        self.stats_: dict[str, dict[int, tuple[float, float, int]]] = {}
        self._trends: dict[str, np.ndarray] = {}

    def _trend(self, maps: SessionMaps, mod: str) -> np.ndarray | float:
        """The smooth trend of the reference NAWM (0 when ``trend_fwhm_mm`` is 0), cached per modality.

        Robust in two passes: voxels more than ``TREND_OUTLIER_Z`` robust SD from the first trend
        (e.g. a large DAWM region still inside the reference) are left out of the second, so the
        trend follows B1 / regional drifts, not the abnormality it should reveal."""
        fwhm = self.config.trend_fwhm_mm
        if fwhm <= 0:
            return 0.0
        if mod not in self._trends:
            values, ref, sp = maps.maps[mod], maps.reference, maps.spacing_mm
            trend = masked_smooth(values, ref, fwhm, sp, out_mask=maps.wm)
            _, sd = robust_stats((values - trend)[ref])
            inliers = ref & (np.abs(values - trend) <= TREND_OUTLIER_Z * max(sd, 1e-6))
            if inliers.sum() > 0.5 * ref.sum():
                trend = masked_smooth(values, inliers, fwhm, sp, out_mask=maps.wm)
            self._trends[mod] = trend
        return self._trends[mod]

    def fit(self, maps: SessionMaps) -> SelfNormativeModel:
        """Regional robust statistics of the session's reference NAWM (after removing its smooth
        trend when ``trend_fwhm_mm`` > 0)."""
        self._trends = {}
        self.stats_ = {
            mod: regional_stats(arr - self._trend(maps, mod), maps.region, maps.reference, self.config.min_region_voxels)
            for mod, arr in maps.maps.items()
        }
        return self

    def transform(self, maps: SessionMaps) -> Reference:
        """Expected value (trend + regional median), SD and z maps of the session it was fitted on."""
        if not self.stats_:
            raise RuntimeError("SelfNormativeModel: call fit first")
        mean = {m: _region_map(maps.region, {k: v[0] for k, v in s.items()}) + self._trend(maps, m) for m, s in self.stats_.items()}
        sd = {m: _region_map(maps.region, {k: v[1] for k, v in s.items()}) for m, s in self.stats_.items()}
        return _finish(maps, mean, sd, self.config.recenter, "self")

    def fit_transform(self, maps: SessionMaps) -> Reference:
        return self.fit(maps).transform(maps)

    def to_dict(self) -> dict:
        return {
            "kind": "self",
            "regions": {
                m: {REGION_NAMES.get(k, "all"): {"median": v[0], "sd": v[1], "n": v[2]} for k, v in s.items()}
                for m, s in self.stats_.items()
            },
        }


# --------------------------------------------------------------------------------------------
# controls
# --------------------------------------------------------------------------------------------


@dataclass
class ControlSummary:
    """What one control session contributes: per modality the regional robust statistics and,
    when MNI coordinates are known, the splatted residual sums (MNI grid) for the voxel-wise term."""

    key: str
    subject: str
    norm_key: str
    age: float | None
    stats: dict[str, dict[int, tuple[float, float, int]]]
    splat: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None  # mod -> (sum, sum_sq, count)


@dataclass
class GroupNorm:
    """The fitted norm of one scanner / field-strength group (units: T1 ms, MTR pu)."""

    norm_key: str
    subjects: list[str]
    sessions: list[str]
    age_ref: float | None
    age_slope: dict[str, float]
    region_mean: dict[str, dict[int, float]]
    region_sd: dict[str, dict[int, float]]
    voxelwise: bool = False
    trend: dict[str, np.ndarray] = field(default_factory=dict)  # MNI grid
    voxel_sd: dict[str, np.ndarray] = field(default_factory=dict)
    trend_from: list[str] = field(default_factory=list)  # subjects of a trend pooled over every group (empty: own or none)
    trend_weight: dict[str, float] = field(default_factory=dict)  # cross-validated weight of that pooled trend per modality


class ControlsNormativeModel:
    """Healthy-control norms per scanner / field strength (see the module docstring).

    ``mni_shape`` / ``mni_affine``: the MNI grid of the voxel-wise maps (the 2 mm template grid).
    """

    def __init__(
        self, config: LabelConfig | None = None, *, mni_shape: tuple[int, int, int] | None = None, mni_affine: np.ndarray | None = None
    ) -> None:
        self.config = config or LabelConfig()
        self.mni_shape = tuple(mni_shape) if mni_shape is not None else None
        self.mni_affine = np.asarray(mni_affine, float) if mni_affine is not None else None
        self.summaries_: list[ControlSummary] = []
        self.groups_: dict[str, GroupNorm] = {}
        self._pooled: dict[str, tuple[np.ndarray, float, list[str]] | None] = {}  # per refit: mod -> _pooled_pattern

    # -- fitting -------------------------------------------------------------------------------

    def summarise(self, maps: SessionMaps) -> ControlSummary:
        """The contribution of one control session (kept, so a subject can be left out later)."""
        stats = {mod: regional_stats(arr, maps.region, maps.reference, self.config.min_region_voxels) for mod, arr in maps.maps.items()}
        splat = None
        if maps.mni_xyz is not None and self.mni_shape is not None:
            splat = {}
            idx = self._mni_index(maps.mni_xyz[:, maps.reference])
            inside = np.all((idx >= 0) & (idx < np.array(self.mni_shape)[:, None]), axis=0)
            flat = np.ravel_multi_index(tuple(idx[:, inside]), self.mni_shape)
            n = int(np.prod(self.mni_shape))
            for mod, arr in maps.maps.items():
                resid = (arr - _region_map(maps.region, {k: v[0] for k, v in stats[mod].items()}))[maps.reference][inside]
                splat[mod] = (
                    np.bincount(flat, resid, n).astype(np.float32),
                    np.bincount(flat, resid**2, n).astype(np.float32),
                    np.bincount(flat, None, n).astype(np.float32),
                )
        return ControlSummary(maps.key, maps.subject, maps.norm_key, maps.age, stats, splat)

    def fit(self, sessions: Sequence[SessionMaps]) -> ControlsNormativeModel:
        """Fit on control sessions (any number of scanners; grouped by their ``norm_key``)."""
        self.summaries_ = [self.summarise(s) for s in sessions]
        return self.refit()

    def refit(self, summaries: Sequence[ControlSummary] | None = None) -> ControlsNormativeModel:
        """(Re)build the group norms from ``summaries`` (default: the stored ones)."""
        if summaries is not None:
            self.summaries_ = list(summaries)
        self.groups_, self._pooled = {}, {}
        for key in sorted({s.norm_key for s in self.summaries_}):
            self.groups_[key] = self._fit_group(key, [s for s in self.summaries_ if s.norm_key == key])
            self._pool_trend(self.groups_[key])
        return self

    def _pool_trend(self, norm: GroupNorm) -> None:
        """Give a group with too few controls for its own voxel-wise term the *spatial trend* of all
        the controls (every group), when they are enough: the anatomy-bound pattern of healthy WM
        (e.g. the internal capsule between the deep grey nuclei) does not depend on the scanner.
        The pattern (:meth:`_pooled_pattern`, relative to the WM level) is scaled to the group's WM
        median (T1 scales with B0) and by its cross-validated weight; the group keeps its regional
        SD (which still holds the spatial spread: conservative)."""
        cfg = self.config
        if not cfg.pooled_trend or norm.voxelwise or self.mni_shape is None:
            return
        for mod in norm.region_mean:
            if mod not in self._pooled:
                self._pooled[mod] = self._pooled_pattern(mod)
            if self._pooled[mod] is None:
                continue
            pattern, weight, subjects = self._pooled[mod]
            norm.trend_weight[mod], norm.trend_from = weight, subjects
            if weight > 0:
                norm.trend[mod] = (norm.region_mean[mod][-1] * weight * pattern).astype(np.float32)
        if norm.trend_weight:
            weights = ", ".join(f"{m} {w:.2f}" for m, w in norm.trend_weight.items())
            log.info(
                "normative group %s: spatial trend pooled over %d controls of every group, cross-validated weight %s",
                norm.norm_key,
                len(norm.trend_from),
                weights,
            )

    def _pooled_pattern(self, mod: str) -> tuple[np.ndarray, float, list[str]] | None:
        """The spatial pattern of healthy WM shared by all the controls (every group), relative to
        each control's WM level (flat MNI grid, unitless: residual / WM median), its cross-validated
        weight, and the controls it comes from; None with fewer than ``min_controls_voxelwise``.

        The pattern is the pooled relative residual per MNI voxel, smoothed (FWHM
        ``voxelwise_fwhm_mm``) with each voxel weighted by its number of samples
        (:func:`dawm.label.zscores.masked_smooth`). The weight is the least-squares factor by which
        the other subjects' pattern predicts a left-out subject's residuals, summed over every
        left-out subject and clipped to [0, 1] (a shrinkage of the trend towards none): near 1 where healthy WM shares an
        anatomy-bound pattern, near 0 where the pattern of a few controls is mostly their own noise
        and would add it to every session (measured on simulated cohorts of 6 controls: MTR 0.87 and
        T1 0.83 at 2 mm, 0.00 and 0.30 at 1 mm; ``benchmarks/results/label_2mm_demo_full.md``,
        ``label_1mm_seed5.md``)."""
        pool = [s for s in self.summaries_ if s.splat is not None and mod in s.splat and s.stats.get(mod, {}).get(-1, (0.0,))[0] > 0]
        subjects = sorted({s.subject for s in pool})
        if len(subjects) < self.config.min_controls_voxelwise:
            return None
        shape, spacing, fwhm = self.mni_shape, voxel_sizes(self.mni_affine), self.config.voxelwise_fwhm_mm
        level = {s.key: s.stats[mod][-1][0] for s in pool}
        relative = {s.key: s.splat[mod][0] / level[s.key] for s in pool}  # type: ignore[index]
        counts = {s.key: s.splat[mod][2] for s in pool}  # type: ignore[index]

        def pattern_of(keys: list[str], out_mask: np.ndarray | None = None) -> np.ndarray:
            total, count = sum(relative[k] for k in keys), sum(counts[k] for k in keys)
            mean = (total / np.maximum(count, 1)).reshape(shape)
            return masked_smooth(mean, count.reshape(shape), fwhm, spacing, out_mask=out_mask).ravel()

        fit = pred_sq = 0.0
        everywhere = np.ones(shape, bool)
        for subject in subjects:
            others = pattern_of([s.key for s in pool if s.subject != subject], everywhere)
            for s in (s for s in pool if s.subject == subject):
                resid_sum, _, count = s.splat[mod]  # type: ignore[index]
                pred = level[s.key] * others
                fit += float(np.dot(resid_sum, pred))
                pred_sq += float(np.dot(count, pred * pred))
        weight = float(np.clip(fit / pred_sq, 0.0, 1.0)) if pred_sq > 0 else 0.0
        pattern = pattern_of([s.key for s in pool]).reshape(shape)
        return pattern, weight, subjects

    def without(self, subject: str) -> ControlsNormativeModel:
        """A copy refitted without ``subject``'s sessions (leave-one-subject-out for controls)."""
        other = ControlsNormativeModel(self.config, mni_shape=self.mni_shape, mni_affine=self.mni_affine)
        return other.refit([s for s in self.summaries_ if s.subject != subject])

    def _fit_group(self, key: str, group: list[ControlSummary]) -> GroupNorm:
        cfg = self.config
        subjects = sorted({s.subject for s in group})
        enough = len(subjects) >= cfg.min_controls_voxelwise
        ages = [s.age for s in group]
        use_age = enough and all(a is not None for a in ages) and np.ptp(ages) > 0
        age_ref = float(np.mean(ages)) if use_age else None
        mods = sorted(set.intersection(*(set(s.stats) for s in group)))
        slope, rmean, rsd = {}, {}, {}
        for mod in mods:
            b = 0.0
            if use_age:
                wm_medians = np.array([s.stats[mod][-1][0] for s in group])
                b = float(np.polyfit(np.array(ages, float), wm_medians, 1)[0])
            slope[mod] = b
            rmean[mod], rsd[mod] = {}, {}
            regions = sorted(set.intersection(*(set(s.stats[mod]) for s in group)) | {-1})
            for r in regions:
                rows = [s.stats[mod][r] for s in group if r in s.stats[mod]]
                adj = np.array(
                    [m - b * ((s.age or 0.0) - (age_ref or 0.0)) for (m, _, _), s in zip(rows, [s for s in group if r in s.stats[mod]])]
                )
                within = float(np.mean([sd**2 for _, sd, _ in rows]))
                if self.config.recenter:  # between-control variance of regional means after removing each one's global level
                    glob = np.array([s.stats[mod][-1][0] for s in group if r in s.stats[mod]])
                    between_vals = adj - (glob - glob.mean()) if r != -1 else adj * 0
                else:
                    between_vals = adj
                between = float(np.var(between_vals, ddof=1)) if len(rows) > 1 else 0.0
                rmean[mod][r] = float(adj.mean())
                rsd[mod][r] = float(np.sqrt(within + between))
        norm = GroupNorm(key, subjects, [s.key for s in group], age_ref, slope, rmean, rsd)
        if enough and all(s.splat is not None for s in group) and self.mni_shape is not None:
            norm.voxelwise = True
            for mod in mods:
                norm.trend[mod], norm.voxel_sd[mod] = self._voxel_maps(group, mod, rsd[mod][-1])
        log.info(
            "normative group %s: %d control(s), %d session(s), %s",
            key,
            len(subjects),
            len(group),
            "voxel-wise + regional" if norm.voxelwise else "regional (pooled SD)",
        )
        return norm

    def _voxel_maps(self, group: list[ControlSummary], mod: str, global_sd: float) -> tuple[np.ndarray, np.ndarray]:
        total = np.zeros(int(np.prod(self.mni_shape)), np.float64)
        total_sq, count = total.copy(), total.copy()
        for s in group:
            a, b, c = s.splat[mod]  # type: ignore[index]
            total += a
            total_sq += b
            count += c
        shape = self.mni_shape
        spacing = voxel_sizes(self.mni_affine)
        have = (count > 0).reshape(shape)
        fwhm = self.config.voxelwise_fwhm_mm
        mean = masked_smooth((total / np.maximum(count, 1)).reshape(shape), have, fwhm, spacing)
        mean_sq = masked_smooth((total_sq / np.maximum(count, 1)).reshape(shape), have, fwhm, spacing)
        var = np.maximum(mean_sq - mean**2, (0.5 * global_sd) ** 2)
        return mean.astype(np.float32), np.where(have, np.sqrt(var), 0).astype(np.float32)

    def _mni_index(self, xyz: np.ndarray) -> np.ndarray:
        inv = np.linalg.inv(self.mni_affine)
        return np.rint(inv[:3, :3] @ xyz.reshape(3, -1) + inv[:3, 3:4]).astype(np.int64)

    # -- applying ------------------------------------------------------------------------------

    def has(self, norm_key: str) -> bool:
        """Whether a group norm exists for ``norm_key``."""
        return norm_key in self.groups_

    def transform(self, maps: SessionMaps) -> Reference:
        """Expected value, SD and z maps of a session from its group's norm (``KeyError`` without one)."""
        norm = self.groups_[maps.norm_key]
        mean, sd = {}, {}
        for mod in maps.maps:
            if mod not in norm.region_mean:
                raise InputError(f"{maps.key}: the {maps.norm_key} controls have no {mod} map")
            age_term = norm.age_slope[mod] * ((maps.age - norm.age_ref) if maps.age is not None and norm.age_ref is not None else 0.0)
            mu = _region_map(maps.region, norm.region_mean[mod]) + age_term
            sig = _region_map(maps.region, norm.region_sd[mod])
            if mod in norm.trend and maps.mni_xyz is not None:
                coords = np.linalg.inv(self.mni_affine)[:3, :3] @ maps.mni_xyz.reshape(3, -1) + np.linalg.inv(self.mni_affine)[:3, 3:4]
                mu = mu + _pull(norm.trend[mod], coords, maps.region.shape)
                if norm.voxelwise:
                    vsd = _pull(norm.voxel_sd[mod], coords, maps.region.shape)
                    sig = np.where(vsd > 0, vsd, sig)
            mean[mod], sd[mod] = mu.astype(np.float32), sig.astype(np.float32)
        if norm.voxelwise:
            extra = ", voxel-wise"
        elif norm.trend_from:
            weights = ", ".join(f"{m} {w:.2f}" for m, w in norm.trend_weight.items())
            extra = f", spatial trend of {len(norm.trend_from)} controls, weight {weights}"
        else:
            extra = ""
        how = f"controls {maps.norm_key} ({len(norm.subjects)} subject(s){extra})"
        return _finish(maps, mean, sd, self.config.recenter, how)

    # -- persistence ---------------------------------------------------------------------------

    def save(self, json_path: str | Path) -> list[Path]:
        """Write the model as JSON (+ an NPZ of the voxel-wise MNI maps beside it when any)."""
        json_path = Path(json_path)
        arrays = {
            f"{k}__{kind}__{mod}": arr
            for k, g in self.groups_.items()
            for kind, maps in (("trend", g.trend), ("sd", g.voxel_sd))
            for mod, arr in maps.items()
        }
        doc = {
            "kind": "controls",
            "Description": "healthy-control norms of smoothed WM T1 (ms) / MTR (pu) per group; region keys: location-hemisphere, 'all'",
            "config": self.config.model_dump(mode="json"),
            "mni_grid": {"shape": self.mni_shape, "affine": self.mni_affine} if self.mni_shape else None,
            "groups": {
                k: {
                    **{
                        f: getattr(g, f)
                        for f in ("norm_key", "subjects", "sessions", "age_ref", "age_slope", "voxelwise", "trend_from", "trend_weight")
                    },
                    "region_mean": {m: {str(r): v for r, v in d.items()} for m, d in g.region_mean.items()},
                    "region_sd": {m: {str(r): v for r, v in d.items()} for m, d in g.region_sd.items()},
                    "region_names": {str(r): REGION_NAMES.get(r, "all") for r in next(iter(g.region_mean.values()), {})},
                }
                for k, g in self.groups_.items()
            },
            "controls": [
                {
                    "key": s.key,
                    "subject": s.subject,
                    "norm_key": s.norm_key,
                    "age": s.age,
                    "stats": {m: {str(r): list(v) for r, v in d.items()} for m, d in s.stats.items()},
                }
                for s in self.summaries_
            ],
            "voxelwise_maps": json_path.with_suffix(".npz").name if arrays else None,
        }
        written = [write_json(json_path, doc)]
        if arrays:
            npz = json_path.with_suffix(".npz")
            tmp = npz.with_name(".tmp-" + npz.name)
            np.savez_compressed(tmp, **arrays)
            tmp.replace(npz)
            written.append(npz)
        return written

    @classmethod
    def load(cls, json_path: str | Path) -> ControlsNormativeModel:
        """Read a model written by :meth:`save` (the per-control splats are not stored: ``without``
        on a loaded model uses regional statistics only)."""
        json_path = Path(json_path)
        try:
            doc = json.loads(json_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError) as exc:
            raise InputError(f"{json_path}: cannot read the normative model ({exc})") from None
        grid = doc.get("mni_grid") or {}
        model = cls(LabelConfig.model_validate(doc["config"]), mni_shape=grid.get("shape"), mni_affine=grid.get("affine"))
        model.summaries_ = [
            ControlSummary(
                c["key"],
                c["subject"],
                c["norm_key"],
                c["age"],
                {m: {int(r): tuple(v) for r, v in d.items()} for m, d in c["stats"].items()},
            )
            for c in doc["controls"]
        ]
        arrays = np.load(json_path.with_suffix(".npz")) if doc.get("voxelwise_maps") else {}
        for k, g in doc["groups"].items():
            model.groups_[k] = GroupNorm(
                g["norm_key"],
                g["subjects"],
                g["sessions"],
                g["age_ref"],
                g["age_slope"],
                {m: {int(r): v for r, v in d.items()} for m, d in g["region_mean"].items()},
                {m: {int(r): v for r, v in d.items()} for m, d in g["region_sd"].items()},
                g["voxelwise"],
                {m: arrays[f"{k}__trend__{m}"] for m in g["region_mean"] if f"{k}__trend__{m}" in arrays},
                {m: arrays[f"{k}__sd__{m}"] for m in g["region_mean"] if f"{k}__sd__{m}" in arrays},
                g.get("trend_from", []),
                g.get("trend_weight", {}),
            )
        return model
