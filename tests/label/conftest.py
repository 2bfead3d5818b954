"""Tiny synthetic WM phantoms for the pure-array tests of ``dawm label``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from dawm.label.config import LabelConfig
from dawm.label.normative import SessionMaps
from dawm.label.pipeline import PreparedSession
from dawm.label.zscores import masked_smooth

SPACING = 2.0
SHAPE = (36, 36, 36)
T1_WM, T1_SD, MTR_WM, MTR_SD = 850.0, 25.0, 40.0, 1.0


@dataclass
class Phantom:
    prepared: PreparedSession
    patch: np.ndarray  # bool, the raised/lowered patch
    t1_raw: np.ndarray
    mtr_raw: np.ndarray


def make_phantom(k: float = 0.0, *, seed: int = 0, config: LabelConfig | None = None, mtr_shift: float = 0.0,
                 lesion: bool = False, t1_scale: float = 1.0, mtr_scale: float = 1.0) -> Phantom:
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


def prepare_arrays(t1_ms: np.ndarray, mtr_pu: np.ndarray, wm: np.ndarray, lesion: np.ndarray, config: LabelConfig,
                   *, subject: str = "p", age: float | None = 40.0) -> PreparedSession:
    """What :func:`dawm.label.pipeline.prepare_session` makes, from arrays (no MNI, one region per class)."""
    from dawm.label.locations import hemisphere, location_classes, pv_band, regions
    from dawm.label.rules import within_mm

    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    dseg = np.where(wm, 3, 1).astype(np.uint8)
    brain = np.ones(SHAPE, bool)
    wm_prob = wm.astype(np.float32)
    location = location_classes(dseg, brain, SPACING, wm=wm | lesion, affine=affine)
    region = regions(location, hemisphere(None, SHAPE), pv_band(dseg, SPACING))
    pure = wm & ~lesion
    raw = {"T1": np.asarray(t1_ms, np.float32), "MTR": np.asarray(mtr_pu, np.float32)}
    maps = {m: np.where(pure, masked_smooth(a, pure, config.smoothing_fwhm_mm, SPACING), a).astype(np.float32) for m, a in raw.items()}
    reference = pure & ~within_mm(lesion, config.reference_lesion_margin_mm, SPACING) & (region >= 0)
    sm = SessionMaps(key=f"sub-{subject}", subject=subject, affine=affine, maps=maps, raw=raw, reference=reference,
                     wm=wm | lesion, region=region, age=age, norm_key="scannerA")
    return PreparedSession(sm, dseg, wm_prob, lesion, location, "given")


@pytest.fixture
def phantom():
    return make_phantom
