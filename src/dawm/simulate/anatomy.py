"""A new brain per subject: the MNI152 2009 template warped by a random smooth diffeomorphism.

The template (nilearn's bundled MNI152 2009 T1/GM/WM/brain mask, no download) is resampled to the
simulation grid. A subject is defined by a *pull map*: for every voxel of the subject grid, the
template coordinate it shows. The map composes a random affine (head size and shape), a random
stationary velocity field integrated by scaling and squaring (so the warp is diffeomorphic), and an
atrophy field that enlarges the ventricles (MS patients; it grows with disease duration).
The MNI152 brain (1.88 L inside its mask) is larger than any adult's: every subject is scaled to a
brain volume drawn for its sex and age (:func:`draw_brain_volume_ml`), so volumes in ml mean what
they mean in a real cohort.
Non-brain head tissue (CSF rim, skull, scalp fat) is added as shells around the warped brain, so
that brain extraction faces a real head.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage, special

from dawm.image.components import filter_components
from dawm.image.template import deep_gm_weight

#: Ventricle search box in MNI coordinates (mm), around the lateral and third ventricles.
_VENTRICLE_BOX_MNI = ((-32.0, 32.0), (-48.0, 30.0), (-12.0, 32.0))
#: MNI box (x, y, z mm) of the thalami (and pallidum's posterior half): deep grey matter inside it
#: keeps the thalamic properties; deep grey matter outside it (caudate, putamen, the deepest
#: insular cortex) is striatum, closer to cortex on T1 and T2.
_THALAMUS_BOX_MNI = ((-24.0, 24.0), (-40.0, -6.0), (-6.0, 20.0))
#: Below this MNI z (mm), or below _INFRA_Z2 behind _INFRA_Y: brainstem and cerebellum.
_INFRA_Z, _INFRA_Z2, _INFRA_Y = -24.0, -8.0, -40.0
_PAD_MM = 16.0
#: Brain-mask volume (ml: parenchyma, ventricles and sulcal CSF inside the brain's outline, what a
#: brain extraction keeps) of a 40-year-old adult, by sex. Total brain (GM + WM) volume is about
#: 1.1 L in women and 1.25 L in men (Ruigrok et al., Neurosci Biobehav Rev 2014: men ~11 % larger);
#: the CSF inside the outline adds ~10 %. dawm's own brain masks of real clinical scans measure
#: 1.06-1.6 L. The MNI152 2009 mask holds 1.88 L.
BRAIN_ML_AT_40 = {"F": 1200.0, "M": 1340.0}
#: Relative brain-mask volume change per year of age (healthy ageing; MS atrophy is added apart, by
#: enlarging the ventricles). Parenchyma loses ~0.2-0.5 %/year after 40 but CSF fills part of it.
BRAIN_AGEING_PER_YEAR = -0.0015
#: Between-subject SD of the log brain volume at a given sex and age (the head-shape affine adds
#: ~7 % more): adult brain volumes vary by ~10 % SD.
BRAIN_LOG_SD = 0.07


@dataclass(frozen=True)
class TemplateSpace:
    """The MNI template on the simulation grid. Fractions in [0, 1]; ``affine`` voxel -> MNI mm.

    ``region``: 0 outside, 1 supratentorial, 2 infratentorial. ``ventricles``: bool.
    ``deep_gm`` (thalami) and ``striatum`` (caudate, putamen) split the deep grey matter; ``gm`` is
    the rest (cortex).
    ``dist_ventricle_mm`` / ``dist_cortex_mm``: distance of each voxel to the ventricles / cortical GM.
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    deep_gm: np.ndarray
    striatum: np.ndarray
    brain: np.ndarray
    ventricles: np.ndarray
    region: np.ndarray
    dist_ventricle_mm: np.ndarray
    dist_cortex_mm: np.ndarray
    affine: np.ndarray

    @property
    def spacing_mm(self) -> float:
        return float(abs(self.affine[0, 0]))

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.wm.shape  # type: ignore[return-value]


def _world_coords(shape, affine) -> np.ndarray:
    idx = np.indices(shape, dtype=np.float32).reshape(3, -1)
    return (affine[:3, :3] @ idx + affine[:3, 3:4]).reshape((3,) + tuple(shape))


