"""Parameters of a simulated cohort (one pydantic model drives the CLI, the API and the tests)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator


class Degradation(BaseModel):
    """Controlled acquisition degradation applied to every scanner profile (the evaluation's
    dose-response): ``noise`` multiplies the noise SD, ``bias`` the receive-field amplitude,
    ``motion`` (ghost amplitude, e.g. 0.3) forces ghosting in every session, ``flair_slice_mm``
    makes every FLAIR 2D with that slice thickness. The defaults leave the profiles as they are."""

    noise: float = Field(1.0, gt=0, description="noise SD factor (2 = half the SNR)")
    bias: float = Field(1.0, ge=0, description="receive-field (log) amplitude factor")
    motion: float | None = Field(None, ge=0, le=1, description="ghosting amplitude in every session (None: the profile's random motion)")
    flair_slice_mm: float | None = Field(None, gt=0, le=10, description="2D FLAIR with this slice thickness (None: the profile's FLAIR)")

    def apply(self, profile):
        """A copy of a :class:`~dawm.simulate.scanners.ScannerProfile` with this degradation."""
        update = {"snr": profile.snr / self.noise, "bias_amplitude": profile.bias_amplitude * self.bias}
        if self.motion is not None:
            update["motion_amplitude"] = self.motion
        if self.flair_slice_mm is not None:
            inplane = profile.flair.voxel_mm[0] if profile.flair.dims == "2D" else 0.9
            update["flair"] = profile.flair.model_copy(
                update={
                    "dims": "2D",
                    "voxel_mm": (inplane, inplane, self.flair_slice_mm),
                    "slice_gap_mm": 0.0,
                    "tr_ms": max(profile.flair.tr_ms, 9000.0),
                }
            )
        return profile.model_copy(update=update)


class HeaderVariant(BaseModel):
    """How every scanner profile *stores* its images, overriding the profile (a header twin of a
    cohort: same seed, same anatomy, pathology and random draws; only the files differ). ``storage``
    RAS/LPS array order, ``oblique_deg`` the slab tilt (the grid is tilted: the same head scanned on
    an oblique grid), ``integer_storage`` int16 with ``scl_slope`` for the weighted images,
    ``t1map_units`` s/ms, ``mtr_units`` percent/fraction, ``nan_background`` NaN outside the T1 fit.
    ``None`` keeps the profile's own habit; the defaults change nothing."""

    storage: Literal["RAS", "LPS"] | None = None
    oblique_deg: float | None = Field(None, ge=-45, le=45)
    integer_storage: bool | None = None
    t1map_units: Literal["s", "ms"] | None = None
    mtr_units: Literal["percent", "fraction"] | None = None
    nan_background: bool | None = None

    @classmethod
    def other_converter(cls) -> HeaderVariant:
        """LPS, a 12-degree oblique grid, int16 with scl_slope, T1 maps in s, MTR as a fraction, NaN background."""
        return cls(storage="LPS", oblique_deg=12.0, integer_storage=True, t1map_units="s", mtr_units="fraction", nan_background=True)

    def apply(self, profile):
        """A copy of a :class:`~dawm.simulate.scanners.ScannerProfile` storing its files this way."""
        return profile.model_copy(update={k: v for k, v in self.model_dump().items() if v is not None})


class SimulationConfig(BaseModel):
    """What ``dawm simulate`` makes. Defaults give a cohort good enough to train and evaluate."""

    patients: int = Field(24, ge=0, description="number of MS patients")
    controls: int = Field(8, ge=0, description="number of healthy controls")
    sessions: int = Field(2, ge=1, le=5, description="sessions per subject (follow-ups after the first)")
    scanners: int = Field(3, ge=1, le=4, description="number of scanner profiles used (round robin)")
    resolution_mm: float = Field(
        1.0,
        ge=1.0,
        le=3.0,
        description=(
            "grid of the truth space; acquisition voxels scale with it, and so does their SNR (the 1 mm protocol "
            "averaged into the larger voxels: the square root of the voxel-volume ratio)"
        ),
    )
    seed: int = Field(0, ge=0, description="random seed; same seed, same bytes")
    followup_years: float = Field(
        5.0, gt=0, description="mean interval between sessions (years); the literature's DAWM transition fractions are per 5 years"
    )
    dawm_visibility: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description=(
            "fraction of DAWM's T1/T2/PD change rendered on the clinical T1w and FLAIR images. 1 (default) is "
            "physics: every image of a session is made from one set of property maps, so DAWM is subtle on "
            "T1w/FLAIR only through their signal equations, resolution, noise and bias. Below 1 is an "
            "experimental departure from physics for studies (how much DAWM signal must a clinical image "
            "carry for a model to find it); the MP2RAGE and MT images always see the full change"
        ),
    )
    dawm_prevalence: dict[str, float] = Field(
        default_factory=lambda: {"RRMS": 0.45, "SPMS": 0.8, "PPMS": 0.7},
        description="probability that a patient of a group has DAWM (about a third in RRMS per Gabr & Narayana; more in progressive MS per Vrenken 2010); raised slightly so small cohorts have DAWM to learn from",
    )

    degrade: Degradation = Field(default_factory=Degradation, description="controlled acquisition degradation (dose-response studies)")
    headers: HeaderVariant = Field(
        default_factory=HeaderVariant, description="how every profile stores its files (header twins: same cohort, other headers)"
    )

    @model_validator(mode="after")
    def _has_subjects(self) -> SimulationConfig:
        if self.patients + self.controls < 1:
            raise ValueError("a cohort needs at least one patient or control")
        return self

    @classmethod
    def small(cls, **overrides) -> SimulationConfig:
        """A tiny preset for tests: 2 patients, 1 control, 2 sessions, 2 scanners, 2 mm."""
        base = dict(patients=2, controls=1, sessions=2, scanners=2, resolution_mm=2.0)
        base.update(overrides)
        return cls(**base)
