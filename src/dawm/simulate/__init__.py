"""A realistic synthetic MS cohort in BIDS with known truth (``dawm simulate``).

Pipeline per subject: template anatomy warped into a new brain (``anatomy``), lesions and DAWM
with their evolution (``pathology``), tissue property maps T1/T2/PD/MTR (``properties``), images
from signal equations (``signal``) acquired per scanner profile (``scanners``, ``acquisition``),
written as BIDS with truth derivatives (``cohort``).

Public API (``dawm.simulate``, paths out): :func:`simulate_cohort` (a config and a folder in, the
BIDS dataset with ``derivatives/dawm-truth`` written, a :class:`CohortResult` with participants,
volumes and the simulation report back) and :class:`SimulationConfig` (``SimulationConfig.small()``
for tests). The cohort module is imported on first use.
"""

from typing import TYPE_CHECKING

from dawm._lazy import lazy_exports
from dawm.simulate.config import SimulationConfig

if TYPE_CHECKING:
    from dawm.simulate.cohort import CohortResult, simulate_cohort

__all__ = ["CohortResult", "SimulationConfig", "simulate_cohort"]
__getattr__, __dir__ = lazy_exports(
    __name__, {"simulate_cohort": "dawm.simulate.cohort", "CohortResult": "dawm.simulate.cohort"}, globals()
)
