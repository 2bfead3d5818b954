"""Parameters of a simulated cohort (one pydantic model drives the CLI, the API and the tests)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SimulationConfig(BaseModel):
    """What ``dawm simulate`` makes. Defaults give a cohort good enough to train and evaluate."""

    patients: int = Field(24, ge=0, description="number of MS patients")
    controls: int = Field(8, ge=0, description="number of healthy controls")
    sessions: int = Field(2, ge=1, le=5, description="sessions per subject (follow-ups after the first)")
    scanners: int = Field(3, ge=1, le=4, description="number of scanner profiles used (round robin)")
    resolution_mm: float = Field(1.0, ge=1.0, le=3.0, description="grid of the truth space; acquisition voxels scale with it")
    seed: int = Field(0, ge=0, description="random seed; same seed, same bytes")
    followup_years: float = Field(5.0, gt=0, description="mean interval between sessions (years); the literature's DAWM transition fractions are per 5 years")
    dawm_visibility: float = Field(
        0.55, ge=0.0, le=1.0,
        description=(
            "fraction of DAWM's T1/T2/PD change that shows on the clinical T1w and FLAIR images "
            "(1 = physically consistent with the quantitative maps; the default keeps DAWM subtle there, "
            "as reported: Laule 2011, Seewann 2009); the MP2RAGE and MT images always see the full change"
        ),
    )
    dawm_prevalence: dict[str, float] = Field(
        default_factory=lambda: {"RRMS": 0.45, "SPMS": 0.8, "PPMS": 0.7},
        description="probability that a patient of a group has DAWM (about a third in RRMS per Gabr & Narayana; more in progressive MS per Vrenken 2010); raised slightly so small cohorts have DAWM to learn from",
    )

    @classmethod
    def small(cls, **overrides) -> "SimulationConfig":
        """A tiny preset for tests: 2 patients, 1 control, 2 sessions, 2 scanners, 2 mm."""
        base = dict(patients=2, controls=1, sessions=2, scanners=2, resolution_mm=2.0)
        base.update(overrides)
        return cls(**base)
