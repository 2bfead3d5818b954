"""Scanner profiles: vendor, field strength, sequence parameters, image quality and file habits.

Profiles differ the way real sites do: field strength (T1 values and contrast), 2D vs 3D FLAIR,
receive-coil bias, noise level, motion, how files are stored (RAS or LPS, oblique, float or int16
with ``scl_slope``) and in which units quantitative maps come (T1 in s or ms, MTR in % or fraction).
Sequence parameters follow typical research protocols (``shared/reference/literature.md``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from dawm.simulate.signal import MPRAGEParams, flair_null_ti


class FlairProtocol(BaseModel):
    dims: Literal["2D", "3D"]
    tr_ms: float
    te_ms: float
    voxel_mm: tuple[float, float, float]  # in-plane x2, slice thickness
    slice_gap_mm: float = 0.0

    @property
    def ti_ms(self) -> float:
        return round(flair_null_ti(self.tr_ms), 1)


class ScannerProfile(BaseModel):
    """One site's scanner and protocol."""

    name: str
    manufacturer: str
    model: str
    field_t: float
    flair: FlairProtocol
    mprage: MPRAGEParams
    mp2rage: MPRAGEParams
    mt_tr_ms: float = 30.0
    mt_flip_deg: float = 10.0
    mt_voxel_mm: float = 1.5
    snr: float = 30.0  # WM signal / noise sigma of the 1 mm 3D T1w at this site (others, and coarser renditions, scale from it)
    bias_amplitude: float = 0.25  # std of the log receive field
    b1_amplitude: float = 0.05  # std of the relative transmit field
    motion_probability: float = 0.15  # chance that a session has ghosting artefacts
    motion_amplitude: float | None = None  # forced ghosting amplitude of every session (None: random, see motion_probability)
    storage: Literal["RAS", "LPS"] = "RAS"
    oblique_deg: float = 10.0
    integer_storage: bool = False
    t1map_units: Literal["s", "ms"] = "s"
    mtr_units: Literal["percent", "fraction"] = "percent"
    nan_background: bool = False  # T1 map set to NaN where the signal is too low to fit

    model_config = {"arbitrary_types_allowed": True}


_MP2RAGE_3T = MPRAGEParams(tr_ms=5000.0, ti_ms=(700.0, 2500.0), flip_deg=(4.0, 5.0), n_excitations=176, echo_spacing_ms=7.0)
_MP2RAGE_15T = MPRAGEParams(tr_ms=5000.0, ti_ms=(800.0, 2700.0), flip_deg=(5.0, 6.0), n_excitations=160, echo_spacing_ms=7.5)
_MPRAGE_3T = MPRAGEParams(tr_ms=2300.0, ti_ms=(900.0,), flip_deg=(9.0,), n_excitations=176, echo_spacing_ms=7.0)
_MPRAGE_15T = MPRAGEParams(tr_ms=2000.0, ti_ms=(800.0,), flip_deg=(8.0,), n_excitations=160, echo_spacing_ms=7.5)

DEFAULT_PROFILES: tuple[ScannerProfile, ...] = (
    ScannerProfile(
        name="prisma3t",
        manufacturer="Siemens",
        model="Prisma",
        field_t=3.0,
        flair=FlairProtocol(dims="3D", tr_ms=5000.0, te_ms=110.0, voxel_mm=(1.0, 1.0, 1.0)),
        mprage=_MPRAGE_3T,
        mp2rage=_MP2RAGE_3T,
        snr=34.0,
        bias_amplitude=0.22,
        motion_probability=0.1,
        storage="RAS",
        oblique_deg=12.0,
        t1map_units="s",
        mtr_units="percent",
    ),
    ScannerProfile(
        name="achieva3t",
        manufacturer="Philips",
        model="Achieva dStream",
        field_t=3.0,
        flair=FlairProtocol(dims="2D", tr_ms=11000.0, te_ms=125.0, voxel_mm=(0.9, 0.9, 3.0), slice_gap_mm=0.0),
        mprage=_MPRAGE_3T,
        mp2rage=_MP2RAGE_3T,
        snr=28.0,
        bias_amplitude=0.3,
        motion_probability=0.2,
        storage="LPS",
        oblique_deg=8.0,
        integer_storage=True,
        t1map_units="ms",
        mtr_units="fraction",
        nan_background=True,
    ),
    ScannerProfile(
        name="signa15t",
        manufacturer="GE",
        model="Signa HDxt",
        field_t=1.5,
        flair=FlairProtocol(dims="2D", tr_ms=9000.0, te_ms=120.0, voxel_mm=(0.9, 0.9, 5.0), slice_gap_mm=1.0),
        mprage=_MPRAGE_15T,
        mp2rage=_MP2RAGE_15T,
        snr=20.0,
        bias_amplitude=0.18,
        motion_probability=0.3,
        storage="LPS",
        oblique_deg=5.0,
        integer_storage=True,
        t1map_units="s",
        mtr_units="percent",
    ),
    ScannerProfile(
        name="skyra3t",
        manufacturer="Siemens",
        model="Skyra",
        field_t=3.0,
        flair=FlairProtocol(dims="3D", tr_ms=5000.0, te_ms=95.0, voxel_mm=(1.0, 1.0, 1.2)),
        mprage=_MPRAGE_3T,
        mp2rage=_MP2RAGE_3T,
        snr=26.0,
        bias_amplitude=0.28,
        motion_probability=0.15,
        storage="RAS",
        oblique_deg=15.0,
        t1map_units="s",
        mtr_units="percent",
    ),
)


def scanner_profiles(n: int) -> tuple[ScannerProfile, ...]:
    """The first ``n`` default profiles (1..4)."""
    if not 1 <= n <= len(DEFAULT_PROFILES):
        raise ValueError(f"between 1 and {len(DEFAULT_PROFILES)} scanners, got {n}")
    return DEFAULT_PROFILES[:n]
