"""Tiny synthetic WM phantoms for the pure-array tests of ``dawm label``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from dawm.label.config import LabelConfig
from dawm.label.pipeline import PreparedSession
from dawm.label.pipeline import prepare_arrays as core_prepare_arrays

SPACING = 2.0
SHAPE = (36, 36, 36)
T1_WM, T1_SD, MTR_WM, MTR_SD = 850.0, 25.0, 40.0, 1.0


@dataclass
class Phantom:
    prepared: PreparedSession
    patch: np.ndarray  # bool, the raised/lowered patch
    t1_raw: np.ndarray
    mtr_raw: np.ndarray


def make_phantom(
    k: float = 0.0,
    *,
    seed: int = 0,
    config: LabelConfig | None = None,
    mtr_shift: float = 0.0,
    lesion: bool = False,
    t1_scale: float = 1.0,
    mtr_scale: float = 1.0,
) -> Phantom:
    """A WM ball (radius 30 mm) in CSF, T1 850 +- 25 ms and MTR 40 +- 1 pu (iid noise), with a
    16 mm cube patch whose T1 is raised and MTR lowered by ``k`` noise SD; optionally a lesion ball
    (radius 4 mm) at the patch's centre; ``mtr_shift`` (pu) shifts all WM MTR (MS NAWM);
    ``t1_scale`` / ``mtr_scale`` rescale the raw maps (units tests)."""
    config = config or LabelConfig()
    rng = np.random.default_rng(seed)
    idx = np.indices(SHAPE).astype(float)
    centre = (np.array(SHAPE) - 1) / 2
    r = np.sqrt(((idx - centre[:, None, None, None]) ** 2).sum(0)) * SPACING
    wm = r <= 30.0
    patch = np.zeros(SHAPE, bool)
    patch[22:30, 14:22, 14:22] = True
    patch &= wm
    lesion_mask = np.zeros(SHAPE, bool)
    if lesion:
        rl = np.sqrt(((idx - np.array([26, 18, 18])[:, None, None, None]) ** 2).sum(0)) * SPACING
        lesion_mask = rl <= 4.0
    t1 = T1_WM + T1_SD * rng.standard_normal(SHAPE) + k * T1_SD * patch
    mtr = MTR_WM + mtr_shift + MTR_SD * rng.standard_normal(SHAPE) - k * MTR_SD * patch
    t1[lesion_mask], mtr[lesion_mask] = 1500.0, 28.0
    t1[~wm], mtr[~wm] = 4000.0, 1.0
    t1_raw, mtr_raw = (t1 * t1_scale).astype(np.float32), (mtr * mtr_scale).astype(np.float32)
    return Phantom(prepare_arrays(t1, mtr, wm, lesion_mask, config), patch, t1_raw, mtr_raw)


def prepare_arrays(
    t1_ms: np.ndarray,
    mtr_pu: np.ndarray,
    wm: np.ndarray,
    lesion: np.ndarray,
    config: LabelConfig,
    *,
    subject: str = "p",
    age: float | None = 40.0,
) -> PreparedSession:
    """:func:`dawm.label.pipeline.prepare_arrays` (what :func:`~dawm.label.pipeline.prepare_session` runs
    after loading) on a phantom: dseg WM in ``wm`` and CSF elsewhere, WM probability 1 in WM, the whole
    grid brain, the lesion given, no MNI transform (one hemisphere, no infratentorial class)."""
    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    return core_prepare_arrays(
        {"T1": np.asarray(t1_ms, np.float32), "MTR": np.asarray(mtr_pu, np.float32)},
        np.where(wm, 3, 1).astype(np.uint8),
        wm.astype(np.float32),
        np.ones(SHAPE, bool),
        affine,
        config,
        lesion=lesion,
        lesion_source="given",
        key=f"sub-{subject}",
        subject=subject,
        age=age,
        norm_key="scannerA",
    )


@pytest.fixture
def phantom():
    return make_phantom
