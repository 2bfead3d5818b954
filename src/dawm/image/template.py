"""The MNI152 (ICBM 2009, symmetric) template bundle shipped with nilearn, as plain arrays.

nilearn bundles a skull-stripped T1 template (intensities 0..1), grey/white-matter probability maps
and a brain mask, at 1 mm (197 x 233 x 189) or 2 mm (99 x 117 x 95). A CSF probability is derived as
``clip(brain_mask - gm - wm, 0, 1)``. Nothing is downloaded. :func:`mni_coordinates` and
:func:`mni_wm_prior` pull the template's coordinates and WM prior onto a session grid (the label
stage's infratentorial class and WM-prior restriction, the model's volumes per location).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from nibabel.affines import voxel_sizes

TEMPLATE_NAME = "MNI152NLin2009cSym"
#: Grey matter deeper than this from the brain surface (mm) is deep grey matter (thalamus, basal
#: ganglia), fully so from ``DEEP_GM_DEPTH_MM + DEEP_GM_RAMP_MM`` on.
DEEP_GM_DEPTH_MM = 18.0
DEEP_GM_RAMP_MM = 6.0


def deep_gm_weight(depth_mm: np.ndarray) -> np.ndarray:
    """The share (0..1, float32) of a voxel's grey matter that is deep grey matter, from its
    distance to the brain surface ``depth_mm``: 0 up to :data:`DEEP_GM_DEPTH_MM`, then a linear
    ramp over :data:`DEEP_GM_RAMP_MM`."""
    return np.clip((np.asarray(depth_mm, np.float64) - DEEP_GM_DEPTH_MM) / DEEP_GM_RAMP_MM, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Template:
    """Template images on one grid (all float32, shape X, Y, Z) and their RAS ``affine`` (4x4).

    ``t1``: skull-stripped T1w, 0..1; ``gm``/``wm``/``csf``: tissue probabilities 0..1;
    ``brain_mask``: 0/1 float; ``name``: template space identifier (BIDS ``space-`` label).
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain_mask: np.ndarray
    affine: np.ndarray
    name: str = TEMPLATE_NAME

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel edge lengths in mm."""
        return voxel_sizes(self.affine)


@functools.lru_cache(maxsize=2)
def load_template(resolution_mm: int = 2) -> Template:
    """Load the nilearn MNI152 2009 template bundle at ``resolution_mm`` (1 or 2). Cached.

    The returned arrays are read-only views shared between callers; copy before modifying.
    """
    if resolution_mm not in (1, 2):
        raise ValueError(f"template resolution must be 1 or 2 mm, got {resolution_mm!r}")
    from nilearn import datasets  # local import: nilearn is slow to import

    t1_img = datasets.load_mni152_template(resolution=resolution_mm)
    gm_img = datasets.load_mni152_gm_template(resolution=resolution_mm)
    wm_img = datasets.load_mni152_wm_template(resolution=resolution_mm)
    mask_img = datasets.load_mni152_brain_mask(resolution=resolution_mm)

    def _arr(img) -> np.ndarray:
        return np.clip(np.asarray(img.get_fdata(), dtype=np.float32), 0.0, 1.0)

    t1, gm, wm = _arr(t1_img), _arr(gm_img), _arr(wm_img)
    brain_mask = (_arr(mask_img) > 0.5).astype(np.float32)
    csf = np.clip(brain_mask - gm - wm, 0.0, 1.0).astype(np.float32)
    affine = np.asarray(t1_img.affine, dtype=float)
    arrays = (t1, gm, wm, csf, brain_mask)
    for a in arrays:
        a.setflags(write=False)
    affine.setflags(write=False)
    return Template(t1=t1, gm=gm, wm=wm, csf=csf, brain_mask=brain_mask, affine=affine)


def mni_coordinates(transform, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """(3, X, Y, Z) float32 MNI mm of every voxel of the grid (shape, affine), through the loaded
    ``from-MNI_to-session`` transform (which pulls MNI-grid images onto the session grid): the
    coordinate maps of the 2 mm template grid, linearly interpolated. NaN outside the template grid."""
    from dawm.image.resample import resample

    tpl = load_template(2)
    ijk = np.indices(tpl.t1.shape, dtype=np.float32).reshape(3, -1)
    world = (tpl.affine[:3, :3] @ ijk + tpl.affine[:3, 3:4]).reshape((3, *tpl.t1.shape))
    inside = resample(np.ones(tpl.t1.shape, np.float32), tpl.affine, shape, affine, transform, "linear", 0.0) > 0.999
    out = np.stack([resample(w, tpl.affine, shape, affine, transform, "linear", 0.0) for w in world])
    return np.where(inside, out, np.nan).astype(np.float32)


def mni_wm_prior(transform, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """The MNI152 WM prior (0..1, float32) pulled onto the grid (shape, affine) through the loaded
    ``from-MNI_to-session`` transform (0 outside the template)."""
    from dawm.image.resample import resample

    tpl = load_template(2)
    return resample(tpl.wm, tpl.affine, shape, affine, transform, "linear", 0.0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _deep_gm_2mm() -> np.ndarray:
    from scipy import ndimage

    tpl = load_template(2)
    depth = ndimage.distance_transform_edt(tpl.brain_mask > 0.5, sampling=tpl.spacing_mm)
    out = (tpl.gm * deep_gm_weight(depth)).astype(np.float32)
    out.setflags(write=False)
    return out


def mni_deep_gm_prior(transform, shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """The MNI152 deep grey matter (0..1, float32: template GM times :func:`deep_gm_weight` of its
    depth) pulled onto the grid (shape, affine) through the loaded ``from-MNI_to-session``
    transform (0 outside the template)."""
    from dawm.image.resample import resample

    tpl = load_template(2)
    return resample(_deep_gm_2mm(), tpl.affine, shape, affine, transform, "linear", 0.0).astype(np.float32)
