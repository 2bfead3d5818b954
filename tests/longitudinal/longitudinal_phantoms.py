"""Tiny synthetic sessions for the longitudinal tests: a smooth asymmetric "head" and spherical
lesion / DAWM patches defined in world mm, sampled on 2 mm grids, so that a follow-up whose content
is moved by a known rigid shift is exact up to sampling."""

from __future__ import annotations

import numpy as np

N = 32  # voxels per axis (2 mm: 64 mm field of view)
VOX_ML = 0.008

#: (centre mm, radius mm) of the patches, in baseline-world mm (centres on voxel centres of a grid at -31 mm).
LESION = ((-7.0, 5.0, 3.0), 5.0)  # lesion at both sessions
NEW_LESION = ((9.0, -7.0, -5.0), 4.5)  # lesion at follow-up only, in normal tissue
DAWM_TO_LESION = ((5.0, 9.0, 7.0), 4.5)  # DAWM at baseline, lesion at follow-up


def grid(origin) -> tuple[np.ndarray, np.ndarray]:
    """A 2 mm grid of N^3 voxels at ``origin``: (affine, world points (N^3, 3))."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = origin
    ijk = np.stack(np.meshgrid(*[np.arange(N)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return affine, ijk @ affine[:3, :3].T + affine[:3, 3]


def head(points: np.ndarray) -> np.ndarray:
    """A smooth asymmetric image of a few anisotropic Gaussians at world points (N, 3)."""
    out = np.zeros(len(points))
    for centre, sigma, amp in [
        ((0, 0, 0), (14, 10, 8), 1.0),
        ((10, 6, -4), (5, 4, 6), 0.8),
        ((-8, -7, 6), (4, 6, 3), 0.6),
        ((4, -10, -8), (3, 3, 5), 0.5),
    ]:
        out += amp * np.exp(-0.5 * (((points - centre) / np.asarray(sigma)) ** 2).sum(axis=1))
    return out


def _ball(points: np.ndarray, patch) -> np.ndarray:
    centre, radius = patch
    return np.linalg.norm(points - np.asarray(centre), axis=1) <= radius


def labels(points: np.ndarray, followup: bool) -> np.ndarray:
    """0 normal, 1 lesion, 2 DAWM at world points (content in baseline-world mm)."""
    out = np.zeros(len(points), np.uint8)
    out[_ball(points, DAWM_TO_LESION)] = 1 if followup else 2
    out[_ball(points, LESION)] = 1
    if followup:
        out[_ball(points, NEW_LESION)] = 1
    return out


def session(origin, shift=(0.0, 0.0, 0.0), *, followup: bool = False) -> dict:
    """One session on a grid at ``origin`` whose content is the baseline's moved by ``shift`` mm:
    ``affine``, ``image``, ``brain``, ``labels``, ``lesion_prob``, ``dawm_prob`` (N, N, N)."""
    affine, pts = grid(origin)
    src = pts - np.asarray(shift)  # the content at p is the baseline's at p - shift
    img = head(src).reshape(N, N, N)
    lab = labels(src, followup).reshape(N, N, N)
    return {
        "affine": affine,
        "image": img.astype(np.float32),
        "brain": (img > 0.08).astype(np.uint8),
        "labels": lab,
        "lesion_prob": (lab == 1).astype(np.float32) * 0.9,
        "dawm_prob": (lab == 2).astype(np.float32) * 0.8,
    }
