"""Demographics and disability of simulated participants, with a documented truth to recover.

EDSS is drawn from a linear model on top of which noise is added, then clipped to [0, 9.5] and
rounded to the EDSS half-point scale (weak-to-moderate DAWM effect on top of lesion load, age and
disease duration, as the literature suggests; see ``shared/reference/literature.md``)::

    EDSS = 1.0 + 0.08 * duration_y + 0.10 * lesion_ml + 0.05 * dawm_ml
           + 1.5 * progressive + 0.02 * (age - 40) + N(0, 0.6)

:data:`EDSS_MODEL` holds these coefficients; the evaluation stage must recover them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EDSS_MODEL = {
    "intercept": 1.0,
    "duration_y": 0.08,
    "lesion_ml": 0.10,
    "dawm_ml": 0.05,
    "progressive": 1.5,
    "age_minus_40": 0.02,
    "noise_sd": 0.6,
}
GROUP_SHARE = {"RRMS": 0.6, "SPMS": 0.25, "PPMS": 0.15}


@dataclass(frozen=True)
class Participant:
    participant_id: str  # label without "sub-"
    group: str  # HC, RRMS, SPMS, PPMS
    age: float  # years at the first session
    sex: str  # F or M
    disease_duration: float  # years at the first session (0 for controls)
    scanner: str
    dawm_present: bool


def draw_participant(
    rng: np.random.Generator, participant_id: str, group: str, scanner: str, dawm_prevalence: dict[str, float]
) -> Participant:
    age_mu = {"HC": 40.0, "RRMS": 37.0, "SPMS": 52.0, "PPMS": 50.0}[group]
    age = float(np.clip(rng.normal(age_mu, 9.0), 19.0, 70.0))
    female_p = {"HC": 0.6, "RRMS": 0.72, "SPMS": 0.68, "PPMS": 0.5}[group]
    sex = "F" if rng.random() < female_p else "M"
    if group == "HC":
        duration = 0.0
    elif group == "RRMS":
        duration = float(np.clip(rng.lognormal(np.log(6.0), 0.7), 0.5, 25.0))
    elif group == "SPMS":
        duration = float(np.clip(rng.normal(16.0, 6.0), 5.0, 35.0))
    else:
        duration = float(np.clip(rng.normal(7.0, 4.0), 1.0, 25.0))
    duration = min(duration, age - 15.0) if group != "HC" else 0.0
    present = group != "HC" and bool(rng.random() < dawm_prevalence.get(group, 0.0))
    return Participant(participant_id, group, round(age, 1), sex, round(duration, 1), scanner, present)


def draw_edss(rng: np.random.Generator, p: Participant, *, years_since_baseline: float, lesion_ml: float, dawm_ml: float) -> float | None:
    """EDSS at a session (None for controls), from :data:`EDSS_MODEL` plus noise."""
    if p.group == "HC":
        return None
    m = EDSS_MODEL
    value = (
        m["intercept"]
        + m["duration_y"] * (p.disease_duration + years_since_baseline)
        + m["lesion_ml"] * lesion_ml
        + m["dawm_ml"] * dawm_ml
        + m["progressive"] * (p.group in ("SPMS", "PPMS"))
        + m["age_minus_40"] * (p.age + years_since_baseline - 40.0)
        + rng.normal(0.0, m["noise_sd"])
    )
    return float(np.clip(np.round(value * 2) / 2, 0.0, 9.5))


def assign_groups(rng: np.random.Generator, n_patients: int) -> list[str]:
    """Patient groups in the shares of :data:`GROUP_SHARE` (largest remainder, then shuffled)."""
    raw = {g: s * n_patients for g, s in GROUP_SHARE.items()}
    counts = {g: int(np.floor(v)) for g, v in raw.items()}
    for g in sorted(raw, key=lambda g: raw[g] - counts[g], reverse=True)[: n_patients - sum(counts.values())]:
        counts[g] += 1
    groups = [g for g, c in counts.items() for _ in range(c)]
    rng.shuffle(groups)
    return groups
