"""Follow-up sessions aligned to the baseline: rigid registration of the preprocessed images and
resampling of the follow-up's maps onto the baseline grid.

Images are ``(array (X, Y, Z), affine)`` pairs with RAS voxel -> world mm affines. Transforms are
4x4 *pull* matrices (:mod:`dawm.image.registration`): they map baseline-world RAS mm to
follow-up-world RAS mm. The two sessions of a subject have no common world (each session grid lies
in its own scanner's world, and the only transforms the preprocess derivative keeps per session are
the deformable ones to and from MNI), so the alignment is a direct rigid registration of the two
sessions' preprocessed images: the same head, so 6 degrees of freedom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dawm.image.registration import rigid_register
from dawm.image.resample import Interpolation, resample
from dawm.metrics import dice

#: Below this Dice of the baseline brain mask with the aligned follow-up brain mask the alignment is
#: a failure. Fixed a priori: a rigid shift of d mm of a 1.2 L brain (radius ~66 mm) leaves a Dice of
#: about 1 - 3d / (4 * 66), so 0.8 means the brains are off by ~2 cm, which no lesion comparison survives;
#: a good alignment of two sessions of one brain gives > 0.9.
MIN_BRAIN_DICE = 0.8


class AlignmentError(ValueError):
    """The follow-up could not be aligned to the baseline (the reason is the message)."""


@dataclass(frozen=True)
class Alignment:
    """A follow-up -> baseline alignment.

    ``matrix_ras``: 4x4 pull matrix (baseline-world RAS mm -> follow-up-world RAS mm);
    ``image``: the role of the images registered (``"T1w"``, ``"FLAIR"`` or ``"T1w->FLAIR"``
    when the sessions share no role); ``mattes_mi``: final metric (negative, lower is better);
    ``brain_dice``: Dice of the baseline brain mask with the aligned follow-up brain mask;
    ``translation_mm`` / ``rotation_deg``: size of the motion (at the baseline grid's centre).
    """

    matrix_ras: np.ndarray
    image: str
    mattes_mi: float
    brain_dice: float
    translation_mm: float
    rotation_deg: float

    def as_dict(self) -> dict[str, float | str]:
        return {
            "alignment_image": self.image,
            "alignment_mattes_mi": self.mattes_mi,
            "alignment_brain_dice": self.brain_dice,
            "alignment_translation_mm": self.translation_mm,
            "alignment_rotation_deg": self.rotation_deg,
        }


def register_followup_to_baseline(
    baseline_img: np.ndarray,
    baseline_affine: np.ndarray,
    followup_img: np.ndarray,
    followup_affine: np.ndarray,
    *,
    baseline_mask: np.ndarray | None = None,
    followup_mask: np.ndarray | None = None,
    seed: int = 0,
    working_spacing_mm: float = 2.0,
) -> np.ndarray:
    """Rigid (6 dof, Mattes MI) registration of the follow-up image onto the baseline.

    A thin wrapper of :func:`dawm.image.registration.rigid_register`. Returns the 4x4 pull
    matrix mapping baseline-world RAS mm to follow-up-world RAS mm, as ``transform_ras`` of
    :func:`followup_on_baseline`.
    """
    reg = rigid_register(
        baseline_img,
        baseline_affine,
        followup_img,
        followup_affine,
        fixed_mask=baseline_mask,
        moving_mask=followup_mask,
        dof=6,
        seed=seed,
        working_spacing_mm=working_spacing_mm,
    )
    return reg.matrix_ras


def followup_on_baseline(
    labels: np.ndarray,
    followup_affine: np.ndarray,
    baseline_shape: tuple[int, int, int],
    baseline_affine: np.ndarray,
    transform_ras: np.ndarray | None,
    *,
    fill_value: float = 0,
    interpolation: Interpolation = "nearest",
) -> np.ndarray:
    """A follow-up map resampled onto the baseline grid (``baseline_shape``).

    Nearest neighbour by default (label maps keep their dtype); pass ``interpolation="linear"`` for
    probability maps (float32). ``transform_ras`` is the pull matrix of
    :func:`register_followup_to_baseline` (None: the two sessions already share a world). Voxels
    outside the follow-up field of view get ``fill_value`` (0 = normal; pass e.g. 255 to keep them
    out of :func:`dawm.longitudinal.transitions.transition_volumes`).
    """
    return resample(
        labels, followup_affine, baseline_shape, baseline_affine, transform_ras, interpolation=interpolation, fill_value=fill_value
    )


def motion_size(matrix_ras: np.ndarray, centre_ras: np.ndarray) -> tuple[float, float]:
    """(translation of ``centre_ras`` in mm, rotation angle in degrees) of a rigid 4x4 matrix."""
    m = np.asarray(matrix_ras, dtype=float)
    c = np.asarray(centre_ras, dtype=float)
    shift = float(np.linalg.norm(m[:3, :3] @ c + m[:3, 3] - c))
    cos = np.clip((np.trace(m[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
    return shift, float(np.degrees(np.arccos(cos)))


def align_sessions(
    baseline: dict[str, np.ndarray],
    followup: dict[str, np.ndarray],
    baseline_affine: np.ndarray,
    followup_affine: np.ndarray,
    baseline_brain: np.ndarray,
    followup_brain: np.ndarray,
    *,
    baseline_reference: str | None = None,
    followup_reference: str | None = None,
    min_brain_dice: float = MIN_BRAIN_DICE,
) -> Alignment:
    """Rigidly align a follow-up session to its baseline.

    ``baseline`` / ``followup``: preprocessed images by role (``{"T1w": (X, Y, Z), "FLAIR": ...}``)
    on each session's grid (``*_affine``); ``*_brain``: the brain masks on the same grids. The
    registered pair is the first role both sessions have, the sessions' references first (T1w, else
    FLAIR); without a shared role the two references are registered across contrasts (mutual
    information allows it). The metric is restricted to the brain masks.

    Raises :class:`AlignmentError` when the registration fails or the aligned brain masks overlap
    with a Dice below ``min_brain_dice``.
    """
    order = [r for r in (baseline_reference, followup_reference, "T1w", "FLAIR") if r]
    shared = next((r for r in order if r in baseline and r in followup), None)
    if shared is not None:
        b_role = f_role = shared
    elif baseline and followup:
        b_role = baseline_reference if baseline_reference in baseline else next(iter(baseline))
        f_role = followup_reference if followup_reference in followup else next(iter(followup))
    else:
        raise AlignmentError("no preprocessed image to register")
    b_brain, f_brain = np.asarray(baseline_brain) > 0, np.asarray(followup_brain) > 0
    try:
        reg = rigid_register(
            baseline[b_role], baseline_affine, followup[f_role], followup_affine, fixed_mask=b_brain, moving_mask=f_brain, dof=6
        )
    except (ValueError, RuntimeError) as exc:  # SimpleITK raises RuntimeError
        raise AlignmentError(f"rigid registration failed: {exc}") from None
    moved_brain = followup_on_baseline(f_brain.astype(np.uint8), followup_affine, b_brain.shape, baseline_affine, reg.matrix_ras) > 0
    overlap = dice(b_brain, moved_brain)
    centre = (np.asarray(baseline_affine) @ np.append((np.asarray(b_brain.shape) - 1) / 2.0, 1.0))[:3]
    shift, angle = motion_size(reg.matrix_ras, centre)
    image = b_role if b_role == f_role else f"{f_role}->{b_role}"
    if overlap < min_brain_dice:
        raise AlignmentError(f"{image} registration missed: brain-mask Dice {overlap:.2f} < {min_brain_dice} after alignment")
    return Alignment(reg.matrix_ras, image, reg.metric, overlap, shift, angle)
