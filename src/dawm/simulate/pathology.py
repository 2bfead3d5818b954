"""Focal lesions, DAWM and their evolution between sessions, drawn in template space.

Everything here lives on the template grid (:class:`~dawm.simulate.anatomy.TemplateSpace`) and is
carried into each subject by the subject's warp, so lesions follow the anatomy they were placed in.

Lesions (counts, volumes and locations after the MAGNIMS classes; Filippi et al., Lancet Neurol
2016; Thompson et al., Lancet Neurol 2018): periventricular ovoids whose long axis is perpendicular to
the ventricular wall ("Dawson's fingers"), juxtacortical, deep white matter and infratentorial.
DAWM: regions with ill-defined margins, mostly periventricular and around lesions (Laule et al.,
Mult Scler 2011; Seewann et al., Arch Neurol 2009), a severity map in [0, 1] whose 0.5 level is the
truth mask. Evolution over ``years``: a part of the DAWM converts to lesion, a part resolves, the
rest persists (about 15 %, 40 % and 45 % over 5 years: Gabr & Narayana, ISMRM 2021), and new lesions
and new DAWM appear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, special

from dawm.labels import DAWM_FATE_5Y, SIMULATED_TRANSITIONS
from dawm.simulate.anatomy import TemplateSpace, _smooth_noise

LESION_TYPES = ("periventricular", "juxtacortical", "deep", "infratentorial")
#: Share of lesions per location class (periventricular lesions dominate in MS).
LESION_TYPE_P = (0.45, 0.2, 0.25, 0.1)
#: Median total lesion volume (ml) per group; log-normal spread 0.8 (MS lesion loads of a few to
#: tens of ml, larger in SPMS: e.g. Vrenken et al., AJNR 2010).
LESION_LOAD_ML = {"RRMS": 5.0, "SPMS": 12.0, "PPMS": 7.0}
#: Median DAWM volume (ml) when present; log-normal spread 0.6.
DAWM_LOAD_ML = {"RRMS": 9.0, "SPMS": 16.0, "PPMS": 13.0}
#: New lesions per year in an untreated-to-treated mix of patients.
#: Template WM fraction where DAWM can start / is fully possible (DAWM is a white-matter property).
WM_PURITY = (0.6, 0.85)
NEW_LESIONS_PER_YEAR = {"RRMS": 0.8, "SPMS": 0.5, "PPMS": 0.3}

# Transition labels written by the simulator (relative to the previous session): the codes 0-6 of
# :data:`dawm.labels.TRANSITION_CODES` (the simulator never removes a lesion, so 7 and 8 do not occur).
# DAWM's fate is drawn from :data:`dawm.labels.DAWM_FATE_5Y`.
TRANSITIONS = SIMULATED_TRANSITIONS


@dataclass
class Lesion:
    centre_vox: np.ndarray  # template voxel coordinates
    radii_mm: np.ndarray  # three semi-axes
    axes: np.ndarray  # 3x3, columns are the semi-axis directions
    grade: float  # 0 mild .. 1 black hole
    kind: str


@dataclass
class PathologyState:
    """Lesion fraction, lesion grade and DAWM severity (template grid, float32) at one session."""

    lesion_frac: np.ndarray
    lesion_grade: np.ndarray
    dawm: np.ndarray
    lesions: list[Lesion] = field(default_factory=list)

    def masks(self, tpl: TemplateSpace) -> tuple[np.ndarray, np.ndarray]:
        """Binary (lesion, DAWM) masks in template space."""
        lesion = self.lesion_frac >= 0.5
        dawm = (self.dawm >= 0.5) & (tpl.wm >= 0.5) & ~lesion
        return lesion, dawm


def _candidates(tpl: TemplateSpace) -> dict[str, np.ndarray]:
    wm, dv, dc, reg = tpl.wm, tpl.dist_ventricle_mm, tpl.dist_cortex_mm, tpl.region
    return {
        "periventricular": (wm > 0.7) & (dv > 1.0) & (dv < 7.0) & (reg == 1),
        "juxtacortical": (wm > 0.5) & (dc < 2.5) & (dv > 12.0) & (reg == 1),
        "deep": (wm > 0.9) & (dv > 10.0) & (dc > 6.0) & (reg == 1),
        "infratentorial": (wm > 0.6) & (reg == 2),
    }


def _orthonormal_from(direction: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = direction / (np.linalg.norm(direction) + 1e-9)
    helper = rng.standard_normal(3)
    u = helper - helper.dot(d) * d
    u /= np.linalg.norm(u) + 1e-9
    return np.stack([d, u, np.cross(d, u)], axis=1)


def draw_lesions(
    rng: np.random.Generator,
    tpl: TemplateSpace,
    total_ml: float = 0.0,
    *,
    count: int | None = None,
    kinds_p=LESION_TYPE_P,
    size_scale: float = 1.0,
) -> list[Lesion]:
    """Draw lesions whose volumes add up to about ``total_ml`` (or exactly ``count`` lesions),
    placed by location class. Volumes are those of the subject, whose linear size is ``size_scale``
    times the template's: the lesions are drawn ``size_scale**-3`` times as large in template space."""
    volumes: list[float] = []
    while (sum(volumes) < total_ml * 1000.0) if count is None else (len(volumes) < count):
        volumes.append(float(np.clip(rng.lognormal(np.log(180.0), 0.9), 20.0, 4000.0)))
    if not volumes:
        return []
    volumes = [v / size_scale**3 for v in volumes]
    cands = {k: np.argwhere(v) for k, v in _candidates(tpl).items()}
    grad_dv = np.stack(np.gradient(ndimage.gaussian_filter(tpl.dist_ventricle_mm, 1.0)))
    lesions = []
    for vol in volumes:
        kind = LESION_TYPES[rng.choice(4, p=kinds_p)]
        pool = cands[kind] if len(cands[kind]) else cands["deep"]
        centre = pool[rng.integers(len(pool))].astype(float)
        if kind == "periventricular":
            c = tuple(np.round(centre).astype(int))
            axes = _orthonormal_from(grad_dv[(slice(None),) + c], rng)
            elong = rng.uniform(1.6, 2.6)
        else:
            axes = _orthonormal_from(rng.standard_normal(3), rng)
            elong = rng.uniform(1.0, 1.5)
        if kind == "juxtacortical":
            vol = min(vol, 400.0 / size_scale**3)
        b = (3 * vol / (4 * np.pi * elong)) ** (1 / 3)
        radii = np.array([elong * b, b * rng.uniform(0.85, 1.0), b])
        lesions.append(Lesion(centre, radii, axes, float(rng.beta(2, 4)), kind))
    return lesions


