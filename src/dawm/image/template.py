"""The MNI152 (ICBM 2009, symmetric) template bundle shipped with nilearn, as plain arrays.

nilearn bundles a skull-stripped T1 template (intensities 0..1), grey/white-matter probability maps
and a brain mask, at 1 mm (197 x 233 x 189) or 2 mm (99 x 117 x 95). A CSF probability is derived as
``clip(brain_mask - gm - wm, 0, 1)``. Nothing is downloaded; an exact copy of the arrays is kept
in :func:`cache_dir`, so that only the first process on a machine pays nilearn's import and
resampling. :func:`mni_coordinates` and :func:`mni_wm_prior` pull the template's coordinates and WM prior onto a session grid (the label
stage's infratentorial class and WM-prior restriction, the model's volumes per location).
"""

from __future__ import annotations

import functools
import logging
import os
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from nibabel.affines import voxel_sizes

TEMPLATE_NAME = "MNI152NLin2009cSym"
#: Grey matter deeper than this from the brain surface (mm) is deep grey matter (thalamus, basal
#: ganglia), fully so from ``DEEP_GM_DEPTH_MM + DEEP_GM_RAMP_MM`` on.
DEEP_GM_DEPTH_MM = 18.0
DEEP_GM_RAMP_MM = 6.0
log = logging.getLogger(__name__)


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


#: Environment variable naming the folder of dawm's on-disk caches (default
#: ``$XDG_CACHE_HOME/dawm`` or ``~/.cache/dawm``).
CACHE_ENV = "DAWM_CACHE_DIR"
_STORED = ("t1", "gm", "wm", "brain_mask")  # csf is derived from them (continuous, larger stored)


def cache_dir() -> Path:
    """The folder of dawm's on-disk caches: ``$DAWM_CACHE_DIR``, else ``$XDG_CACHE_HOME/dawm``, else
    ``~/.cache/dawm``. Only derived copies of what the package already holds are kept there."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dawm"


#: Version of what :func:`_from_nilearn` derives from nilearn's files: bump it when that changes, so
#: that copies made by an older dawm are not read.
CACHE_VERSION = 1


def _cache_path(resolution_mm: int) -> Path:
    return cache_dir() / f"{TEMPLATE_NAME}.{resolution_mm}mm.nilearn{metadata.version('nilearn')}.v{CACHE_VERSION}.npz"


def _pack(a: np.ndarray) -> dict[str, np.ndarray]:
    """An array as uint8 codes into a float32 table when it has at most 256 distinct values (the
    template's 1 mm images are 8-bit), else as is: either way :func:`_unpack` restores it exactly."""
    values, codes = np.unique(a, return_inverse=True)
    if values.size <= 256:
        return {"codes": codes.reshape(a.shape).astype(np.uint8), "values": values}
    return {"array": a}


def _unpack(npz, name: str) -> np.ndarray:
    if f"{name}.array" in npz:
        return np.asarray(npz[f"{name}.array"], dtype=np.float32)
    return npz[f"{name}.values"][npz[f"{name}.codes"]].astype(np.float32)


def _from_nilearn(resolution_mm: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    from nilearn import datasets  # local import: nilearn is slow to import

    t1_img = datasets.load_mni152_template(resolution=resolution_mm)
    gm_img = datasets.load_mni152_gm_template(resolution=resolution_mm)
    wm_img = datasets.load_mni152_wm_template(resolution=resolution_mm)
    mask_img = datasets.load_mni152_brain_mask(resolution=resolution_mm)

    def _arr(img) -> np.ndarray:
        return np.clip(np.asarray(img.get_fdata(), dtype=np.float32), 0.0, 1.0)

    t1, gm, wm = _arr(t1_img), _arr(gm_img), _arr(wm_img)
    brain_mask = (_arr(mask_img) > 0.5).astype(np.float32)
    return {"t1": t1, "gm": gm, "wm": wm, "brain_mask": brain_mask}, np.asarray(t1_img.affine, dtype=float)


def _read_cached(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: _unpack(npz, name) for name in _STORED}, np.asarray(npz["affine"], dtype=float)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # absent, truncated, older layout
        if path.exists():
            log.debug("template cache %s unreadable (%s): rebuilding it", path, exc)
        return None


def _write_cached(path: Path, arrays: dict[str, np.ndarray], affine: np.ndarray) -> None:
    from dawm.atomic import atomic_target

    packed = {f"{name}.{k}": v for name in _STORED for k, v in _pack(arrays[name]).items()}
    try:
        with atomic_target(path, ".npz") as tmp:
            np.savez(tmp, affine=affine, **packed)
    except OSError as exc:  # a read-only home on a cluster node: work without the cache
        log.debug("template cache not written to %s (%s)", path, exc)


@functools.lru_cache(maxsize=2)
def load_template(resolution_mm: int = 2) -> Template:
    """Load the nilearn MNI152 2009 template bundle at ``resolution_mm`` (1 or 2). Cached.

    The returned arrays are read-only views shared between callers; copy before modifying. The
    first call on a machine builds the arrays from nilearn's files (about 3 s with nilearn's import
    and resampling) and keeps an exact copy under :func:`cache_dir` (about 35 MB at 1 mm, 15 MB
    at 2 mm, keyed by the nilearn version); later processes read that copy in a few hundredths of
    a second.
    """
    if resolution_mm not in (1, 2):
        raise ValueError(f"template resolution must be 1 or 2 mm, got {resolution_mm!r}")
    path = _cache_path(resolution_mm)
    cached = _read_cached(path)
    if cached is None:
        cached = _from_nilearn(resolution_mm)
        _write_cached(path, *cached)
    arrays, affine = cached
    arrays["csf"] = np.clip(arrays["brain_mask"] - arrays["gm"] - arrays["wm"], 0.0, 1.0).astype(np.float32)
    for a in (*arrays.values(), affine):
        a.setflags(write=False)
    return Template(**arrays, affine=affine)


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
