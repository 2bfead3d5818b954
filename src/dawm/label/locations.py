"""MAGNIMS-like location class of every white-matter voxel (Filippi et al., Lancet Neurol 2016;
Thompson et al., Lancet Neurol 2018), on the session grid.

Classes (``LOCATION_LABELS``), first match wins:

* 4 infratentorial: below the tentorium, found through the MNI registration: MNI z < -24 mm, or
  z < -8 mm behind y = -40 mm (brainstem and cerebellum of the MNI152 2009 template);
* 1 periventricular: within ``periventricular_mm`` (10) of the lateral ventricles, found as CSF
  components deep in the brain (> ``ventricle_depth_mm`` from its surface) inside a box around the
  brain centre (the MNI box x +-32, y -48..30, z -12..32 mm when MNI coordinates are given);
* 2 juxtacortical: within ``juxtacortical_mm`` (3) of cortical GM (GM less than ``cortex_depth_mm``
  = 20 mm deep; deeper GM is the deep grey nuclei);
* 3 deep white matter: the rest. 0: not white matter.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dawm.image.components import filter_components
from dawm.labels import LOCATION_LABELS

VENTRICLE_BOX_MNI = ((-32.0, 32.0), (-48.0, 30.0), (-12.0, 32.0))
INFRATENTORIAL_Z_MM, INFRATENTORIAL_Z2_MM, INFRATENTORIAL_Y_MM = -24.0, -8.0, -40.0


def ventricles(
    csf: np.ndarray,
    brain: np.ndarray,
    spacing_mm: np.ndarray,
    *,
    mni_xyz: np.ndarray | None = None,
    affine: np.ndarray | None = None,
    depth_mm: float = 12.0,
) -> np.ndarray:
    """Lateral (and third) ventricles: deep CSF components near the brain centre. ``csf``/``brain``
    bool (X, Y, Z); ``mni_xyz`` (3, X, Y, Z) MNI mm of each voxel (else a box of the same size
    around the brain's centre of mass, using ``affine``). Components under 2 % of the largest are
    dropped."""
    spacing_mm = np.broadcast_to(np.asarray(spacing_mm, float), (3,))
    depth = ndimage.distance_transform_edt(brain, sampling=spacing_mm)
    if mni_xyz is not None:
        coords = mni_xyz
    else:
        if affine is None:
            raise ValueError("ventricles: give mni_xyz or the affine")
        idx = np.indices(brain.shape, dtype=np.float32)
        centre = np.array(ndimage.center_of_mass(brain))
        rel = idx - centre[:, None, None, None]
        coords = np.tensordot(np.asarray(affine)[:3, :3], rel, axes=1)  # mm relative to the centre, scanner axes
        coords[2] += 10.0  # the ventricles sit a little above the brain's centre of mass
    box = np.ones(brain.shape, bool)
    for axis, (lo, hi) in enumerate(VENTRICLE_BOX_MNI):
        box &= (coords[axis] >= lo) & (coords[axis] <= hi)
    cand = csf & box & (depth >= depth_mm)
    return filter_components(cand, connectivity=1, min_fraction=0.02)


def infratentorial(mni_xyz: np.ndarray) -> np.ndarray:
    """Bool mask of voxels below the tentorium from their MNI coordinates (3, X, Y, Z) mm."""
    x, y, z = mni_xyz
    return (z < INFRATENTORIAL_Z_MM) | ((z < INFRATENTORIAL_Z2_MM) & (y < INFRATENTORIAL_Y_MM))


def location_classes(
    dseg: np.ndarray,
    brain: np.ndarray,
    spacing_mm: np.ndarray | float,
    *,
    wm: np.ndarray | None = None,
    mni_xyz: np.ndarray | None = None,
    affine: np.ndarray | None = None,
    periventricular_mm: float = 10.0,
    juxtacortical_mm: float = 3.0,
    cortex_depth_mm: float = 20.0,
) -> np.ndarray:
    """Location class (uint8, see :data:`LOCATION_LABELS`) of every WM voxel.

    ``dseg``: 1 CSF, 2 GM, 3 WM (X, Y, Z); ``wm``: the voxels to classify (default ``dseg == 3``;
    pass WM | lesions to classify lesions too); ``mni_xyz``: (3, X, Y, Z) MNI coordinates in mm, needed
    for the infratentorial class (without it no voxel is infratentorial).
    """
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (3,))
    brain = np.asarray(brain, bool)
    wm = (dseg == 3) if wm is None else np.asarray(wm, bool)
    vent = ventricles(dseg == 1, brain, spacing, mni_xyz=mni_xyz, affine=affine)
    depth = ndimage.distance_transform_edt(brain, sampling=spacing)
    cortex = (dseg == 2) & (depth < cortex_depth_mm)
    infra = infratentorial(mni_xyz) if mni_xyz is not None else np.zeros(dseg.shape, bool)
    cortex &= ~infra
    dist_v = ndimage.distance_transform_edt(~vent, sampling=spacing) if vent.any() else np.full(dseg.shape, np.inf)
    dist_c = ndimage.distance_transform_edt(~cortex, sampling=spacing) if cortex.any() else np.full(dseg.shape, np.inf)
    loc = np.full(dseg.shape, 3, np.uint8)
    loc[dist_c <= juxtacortical_mm] = 2
    loc[dist_v <= periventricular_mm] = 1
    loc[infra] = 4
    loc[~wm] = 0
    return loc


def hemisphere(mni_xyz: np.ndarray | None, shape: tuple[int, int, int]) -> np.ndarray:
    """0 left / 1 right (MNI x < 0 / >= 0); all 0 without MNI coordinates."""
    if mni_xyz is None:
        return np.zeros(shape, np.uint8)
    return (mni_xyz[0] >= 0).astype(np.uint8)


#: Upper edges (mm) of the partial-volume bands: distance of a WM voxel to the nearest CSF/GM voxel.
PV_BANDS_MM = (2.0, 4.0)
N_BANDS = len(PV_BANDS_MM) + 1


def pv_band(dseg: np.ndarray, spacing_mm: np.ndarray | float, edges_mm: tuple[float, ...] = PV_BANDS_MM) -> np.ndarray:
    """Partial-volume band (uint8) of every voxel: 0 within ``edges_mm[0]`` of CSF/GM (``dseg`` 1/2),
    1 up to ``edges_mm[1]``, ..., ``len(edges_mm)`` deeper in WM. WM values drift towards GM/CSF values
    near tissue borders (blur, interpolation), so the norms are kept per band."""
    other = (dseg == 1) | (dseg == 2)
    if not other.any():
        return np.full(dseg.shape, len(edges_mm), np.uint8)
    dist = ndimage.distance_transform_edt(~other, sampling=np.broadcast_to(np.asarray(spacing_mm, float), (3,)))
    return np.searchsorted(np.asarray(edges_mm), dist, side="left").astype(np.uint8)


def regions(location: np.ndarray, hemi: np.ndarray, band: np.ndarray | None = None) -> np.ndarray:
    """Region index ``(2 * (location - 1) + hemisphere) * N_BANDS + band`` of the WM voxels, -1
    elsewhere: the units of the regional normative statistics (:data:`REGION_NAMES`)."""
    out = np.full(location.shape, -1, np.int16)
    inside = location > 0
    b = np.full(location.shape, N_BANDS - 1, np.int16) if band is None else band.astype(np.int16)
    out[inside] = (2 * (location[inside].astype(np.int16) - 1) + hemi[inside]) * N_BANDS + b[inside]
    return out


REGION_NAMES = {
    (2 * (k - 1) + h) * N_BANDS + b: f"{LOCATION_LABELS[k]}-{'LR'[h]}-pv{b}" for k in range(1, 5) for h in (0, 1) for b in range(N_BANDS)
}