#: Exponent that sharpens the population tissue probabilities into one individual's tissue fractions.
SHARPEN_GAMMA = 2.5


def _sharpen(fractions: tuple[np.ndarray, ...], gamma: float = SHARPEN_GAMMA) -> tuple[np.ndarray, ...]:
    """Population probability maps are blurrier than any one brain (they average many anatomies):
    raise them to ``gamma`` and renormalise to the same head fraction, so partial volume is kept
    at tissue borders while deep white matter becomes pure WM, as in an individual."""
    stack = np.stack(fractions)
    total = stack.sum(0)
    powered = stack**gamma
    norm = powered.sum(0)
    out = np.where(norm > 0, powered * (total / np.maximum(norm, 1e-12)), stack)
    return tuple(o.astype(np.float32) for o in out)


@lru_cache(maxsize=4)
def template_space(spacing_mm: float = 1.0) -> TemplateSpace:
    """The template on a grid of ``spacing_mm`` voxels, padded by 16 mm for the head shells."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=1)
    src_aff = t1.affine
    maps = {
        "gm": datasets.load_mni152_gm_template(resolution=1).get_fdata(dtype=np.float32),
        "wm": datasets.load_mni152_wm_template(resolution=1).get_fdata(dtype=np.float32),
        "brain": datasets.load_mni152_brain_mask(resolution=1).get_fdata(dtype=np.float32),
    }
    inside = np.argwhere(maps["brain"] > 0.5)
    lo = src_aff[:3, :3] @ inside.min(0) + src_aff[:3, 3] - _PAD_MM
    hi = src_aff[:3, :3] @ inside.max(0) + src_aff[:3, 3] + _PAD_MM
    shape = tuple(int(np.floor((h - l) / spacing_mm)) + 1 for l, h in zip(lo, hi))
    affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    affine[:3, 3] = lo
    pull = np.linalg.inv(src_aff) @ affine
    out = {}
    for key, vol in maps.items():
        if spacing_mm > 1.0:
            vol = ndimage.gaussian_filter(vol, sigma=0.4 * spacing_mm)
        out[key] = ndimage.affine_transform(vol, pull[:3, :3], offset=pull[:3, 3], output_shape=shape, order=1, mode="constant").astype(
            np.float32
        )
    brain = np.clip(out["brain"], 0, 1)
    gm, wm = np.clip(out["gm"], 0, 1), np.clip(out["wm"], 0, 1)
    csf = np.clip(brain - gm - wm, 0, 1)
    total = gm + wm + csf
    scale = np.where(total > 1, 1 / np.maximum(total, 1e-6), 1.0)
    gm, wm, csf = gm * scale, wm * scale, csf * scale
    gm, wm, csf = _sharpen((gm, wm, csf))

    world = _world_coords(shape, affine)
    box = np.ones(shape, bool)
    for axis, (a, b) in enumerate(_VENTRICLE_BOX_MNI):
        box &= (world[axis] >= a) & (world[axis] <= b)
    ventricles = (csf > 0.5) & box
    ventricles = filter_components(ventricles, connectivity=1, min_fraction=0.02)
    infra = (world[2] < _INFRA_Z) | ((world[2] < _INFRA_Z2) & (world[1] < _INFRA_Y))
    region = np.where(brain > 0.5, np.where(infra, 2, 1), 0).astype(np.uint8)
    dist_v = ndimage.distance_transform_edt(~ventricles, sampling=spacing_mm).astype(np.float32)
    depth = ndimage.distance_transform_edt(brain > 0.5, sampling=spacing_mm)
    # Deep grey matter (thalamus, basal ganglia): GM far from the brain surface.
    deep_gm = gm * deep_gm_weight(depth)
    cortex = ((gm - deep_gm) > 0.5) & (region == 1)
    thalamic = np.ones(shape, bool)
    for axis, (a, b) in enumerate(_THALAMUS_BOX_MNI):
        thalamic &= (world[axis] >= a) & (world[axis] <= b)
    striatum = np.where(thalamic, 0.0, deep_gm)
    dist_c = ndimage.distance_transform_edt(~cortex, sampling=spacing_mm).astype(np.float32)
    return TemplateSpace(
        gm=(gm - deep_gm).astype(np.float32),
        wm=wm.astype(np.float32),
        csf=csf.astype(np.float32),
        deep_gm=(deep_gm - striatum).astype(np.float32),
        striatum=striatum.astype(np.float32),
        brain=brain,
        ventricles=ventricles,
        region=region,
        dist_ventricle_mm=dist_v,
        dist_cortex_mm=dist_c,
        affine=affine,
    )


def _smooth_noise(rng: np.random.Generator, shape, sigma_vox: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return field / (field.std() + 1e-8)


def random_velocity(
    rng: np.random.Generator, shape, spacing_mm: float, *, amplitude_mm: float = 3.0, control_mm: float = 8.0
) -> np.ndarray:
    """A smooth random stationary velocity field (3, X, Y, Z) in voxels of the simulation grid.

    Drawn on a coarse grid (``control_mm`` spacing) and upsampled, with about ``amplitude_mm``
    RMS displacement after integration.
    """
    coarse = tuple(max(int(np.ceil(s * spacing_mm / control_mm)), 4) for s in shape)
    vel = np.stack([_smooth_noise(rng, coarse, 1.5) for _ in range(3)]) * (amplitude_mm / spacing_mm)
    return vel


def integrate_velocity(vel_coarse: np.ndarray, shape, steps: int = 6) -> np.ndarray:
    """Scaling and squaring on the coarse grid, then upsampling: displacement (3, X, Y, Z) in voxels."""
    coarse_shape = vel_coarse.shape[1:]
    factors = np.array(shape, float) / np.array(coarse_shape, float)
    # Work in coarse-voxel units during composition.
    disp = vel_coarse / factors[:, None, None, None] / (2**steps)
    grid = np.indices(coarse_shape, dtype=np.float32)
    for _ in range(steps):
        coords = grid + disp
        disp = disp + np.stack([ndimage.map_coordinates(d, coords, order=1, mode="nearest") for d in disp])
    zoom = [s / c for s, c in zip(shape, coarse_shape)]
    full = np.stack(
        [
            ndimage.zoom(d * f, zoom, order=1, mode="nearest", grid_mode=False)[: shape[0], : shape[1], : shape[2]]
            for d, f in zip(disp, factors)
        ]
    )
    return full.astype(np.float32)


def atrophy_displacement(tpl: TemplateSpace, amount_mm: float) -> np.ndarray:
    """Displacement (3, X, Y, Z, voxels) that enlarges the ventricles by about ``amount_mm``.

    Voxels near the ventricles pull from nearer their centre (the gradient of the smoothed ventricle
    indicator points inwards), so the ventricles grow and the surrounding tissue is compressed.
    """
    if amount_mm <= 0:
        return np.zeros((3,) + tpl.shape, np.float32)
    smooth = ndimage.gaussian_filter(tpl.ventricles.astype(np.float32), 6.0 / tpl.spacing_mm)
    grad = np.stack(np.gradient(smooth))
    norm = np.sqrt((grad**2).sum(0)).max() + 1e-8
    return (grad / norm * (amount_mm / tpl.spacing_mm)).astype(np.float32)


@dataclass(frozen=True)
class SubjectWarp:
    """How a subject's brain relates to the template: ``affine`` (4x4, subject voxel -> template
    voxel) plus ``displacement`` (3, X, Y, Z) in template voxels, both on the simulation grid."""

    affine: np.ndarray
    displacement: np.ndarray

    def coordinates(self, extra: np.ndarray | None = None) -> np.ndarray:
        """Template voxel coordinates (3, X, Y, Z) pulled by every subject voxel."""
        shape = self.displacement.shape[1:]
        idx = np.indices(shape, dtype=np.float32)
        lin = np.einsum("ij,jxyz->ixyz", self.affine[:3, :3].astype(np.float32), idx) + self.affine[:3, 3, None, None, None].astype(
            np.float32
        )
        coords = lin + self.displacement
        if extra is not None:
            coords += extra
        return coords


def template_brain_ml(tpl: TemplateSpace) -> float:
    """Volume (ml) of the template's brain mask (fraction >= 0.5)."""
    return float((tpl.brain >= 0.5).sum() * tpl.spacing_mm**3 / 1000.0)


