"""Settings of the ``dawm preprocess`` stage, saved as JSON beside its outputs.

Every field has a default that suits 1 mm clinical data; the tests and the 2 mm simulated cohorts
set ``spacing_mm=2.0`` to keep the session grid at the acquisition resolution.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dawm.config import StageConfig

#: Roles that can define the session grid (in order of preference by default).
REFERENCE_ROLES = ("T1w", "UNIT1", "FLAIR")
#: Weighted (magnitude) roles; quantitative maps (T1map, MTRmap) are never bias-corrected.
WEIGHTED_ROLES = ("T1w", "FLAIR", "UNIT1", "inv1", "inv2", "mton", "mtoff")


class N4Config(BaseModel):
    """N4 bias-field correction (:func:`dawm.preprocess.bias.correct_bias`) settings."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    roles: tuple[str, ...] = Field(
        ("T1w", "FLAIR"),
        description="roles corrected (weighted images only; UNIT1 is bias-free by construction, add inv2/mtoff for their INU metrics)",
    )
    shrink_factor: int = Field(4, ge=1)
    iterations: tuple[int, ...] = (50, 50, 30)
    spline_distance_mm: float = Field(200.0, gt=0)
    fit_region: Literal["wm_prior", "brain"] = Field(
        "wm_prior",
        description="where N4 is fitted: white matter from the affinely registered MNI prior (one tissue, "
        "so intensity spread is bias; removes ~0.6 of a simulated receive field's log-SD against ~0.4 for the brain), "
        "or the brain mask dilated by mask_dilation_mm (also used when no template registration exists, e.g. a user mask)",
    )
    mask_dilation_mm: float = Field(10.0, ge=0, description="with fit_region=brain: N4 is fitted in the brain mask dilated by this much")

    @field_validator("roles")
    @classmethod
    def _weighted_only(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in roles if r not in WEIGHTED_ROLES]
        if bad:
            raise ValueError(f"N4 applies to weighted images only ({', '.join(WEIGHTED_ROLES)}), not {', '.join(bad)}")
        return roles


class PreprocessConfig(StageConfig):
    """What ``dawm preprocess`` does to each session."""

    model_config = ConfigDict(extra="forbid")

    reference_roles: tuple[str, ...] = Field(REFERENCE_ROLES, description="first available role defines the session grid")
    spacing_mm: float = Field(1.0, gt=0, le=4.0, description="isotropic voxel size of the session grid (mm)")
    template_resolution_mm: Literal[1, 2] = Field(2, description="MNI template grid used for registration and priors")
    registration_spacing_mm: float = Field(2.0, gt=0, description="working grid of the rigid co-registrations (mm)")
    seed: int = Field(0, ge=0, description="seed of the registration metric sampling")
    n4: N4Config = Field(default_factory=N4Config)
    min_template_correlation: float = Field(
        0.5,
        ge=-1,
        le=1,
        description="a session fails when its T1-like image correlates less than this with the registered MNI template inside the brain (a missed registration; good ones give about 0.8-0.9)",
    )
    min_tissue_fit: float = Field(
        0.33,
        ge=-1,
        le=1,
        description="without a T1-like image (FLAIR-only sessions) a session fails when the tissue priors "
        "fit its images less than this (dawm.preprocess.brain.tissue_fit; a simulated FLAIR 0.41, 0.27 with its "
        "registration moved 5 mm, 0.15 at 10 mm)",
    )
    min_brain_coverage: float = Field(
        0.95, ge=0, le=1, description="warn when less than this share of the expected brain lies inside an image's field of view"
    )
    mni_refine: bool = Field(
        True,
        description="own demons registration of the bias-corrected T1-like brain to MNI; "
        "False reuses the brain extraction's deformable registration (faster)",
    )
    brain_refine: bool = Field(
        True,
        description="after the deformable MNI registration, redraw the brain mask as the template mask "
        "pulled through it (the first mask comes from an affine template registration)",
    )
    segmentation_channels: tuple[str, ...] = Field(("T1w", "FLAIR", "UNIT1"), description="bias-corrected roles used by segment_tissues")
    brain_mask_derivative: str | None = Field(
        None, description="derivatives/<name> holding user brain masks (*_desc-brain_mask / *_label-brain_mask)"
    )
    lesion_mask_derivative: str | None = Field(
        "lesion-masks",
        description="derivatives/<name> holding lesion masks (*_label-lesion_mask, e.g. a rater's), forced to WM; used when present, else the automatic candidates",
    )
    iqm: bool = Field(True, description="compute image-quality metrics")
    qc_figure: bool = Field(True, description="write a QC PNG per session")

    @field_validator("reference_roles")
    @classmethod
    def _known_reference(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in roles if r not in REFERENCE_ROLES]
        if bad or not roles:
            raise ValueError(f"reference roles must be among {', '.join(REFERENCE_ROLES)}, got {roles}")
        return roles
