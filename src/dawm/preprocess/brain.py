"""Brain extraction by template registration plus data-driven refinement (no trained weights).

Method
------
1. A rough *head* mask from local signal-to-noise (local mean / local standard deviation on a 2 mm
   grid): tissue is smooth and bright relative to its fluctuations, whereas Rician background (T1w,
   FLAIR) and the salt-and-pepper background of MP2RAGE UNIT1 images are not.
2. The MNI template T1 is registered to the subject head image with Mattes MI (affine, dof=12),
   initialised by aligning the template brain with the top of the head mask (a multi-start at 0,
   +-20 and +-40 mm from it along the superior axis; after a coarse rigid stage another start
   replaces the guess only when its metric is clearly better, since the top of a head mask can leak
   into background artefacts), the metric restricted
   to the head (fixed mask) and to a dilated template brain (moving mask), so skull and scalp,
   which the skull-stripped template lacks, barely influence it.
3. A synthetic template in the subject's contrast (least-squares fit of the subject intensities
   to the affinely-aligned GM/WM/CSF/non-brain probabilities) is registered deformably (demons,
   2 mm) to the subject inside a ~6 mm dilated brain region, with noise-only voxels zeroed; the
   result is rejected (affine kept) if its mask disagrees with the affine one (Dice < 0.92).
4. The 1 mm (for sub-1.5 mm inputs) template brain mask is pulled through the transform,
   thresholded at 0.5, reduced to its largest connected component and hole-filled.

Real clinical heads
-------------------
* **Doubtful affine:** every affine result is scored by :func:`tissue_fit`, the correlation between
  the image inside the candidate mask and its least-squares fit by the template's GM/WM/CSF priors
  (contrast-free: T1w, FLAIR and T2w alike). When the primary result scores below
  ``DOUBTFUL_FIT``, alternatives are tried (the metric over the whole image instead of the head
  mask: a head mask clipped by a field of view that cuts the vertex pulled a real 2D T1w 15 mm
  down; the head with a rough N4 applied, :func:`head_flattened`: a strong coil field moved a
  simulated motion-ghosted T1w's optimum; the identity start for images already in MNI space) and
  the best-scoring one is kept.
* **Skull-stripped input** (:func:`looks_skull_stripped`: the non-zero part of the image is a
  single brain-sized object, at most ``MAX_STRIPPED_ML``, in an exactly zero background): the brain
  mask is that object, and the template is registered to it only to place the priors; no brain is
  extracted twice.
* **MNI-space input** (:func:`looks_like_mni`): the identity is the first start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from dawm.image.components import filter_components
from dawm.image.registration import (
    LinearRegistration,
    NonlinearRegistration,
    nonlinear_register,
    rigid_register,
)
from dawm.image.resample import isotropic_grid, resample, voxel_sizes
from dawm.image.template import Template, load_template
from dawm.metrics import dice
from dawm.parallel import map_threads
from dawm.preprocess.bias import correct_bias

_WORK_MM = 2.0


@dataclass(frozen=True, eq=False)
class BrainExtraction:
    """Result of :func:`extract_brain`.

    ``mask``: bool array on the input grid; ``probability``: float32 warped template brain mask
    (0..1) on the input grid, or None for a user mask; ``template_to_subject``: affine registration
    (subject world -> template world points, i.e. pulls template images onto the subject);
    ``nonlinear``: the deformable refinement (or None); ``head_mask``: bool rough head mask on the
    input grid (or None); ``method``: "template" or "user"; ``info``: diagnostics (e.g. the Dice
    between the affine and the deformable template masks, whether the latter was rejected).
    """

    mask: np.ndarray
    probability: np.ndarray | None
    template_to_subject: LinearRegistration | None
    nonlinear: NonlinearRegistration | None
    head_mask: np.ndarray | None
    method: str
    info: dict = field(default_factory=dict)


#: How far around the template brain the affine metric looks (mm).
MOVING_MARGIN_MM = 18.0
#: Superior-inferior offsets (mm) of the multi-start around the top-of-head guess: a head mask that
#: leaks into background ghosts above the scalp put that guess 45 mm too high on a simulated 1.5 mm
#: Prisma session, and a single start then converged to a wrong basin (brain Dice 0.28).
START_OFFSETS_MM = (0.0, -20.0, 20.0, -40.0, 40.0)
#: Below this :func:`tissue_fit` the primary affine is doubtful and the alternatives are tried
#: (raw simulated T1w score 0.55-0.63 with the primary, raw simulated FLAIR 0.23-0.26 - so FLAIR
#: references always try the alternatives; the missed real 2D T1w 0.12). On the adult-sized,
#: compartment-summed seed-11 cohort the T1w primaries scored 0.39-0.72 where they were right and
#: 0.13-0.33 (session grid / raw image) on the motion-ghosted, strongly biased session whose MNI
#: registration then failed: the whole-image alternative scored 0.15 there, the flattened head 0.36.
DOUBTFUL_FIT = 0.4
#: A non-zero region of at most this volume (ml) with an all-zero background is a skull-stripped brain
#: (adult brains 1.1-1.6 L, the MNI template's 1.9 L; a head with skull and scalp is above 2.5 L).
MAX_STRIPPED_ML = 2200.0
#: Grids of common MNI templates: shape and the world position of voxel (0, 0, 0) at 1 mm.
MNI_GRIDS = {
    "MNI152 (FSL)": ((182, 218, 182), (90.0, -126.0, -72.0)),
    "MNI152NLin2009c": ((193, 229, 193), (96.0, -132.0, -78.0)),
    "MNI152NLin2009c (dawm)": ((197, 233, 189), (-98.0, -134.0, -72.0)),
}


def _validate(image: np.ndarray, affine: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"extract_brain expects a 3D image, got shape {image.shape}")
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {affine.shape}")
    data = np.asarray(image, dtype=np.float32)
    if not np.all(np.isfinite(data)):
        raise ValueError("image contains NaN or infinite values")
    if not np.any(data != 0) or float(data.max()) == float(data.min()):
        raise ValueError("image is empty (all voxels have the same value)")
    return data


def _nonzero_object(data: np.ndarray) -> np.ndarray:
    """The filled largest object of voxels whose magnitude exceeds 1 % of the 99th percentile of
    the non-zero voxels (interpolation leaves small negative values around stripped brains)."""
    magnitude = np.abs(np.asarray(data, dtype=np.float32))
    fg = magnitude > 0.01 * float(np.percentile(magnitude[magnitude > 0], 99))
    return _fill_holes(_largest_component(ndimage.binary_opening(fg, iterations=1)))


def looks_skull_stripped(image: np.ndarray, affine: np.ndarray) -> tuple[bool, float]:
    """Whether ``image`` (X, Y, Z) is already skull-stripped: returns ``(stripped, foreground_ml)``.

    Skull-stripped when at least 30 % of the image is background (magnitude at most 1 % of the
    99th percentile of the non-zero voxels), at least half of the voxels outside the non-zero object
    (:func:`_nonzero_object`) are exactly zero, as a masking tool writes them (a head's air is noise,
    however faint: at high SNR it also falls under 1 %), and the object is at most
    :data:`MAX_STRIPPED_ML`.
    """
    magnitude = np.abs(np.asarray(image, dtype=np.float32))
    if not (magnitude > 0).any():
        return False, 0.0
    voxel_ml = float(np.prod(voxel_sizes(affine))) / 1000.0
    fg = magnitude > 0.01 * float(np.percentile(magnitude[magnitude > 0], 99))
    if fg.mean() > 0.7:
        return False, float(fg.sum()) * voxel_ml
    obj = _nonzero_object(magnitude)
    ml = float(obj.sum()) * voxel_ml
    masked = float((magnitude[~obj] == 0).mean()) >= 0.5 if (~obj).any() else False
    return masked and ml <= MAX_STRIPPED_ML, ml


def looks_like_mni(shape: tuple[int, ...], affine: np.ndarray) -> str | None:
    """The name of the MNI template grid that ``(shape, affine)`` is on (any voxel size that
    divides the 1 mm grid, origin within 2 mm, axes as the template's), or None."""
    affine = np.asarray(affine, dtype=float)
    zooms = voxel_sizes(affine)
    if not np.allclose(np.abs(affine[:3, :3]), np.diag(zooms), atol=1e-3):
        return None
    for name, (shape_1mm, origin) in MNI_GRIDS.items():
        expected = np.round(np.array(shape_1mm) / zooms).astype(int)
        if np.all(np.abs(np.array(shape[:3]) - expected) <= 1) and np.allclose(np.abs(affine[:3, 3]), np.abs(origin), atol=2.0):
            return name
    return None


def tissue_fit(image: np.ndarray, affine: np.ndarray, mask: np.ndarray, transform, template: Template) -> float:
    """Contrast-free agreement of a template registration with an image: the Pearson correlation,
    inside ``mask``, between the image and its least-squares fit by the template's GM, WM and CSF
    priors pulled through ``transform`` (template -> image pull; :func:`prior_fit`). 0.4-0.9 when
    the anatomy lines up, whatever the contrast (T1w higher, FLAIR lower); 0.1-0.3 for a
    registration that missed by 5 mm or more."""
    mask = np.asarray(mask, bool)
    if mask.sum() < 100:
        return 0.0
    priors = [resample(p, template.affine, mask.shape, affine, transform, "linear")[mask] for p in (template.gm, template.wm, template.csf)]
    return prior_fit(np.asarray(image)[mask], priors)


def prior_fit(values: np.ndarray, priors: list[np.ndarray]) -> float:
    """Correlation of ``values`` (N,) with their least-squares fit by ``priors`` (each (N,)) plus a
    constant; 0.0 when either side is constant."""
    design = np.stack([*priors, np.ones(len(values))], axis=1)
    values = np.asarray(values, dtype=np.float64)
    weights, *_ = np.linalg.lstsq(design, values, rcond=None)
    fitted = design @ weights
    if fitted.std() == 0 or values.std() == 0:
        return 0.0
    return float(np.corrcoef(fitted, values)[0, 1])


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of ``mask``."""
    return filter_components(mask, connectivity=1, largest=True)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """3D hole filling, then 2D filling slice by slice along each axis (for heads open at the neck)."""
    out = ndimage.binary_fill_holes(mask)
    for axis in range(3):
        out = np.stack([ndimage.binary_fill_holes(s) for s in np.moveaxis(out, axis, 0)], axis=0)
        out = np.moveaxis(out, 0, axis)
    return out


@dataclass(frozen=True)
class _HeadGrid:
    """2 mm working grid of the subject: smoothed image, signal (high local SNR) and head masks."""

    image: np.ndarray
    signal: np.ndarray
    head: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]


def head_mask(image: np.ndarray, affine: np.ndarray, *, snr_threshold: float = 4.0) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Rough head mask on an isotropic 2 mm grid from local SNR; returns (mask, affine, shape)."""
    grid = _head_grid(_validate(image, affine), np.asarray(affine, dtype=float), snr_threshold)
    return grid.head, grid.affine, grid.shape


def _head_grid(data: np.ndarray, affine: np.ndarray, snr_threshold: float = 4.0) -> _HeadGrid:
    shape, work_affine = isotropic_grid(data.shape, affine, _WORK_MM)
    sigma_vox = np.sqrt(np.clip(_WORK_MM**2 - voxel_sizes(affine) ** 2, 0, None)) / 2.355 / voxel_sizes(affine)
    smooth = ndimage.gaussian_filter(data, sigma_vox) if np.any(sigma_vox > 0.05) else data
    work = resample(smooth, affine, shape, work_affine)
    # Local signal over local *noise*: the residual after a median filter keeps edges out of the
    # noise estimate, so thin bright structures (scalp) count as signal while Rician or uniform
    # (UNIT1) background noise does not.
    residual = work - ndimage.median_filter(work, size=3)
    noise = np.sqrt(np.clip(ndimage.uniform_filter(residual * residual, 3), 0.0, None))
    mean = ndimage.uniform_filter(work, 3)
    scale = float(np.percentile(work, 99.5))
    if scale <= 0:
        raise ValueError("image is empty (no positive intensities)")
    snr = mean / (noise + 1e-3 * scale)
    signal = snr > snr_threshold
    fg = signal & (mean > 0.1 * scale)
    fg = ndimage.binary_opening(fg, iterations=1)
    if not fg.any():
        raise ValueError("could not find the head: no voxel has a usable signal-to-noise ratio")
    fg = ndimage.binary_closing(fg, iterations=2, border_value=0)
    fg = _largest_component(_fill_holes(fg))
    return _HeadGrid(work, signal, fg, work_affine, shape)


#: Extra-cerebral thickness (mm) between the brain's and the head's 2nd-98th percentile widths: skull,
#: scalp and CSF (~12-15 mm per side) times the percentile span of a filled ellipsoid (~0.8 of its width);
#: on the simulated heads it recovers the brain's linear size within ~4 % (``_initial_transform``).
HEAD_TO_BRAIN_MM = 28.0
#: Range of the initial isotropic scale (subject brain size / template brain size).
INITIAL_SCALE_RANGE = (0.75, 1.1)


def _widths(points: np.ndarray) -> np.ndarray:
    """2nd-98th percentile extent (mm) of world points (N, 3) along each axis."""
    return np.percentile(points, 98, axis=0) - np.percentile(points, 2, axis=0)


def _initial_transform(head: np.ndarray, head_affine: np.ndarray, template: Template) -> tuple[np.ndarray, float]:
    """``(subject -> template RAS matrix, scale)``: aligns the template brain with the top of the head
    and scales it to the head's size. The scale is the subject's brain width over the template's,
    left-right and front-back (the axes a field of view rarely clips), the head's widths minus
    :data:`HEAD_TO_BRAIN_MM`, clipped to :data:`INITIAL_SCALE_RANGE`: adult brains are 0.75-0.95
    times the MNI152 brain's size, and a unit-scale start can leave the affine registration of a
    small head in a wrong basin."""
    brain = template.brain_mask > 0
    t_pts = np.argwhere(brain)
    t_world = t_pts @ template.affine[:3, :3].T + template.affine[:3, 3]
    t_centre = t_world.mean(axis=0)
    t_height = float(t_world[:, 2].max() - t_world[:, 2].min())
    h_pts = np.argwhere(head)
    h_world = h_pts @ head_affine[:3, :3].T + head_affine[:3, 3]
    top = float(np.percentile(h_world[:, 2], 99.9))
    # Keep the part of the head spanned by a brain (+ ~1 cm of scalp and skull above it).
    slab = h_world[h_world[:, 2] > top - t_height - 12.0]
    scale = float(np.clip(np.mean((_widths(slab)[:2] - HEAD_TO_BRAIN_MM) / _widths(t_world)[:2]), *INITIAL_SCALE_RANGE))
    h_centre = slab.mean(axis=0)
    h_centre[2] = top - 12.0 - scale * (float(t_world[:, 2].max()) - t_centre[2])
    matrix = np.eye(4)
    matrix[:3, :3] /= scale
    matrix[:3, 3] = t_centre - h_centre / scale
    return matrix, scale


#: Voxel size (mm) of the shrunk copy the registration's rough N4 (:func:`head_flattened`) is fitted on.
HEAD_N4_MM = 8.0


def head_flattened(image: np.ndarray, affine: np.ndarray, head: np.ndarray) -> np.ndarray:
    """``image`` (X, Y, Z) with a rough bias field removed: N4 fitted inside the ``head`` mask on a
    copy shrunk to about :data:`HEAD_N4_MM` (:func:`dawm.preprocess.bias.correct_bias`), float32,
    for the template registration's doubtful cases only (the preprocessing's own N4 runs later, in
    the brain).

    A receive-coil field that brightens one side of the head by tens of percent moves mutual
    information's optimum: on a simulated motion-ghosted Achieva T1w (1.19 L brain) the affine
    registration of the raw image reached a :func:`tissue_fit` of 0.33 and a 1343 ml mask, and the
    MNI registration then failed; of the flattened one 0.36 (0.53 scored on the flattened image),
    1277 ml. Registering every session's flattened head instead (tried on 18 sessions that
    registered well) cost 0.006 of GM Dice against the truth, hence an alternative, not the rule."""
    spacing = float(np.min(voxel_sizes(affine)))
    return correct_bias(image, affine, mask=head, shrink_factor=max(1, int(round(HEAD_N4_MM / spacing)))).corrected


def _synthetic_template(
    subject_work: np.ndarray,
    region: np.ndarray,
    priors_on_subject: list[np.ndarray],
    template: Template,
) -> np.ndarray:
    """Template image in the subject's contrast: sum of class weights * template probabilities."""
    design = np.stack([p[region] for p in priors_on_subject], axis=1)
    weights, *_ = np.linalg.lstsq(design, subject_work[region], rcond=None)
    weights = np.clip(weights, 0.0, None)
    brain = template.brain_mask
    parts = [template.gm, template.wm, template.csf * brain, 1.0 - brain]
    return sum(w * p for w, p in zip(weights, parts)).astype(np.float32)


def extract_brain(
    image: np.ndarray,
    affine: np.ndarray,
    *,
    template: Template | None = None,
    initial_mask: np.ndarray | None = None,
    seed: int = 0,
    nonlinear: bool = True,
    skull_stripped: bool | None = None,
) -> BrainExtraction:
    """Brain mask of a head image (T1w, FLAIR, UNIT1, ... with skull and scalp).

    Parameters
    ----------
    image : 3D array (X, Y, Z), any voxel size / orientation; ``affine`` its RAS 4x4.
    template : template bundle used for registration (default: MNI152 2009 at 2 mm).
    initial_mask : a user-provided brain mask on the image grid; if given it is validated (same
        shape, non-empty) and returned as is (method="user").
    seed : random seed of the registration metric sampling (deterministic per seed).
    nonlinear : refine the affine template mask with a deformable registration (default True).
    skull_stripped : whether the image is already skull-stripped (None: :func:`looks_skull_stripped`
        decides). A stripped image's own non-zero region is its mask (method "skull-stripped input").

    ``info`` records ``skull_stripped``, ``foreground_ml``, ``mni_grid`` (:func:`looks_like_mni`),
    the :func:`tissue_fit` of every affine candidate tried (``affine_candidates``) and the one kept.
    """
    data = _validate(image, affine)
    affine = np.asarray(affine, dtype=float)
    if initial_mask is not None:
        mask = np.asarray(initial_mask)
        if mask.shape != data.shape:
            raise ValueError(f"initial_mask shape {mask.shape} does not match the image shape {data.shape}")
        mask = mask > 0
        if not mask.any():
            raise ValueError("initial_mask is empty")
        return BrainExtraction(mask, None, None, None, None, "user", {})

    tpl = template if template is not None else load_template(2)
    tpl_brain = tpl.brain_mask > 0
    mni = looks_like_mni(data.shape, affine)
    stripped, fg_ml = looks_skull_stripped(data, affine) if skull_stripped is None else (bool(skull_stripped), float("nan"))
    info: dict = {"skull_stripped": stripped, "foreground_ml": round(fg_ml, 1), "mni_grid": mni}
    identity = [np.eye(4)] if mni else []

    def scored(name: str, lin: LinearRegistration, mask: np.ndarray | None = None) -> tuple[float, str, LinearRegistration]:
        if mask is None:
            mask = template_brain_mask(lin, data.shape, affine, template=tpl)[0]
        fit = tissue_fit(data, affine, mask, lin, tpl)
        info.setdefault("affine_candidates", {})[name] = round(fit, 3)
        return fit, name, lin

    if stripped:
        own = _nonzero_object(data)
        lin = rigid_register(
            data,
            affine,
            np.asarray(tpl.t1) * tpl.brain_mask,
            tpl.affine,
            fixed_mask=own,
            moving_mask=tpl_brain,
            dof=12,
            seed=seed,
            initial=identity[0] if mni else None,
        )
        info["affine_chosen"] = scored("skull-stripped input" + (" from the identity" if mni else ""), lin, own)[1]
        return BrainExtraction(own, None, lin, None, None, "skull-stripped input", info)

    grid = _head_grid(data, affine)
    head = resample(grid.head.astype(np.uint8), grid.affine, data.shape, affine, interpolation="nearest") > 0
    if not head.any():
        raise ValueError("could not find the head in the image")

    tpl_spacing = float(np.mean(tpl.spacing_mm))
    moving_mask = ndimage.binary_dilation(tpl_brain, iterations=max(1, int(round(MOVING_MARGIN_MM / tpl_spacing))))
    start, info["initial_scale"] = _initial_transform(grid.head, grid.affine, tpl)
    starts = identity + [start + np.pad([[0.0], [0.0], [dz]], ((0, 1), (3, 0))) for dz in START_OFFSETS_MM]  # shifted along z
    best = scored("head-masked", rigid_register(
        data, affine, tpl.t1, tpl.affine,
        fixed_mask=head, moving_mask=moving_mask, dof=12, seed=seed, initial=starts,
    ))  # fmt: skip
    if best[0] < DOUBTFUL_FIT:
        # A head mask clipped by the field of view (or leaking into artefacts) can hold the metric
        # in a wrong basin: the same starts with the metric over the whole image. A strong coil
        # field moves mutual information's optimum: the head with a rough N4 applied.
        # The two registrations are independent: they run side by side (each single-threaded, so
        # the results are those of one after the other) and are scored in this order. The rough N4
        # runs before, alone, with the threads it always had.
        flat = head_flattened(data, affine, head)
        lins = map_threads(
            lambda pair: rigid_register(
                pair[0], affine, tpl.t1, tpl.affine, fixed_mask=pair[1], moving_mask=pair[2], dof=12, seed=seed, initial=starts
            ),
            [(data, None, tpl_brain), (flat, head, moving_mask)],
        )
        whole = scored("whole-image", lins[0])
        flattened = scored("head-masked, bias-flattened", lins[1])
        best = max(best, whole, flattened, key=lambda c: c[0])
    _, info["affine_chosen"], lin = best

    nl: NonlinearRegistration | None = None
    transform: LinearRegistration | NonlinearRegistration = lin
    brain_w = resample(tpl.brain_mask, tpl.affine, grid.shape, grid.affine, lin, "linear")
    region = ndimage.binary_dilation(brain_w > 0.5, iterations=3)  # ~6 mm around the brain
    if nonlinear and region.sum() > 1000:
        # Noise-only voxels (skull, air; salt-and-pepper in UNIT1) carry no anatomy: set them to 0
        # so the deformable stage is driven by tissue boundaries only.
        fixed_w = np.where(grid.signal, grid.image, 0.0).astype(np.float32)
        priors = [resample(p, tpl.affine, grid.shape, grid.affine, lin, "linear") for p in (tpl.gm, tpl.wm, tpl.csf)]
        priors.append(1.0 - brain_w)
        synth = _synthetic_template(fixed_w, region, priors, tpl)
        candidate = nonlinear_register(
            fixed_w, grid.affine, synth, tpl.affine, initial=lin, fixed_mask=region, seed=seed,
        )  # fmt: skip
        warped_nl = resample(tpl.brain_mask, tpl.affine, grid.shape, grid.affine, candidate, "linear") > 0.5
        agreement = dice(warped_nl, brain_w > 0.5)
        info["affine_nonlinear_dice"] = agreement
        # Safety net: a deformable result far from the affine one is a failure, not anatomy.
        if agreement >= 0.92:
            nl, transform = candidate, candidate
        else:
            info["nonlinear_rejected"] = True

    fine = load_template(1) if (template is None and np.min(voxel_sizes(affine)) < 1.5) else tpl
    mask, probability = template_brain_mask(transform, data.shape, affine, template=fine)
    return BrainExtraction(mask, probability, lin, nl, head, "template", info)


def template_brain_mask(
    transform, shape: tuple[int, int, int], affine: np.ndarray, *, template: Template | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The template brain mask pulled onto a grid through ``transform`` (template -> grid pull, any
    type :func:`dawm.image.resample.resample` takes): ``(mask, probability)``.

    The mask is the probability thresholded at 0.5, reduced to its largest component, holes filled.
    The template defaults to the 1 mm MNI bundle for grids finer than 1.5 mm, else 2 mm.
    """
    if template is None:
        template = load_template(1 if np.min(voxel_sizes(affine)) < 1.5 else 2)
    probability = resample(template.brain_mask, template.affine, shape, affine, transform, "linear").astype(np.float32)
    mask = probability > 0.5
    if not mask.any():
        raise ValueError("brain extraction failed: the registered template mask is empty")
    return _fill_holes(_largest_component(mask)), probability