def draw_brain_volume_ml(rng: np.random.Generator, age_years: float, sex: str) -> float:
    """A subject's brain-mask volume (ml) for its sex (``"F"``/``"M"``) and age at the first session:
    :data:`BRAIN_ML_AT_40` x (1 + :data:`BRAIN_AGEING_PER_YEAR` x (age - 40)) x lognormal(0, :data:`BRAIN_LOG_SD`)."""
    base = BRAIN_ML_AT_40.get(sex, float(np.mean(list(BRAIN_ML_AT_40.values()))))
    return float(base * (1.0 + BRAIN_AGEING_PER_YEAR * (age_years - 40.0)) * rng.lognormal(0.0, BRAIN_LOG_SD))


def random_subject_warp(rng: np.random.Generator, tpl: TemplateSpace, *, amplitude_mm: float = 3.0, size_scale: float = 1.0) -> SubjectWarp:
    """A random head-shape affine (scales about ``size_scale`` x (1 +- 0.04), small shears) and a
    diffeomorphic warp. ``size_scale``: the subject's linear size relative to the template (a brain
    of ``size_scale**3`` times the template's volume)."""
    shape = tpl.shape
    linear = np.diag(1.0 / (size_scale * rng.normal(1.0, 0.04, 3).clip(0.9, 1.1)))
    linear[np.triu_indices(3, 1)] = rng.normal(0, 0.02, 3)
    centre = (np.array(shape) - 1) / 2.0
    aff = np.eye(4)
    aff[:3, :3] = linear
    aff[:3, 3] = centre - linear @ centre
    vel = random_velocity(rng, shape, tpl.spacing_mm, amplitude_mm=amplitude_mm)
    disp = integrate_velocity(vel, shape)
    return SubjectWarp(affine=aff, displacement=disp)


