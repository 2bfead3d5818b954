"""Settings of the ``dawm label`` stage (one pydantic model, saved as ``label_config.json``).

Defaults and where they come from:

* ``threshold`` 3.5 (z) with ``grow_threshold`` 2.0: DAWM T1 is 5-20 % above NAWM (Vrenken et al.,
  AJNR 2010) and MTR a few pu below (Ge et al., AJNR 2003; Seewann et al., Arch Neurol 2009), i.e.
  1.5-5 reference SD for the smoothed maps; z = 2 per modality is the usual "abnormal" cut of
  normative MTR/T1 studies. A region is DAWM when its core passes z 3.5 and it extends to the
  26-connected voxels above z 2 (hysteresis; DAWM margins are ill-defined). With rule ``both`` on
  the pure-WM core (below), ``benchmarks/label_benchmark.py`` gave pooled DAWM Dice / control false
  positives per session of 0.33 / 1.19 ml (controls reference) and 0.33 / 1.19 ml (self) on the
  1.5 mm cohort (0.38 inside the true pure-WM core), 0.34 / 0.56 ml and 0.33 / 0.64 ml on the 2 mm
  demo cohort (DAWM volume Spearman 0.78 / 0.64); these cohorts had MNI-sized brains. On adult-sized
  brains under one physics (the 2 mm seed-11 cohort, ``label_2mm_seed11``) the same defaults give
  0.16 / 1.29 ml (Spearman 0.42): the defaults were chosen before, not re-tuned. Seeds at z 3 give the same Dice with 0.78 ml in
  the 2 mm controls; before the partial-volume margin took a voxel layer off 2 mm grids (below), a
  plain z 2 (no growth) gave 0.30-0.35 with 1.13 ml there,
  a plain z 2.5 0.24-0.35 with <= 0.38 ml. For the ``chi2`` rule the threshold is a p value of the
  2-dof Mahalanobis distance (default 0.01) and there is no growth.
* ``max_t1_rise`` 0.30: focal lesions have T1 35-95 % above WM (Vrenken 2010, :mod:`dawm.simulate.properties`),
  DAWM at most ~20 %, so a voxel more than 30 % above its reference looks like a lesion, not DAWM.
* ``lesion_margin_mm`` 2: lesion edges are partial-volume mixtures of lesion and NAWM; DAWM around
  lesions (Laule et al., Mult Scler 2011) is kept beyond this margin.
* ``pv_margin_mm`` 1.5 and ``wm_prior_min`` 0.85: on the simulated cohort, 70-85 % of the false
  positives of a threshold rule sat next to grey matter or CSF (the segmentation's WM reaches one
  voxel into the cortex and deep grey nuclei, whose partial volume raises T1 and lowers MTR exactly
  like DAWM); shrinking the eligible WM to its pure core (one voxel off every non-pure-WM voxel, and
  where the population WM prior is >= 0.85) raised the best-threshold (oracle) Dice from 0.19 to 0.36
  and the default rule's pooled Dice from 0.14 to 0.24-0.29
  (``benchmarks/label_benchmark.py``, ceiling table). The margin is raised to one voxel where the
  grid is coarser: on the 2 mm demo cohort the 1.5 mm margin removed nothing before, and removing the
  first layer cut the control false positives from 0.71 to 0.56 ml per session and raised the volume
  Spearman from 0.72 to 0.78, for a pooled Dice of 0.34 instead of 0.35 (truth coverage 55 -> 47 %).
* ``min_cluster_mm3`` 50: DAWM is a region of several mm, not isolated voxels (Seewann 2009).
* ``probability_zero_sd`` 2: the DAWM probability map (``label-DAWM_probseg``,
  :mod:`dawm.label.probability`) is one minus the local false discovery rate of the rule's score
  (``min(z_T1, -z_MTR)`` for ``both``) in the eligible WM: null centre/SD from the low side of the
  reference NAWM, null shape from the other healthy controls of the normative group (Gaussian
  without one), and Efron's zero assumption: no DAWM within this many null SD above the centre. On
  Gaussian null phantoms of 24 000 correlated voxels a 2 SD zone left an expected DAWM count of
  0.06 % (at most 0.3 %) of the voxels, 1.5 SD 0.09 % (0.6 %), 0 SD 0.4 % (2.2 %); on regions 3 SD
  above the null (combined score) with smooth margins the 2 SD zone kept 74-94 % of the true count
  (1.5 SD: 71-110 %).
* ``probability_min_cluster_mm3`` 100: the probability map's cluster support
  (:func:`dawm.label.probability.counted_voxels`): above the central zone, only voxels in clusters of
  at least this volume count, in the session and in the controls' null shape alike. Chosen on the
  2 mm seed-11 cohort (34 sessions, controls reference) among 25-400 mm3 as the size with the best
  soft Dice that does not raise the controls' expected volume: expected-volume Spearman vs truth
  0.33 -> 0.50, pooled soft Dice 0.19 -> 0.23, controls 0.93 -> 0.89 ml (200 mm3: 0.54, 0.25, 0.96 ml).
  Checked on the 2 mm demo-full cohort: 0.73 -> 0.85, 0.20 -> 0.23, 0.92 -> 0.73 ml
  (``benchmarks/results/label_2mm_seed11.md``, ``label_2mm_demo_full.md``). Off where a session's
  null is Gaussian, i.e. without any other control (a normative group without another control
  borrows the other groups' controls' null shape first).
* ``pooled_trend`` on: healthy WM has an anatomy-bound spatial pattern (on the simulator at 2 mm
  mostly the internal capsule between the deep grey nuclei, whose partial volume raises T1 and
  lowers MTR like DAWM: 5 of 11 controls' false positives share its 8 mm cells in MNI space); a
  voxel-wise norm needs ``min_controls_voxelwise`` controls per scanner, so a group with fewer takes
  the spatial trend of all groups' controls together (relative to each control's WM level), shrunk
  by a leave-one-subject-out weight (how well the other controls' trend predicts each left-out
  control's residuals; 0 when it predicts nothing), and keeps its regional SD. Measured 2026-12-04:
  on the 2 mm demo-full cohort (2 controls per scanner; weights MTR 0.87, T1 0.83) control false
  positives 0.88 -> 0.42 ml per session, pooled Dice 0.35 -> 0.37, Spearman 0.88 -> 0.91,
  probability map Spearman 0.78 -> 0.73, controls 0.88 -> 0.62 ml
  (``label_2mm_demo_full.md``, before: ``label_2mm_demo_full_regional.md``); on the 1 mm seed-5
  cohort, where the few controls' trend is mostly their own noise (weights MTR 0.00, T1 0.30),
  0.14 -> 0.17 ml at the same Dice 0.52 and Spearman 0.90, probability map Spearman 0.93 -> 0.97,
  controls 0.18 -> 0.24 ml (``label_1mm_seed5.md``, before: ``label_1mm_seed5_regional.md``; the
  same trend without the weight gave 0.43 ml there); on the 2 mm seed-11 cohort (5 controls: only
  the patients pooled, weights MTR 0.97, T1 0.94) Dice 0.38 -> 0.40, Spearman 0.63 -> 0.66,
  probability map Spearman 0.25 -> 0.15 (6 sessions with DAWM) (``label_2mm_seed11.md``). Without
  ``min_controls_voxelwise`` controls in all (``make demo``: 3) nothing is pooled.
* ``deep_gm_margin_mm`` 0 (an option): the deep grey nuclei are non-pure WM that the 3-class
  segmentation does not see. On the 2 mm seed-11 cohort (its hc002 still taken for skull-stripped)
  2 mm changed nothing that counts (Dice 0.37 -> 0.39, controls 2.80 -> 2.66 ml) and 4 mm cut the
  truth coverage from 0.44 to 0.28 and the Dice to 0.31.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from dawm.config import StageConfig

Rule = Literal["t1", "mtr", "both", "either", "chi2"]
Reference = Literal["controls", "self"]
#: Default z threshold of the z rules and default p of the chi2 rule.
DEFAULT_Z = 3.5
DEFAULT_CHI2_P = 0.01


class LabelConfig(StageConfig):
    """What ``dawm label`` does to each session (see the module docstring for the defaults' sources)."""

    model_config = ConfigDict(extra="forbid")

    reference: Reference = Field(
        "controls", description="normative reference: healthy controls of the same scanner, or the subject's own NAWM"
    )
    rule: Rule = Field(
        "both",
        description="t1: T1 z >= thr; mtr: MTR z <= -thr; both: AND; either: OR; chi2: joint Mahalanobis p < thr (abnormal direction)",
    )
    threshold: float | None = Field(
        None, gt=0, description=f"z threshold (default {DEFAULT_Z}); for rule chi2 a p value (default {DEFAULT_CHI2_P})"
    )
    group_by: Literal["scanner", "field_strength"] = Field("scanner", description="controls are pooled per scanner or per field strength")
    control_group: str = Field("HC", description="participants.tsv group of the healthy controls")
    smoothing_fwhm_mm: float = Field(
        3.0, ge=0, description="FWHM of the smoothing of T1/MTR inside WM before z-scoring (normalised convolution)"
    )
    grow_threshold: float | None = Field(
        2.0,
        gt=0,
        description="z rules: voxels above this z connected to a voxel above the threshold are DAWM too (hysteresis); None = no growth; a value above the threshold means no growth",
    )
    wm_purity: float = Field(0.9, ge=0, le=1, description="minimum WM probability of a voxel that can be DAWM (and of reference voxels)")
    pv_margin_mm: float = Field(
        1.5,
        ge=0,
        description="voxels closer than this (and at least the first voxel layer) to a voxel that is not pure WM (dseg WM with probability >= wm_purity) cannot be DAWM nor reference (partial volume with GM/CSF)",
    )
    wm_prior_min: float = Field(
        0.85, ge=0, le=1, description="minimum MNI152 WM prior (warped to the session) of voxels that may be DAWM or reference; 0 = off"
    )
    deep_gm_margin_mm: float = Field(
        0.0,
        ge=0,
        description="voxels within this distance of the MNI152 deep grey nuclei (deep-GM prior >= 0.5, warped to the session) can be neither DAWM nor reference; 0 = off",
    )
    lesion_margin_mm: float = Field(2.0, ge=0, description="lesions dilated by this much are never DAWM")
    reference_lesion_margin_mm: float = Field(5.0, ge=0, description="self reference: NAWM within this distance of a lesion is left out")
    max_t1_rise: float = Field(
        0.30, gt=0, description="voxels whose T1 exceeds the reference by more than this fraction are lesion-like, not DAWM"
    )
    min_cluster_mm3: float = Field(50.0, ge=0, description="DAWM clusters smaller than this are removed (26-connectivity)")
    closing_mm: float = Field(0.0, ge=0, description="morphological closing radius applied to the DAWM mask before the cluster filter")
    probability_zero_sd: float = Field(
        2.0,
        ge=0,
        description="DAWM probability map: scores within this many null SD above the null centre are taken as null (Efron's zero assumption; see dawm.label.probability)",
    )
    probability_min_cluster_mm3: float = Field(
        100.0,
        ge=0,
        description="DAWM probability map: voxels above the central zone count only in 26-connected clusters of at least this volume of such voxels, in the session and in the controls' null alike (0 = every voxel; see dawm.label.probability)",
    )
    trend_fwhm_mm: float = Field(
        30.0, ge=0, description="self reference: also remove a smooth trend of the subject's reference NAWM (FWHM mm; 0 = off)"
    )
    recenter: bool = Field(
        True,
        description="subtract the median z of the subject's own reference NAWM (tolerates the global NAWM shift of MS and scanner drift)",
    )
    min_controls_voxelwise: int = Field(5, ge=2, description="controls per scanner needed for the voxel-wise MNI term and the age slope")
    pooled_trend: bool = Field(
        True,
        description="a group with fewer controls than min_controls_voxelwise takes the voxel-wise spatial trend (not the SD) of all groups' controls together, when they are that many, shrunk by a leave-one-subject-out weight",
    )
    voxelwise_fwhm_mm: float = Field(8.0, gt=0, description="smoothing of the voxel-wise control mean/SD maps in MNI space")
    min_region_voxels: int = Field(100, ge=10, description="regions with fewer reference voxels use the whole-WM statistics")
    auto_lesion: Literal["when_absent", "add", "never"] = Field(
        "when_absent",
        description="automatic lesion mask (FLAIR hyperintense AND T1 clearly high): only when preprocess gives none, added to it, or never",
    )
    auto_lesion_flair_z: float = Field(3.0, gt=0, description="automatic lesions: FLAIR robust z in WM above this")
    auto_lesion_t1_rise: float = Field(0.30, gt=0, description="automatic lesions: T1 above the WM median by more than this fraction")

    @model_validator(mode="after")
    def _threshold_fits_rule(self) -> LabelConfig:
        if self.threshold is not None and self.rule == "chi2" and not self.threshold < 1:
            raise ValueError(f"rule chi2 takes a p value threshold in (0, 1), got {self.threshold}")
        return self

    @property
    def z_threshold(self) -> float:
        """The z threshold of the t1/mtr/both/either rules."""
        return DEFAULT_Z if self.threshold is None or self.rule == "chi2" else float(self.threshold)

    @property
    def chi2_p(self) -> float:
        """The p threshold of the chi2 rule."""
        return DEFAULT_CHI2_P if self.threshold is None or self.rule != "chi2" else float(self.threshold)