def render_lesions(
    lesions: list[Lesion], tpl: TemplateSpace, rng: np.random.Generator, frac: np.ndarray | None = None, grade: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Soft ellipsoids with irregular margins: (lesion fraction, grade) maps on the template grid."""
    shape = tpl.shape
    frac = np.zeros(shape, np.float32) if frac is None else frac.copy()
    grade = np.zeros(shape, np.float32) if grade is None else grade.copy()
    sp = tpl.spacing_mm
    for les in lesions:
        half = int(np.ceil(les.radii_mm.max() * 1.4 / sp)) + 2
        lo = np.maximum(np.round(les.centre_vox).astype(int) - half, 0)
        hi = np.minimum(np.round(les.centre_vox).astype(int) + half + 1, shape)
        if np.any(hi <= lo):
            continue
        idx = np.indices(tuple(hi - lo), dtype=np.float32).reshape(3, -1) + lo[:, None]
        rel = (idx - les.centre_vox[:, None]) * sp
        local = les.axes.T @ rel
        r = np.sqrt(((local / les.radii_mm[:, None]) ** 2).sum(0)).reshape(tuple(hi - lo))
        bumpy = r * (1 + 0.12 * rng.standard_normal(r.shape).astype(np.float32))
        bumpy = ndimage.gaussian_filter(bumpy, 0.7)
        w = special.expit((1.0 - bumpy) / 0.12).astype(np.float32) * (tpl.brain[tuple(slice(a, b) for a, b in zip(lo, hi))] > 0.5)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        stronger = w > frac[sl]
        grade[sl] = np.where(stronger, les.grade, grade[sl])
        frac[sl] = np.maximum(frac[sl], w)
    return frac, grade


def draw_dawm(
    rng: np.random.Generator,
    tpl: TemplateSpace,
    lesion_frac: np.ndarray,
    volume_ml: float,
    *,
    softness: float = 0.05,
    size_scale: float = 1.0,
) -> np.ndarray:
    """DAWM severity in [0, 1]: periventricular and peri-lesional drive plus smooth patchy noise,
    thresholded so that the 0.5 level covers ``volume_ml`` of the subject's white matter outside
    lesions (``volume_ml / size_scale**3`` in template space, see :func:`draw_lesions`).

    DAWM is a property of white matter: it is drawn where the template WM fraction is >= 0.8 and
    fades out below (``WM_PURITY``), so the ventricle wall's partial-volume rim is not DAWM; the
    periventricular drive peaks a few mm into the WM and the noise (6 mm) makes patches rather
    than a uniform shell (Seewann et al., Arch Neurol 2009: patchy, ill-defined regions)."""
    if volume_ml <= 0:
        return np.zeros(tpl.shape, np.float32)
    sp = tpl.spacing_mm
    noise = _smooth_noise(rng, tpl.shape, 6.0 / sp)
    lesion_dist = ndimage.distance_transform_edt(lesion_frac < 0.5, sampling=sp)
    halo_weight = rng.uniform(0.5, 1.2)
    purity = np.clip((tpl.wm - WM_PURITY[0]) / (WM_PURITY[1] - WM_PURITY[0]), 0, 1)
    drive = (
        1.2 * np.exp(-np.maximum(tpl.dist_ventricle_mm - 3.0, 0) / 12.0)
        + halo_weight * np.exp(-lesion_dist / 5.0) * (lesion_frac < 0.5)
        + 0.6 * noise
    ) * purity
    eligible = (tpl.wm >= WM_PURITY[1]) & (lesion_frac < 0.5) & (tpl.region == 1)
    n_target = int(round(volume_ml * 1000.0 / size_scale**3 / sp**3))
    values = drive[eligible]
    if n_target <= 0 or values.size == 0:
        return np.zeros(tpl.shape, np.float32)
    thr = np.partition(values, max(values.size - n_target, 0))[max(values.size - n_target, 0)]
    sev = special.expit((drive - thr) / softness).astype(np.float32)
    return sev * purity.astype(np.float32) * (tpl.region == 1)


def evolve(
    rng: np.random.Generator,
    tpl: TemplateSpace,
    state: PathologyState,
    *,
    years: float,
    group: str,
    dawm_present: bool,
    size_scale: float = 1.0,
) -> tuple[PathologyState, np.ndarray]:
    """The next session's pathology and the transition labels (template grid, see ``TRANSITIONS``);
    ``size_scale`` as in :func:`draw_lesions`."""
    lesion0, dawm0 = state.masks(tpl)
    scale = min(years / 5.0, 1.0)
    fate = rng.dirichlet(np.array([DAWM_FATE_5Y["lesion"], DAWM_FATE_5Y["persist"], DAWM_FATE_5Y["resolve"]]) * 40)
    p_lesion, p_resolve = fate[0] * scale, fate[2] * scale
    # A smooth random field partitions the DAWM into coherent patches with different fates.
    u = _smooth_noise(rng, tpl.shape, 3.0 / tpl.spacing_mm)
    dawm = state.dawm.copy()
    frac, grade = state.lesion_frac, state.lesion_grade
    if dawm0.any():
        vals = np.sort(u[dawm0])
        t_resolve = vals[int(np.clip(p_resolve * len(vals), 0, len(vals) - 1))]
        t_lesion = vals[int(np.clip((1 - p_lesion) * len(vals), 0, len(vals) - 1))]
        around = dawm > 0.05
        resolve_w = special.expit((t_resolve - u) / 0.05) * around
        convert_w = special.expit((u - t_lesion) / 0.05) * around
        dawm = (dawm * (1 - resolve_w) * (1 - convert_w)).astype(np.float32)
        conv_frac = (convert_w * (state.dawm > 0.3)).astype(np.float32)
        grade = np.where(conv_frac > frac, 0.25, grade).astype(np.float32)
        frac = np.maximum(frac, conv_frac)
    n_new = rng.poisson(NEW_LESIONS_PER_YEAR.get(group, 0.5) * years)
    new_lesions = draw_lesions(rng, tpl, count=int(n_new), size_scale=size_scale)
    frac, grade = render_lesions(new_lesions, tpl, rng, frac, grade)
    if dawm_present and rng.random() < 0.5:
        extra = draw_dawm(rng, tpl, frac, rng.uniform(1.0, 4.0) * scale, size_scale=size_scale)
        dawm = np.maximum(dawm, extra * (frac < 0.5))
    nxt = PathologyState(frac.astype(np.float32), grade.astype(np.float32), dawm.astype(np.float32), state.lesions + new_lesions)
    lesion1, dawm1 = nxt.masks(tpl)
    trans = np.zeros(tpl.shape, np.uint8)
    trans[dawm0 & ~dawm1 & ~lesion1] = 1
    trans[dawm0 & lesion1] = 2
    trans[dawm0 & dawm1] = 3
    trans[~dawm0 & ~lesion0 & dawm1] = 4
    trans[~dawm0 & ~lesion0 & lesion1] = 5
    trans[lesion0 & lesion1] = 6
    return nxt, trans
