"""Tissue property maps (T1 in ms, T2 in ms, proton density, MTR in percent units) of one session.

Values at 3 T (see ``shared/reference/literature.md``):
- T1 (MP2RAGE-like): WM ~850 ms, cortical GM ~1400 ms, deep GM ~1150 ms, CSF ~4000 ms
  (Marques et al., NeuroImage 2010; Rioux et al., MRM 2016); lesions 1100-1600 ms, black holes
  higher; DAWM a rise of 5-20 % over NAWM (Vrenken et al., AJNR 2010).
- MTR: WM ~40 pu, GM ~28 pu, CSF ~0 (Silver et al., JNNP 1997; Loevner et al., Radiology 1995);
  lesions 25-35 pu; DAWM a few pu below NAWM (Ge et al., AJNR 2003).
- T2: WM ~75 ms, GM ~90 ms, CSF >1000 ms, lesions 100-200 ms; DAWM mildly prolonged
  (Whittall et al., MRM 2002).
- MS NAWM: MTR 1-3 pu lower than control WM, T1 distribution wider and right-skewed.
- Ageing: WM T1 rises and MTR falls by a small amount per decade.
- Field strength: tissue T1 scales as B0^0.35 (Rooney et al., MRM 2007); CSF is unchanged.
- Deep grey nuclei: the striatum (caudate, putamen) is close to cortex, the thalamus closer to WM
  (more myelinated fibres): at 3 T, T1 of the caudate lies near cortex and the thalamus and
  pallidum nearer WM (Gelman et al., MRM 2001, R1 by region), and caudate T2 falls in the same
  group as neocortex (Georgiades et al., AJNR 2001). So on FLAIR and T2w the striatum reads
  near cortex (a few % above WM), the thalamus between.

Partial volume: CSF and tissue are separate water compartments on the time scale of a TR (slow
exchange), so a voxel's signal is the sum of its compartments' signals, not the signal of averaged
relaxation times (averaging T2 over 20 % CSF gives ~370 ms, a FLAIR-bright rim at every CSF
border that no scanner shows). :func:`signal_compartments` returns the two compartments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Pure-tissue properties at 3 T: (T1 ms, T2 ms, PD, MTR pu).
TISSUE = {
    "wm": (850.0, 75.0, 0.69, 40.0),
    "gm": (1400.0, 90.0, 0.80, 28.0),
    "deep_gm": (1150.0, 78.0, 0.78, 32.0),  # thalamus
    "striatum": (1300.0, 88.0, 0.80, 29.0),  # caudate, putamen
    "csf": (4000.0, 1500.0, 1.00, 1.0),
    "fat": (380.0, 70.0, 0.90, 8.0),
    "skull": (500.0, 5.0, 0.05, 15.0),
}
#: Lesion properties from mild (grade 0) to black hole (grade 1).
LESION_MILD = (1150.0, 110.0, 0.78, 34.0)
LESION_SEVERE = (1650.0, 200.0, 0.86, 24.0)
#: Relative change of DAWM at full severity: T1 x, T2 x, PD x, MTR -pu.
DAWM_EFFECT = {"t1": 0.15, "t2": 0.12, "pd": 0.04, "mtr_pu": 5.0}


@dataclass(frozen=True)
class PropertyMaps:
    """Property maps on the subject grid (float32): T1 (ms), T2 (ms), PD (0..1), MTR (pu)."""

    t1_ms: np.ndarray
    t2_ms: np.ndarray
    pd: np.ndarray
    mtr_pu: np.ndarray


@dataclass(frozen=True)
class SubjectTissueTraits:
    """Per-subject variation of tissue properties (drawn once, shared by all sessions)."""

    t1_field: np.ndarray  # smooth relative spatial variation of tissue T1 (e.g. +-3 %)
    mtr_field: np.ndarray  # smooth spatial variation of WM MTR (pu)
    texture: np.ndarray  # fine-scale relative variation (microstructure)
    dawm_t1: float  # subject's DAWM T1 rise at full severity (relative)
    dawm_mtr_pu: float  # subject's DAWM MTR drop at full severity (pu)
    nawm_mtr_shift_pu: float  # MS NAWM vs control WM (negative in patients)
    nawm_t1_skew: float  # right-skew of NAWM T1 in patients (relative)


def tissue_properties(
    fractions: dict[str, np.ndarray],
    *,
    lesion_frac: np.ndarray,
    lesion_grade: np.ndarray,
    dawm: np.ndarray,
    traits: SubjectTissueTraits,
    age_years: float,
    field_t: float = 3.0,
    dawm_scale: float = 1.0,
) -> PropertyMaps:
    """Mix pure-tissue properties by partial-volume ``fractions`` and add pathology.

    ``fractions`` has keys of :data:`TISSUE` (missing keys count as 0); their sum is the head
    fraction (the rest is air). ``dawm_scale`` scales the DAWM change of T1/T2/PD (the clinical
    images' visibility); MTR always sees the full change.
    """
    shape = lesion_frac.shape
    t1 = np.zeros(shape, np.float32)
    t2 = np.zeros(shape, np.float32)
    pd = np.zeros(shape, np.float32)
    mtr = np.zeros(shape, np.float32)
    total = np.zeros(shape, np.float32)
    decades = max(age_years - 30.0, 0.0) / 10.0
    b0_scale = (field_t / 3.0) ** 0.35
    for key, (t1v, t2v, pdv, mtrv) in TISSUE.items():
        f = fractions.get(key)
        if f is None:
            continue
        tissue_t1 = t1v * (1 + traits.t1_field + traits.texture)
        tissue_mtr = np.full(shape, mtrv, np.float32)
        if key == "wm":
            tissue_t1 = tissue_t1 * (1 + 0.012 * decades) * (1 + traits.nawm_t1_skew * np.abs(traits.texture) / 0.02)
            tissue_mtr = tissue_mtr + traits.mtr_field - 0.25 * decades + traits.nawm_mtr_shift_pu
        if key != "csf":
            tissue_t1 = tissue_t1 * b0_scale
        t1 += f * tissue_t1
        t2 += f * t2v * (1 + 0.5 * traits.texture)
        pd += f * pdv
        mtr += f * tissue_mtr
        total += f
    head = total > 1e-3
    inv = np.where(head, 1.0 / np.maximum(total, 1e-3), 0.0).astype(np.float32)
    t1, t2, pd_norm, mtr = t1 * inv, t2 * inv, pd * inv, mtr * inv
    # DAWM: a graded change of the normal-appearing tissue it sits in.
    t1 = t1 * (1 + dawm_scale * traits.dawm_t1 * dawm)
    t2 = t2 * (1 + dawm_scale * DAWM_EFFECT["t2"] * dawm)
    pd_norm = pd_norm * (1 + dawm_scale * DAWM_EFFECT["pd"] * dawm)
    mtr = mtr - traits.dawm_mtr_pu * dawm
    # Focal lesions replace the tissue where they sit.
    g = lesion_grade
    les = [m + g * (s - m) for m, s in zip(LESION_MILD, LESION_SEVERE)]
    les[0] = les[0] * (1 + traits.texture) * b0_scale
    w = lesion_frac
    t1 = (1 - w) * t1 + w * les[0]
    t2 = (1 - w) * t2 + w * les[1]
    pd_norm = (1 - w) * pd_norm + w * les[2]
    mtr = (1 - w) * mtr + w * les[3]
    # PD carries the head's partial volume with air.
    pd_out = pd_norm * np.clip(total, 0, 1)
    t1 = np.where(head, t1, 0).astype(np.float32)
    t2 = np.where(head, t2, 0).astype(np.float32)
    mtr = np.where(head, np.clip(mtr, 0, 100), 0).astype(np.float32)
    return PropertyMaps(t1_ms=t1, t2_ms=t2, pd=pd_out.astype(np.float32), mtr_pu=mtr)


def signal_compartments(fractions: dict[str, np.ndarray], *, lesion_frac: np.ndarray, **kwargs) -> tuple[PropertyMaps, PropertyMaps]:
    """The voxel's two signal compartments ``(tissue, fluid)``: its non-CSF tissues (parenchyma
    with lesions and DAWM, the head's fat and skull) and its CSF, each from :func:`tissue_properties`
    with PD carrying the compartment's volume share. Any signal linear in PD then adds:
    ``S = S(tissue) + S(fluid)`` (e.g. a FLAIR voxel of 20 % CSF reads as 80 % tissue, CSF nulled).

    ``lesion_frac`` is the lesion's share of the voxel, taken as its share of the tissue
    compartment; ``kwargs`` are :func:`tissue_properties`'s (``dawm`` acts on tissue only).
    """
    tissue_fr = {k: v for k, v in fractions.items() if k != "csf"}
    tissue_total = sum(tissue_fr.values()) if tissue_fr else np.zeros_like(lesion_frac)
    lesion_share = np.clip(lesion_frac / np.maximum(tissue_total, 1e-3), 0.0, 1.0).astype(np.float32)
    tissue = tissue_properties(tissue_fr, lesion_frac=lesion_share, **kwargs)
    none = np.zeros_like(lesion_frac, dtype=np.float32)
    fluid_kwargs = {**kwargs, "lesion_grade": none, "dawm": none}
    fluid = tissue_properties({"csf": fractions.get("csf", none)}, lesion_frac=none, **fluid_kwargs)
    return tissue, fluid