def pull(volume: np.ndarray, coords: np.ndarray, *, order: int = 1) -> np.ndarray:
    """Sample ``volume`` (template grid) at ``coords`` (3, X, Y, Z template voxels)."""
    out = ndimage.map_coordinates(
        volume.astype(np.float32) if order else volume, coords, order=order, mode="constant", cval=0.0, prefilter=False
    )
    return out


def head_shells(rng: np.random.Generator, brain: np.ndarray, spacing_mm: float) -> dict[str, np.ndarray]:
    """Fractions of extra-cerebral CSF, skull and scalp fat around a brain mask (float32, 0..1).

    Thicknesses vary smoothly over the head: CSF rim ~1.5 mm, skull ~6 mm, scalp ~5 mm.
    """
    dist = ndimage.distance_transform_edt(brain < 0.5, sampling=spacing_mm).astype(np.float32)
    coarse = tuple(max(s // 4, 2) for s in brain.shape)
    wobble = _smooth_noise(rng, coarse, 3.0 / spacing_mm)
    wobble = ndimage.zoom(wobble, [s / c for s, c in zip(brain.shape, coarse)], order=1)[
        : brain.shape[0], : brain.shape[1], : brain.shape[2]
    ]
    csf_out = 1.5 + 0.4 * wobble
    skull_out = csf_out + 6.0 + 1.2 * wobble
    scalp_out = skull_out + 5.0 + 1.0 * wobble
    soft = max(spacing_mm * 0.6, 0.5)

    def ramp(edge):
        return special.expit((edge - dist) / soft)

    inside_csf, inside_skull, inside_scalp = ramp(csf_out), ramp(skull_out), ramp(scalp_out)
    outside_brain = (brain < 0.5).astype(np.float32)
    return {
        "csf_rim": (inside_csf * outside_brain).astype(np.float32),
        "skull": ((inside_skull - inside_csf).clip(0, 1) * outside_brain).astype(np.float32),
        "fat": ((inside_scalp - inside_skull).clip(0, 1) * outside_brain).astype(np.float32),
    }
